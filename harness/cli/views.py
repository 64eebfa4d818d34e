"""Plain-text views of records for the terminal."""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable

if TYPE_CHECKING:
    from ..records import AgentResult, ConflictForecast, ConflictRecord, GateReport, HunkRange, MergeReport, RunRecord


def format_ranges(ranges: Iterable[HunkRange]) -> str:
    """"3-5,9" (an empty range, an insertion or deletion point, shows as "^3")."""
    parts = []
    for r in ranges:
        if r.count == 0:
            parts.append(f"^{r.start}")
        elif r.count == 1:
            parts.append(str(r.start))
        else:
            parts.append(f"{r.start}-{r.start + r.count - 1}")
    return ",".join(parts) or "-"


def _table(rows: list[list[str]]) -> str:
    if not rows:
        return ""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows)


def _counts(record: RunRecord) -> str:
    counts: dict[str, int] = {}
    for r in record.tasks.values():
        counts[r.status.value] = counts.get(r.status.value, 0) + 1
    return ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "no tasks finished"


def run_summary(record: RunRecord) -> str:
    lines = [f"run {record.run_id}: {_counts(record)}"]
    rows = [["TASK", "STATUS", "ATTEMPTS", "BRANCH", "REASON"]]
    for tid in record.task_order or list(record.tasks):
        r = record.tasks.get(tid)
        if r is None:
            rows.append([tid, "pending", "", "", ""])
            continue
        rows.append([tid, r.status.value, str(len(r.attempts)), r.branch or "-",
                     "" if r.status == "succeeded" else (r.exit_reason or "")])
    lines.append(_table(rows))
    return "\n".join(lines)


def run_list(entries: list) -> str:
    """`harness status`: one row a run (store.RunEntry); an unreadable record is a row too."""
    if not entries:
        return "no runs"
    rows = [["RUN", "STATUS", "CREATED", "TASKS", "RESULT"]]
    for e in entries:
        r = e.record
        if r is None:
            rows.append([e.run_id, "unreadable", "-", "-", e.error or ""])
            continue
        status = r.status
        if status == "running" and e.holder:
            status += f" (pid {e.holder.get('pid')})"
        elif status in ("interrupted", "cancelled"):
            status += f": harness resume {r.run_id}"
        rows.append([r.run_id, status, r.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                     str(len(r.task_order or r.tasks)), _counts(r)])
    return _table(rows)


def run_detail(record: RunRecord) -> str:
    status = record.status
    if status in ("interrupted", "cancelled"):
        status += f"{' by ' + record.cancelled_by if record.cancelled_by else ''}; `harness resume {record.run_id}` finishes it"
    lines = [f"run {record.run_id} ({status})",
             f"  base     {record.base_ref} = {record.base_commit}",
             f"  sandbox  {record.sandbox}" + (f" (image {record.image_id[:19]})" if record.image_id else ""),
             f"  created  {record.created_at:%Y-%m-%d %H:%M:%S}"
             + (f", ended {record.ended_at:%H:%M:%S}" if record.ended_at else ""), "",
             run_summary(record)]
    if record.merge is not None:
        m = record.merge
        lines += ["", f"integration {m.branch} = {m.head[:10]} onto {m.onto}: "
                  f"{len(m.folded)} folded, {len(m.unresolved)} conflicted ({m.status})"]
    for c in record.conflicts:
        for p in c.paths:
            lines.append(f"  conflict {c.task_id}: {p.path} ({p.kind}) ours {format_ranges(p.ours_ranges)} "
                         f"theirs {format_ranges(p.theirs_ranges)}")
        if c.conflict_class == "semantic":
            lines.append(f"  semantic conflict {c.task_id}: failing {', '.join(c.failing_tests[:5])}")
    if record.gate is not None:
        g = record.gate
        lines += ["", f"gate: {g.status} after {g.test_runs} test run(s)"
                  + (f", culprits {', '.join(g.culprits)}" if g.culprits else "")
                  + (f", landed {g.landed_ref}" if g.landed_ref else "")]
    return "\n".join(lines)


