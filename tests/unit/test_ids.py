"""Run and task ids (harness/ids.py): plain Python, checked against libgit2's own
ref-name rules."""

from __future__ import annotations

import itertools

import pygit2
import pytest

from harness.ids import id_problem, valid_id


@pytest.mark.parametrize("value,ok", [
    ("a", True), ("a.b", True), ("run-1_x", True), ("A.lock.b", True),
    ("a.", False), ("a..b", False), ("x.lock", False), (".a", False), ("a/b", False), ("../x", False),
    ("", False), ("a" * 65, False),
])
def test_ids_follow_git_ref_name_rules(value, ok):
    assert valid_id(value) is ok and (id_problem(value) is None) is ok


def test_ids_agree_with_git_on_every_short_name_over_the_tricky_characters():
    """Every id of up to five characters over 'a', '.', '-', '_', 'l', 'o', 'c', 'k'
    (which spells '..', '.lock' and trailing dots) is valid exactly when git accepts
    it in both ref names an id becomes part of."""
    checked = 0
    for n in range(1, 6):
        for chars in itertools.product("a.-_lock", repeat=n):
            value = "".join(chars)
            if value[0] in ".-_":  # refused by the pattern before git's rules apply
                assert not valid_id(value)
                continue
            by_git = all(pygit2.reference_is_valid_name(ref)
                         for ref in (f"refs/heads/harness/x/{value}", f"refs/harness/{value}/x/1"))
            assert valid_id(value) is by_git, value
            checked += 1
    assert checked > 10_000
