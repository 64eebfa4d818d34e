"""Plain-text views of records for the terminal."""

from __future__ import annotations

from .schema import AgentResult, RunRecord, TaskStatus


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
                     "" if r.status == TaskStatus.succeeded else (r.exit_reason or "")])
    lines.append(_table(rows))
    return "\n".join(lines)


def run_list(records: list[RunRecord]) -> str:
    if not records:
        return "no runs"
    rows = [["RUN", "STATUS", "CREATED", "TASKS", "RESULT"]]
    for r in records:
        rows.append([r.run_id, r.status, r.created_at.strftime("%Y-%m-%d %H:%M:%S"),
                     str(len(r.task_order or r.tasks)), _counts(r)])
    return _table(rows)


def run_detail(record: RunRecord) -> str:
    lines = [f"run {record.run_id} ({record.status})",
             f"  base     {record.base_ref} = {record.base_commit}",
             f"  sandbox  {record.sandbox}" + (f" (image {record.image_id[:19]})" if record.image_id else ""),
             f"  created  {record.created_at:%Y-%m-%d %H:%M:%S}"
             + (f", ended {record.ended_at:%H:%M:%S}" if record.ended_at else ""), "",
             run_summary(record)]
    if record.merge is not None:
        m = record.merge
        lines += ["", f"integration {m.branch} = {m.head[:10]} onto {m.onto}: "
                  f"{len(m.folded)} folded, {len(m.conflicts)} conflicted"]
    for c in record.conflicts:
        for p in c.paths:
            ranges = lambda rs: ",".join(f"{h.start}-{h.start + max(h.count, 1) - 1}" for h in rs)
            lines.append(f"  conflict {c.task_id}: {p.path} ({p.kind}) ours {ranges(p.ours_ranges)} "
                         f"theirs {ranges(p.theirs_ranges)}")
        if c.conflict_class == "semantic":
            lines.append(f"  semantic conflict {c.task_id}: failing {', '.join(c.failing_tests[:5])}")
    if record.gate is not None:
        g = record.gate
        lines += ["", f"gate: {g.status} after {g.test_runs} test run(s)"
                  + (f", culprits {', '.join(g.culprits)}" if g.culprits else "")
                  + (f", landed {g.landed_ref}" if g.landed_ref else "")]
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
        tail = a.output_tail.strip().splitlines()[-5:]
        lines += [f"    | {t}" for t in tail]
    return "\n".join(lines)