def task_progress(record: RunRecord, live: dict) -> str:
    """A task of a run with no result yet (store.RunStore.task_progress)."""
    lines = [f"task {live['task_id']} of run {record.run_id}: {live['status']}"]
    cur = live.get("current")
    if cur:
        lines.append(f"  attempt {cur['attempt']} started {cur['started_at'][11:19]}"
                     + (f" in {cur['worktree']}" if cur.get("worktree") else ""))
        lines.append(f"  log      {live['log']}")
    for a in live.get("attempts", []):
        lines.append(f"  attempt {a.get('number', '?')}: {a.get('status')} ({a.get('reason') or ''})")
    return "\n".join(lines)


def task_detail(record: RunRecord, r: AgentResult) -> str:
    lines = [f"task {r.task_id} of run {record.run_id}: {r.status.value}"
             + (f" ({r.exit_reason})" if r.exit_reason else "")]
    if r.branch:
        lines.append(f"  branch  {r.branch} = {r.head_commit}")
    if r.strategy:
        lines.append(f"  strategy {r.strategy}")
    if r.diff:
        lines.append(f"  diff    {r.diff.files_changed} files, +{r.diff.insertions} -{r.diff.deletions}")
    for a in r.attempts:
        lines.append(f"  attempt {a.number}: {a.status.value} exit={a.exit_code} {a.duration_s:.1f}s"
                     + (f" ({a.reason})" if a.reason else "") + (f" ref {a.ref}" if a.ref else ""))
        lines.append(f"    log {a.log_path}")
        if a.steps:
            shown = a.tool_trace[-8:]
            lines.append(f"    {a.steps} step(s)" + (f", the last {len(shown)}:" if a.steps > len(shown) else ":"))
            lines += [f"    - {t}" for t in shown]
        tail = a.output_tail.strip().splitlines()[-5:]
        lines += [f"    | {t}" for t in tail]
    return "\n".join(lines)


# --- integration and conflicts -------------------------------------------------------


def _indent(text: str, prefix: str) -> list[str]:
    return [prefix + line for line in text.rstrip("\n").splitlines()]


def conflict_detail(c: ConflictRecord, max_lines: int = 8) -> list[str]:
    """A conflict, path by path: kind, line ranges and the two sides' text."""
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


def gate_report(g: GateReport) -> str:
    lines = [f"gate of run {g.run_id}: {g.status.upper()} after {g.test_runs} test run(s)"
             + (f" ({g.reason})" if g.reason else "")]
    if g.tested_commit:
        lines.append(f"  tested   {g.tested_commit}")
    lines.append(f"  command  {g.test_cmd}" + (f"  [{g.sandbox} sandbox]" if g.sandbox else ""))
    if g.landed_ref:
        lines.append(f"  landed   {g.landed_ref}: {(g.landed_from or '')[:10]} -> {(g.tested_commit or '')[:10]}")
    if g.land_error:
        lines.append(f"  NOT landed: {g.land_error}")
    for task in g.culprits:
        failing = g.culprit_tests.get(task, [])
        lines.append(f"  culprit  {task}: " + (", ".join(failing[:5]) or "tests fail")
                     + (f" +{len(failing) - 5} more" if len(failing) > 5 else ""))
    if g.flaky:
        lines.append(f"  flaky    {', '.join(g.flaky)}")
    searched = g.runs_for("bisect", "base")
    if searched or g.culprits:
        branches = len(g.runs[0].tasks) if g.runs else 0
        lines.append(f"  search   {searched} bisect run(s) for {len(g.culprits)} culprit(s) among "
                     f"{branches} branch(es); {g.runs_for('rebuilt')} rebuilt head(s) gated again")
    rows = [["#", "PURPOSE", "COMMIT", "BRANCHES", "RESULT", "SECONDS"]]
    for i, r in enumerate(g.runs, 1):
        t = r.tests
        result = "pass" if t.ok else f"FAIL {len(t.failing)}" if t.failing else f"FAIL ({t.reason})"
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
