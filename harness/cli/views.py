"""Plain-text views of records for the terminal.

The views of a run (`run_*`, `task_*`) take the record's JSON form, so `harness
status` and `show` render without the record models; the views of integrate, gate and
doctor take their records."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

from ..fates import branch_fates, fate_counts

if TYPE_CHECKING:
    from ..records import ConflictForecast, ConflictRecord, GateReport, MergeReport


def format_ranges(ranges: Iterable) -> str:
    """"3-5,9" (an empty range, an insertion or deletion point, shows as "^3"); the
    ranges are HunkRange records or their JSON form."""
    parts = []
    for r in ranges:
        start, count = (r["start"], r["count"]) if isinstance(r, dict) else (r.start, r.count)
        if count == 0:
            parts.append(f"^{start}")
        elif count == 1:
            parts.append(str(start))
        else:
            parts.append(f"{start}-{start + count - 1}")
    return ",".join(parts) or "-"


def _table(rows: list[list[str]]) -> str:
    if not rows:
        return ""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def _stamp(value: str | None, time_only: bool = False) -> str:
    """An ISO-8601 stamp of a record's JSON form as "2026-01-31 12:00:00" (or the time)."""
    if not isinstance(value, str):
        return "-"
    return value[11:19] if time_only else value[:19].replace("T", " ")


def _agent_status(result: dict) -> str:
    """How the agent's attempts ended (records before fates wrote the gate's verdict here)."""
    return "succeeded" if result["status"] == "rejected_by_gate" else result["status"]


def _counts(record: dict) -> str:
    counts: dict[str, int] = {}
    for r in record.get("tasks", {}).values():
        counts[_agent_status(r)] = counts.get(_agent_status(r), 0) + 1
    text = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no tasks finished"
    branches = fate_counts(branch_fates(record)) if record.get("merge") else ""
    return text + (f"; branches: {branches}" if branches else "")


def run_summary(record: dict) -> str:
    """A run's tasks: the agent's status beside what became of its branch. Views of a
    run take the record's JSON form (what `--json` prints; runlog.RunLog.load_raw)."""
    lines = [f"run {record['run_id']}: {_counts(record)}"]
    fates = branch_fates(record)
    rows = [["TASK", "STATUS", "ATTEMPTS", "BRANCH", "FATE", "REASON"]]
    for tid, fate in fates.items():
        r = record.get("tasks", {}).get(tid)
        if r is None:
            rows.append([tid, "pending", "", "", "", ""])
            continue
        status = _agent_status(r)
        reason = fate["detail"] if fate["fate"] not in ("folded", "no_branch", "not_integrated") else ""
        if status != "succeeded":
            reason = r.get("exit_reason") or ""
        rows.append([tid, status, str(len(r.get("attempts", []))),
                     r.get("branch") or "-", fate["fate"] if fate["fate"] != "no_branch" else "-", reason])
    lines.append(_table(rows))
    lines += _model_spend(record)
    return "\n".join(lines)


def run_list(rows: list[list[str]]) -> str:
    """`harness status`: one row a run (`run_row`, or `unreadable_row`)."""
    if not rows:
        return "no runs"
    return _table([["RUN", "STATUS", "CREATED", "TASKS", "RESULT"], *rows])


def unreadable_row(run_id: str, error: str | None) -> list[str]:
    return [run_id, "unreadable", "-", "-", error or ""]


def run_row(r: dict, holder: dict | None) -> list[str]:
    status = r["status"]
    if status == "running" and holder:
        status += f" (pid {holder.get('pid')})"
    elif status in ("interrupted", "cancelled"):
        status += f": harness resume {r['run_id']}"
    return [r["run_id"], status, _stamp(r.get("created_at")), str(len(r.get("task_order") or r.get("tasks", {}))),
            _counts(r)]


