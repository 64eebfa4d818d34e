"""Declared write scopes: which tasks of a plan may touch the same files.

Checked before a run starts (a warning, recorded in the run) and shown again by
`harness conflicts`, which follows the tasks as they work.
"""

from __future__ import annotations

import re
from itertools import combinations

from ..records import ScopeOverlap
from ..repo.workspace import scope_matcher
from .plan import ResolvedPlan


def plan_scope_overlaps(plan: ResolvedPlan) -> list[ScopeOverlap]:
    """Pairs of tasks that can run side by side (neither waits for the other) and
    whose declared write scopes may name a common path. Tasks without a declared
    scope are not compared (they could touch anything)."""
    ancestors = {t: plan.ancestors(t) for t in plan.tasks}
    scoped = [t for t in plan.tasks.values() if t.write_scope]
    return [ScopeOverlap(a=a.id, b=b.id, scope_a=list(a.write_scope), scope_b=list(b.write_scope))
            for a, b in combinations(scoped, 2)
            if a.id not in ancestors[b.id] and b.id not in ancestors[a.id]
            and scope_overlap(a.write_scope, b.write_scope)]


_WILD = re.compile(r"[*?\[]")


def _literal_prefix(glob: str) -> str:
    g = glob.strip().lstrip("/")
    m = _WILD.search(g)
    return g if m is None else g[:m.start()]


def scope_overlap(globs_a: list[str], globs_b: list[str]) -> bool:
    """Whether two write scopes (path globs, as in a plan) may name a common path,
    so the tasks could touch the same files. Conservative: when both globs have
    wildcards it compares their literal prefixes, so it may say yes for globs that
    cannot meet (`src/*.py` and `src/*.c`), never no for globs that can. An empty
    scope is the whole repository."""
    if not globs_a or not globs_b:
        return True
    for ga in globs_a:
        for gb in globs_b:
            pa, pb = _literal_prefix(ga), _literal_prefix(gb)
            wild_a, wild_b = pa != ga.strip().lstrip("/"), pb != gb.strip().lstrip("/")
            if not wild_a and not wild_b:
                a, b = pa.rstrip("/"), pb.rstrip("/")
                if a == b or (ga.endswith("/") and b.startswith(a + "/")) \
                        or (gb.endswith("/") and a.startswith(b + "/")):
                    return True
            elif not wild_b and not gb.endswith("/"):
                if scope_matcher([ga])(pb):
                    return True
            elif not wild_a and not ga.endswith("/"):
                if scope_matcher([gb])(pa):
                    return True
            elif pa.startswith(pb) or pb.startswith(pa):
                return True
    return False
