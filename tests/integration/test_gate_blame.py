"""Blame for semantic conflicts: the partner search names the smallest set of
earlier branches a culprit fails with; blame follows the plan order, whatever the
agents' finish order; the gate's test runs have their own time limit. Real
repositories and real folds, the local sandbox; test runs are counted from the
GateReport, never timed."""

from __future__ import annotations

import itertools
import math

import pytest

from harness.gate.culprits import find_culprits, find_partners


# --- the pure search -----------------------------------------------------------------


@pytest.mark.parametrize("n,k", [(1, 1), (2, 1), (9, 1), (16, 1), (9, 2), (8, 3)])
def test_partner_search_names_exactly_the_clashing_set_within_its_bound(n, k):
    """Over every placement of K partners among N earlier branches: the set named is
    the one the culprit fails with, in sequence order, after one alone run and at
    most K*(ceil(log2 N) + 1) partner runs; a pair costs at most ceil(log2 N) + 1."""
    before = [f"t{i:02d}" for i in range(n)]
    for partners in itertools.combinations(before, k):
        need = {*partners, "c"}
        out = find_partners(before, "c", lambda s, _kind, need=need: not need <= set(s))
        assert out.semantic and out.partners == partners
        assert out.calls[0] == (("c",), "alone", True)
        assert all(s[-1] == "c" for s, _, _ in out.calls)  # every probe ends with the culprit
        assert out.search_runs == len(out.calls) - 1 <= k * (math.ceil(math.log2(n)) + 1)
    if n == 1:  # the one earlier branch must be the partner: nothing to search
        assert out.search_runs == 0


def test_partner_search_stops_when_the_culprit_fails_alone():
    out = find_partners(["a", "b"], "c", lambda s, _kind: "c" not in s)
    assert not out.alone_passes and not out.semantic and out.partners == ()
    assert out.calls == [(("c",), "alone", False)]


def test_culprit_then_partners_blame_the_later_of_the_pair_and_name_the_earlier():
    seq = ["a", "b", "c", "d", "e", "f"]
    clash = lambda s, _kind: not {"b", "e"} <= set(s)  # noqa: E731
    bis = find_culprits(seq, clash)
    [culprit] = bis.culprits
    assert culprit.task == "e" and culprit.before == ("a", "b", "c", "d")
    found = find_partners(culprit.before, culprit.task, clash)
    assert found.partners == ("b",)
    # reversed sequence: the later in that order is blamed, so the order decides
    assert [c.task for c in find_culprits(seq[::-1], clash).culprits] == ["b"]
