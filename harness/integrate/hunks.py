"""Line hunks of a change and where two changes of one base collide.

Pure functions over bytes (libgit2's diff does the line matching, so the hunks are
the ones git itself would see). A hunk touches base lines [a, a + c) in 0-based
form; two hunks collide when those spans overlap *or touch*, as in git's own merge,
where changes to adjacent lines conflict.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import pygit2

from ..records import HunkRange

BINARY_SNIFF = 8000


@dataclass(frozen=True)
class Hunk:
    """One hunk of a zero-context diff, in libgit2's 1-based numbers. A pure
    insertion has old_lines 0 and old_start the base line it follows; a pure
    deletion has new_lines 0 and new_start the new line it follows."""

    old_start: int
    old_lines: int
    new_start: int
    new_lines: int

    @property
    def span(self) -> tuple[int, int]:
        """[lo, hi) of base lines, 0-based; an insertion is the empty span at the
        index of the line it precedes."""
        if self.old_lines == 0:
            return self.old_start, self.old_start
        return self.old_start - 1, self.old_start - 1 + self.old_lines

    def base_range(self) -> HunkRange:
        return HunkRange(start=self.old_start, count=self.old_lines)

    def new_range(self) -> HunkRange:
        return HunkRange(start=self.new_start, count=self.new_lines)


def is_binary(data: bytes | None) -> bool:
    """git's rule: a NUL byte in the first 8000 bytes."""
    return bool(data) and b"\0" in data[:BINARY_SNIFF]


def diff_hunks(old: bytes | None, new: bytes | None) -> list[Hunk]:
    """The hunks turning `old` into `new` (None reads as an empty file)."""
    patch = pygit2.Patch.create_from(old or b"", new or b"", context_lines=0)
    return [Hunk(h.old_start, h.old_lines, h.new_start, h.new_lines) for h in patch.hunks]


def touch(a: tuple[int, int], b: tuple[int, int]) -> bool:
    """Two base spans overlap or are adjacent."""
    return a[0] <= b[1] and b[0] <= a[1]


def spans_collide(a: Iterable[Hunk], b: Iterable[Hunk]) -> bool:
    bs = [h.span for h in b]
    return any(touch(h.span, s) for h in a for s in bs)


@dataclass(frozen=True)
class Region:
    """A cluster of hunks of both sides whose base spans chain together."""

    lo: int
    hi: int
    ours: tuple[Hunk, ...]
    theirs: tuple[Hunk, ...]


def regions(ours: list[Hunk], theirs: list[Hunk]) -> list[Region]:
    """Cluster both sides' hunks by touching base spans, in base order."""
    tagged = sorted([(h.span, 0, h) for h in ours] + [(h.span, 1, h) for h in theirs],
                    key=lambda t: (t[0], t[1]))
    out: list[Region] = []
    cur: list[tuple[tuple[int, int], int, Hunk]] = []
    hi = -1
    for item in tagged:
        span = item[0]
        if cur and span[0] > hi:
            out.append(_region(cur))
            cur = []
        hi = span[1] if not cur else max(hi, span[1])
        cur.append(item)
    if cur:
        out.append(_region(cur))
    return out


def _region(items: list[tuple[tuple[int, int], int, Hunk]]) -> Region:
    return Region(lo=min(i[0][0] for i in items), hi=max(i[0][1] for i in items),
                  ours=tuple(i[2] for i in items if i[1] == 0),
                  theirs=tuple(i[2] for i in items if i[1] == 1))


@dataclass(frozen=True)
class ConflictHunks:
    ours_ranges: list[HunkRange]
    theirs_ranges: list[HunkRange]
    ours_text: str
    theirs_text: str
    base_text: str


def conflict_hunks(base: bytes | None, ours: bytes | None, theirs: bytes | None) -> ConflictHunks:
    """The conflicting regions of a three-way text merge: the lines of ours and of
    theirs that differ from the base where both sides changed the same (or adjacent)
    lines, with the text of those lines on each side and in the base. When no region
    has both sides (say, the merge conflicted on something the line diff does not
    show), every changed line is reported."""
    oh, th = diff_hunks(base, ours), diff_hunks(base, theirs)
    hot = [r for r in regions(oh, th) if r.ours and r.theirs]
    if hot:
        o_hunks = [h for r in hot for h in r.ours]
        t_hunks = [h for r in hot for h in r.theirs]
        spans = [(r.lo, r.hi) for r in hot]
    else:
        o_hunks, t_hunks = oh, th
        spans = [h.span for h in oh + th]
    base_lines = _lines(base)
    return ConflictHunks(
        ours_ranges=[h.new_range() for h in o_hunks],
        theirs_ranges=[h.new_range() for h in t_hunks],
        ours_text=_take(_lines(ours), [(h.new_start - 1, h.new_start - 1 + h.new_lines) for h in o_hunks]),
        theirs_text=_take(_lines(theirs), [(h.new_start - 1, h.new_start - 1 + h.new_lines) for h in t_hunks]),
        base_text=_take(base_lines, spans),
    )


def _lines(data: bytes | None) -> list[str]:
    return (data or b"").decode("utf-8", "replace").splitlines(keepends=True)


def _take(lines: list[str], spans: list[tuple[int, int]]) -> str:
    out: list[str] = []
    last = -1
    for lo, hi in sorted(spans):
        lo = max(lo, last)
        out += lines[lo:hi]
        last = max(last, hi)
    return "".join(out)