def run_detail(record: dict) -> str:
    status = record["status"]
    if status in ("interrupted", "cancelled"):
        by = record.get("cancelled_by")
        status += f"{' by ' + by if by else ''}; `harness resume {record['run_id']}` finishes it"
    image = record.get("image_id")
    lines = [f"run {record['run_id']} ({status})",
             f"  base     {record['base_ref']} = {record['base_commit']}",
             f"  sandbox  {record['sandbox']}" + (f" (image {image[:19]})" if image else ""),
             f"  created  {_stamp(record.get('created_at'))}"
             + (f", ended {_stamp(record['ended_at'], True)}" if record.get("ended_at") else ""), "",
             run_summary(record)]
    m = record.get("merge")
    if m:
        steps = m.get("steps", [])
        folded = sum(1 for s in steps if s.get("outcome") == "folded")
        conflicted = sum(1 for s in steps if s.get("outcome") == "conflicted" and s.get("conflict"))
        lines += ["", f"integration {m['branch']} = {m['head'][:10]} onto {m['onto']}: "
                  f"{folded} folded, {conflicted} conflicted ({m.get('status', 'clean')})"]
    for c in record.get("conflicts", []):
        for p in c.get("paths", []):
            lines.append(f"  conflict {c['task_id']}: {p['path']} ({p['kind']}) "
                         f"ours {format_ranges(p.get('ours_ranges', []))} "
                         f"theirs {format_ranges(p.get('theirs_ranges', []))}")
        if c.get("conflict_class") == "semantic":
            partners = c.get("partners") or []
            lines.append(f"  semantic conflict {c['task_id']}"
                         + (f" with {', '.join(partners)}" if partners else "")
                         + f": failing {', '.join(c.get('failing_tests', [])[:5])}")
    g = record.get("gate")
    if g:
        culprits, landed = g.get("culprits", []), g.get("landed_ref")
        lines += ["", f"gate: {g['status']} after {len(g.get('runs', []))} test run(s)"
                  + (f", culprits {', '.join(culprits)}" if culprits else "")
                  + (f", landed {landed}" if landed else "")]
    return "\n".join(lines)


def _money(spend: dict) -> str:
    return (f"{spend.get('calls', 0)} model call(s), {spend.get('input_tokens', 0)} in / "
            f"{spend.get('output_tokens', 0)} out tokens, ${spend.get('cost_usd', 0.0):.4f}"
            + (f", {spend['refused']} refused" if spend.get("refused") else ""))


def _model_spend(record: dict) -> list[str]:
    """Tokens and cost per task and the run's total (summed from the tasks, so a run
    still going or interrupted shows what it spent so far); nothing without [model]."""
    tasks = {tid: r["spend"] for tid, r in record.get("tasks", {}).items() if r.get("spend")}
    if not tasks and not record.get("spend"):
        return []
    total = {k: sum(t.get(k, 0) for t in tasks.values())
             for k in ("calls", "input_tokens", "output_tokens", "cost_usd", "refused")}
    rows = [["TASK", "CALLS", "IN", "OUT", "COST", "REFUSED"]]
    for tid, sp in tasks.items():
        rows.append([tid, str(sp.get("calls", 0)), str(sp.get("input_tokens", 0)), str(sp.get("output_tokens", 0)),
                     f"${sp.get('cost_usd', 0.0):.4f}", str(sp.get("refused", 0))])
    return ["", f"model  total: {_money(total)}", *("  " + line for line in _table(rows).splitlines())]


def _call_line(c: dict) -> str:
    """One model call of an attempt's trace (its JSON line)."""
    resp = c.get("response") or {}
    usage = c.get("usage") or {}
    what = " ".join(x for x in (c.get("endpoint"), c.get("model"), "stream" if c.get("stream") else "") if x)
    line = (f"model #{c.get('seq')} {what} -> {c.get('upstream') or '-'}: {resp.get('status', '-')} "
            f"{c.get('outcome') or ''}")
    if usage:
        line += f", {usage.get('input_tokens', 0)} in / {usage.get('output_tokens', 0)} out tokens"
    if c.get("cost_usd"):
        line += f", ${c['cost_usd']:.6f}"
    if c.get("elapsed_s") is not None:
        line += f", {c['elapsed_s']:.2f}s"
    if c.get("retry"):
        line += f", {c['retry']} retr{'y' if c['retry'] == 1 else 'ies'}"
    if c.get("error"):
        line += f" ({c['error']})"
    return line


def _steps_and_calls(a: dict, calls: list[dict], order: dict[str, int]) -> list[str]:
    """The attempt's steps with its model calls among them, in the order they came
    (`order`: how many steps the log held when each call arrived; a call without a
    place is listed after the steps)."""
    trace, out, pending = a.get("tool_trace", []), [], sorted(calls, key=lambda c: c.get("seq", 0))
    for i, step in enumerate(trace):
        while pending and order.get(str(pending[0].get("seq")), len(trace)) <= i:
            out.append(_call_line(pending.pop(0)))
        out.append(f"- {step}")
    out += [_call_line(c) for c in pending]
    return out


