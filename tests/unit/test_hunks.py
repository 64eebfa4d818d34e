"""Hunks, conflicting regions and scope overlap on texts whose answers are known."""

from __future__ import annotations

import pytest

from harness.integrate.forecast import FileChange, overlapping_pairs
from harness.run.scopes import scope_overlap
from harness.cli.views import format_ranges
from harness.integrate.hunks import Hunk, conflict_hunks, diff_hunks, is_binary, regions, spans_collide
from harness.records import HunkRange

BASE = b"".join(f"line {i}\n".encode() for i in range(1, 11))


def edit(data: bytes, changes: dict[int, str | None], insert_after: dict[int, str] | None = None) -> bytes:
    out = []
    for i, line in enumerate(data.decode().splitlines(True), 1):
        if i in changes:
            if changes[i] is not None:
                out.append(changes[i] + "\n")
        else:
            out.append(line)
        for extra in (insert_after or {}).get(i, "").splitlines(True):
            out.append(extra)
    return "".join(out).encode()


def test_diff_hunks_numbers_are_libgit2s():
    assert diff_hunks(BASE, edit(BASE, {3: "x"})) == [Hunk(3, 1, 3, 1)]
    assert diff_hunks(BASE, edit(BASE, {3: None})) == [Hunk(3, 1, 2, 0)]
    assert diff_hunks(BASE, edit(BASE, {}, {3: "new\n"})) == [Hunk(3, 0, 4, 1)]
    assert diff_hunks(None, b"a\nb\n") == [Hunk(0, 0, 1, 2)]
    assert diff_hunks(BASE, BASE) == []


def test_spans_touching_and_apart():
    change3 = diff_hunks(BASE, edit(BASE, {3: "x"}))
    assert spans_collide(change3, diff_hunks(BASE, edit(BASE, {3: "y"})))      # same line
    assert spans_collide(change3, diff_hunks(BASE, edit(BASE, {4: "y"})))      # adjacent
    assert not spans_collide(change3, diff_hunks(BASE, edit(BASE, {5: "y"})))  # one line between
    insert = diff_hunks(BASE, edit(BASE, {}, {3: "new\n"}))  # between lines 3 and 4
    assert spans_collide(insert, change3)
    assert spans_collide(insert, diff_hunks(BASE, edit(BASE, {4: "y"})))
    assert not spans_collide(insert, diff_hunks(BASE, edit(BASE, {6: "y"})))


def test_regions_cluster_by_touching_spans():
    ours = diff_hunks(BASE, edit(BASE, {2: "a", 8: "a"}))
    theirs = diff_hunks(BASE, edit(BASE, {3: "b"}))
    rs = regions(ours, theirs)
    assert [(len(r.ours), len(r.theirs)) for r in rs] == [(1, 1), (1, 0)]
    assert (rs[0].lo, rs[0].hi) == (1, 3)


def test_conflict_hunks_report_only_the_conflicting_region():
    ours = edit(BASE, {3: "OURS", 9: "elsewhere"})
    theirs = edit(BASE, {3: "THEIRS", 4: "THEIRS2"})
    h = conflict_hunks(BASE, ours, theirs)
    assert h.ours_ranges == [HunkRange(start=3, count=1)]
    assert h.theirs_ranges == [HunkRange(start=3, count=2)]
    assert (h.ours_text, h.theirs_text) == ("OURS\n", "THEIRS\nTHEIRS2\n")
    assert h.base_text == "line 3\nline 4\n"


def test_conflict_hunks_add_add_and_delete():
    h = conflict_hunks(None, b"one\n", b"two\nthree\n")
    assert h.ours_ranges == [HunkRange(start=1, count=1)] and h.theirs_ranges == [HunkRange(start=1, count=2)]
    assert (h.ours_text, h.theirs_text, h.base_text) == ("one\n", "two\nthree\n", "")
    h = conflict_hunks(BASE, edit(BASE, {5: "five"}), None)
    assert h.ours_text == "five\n" and h.theirs_text == "" and h.theirs_ranges[0].count == 0
    assert h.base_text == BASE.decode()


def test_conflict_hunks_with_shifted_lines_on_ours():
    # ours inserted two lines at the top, so its conflicting line is line 5 of ours
    ours = edit(BASE, {3: "OURS"}, {1: "i1\ni2\n"})
    theirs = edit(BASE, {3: "THEIRS"})
    h = conflict_hunks(BASE, ours, theirs)
    assert h.ours_ranges == [HunkRange(start=5, count=1)] and h.ours_text == "OURS\n"
    assert h.theirs_ranges == [HunkRange(start=3, count=1)]


def test_binary_and_format():
    assert is_binary(b"abc\0def") and not is_binary(b"abc") and not is_binary(None)
    assert not is_binary(b"x" * 9000 + b"\0")
    assert format_ranges([HunkRange(start=3, count=1), HunkRange(start=5, count=3),
                          HunkRange(start=9, count=0)]) == "3,5-7,^9"
    assert format_ranges([]) == "-"


@pytest.mark.parametrize("a,b,expect", [
    ([], ["src/x.py"], True),
    (["src/a.py"], ["src/a.py"], True),
    (["src/a.py"], ["src/b.py"], False),
    (["src/"], ["src/deep/a.py"], True),
    (["src/"], ["tests/"], False),
    (["src/*.py"], ["src/a.py"], True),
    (["src/*.py"], ["src/sub/a.py"], False),
    (["src/**"], ["src/sub/a.py"], True),
    (["src/**/*.py"], ["src/x/*.py"], True),
    (["docs/*.md"], ["src/*.py"], False),
    (["a.txt", "docs/"], ["docs/x.md"], True),
])
def test_scope_overlap(a, b, expect):
    assert scope_overlap(a, b) is expect
    assert scope_overlap(b, a) is expect


def test_overlapping_pairs_from_changes():
    h = lambda s, n: Hunk(s, n, s, n)  # noqa: E731
    changes = {
        "a": {"f": FileChange("f", (h(3, 1),))},
        "b": {"f": FileChange("f", (h(4, 2),)), "g": FileChange("g", (h(1, 1),))},
        "c": {"f": FileChange("f", (h(9, 1),))},
        "d": {"g": FileChange("g", (), whole=True)},
        "e": {"h": FileChange("h", (h(1, 1),))},
    }
    pairs = overlapping_pairs(changes)
    got = {(p.a, p.b): p.kind for p in pairs}
    assert got == {("a", "b"): "overlap", ("a", "c"): "same-file", ("b", "c"): "same-file",
                   ("b", "d"): "overlap"}
    assert all(p.merge == "unchecked" for p in pairs)
