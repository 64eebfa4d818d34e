"""What became of each task's branch, read from a run record's JSON form.

An agent's own status says how its attempts ended; a succeeded agent's branch can
still be left out of the integration by a conflict, or taken out again by the gate.
The fate says which, from the record's merge steps and gate report:

  pending           the task has no result yet
  no_branch         the agent did not succeed, so there is no branch to integrate
  not_integrated    no integration yet, or this one left the task out (`--task`)
  folded            in the integration
  landed            in the integration, which the gate passed and landed
  conflicted        left out of the integration by a merge conflict
  rejected_by_gate  folded, then taken out by the gate (it breaks the tests)
  empty             nothing of its own to fold
  skipped           not tried (`--policy fail` stopped before it)

Plain Python over dicts, so the quick commands show fates without the record models.
"""

from __future__ import annotations

from typing import Any

FATES = ("pending", "no_branch", "not_integrated", "folded", "landed", "conflicted",
         "rejected_by_gate", "empty", "skipped")


def branch_fates(record: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Per task of the run, {"fate": one of FATES, "detail": why, in a few words}."""
    tasks = record.get("tasks") or {}
    merge = record.get("merge") or None
    gate = record.get("gate") or None
    steps = {s.get("task_id"): s for s in (merge or {}).get("steps", [])}  # a retried task's last step
    culprits = set((gate or {}).get("culprits", []))
    landed = (gate or {}).get("landed_ref") if (gate or {}).get("status") == "green" else None
    out = {}
    for tid in record.get("task_order") or list(tasks):
        result, step = tasks.get(tid), steps.get(tid)
        if result is None:
            fate, detail = "pending", ""
        elif tid in culprits or (step and step.get("outcome") == "rejected_by_gate"):
            failing = ((gate or {}).get("culprit_tests") or {}).get(tid, [])
            partners = ((gate or {}).get("partners") or {}).get(tid, [])
            fate, detail = "rejected_by_gate", ("failing " + (", ".join(failing[:3]) or "tests")
                                                + (f" (with {', '.join(partners[:3])})" if partners else ""))
        elif result.get("status") not in ("succeeded", "rejected_by_gate"):
            fate, detail = "no_branch", ""
        elif merge is None:
            fate, detail = "not_integrated", "no integration yet"
        elif step is None:
            fate, detail = "not_integrated", "left out of this integration"
        else:
            outcome = step.get("outcome")
            if outcome == "folded":
                fate, detail = ("landed", landed) if landed else ("folded", "")
            elif outcome in ("conflicted", "retried"):
                conflict = step.get("conflict") or {}
                paths = [p.get("path", "?") for p in conflict.get("paths") or []]
                others = conflict.get("other_tasks") or []
                fate, detail = "conflicted", ((", ".join(paths[:3]) or step.get("detail") or "conflict")
                                              + (f" (with {', '.join(others[:3])})" if others else ""))
            elif outcome in ("empty", "skipped"):
                fate, detail = outcome, step.get("detail") or ""
            else:
                fate, detail = "not_integrated", f"integration step {outcome!r}"
        out[tid] = {"fate": fate, "detail": detail}
    return out


def fate_counts(fates: dict[str, dict[str, str]]) -> str:
    """'5 folded, 1 conflicted, 1 rejected_by_gate' (pending and no_branch left out)."""
    counts: dict[str, int] = {}
    for f in fates.values():
        if f["fate"] not in ("pending", "no_branch"):
            counts[f["fate"]] = counts.get(f["fate"], 0) + 1
    return ", ".join(f"{n} {fate}" for fate, n in sorted(counts.items(), key=lambda kv: FATES.index(kv[0])))
