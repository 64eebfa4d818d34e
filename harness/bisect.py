"""Culprit search over a folded sequence, as a pure function of a test oracle.

The gate drives it with an oracle that folds a prefix of the sequence onto the base
and runs the tests in a sandbox; the benchmark (perf_gate.py) drives it with a pure
function of the included branches. Nothing here knows about git.

The search (bors-style, on prefixes, so a pair that only fails together blames the
later of the two, the one whose fold turned the integration red):

1. The base (prefix of length 0) is taken to pass and the whole sequence to fail.
   Binary search finds the shortest failing prefix; its last branch is a culprit.
   That costs ceil(log2 n) oracle calls for n candidates.
2. Remove the culprit. The prefix before it still passes (same branches, same fold).
   Test the whole remaining sequence once: green ends the search (that run is the
   confirming run of the rebuilt head); red means another culprit lies after the
   first one, found by binary search between the known-good prefix and the end.
3. Repeat.

So K culprits among N cost at most K*ceil(log2 N) + K oracle calls after the red
gate run (one run per culprit to learn whether another remains, the last of which
is the confirming run), and one more when a culprit sits first in the sequence:
the base is then tested once, so that a red base is reported as such instead of
blaming every branch in turn.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

Oracle = Callable[[tuple[str, ...]], bool]
"""True when the fold of these branches (in this order, onto the base) passes."""


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
    """`kept` is known to pass (tested, or the base when it was checked)."""
    base_red: bool = False
    """The base itself fails: nothing can be blamed."""
    calls: list[tuple[tuple[str, ...], bool]] = field(default_factory=list)
    """Every oracle call, in order: the cost of the search."""

    @property
    def tests(self) -> int:
        return len(self.calls)


def find_culprits(seq: Sequence[str], passes: Oracle, *, head_passes: bool | None = False,
                  max_culprits: int | None = None) -> Bisection:
    """Find the branches of `seq` that turn it red, assuming the base passes.

    `head_passes` is what is already known of the whole sequence (False: the gate
    run was red; None: unknown, so it is tested first). `passes` is called at most
    once per distinct prefix. `max_culprits` stops the search early (the rest is
    then reported as not green). Exceptions from the oracle propagate.
    """
    out = Bisection()
    memo: dict[tuple[str, ...], bool] = {}
    if head_passes is not None:
        memo[tuple(seq)] = head_passes

    def test(prefix: Sequence[str]) -> bool:
        key = tuple(prefix)
        if key not in memo:
            memo[key] = bool(passes(key))
            out.calls.append((key, memo[key]))
        return memo[key]

    items = list(seq)
    good = 0  # the prefix items[:good] passes (0: the base, assumed until checked)
    base_checked = False
    while True:
        n = len(items)
        if test(items):
            out.kept, out.green = tuple(items), True
            return out
        if not items:
            out.base_red = True
            return out
        if max_culprits is not None and len(out.culprits) >= max_culprits:
            out.kept = tuple(items)
            return out
        lo, hi = good, n  # items[:lo] passes, items[:hi] fails
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if test(items[:mid]):
                lo = mid
            else:
                hi = mid
        if hi == 1 and lo == 0 and not base_checked:
            base_checked = True
            if not test(()):
                out.kept, out.base_red = tuple(items), True
                return out
        out.culprits.append(Culprit(task=items[hi - 1], failing=tuple(items[:hi])))
        del items[hi - 1]
        good = hi - 1