def task_progress(record: dict, live: dict) -> str:
    """A task of a run with no result yet (runlog.RunLog.task_progress)."""
    lines = [f"task {live['task_id']} of run {record['run_id']}: {live['status']}"]
    cur = live.get("current")
    if cur:
        lines.append(f"  attempt {cur['attempt']} started {cur['started_at'][11:19]}"
                     + (f" in {cur['worktree']}" if cur.get("worktree") else ""))
        lines.append(f"  log      {live['log']}")
    for a in live.get("attempts", []):
        lines.append(f"  attempt {a.get('number', '?')}: {a.get('status')} ({a.get('reason') or ''})")
    return "\n".join(lines)


def task_detail(record: dict, tid: str, model_calls: dict[int, tuple[list[dict], dict]] | None = None) -> str:
    """A task's attempts; `model_calls` maps an attempt's number to its model trace's
    lines and the order file's `steps_before_call`, listed among its steps."""
    r = record["tasks"][tid]
    fate = branch_fates(record).get(tid, {"fate": "not_integrated", "detail": ""})
    status = _agent_status(r)
    lines = [f"task {tid} of run {record['run_id']}: {status}"
             + (f" ({r['exit_reason']})" if r.get("exit_reason") and status != "succeeded" else "")]
    if fate["fate"] != "no_branch":
        lines.append(f"  fate    {fate['fate']}" + (f": {fate['detail']}" if fate["detail"] else ""))
    if r.get("branch"):
        lines.append(f"  branch  {r['branch']} = {r.get('head_commit')}")
    if r.get("strategy"):
        lines.append(f"  strategy {r['strategy']}")
    d = r.get("diff")
    if d:
        lines.append(f"  diff    {d['files_changed']} files, +{d['insertions']} -{d['deletions']}")
    for a in r.get("attempts", []):
        lines.append(f"  attempt {a['number']}: {a['status']} exit={a.get('exit_code')} {a.get('duration_s', 0):.1f}s"
                     + (f" ({a['reason']})" if a.get("reason") else "") + (f" ref {a['ref']}" if a.get("ref") else ""))
        lines.append(f"    log {a.get('log_path')}")
        steps, trace = a.get("steps", 0), a.get("tool_trace", [])
        calls, order = (model_calls or {}).get(a["number"], ([], {}))
        if a.get("spend"):
            lines.append(f"    model {_money(a['spend'])}")
        if calls:
            shown = _steps_and_calls(a, calls, order)
            more = len(shown) - 40
            lines.append(f"    {steps} step(s) and {len(calls)} model call(s), in order"
                         + (f" (the last 40; {more} before)" if more > 0 else "") + ":")
            lines += [f"    {t}" for t in shown[-40:]]
        elif steps:
            shown = trace[-8:]
            lines.append(f"    {steps} step(s)" + (f", the last {len(shown)}:" if steps > len(shown) else ":"))
            lines += [f"    - {t}" for t in shown]
        tail = (a.get("output_tail") or "").strip().splitlines()[-5:]
        lines += [f"    | {t}" for t in tail]
    return "\n".join(lines)


# --- integration and conflicts -------------------------------------------------------


def _indent(text: str, prefix: str) -> list[str]:
    return [prefix + line for line in text.rstrip("\n").splitlines()]


def conflict_detail(c: ConflictRecord, max_lines: int = 8) -> list[str]:
    """A conflict, path by path: kind, line ranges and the two sides' text; a
    semantic one: the tasks it fails with, what it cost to find them, the failing tests."""
    if c.conflict_class == "semantic":
        lines = [f"  {c.task_id}: passes alone, fails with "
                 + (f"{', '.join(c.partners)} (found in {c.partner_runs} extra test run(s))" if c.partners
                    else f"what was folded before it: {', '.join(c.other_tasks) or '-'}"),
                 f"    ours {c.ours_commit[:10]} (the {len(c.other_tasks)} branch(es) folded before it), "
                 f"theirs {c.theirs_commit[:10]}, base {(c.merge_base or '-')[:10]}"]
        shown = c.failing_tests[:max_lines]
        lines += [f"    failing {t}" for t in shown]
        if len(c.failing_tests) > len(shown):
            lines.append(f"    ... {len(c.failing_tests) - len(shown)} more failing test(s)")
        return lines
    lines = [f"  {c.task_id}: ours {c.ours_commit[:10]} (integration), theirs {c.theirs_commit[:10]}, "
             f"base {(c.merge_base or '-')[:10]}"
             + (f"; also touched by {', '.join(c.other_tasks)}" if c.other_tasks else "")]
    for p in c.paths:
        lines.append(f"    {p.path}: {p.kind}" + (f" ({p.detail})" if p.detail else ""))
        if p.kind == "binary":
            continue
        lines.append(f"      ours lines {format_ranges(p.ours_ranges)}, "
                     f"theirs lines {format_ranges(p.theirs_ranges)}")
        for label, text in (("ours", p.ours_text), ("theirs", p.theirs_text)):
            if not text:
                continue
            body = text.splitlines()
            lines.append(f"      {label}:")
            lines += [f"        | {t}" for t in body[:max_lines]]
            if len(body) > max_lines:
                lines.append(f"        | ... {len(body) - max_lines} more line(s)")
    return lines


