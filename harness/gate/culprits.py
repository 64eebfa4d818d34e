"""Culprit search over a folded sequence, as a pure function of a test oracle.

The gate drives it with an oracle that folds a subsequence onto the base and runs
the tests in a sandbox; the benchmark (tools/perf/gate.py) drives it with a pure function
of the included branches. Nothing here knows about git.

The search is bors-style, on prefixes, so a pair that only fails together blames
the later of the two (the one whose fold turned the integration red), and the
result is what a queue testing one branch at a time would have kept:

1. The whole sequence is known to fail (the red gate run). Binary search for the
   shortest failing prefix; its last branch is a culprit. With n branches left that
   is ceil(log2 n) *bisect* runs.
2. Remove the culprit; the prefix before it still passes (same branches, same
   fold). The integration rebuilt without it is gated again (a *rebuilt* run):
   green ends the search and is the run that proves the head to land; red means
   another culprit lies after the first, found by step 1 between the known-good
   prefix and the end.

So K culprits among N cost at most K*ceil(log2 N) bisect runs, plus K runs of a
rebuilt head (K-1 red, the last green), plus the first gate run.

The base (the empty prefix) is taken to pass. A culprit found first in the
sequence is blamed without testing the base: a queue would have rejected it too.
Only if the rebuilt head is still red does the base become a candidate of the
next search (n+1 outcomes instead of n, no more runs than the first search took),
so a red base is reported as such instead of every branch being blamed in turn.

Which of a clashing pair is blamed depends only on the order of `seq`; the gate
passes the plan order, so the agents' finish order does not change the blame.

A culprit that passes alone clashes with something folded before it (a semantic
conflict). `find_partners` then names the smallest set of those earlier branches
it fails with, by the same prefix search: the last branch of the shortest failing
prefix of the candidates (folded with the culprit) is a partner; if the partners
found so far and the culprit still pass together, the next partner lies in the
prefix before the last one found. Each partner costs at most ceil(log2 n) *partners*
runs, plus one to check the set found is enough (none when no candidate is left),
so a pair among n earlier branches costs at most ceil(log2 n) + 1. Assuming a
branch added to a failing fold never makes it pass, the set is minimal: without
any one partner the culprit passes.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Literal, Sequence

Kind = Literal["rebuilt", "bisect", "base", "alone", "partners"]
Oracle = Callable[[tuple[str, ...], Kind], bool]
"""True when the fold of these branches (in this order, onto the base) passes. The
kind says why it is asked: a rebuilt head (the whole sequence without the culprits
found so far), a bisect probe (a proper prefix of it), the base alone, a culprit
alone, or a probe of the partner search (a culprit with some earlier branches)."""


@dataclass(frozen=True)
class Culprit:
    task: str
    failing: tuple[str, ...]
    """The shortest failing prefix; it ends with `task`."""

    @property
    def before(self) -> tuple[str, ...]:
        """The branches folded before it in that prefix (which passes without it)."""
        return self.failing[:-1]


@dataclass
class Bisection:
    culprits: list[Culprit] = field(default_factory=list)
    kept: tuple[str, ...] = ()
    """The sequence without the culprits."""
    green: bool = False
    """`kept` is known to pass (it was tested)."""
    base_red: bool = False
    """The base itself fails: nothing is blamed."""
    calls: list[tuple[tuple[str, ...], Kind, bool]] = field(default_factory=list)
    """Every oracle call in order (branches, kind, passed): the cost of the search."""

    @property
    def tests(self) -> int:
        return len(self.calls)

    def count(self, *kinds: Kind) -> int:
        return sum(1 for _, kind, _ in self.calls if kind in kinds)


def find_culprits(seq: Sequence[str], passes: Oracle, *, head_passes: bool | None = False,
                  max_culprits: int | None = None) -> Bisection:
    """Find the branches of `seq` that turn it red; see the module docstring.

    `head_passes` is what is already known of the whole sequence (False: the gate
    run was red; None: unknown, so it is tested first, as a rebuilt run). `passes`
    is called at most once per distinct subsequence. `max_culprits` stops the
    search early (the rest is then reported as not green). Exceptions from the
    oracle propagate.
    """
    out = Bisection()
    memo: dict[tuple[str, ...], bool] = {}
    if head_passes is not None:
        memo[tuple(seq)] = head_passes

    def test(prefix: Sequence[str], kind: Kind) -> bool:
        key = tuple(prefix)
        if key not in memo:
            memo[key] = bool(passes(key, kind))
            out.calls.append((key, kind, memo[key]))
        return memo[key]

    items = list(seq)
    good = 0  # items[:good] passes (for good == 0: the base, assumed unless suspect)
    while True:
        if test(items, "rebuilt" if items else "base"):
            out.kept, out.green = tuple(items), True
            return out
        # a culprit was blamed first in line, nothing has passed yet, and the rest
        # is still red: the base itself may be what fails
        base_suspect = bool(out.culprits) and good == 0 and not any(ok for *_, ok in out.calls)
        if not items:  # every branch removed and still red
            out.culprits, out.kept, out.base_red = [], tuple(seq), True
            return out
        if max_culprits is not None and len(out.culprits) >= max_culprits:
            out.kept = tuple(items)
            return out
        # items[:lo] passes (lo == -1: not even the base is known to), items[:hi] fails
        lo, hi = (-1 if base_suspect else good), len(items)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if test(items[:mid], "bisect" if mid else "base"):
                lo = mid
            else:
                hi = mid
        if hi == 0:  # the base fails: earlier blame of first-in-line branches is void
            out.culprits, out.kept, out.base_red = [], tuple(seq), True
            return out
        out.culprits.append(Culprit(task=items[hi - 1], failing=tuple(items[:hi])))
        del items[hi - 1]
        good = hi - 1


@dataclass
class Partners:
    """What `find_partners` found for one culprit."""

    task: str
    alone_passes: bool
    partners: tuple[str, ...] = ()
    """The smallest set of earlier branches found that `task` fails with, in the
    order of the sequence; empty when it fails alone."""
    calls: list[tuple[tuple[str, ...], Kind, bool]] = field(default_factory=list)
    """Every oracle call in order (branches, kind, passed): the alone run, then the search."""

    @property
    def semantic(self) -> bool:
        """It passes alone and fails with the partners: a semantic conflict."""
        return self.alone_passes and bool(self.partners)

    @property
    def search_runs(self) -> int:
        """Oracle calls of the partner search itself (the alone run not counted)."""
        return sum(1 for _, kind, _ in self.calls if kind == "partners")


def find_partners(before: Sequence[str], task: str, passes: Oracle) -> Partners:
    """The smallest set of the branches `before` that `task` fails with; see the
    module docstring. `before + (task,)` is known to fail (the culprit's shortest
    failing prefix) and `before` to pass. `task` alone is tested first (kind
    "alone"); when it fails too there is nothing to search. Every probe folds a
    subsequence of `before` followed by `task`. Exceptions from the oracle propagate.
    """
    out = Partners(task=task, alone_passes=False)
    memo: dict[tuple[str, ...], bool] = {tuple(before) + (task,): False}

    def test(branches: Sequence[str], kind: Kind) -> bool:
        key = tuple(branches) + (task,)
        if key not in memo:
            memo[key] = bool(passes(key, kind))
            out.calls.append((key, kind, memo[key]))
        return memo[key]

    out.alone_passes = test((), "alone")
    if not out.alone_passes or not before:
        return out
    candidates = tuple(before)
    found: tuple[str, ...] = ()
    # invariant: candidates + found (+ task) fails, found (+ task) passes
    while True:
        lo, hi = 0, len(candidates)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if test(candidates[:mid] + found, "partners"):
                lo = mid
            else:
                hi = mid
        found = (candidates[hi - 1],) + found
        candidates = candidates[:hi - 1]
        if not candidates or not test(found, "partners"):
            out.partners = found
            return out