def merge_report(m: MergeReport) -> str:
    moved = "moved" if m.ref_moved else "NOT moved (policy fail stopped at a conflict)"
    lines = [f"integration of run {m.run_id}: {m.status}, {len(m.folded)} folded, "
             f"{len(m.unresolved)} conflicted",
             f"  {m.branch} = {m.head[:10]} ({moved}), onto {m.onto} = {m.base_commit[:10]}",
             ""]
    rows = [["TASK", "OUTCOME", "AGENT HEAD", "MERGE COMMIT", "NOTE"]]
    for s in m.steps:
        note = s.detail or (", ".join(p.path for p in s.conflict.paths[:3]) if s.conflict else "")
        rows.append([s.task_id, s.outcome, s.agent_head[:10], (s.merge_commit or "-")[:10], note])
    lines.append(_table(rows))
    if m.unresolved:
        lines += ["", "conflicts:"]
        for c in m.unresolved:
            lines += conflict_detail(c)
    return "\n".join(lines)


def forecast(fc: ConflictForecast) -> str:
    """A matrix of the tasks (X: will conflict, o: overlapping lines that merge
    cleanly, ~: same file, disjoint regions, .: nothing shared), then the pairs."""
    tids = [t.task_id for t in fc.tasks if t.source is not None]
    idle = [t for t in fc.tasks if t.source is None]
    marks: dict[tuple[str, str], str] = {}
    for p in fc.pairs:
        mark = "X" if p.collides else ("o" if p.kind == "overlap" else "~")
        marks[(p.a, p.b)] = marks[(p.b, p.a)] = mark
    lines = [f"conflict forecast for run {fc.run_id} (base {fc.base_commit[:10]}): "
             f"{len(fc.colliding)} colliding pair(s) among {len(tids)} task(s)"]
    if tids:
        width = len(str(len(tids)))
        name_w = max(len(t) for t in tids)
        header = " " * (width + name_w + 3) + " ".join(str(i + 1).rjust(width) for i in range(len(tids)))
        lines += ["", header]
        for i, a in enumerate(tids):
            cells = ["-" if a == b else marks.get((a, b), ".") for b in tids]
            lines.append(f"{str(i + 1).rjust(width)} {a.ljust(name_w)}  "
                         + " ".join(c.rjust(width) for c in cells))
        lines.append("  X will conflict   o overlapping lines, merge clean   ~ same file, disjoint   . none")
    for title, pick in (("colliding", lambda p: p.collides),
                        ("overlapping but merging cleanly", lambda p: p.kind == "overlap" and not p.collides),
                        ("same file, disjoint regions", lambda p: p.kind == "same-file")):
        chosen = [p for p in fc.pairs if pick(p)]
        if not chosen:
            continue
        lines += ["", f"{title}:"]
        for p in chosen:
            how = {"conflict": ": merge conflicts", "clean": ": merges clean",
                   "unchecked": ": not merged (no commit yet)" if p.kind == "overlap" else ""}[p.merge]
            lines.append(f"  {p.a} x {p.b}{how}")
            for fp in p.paths:
                if title == "colliding" and not fp.overlap:
                    continue
                lines.append(f"    {fp.path}: base lines {format_ranges(fp.a_ranges)} ({p.a}) "
                             f"vs {format_ranges(fp.b_ranges)} ({p.b})")
    if fc.scope_overlaps:
        lines += ["", "declared write scopes that overlap (from the plan):"]
        lines += [f"  {o.a} x {o.b}: {', '.join(o.scope_a)} | {', '.join(o.scope_b)}" for o in fc.scope_overlaps]
    live = [t for t in fc.tasks if t.source in ("attempt", "worktree")]
    if live:
        lines += ["", "read from running attempts: "
                  + ", ".join(f"{t.task_id} ({t.source})" for t in live)]
    if idle:
        lines += ["", "not compared (no work to read): "
                  + ", ".join(f"{t.task_id} ({t.status})" for t in idle)]
    return "\n".join(lines)


# --- gate ----------------------------------------------------------------------------


def gate_report(g: GateReport, conflicts: Iterable[ConflictRecord] = ()) -> str:
    """The gate's result, its culprits (with the partners of semantic ones), the
    search's cost and every test run; then `conflicts` (the semantic ones it recorded)."""
    lines = [f"gate of run {g.run_id}: {g.status.upper()} after {g.test_runs} test run(s)"
             + (f" ({g.reason})" if g.reason else "")]
    if g.tested_commit:
        lines.append(f"  tested   {g.tested_commit}")
    setup = [f"{g.sandbox} sandbox"] if g.sandbox else []
    if g.test_timeout_s is not None:
        setup.append(f"{g.test_timeout_s:g}s a run")
    lines.append(f"  command  {g.test_cmd}" + (f"  [{', '.join(setup)}]" if setup else ""))
    if g.landed_ref:
        lines.append(f"  landed   {g.landed_ref}: {(g.landed_from or '')[:10]} -> {(g.tested_commit or '')[:10]}")
    if g.land_error:
        lines.append(f"  NOT landed: {g.land_error}")
    for task in g.culprits:
        failing = g.culprit_tests.get(task, [])
        partners = g.partners.get(task)
        lines.append(f"  culprit  {task}: " + (", ".join(failing[:5]) or "tests fail")
                     + (f" +{len(failing) - 5} more" if len(failing) > 5 else "")
                     + (f" (passes alone; fails with {', '.join(partners)})" if partners else ""))
    if g.flaky:
        lines.append(f"  flaky    {', '.join(g.flaky)}")
    searched = g.runs_for("bisect", "base")
    if searched or g.culprits:
        branches = len(g.runs[0].tasks) if g.runs else 0
        lines.append(f"  search   {searched} bisect run(s) for {len(g.culprits)} culprit(s) among "
                     f"{branches} branch(es)" + (f" in {g.order} order" if g.order else "")
                     + f"; {g.runs_for('rebuilt')} rebuilt head(s) gated again")
    alone = g.runs_for("alone")
    if alone:
        lines.append(f"  blame    {alone} culprit(s) tested alone; {g.runs_for('partners')} partner-search "
                     f"run(s) for {len(g.partners)} semantic conflict(s)")
    semantic = list(conflicts)
    if semantic:
        lines += ["", f"semantic conflicts (the later in {'the plan' if g.order == 'plan' else 'the fold'} "
                  "is rejected):"]
        for c in semantic:
            lines += conflict_detail(c)
    rows = [["#", "PURPOSE", "COMMIT", "BRANCHES", "RESULT", "SECONDS"]]
    for i, r in enumerate(g.runs, 1):
        t = r.tests
        result = ("pass" if t.ok else f"FAIL ({t.reason})" if t.timed_out or not t.failing
                  else f"FAIL {len(t.failing)}")
        if t.source == "junit":
            result += f" ({t.passed}p/{t.failed}f/{t.errored}e/{t.skipped}s)"
        rows.append([str(i), r.purpose, r.commit[:10], str(len(r.tasks)), result, f"{t.duration_s:.1f}"])
    lines += ["", _table(rows)]
    return "\n".join(lines)


def checks(items) -> str:
    """`harness doctor` output: one line a check, with what to do when it is not ok."""
    mark = {"ok": "ok  ", "warn": "warn", "fail": "FAIL"}
    lines = []
    for c in items:
        lines.append(f"{mark.get(c.status, c.status)}  {c.name}: {c.detail}")
        lines += [f"        {i}" for i in (c.items or [])[:10]]
        if len(c.items or []) > 10:
            lines.append(f"        ... and {len(c.items) - 10} more")
        if c.status != "ok" and c.fix:
            lines.append(f"        fix: {c.fix}")
    return "\n".join(lines)
