"""Folded-stack parsing, trees, diffs and SVG rendering."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from harness.bench.flame import (
    build_tree,
    diff_stacks,
    frame_color,
    parse_folded,
    render_diff_svg,
    render_svg,
    top_frames,
)

SVG = "{http://www.w3.org/2000/svg}"

FOLDED = """
main;run;match_orders (book.py:10) 30

main;run;match_orders (book.py:10);insert 20
main;run;log 10
main;idle 5
main;run;log 10
not a stack line
   main;run;match_orders (book.py:10);insert 5
"""


def test_parse_merges_duplicates_and_keeps_spaces() -> None:
    stacks = parse_folded(FOLDED)
    assert stacks == {
        "main;run;match_orders (book.py:10)": 30,
        "main;run;match_orders (book.py:10);insert": 25,
        "main;run;log": 20,
        "main;idle": 5,
    }
    assert sum(stacks.values()) == 80


def test_tree_totals() -> None:
    tree = build_tree(parse_folded(FOLDED))
    assert tree.name == "all" and tree.total == 80
    main = tree.children["main"]
    assert main.total == 80 and main.self_count == 0
    run = main.children["run"]
    assert run.total == 75
    match = run.children["match_orders (book.py:10)"]
    assert (match.total, match.self_count) == (55, 30)
    assert match.children["insert"].total == 25
    assert tree.depth() == 5


def test_top_frames_self_and_total() -> None:
    top = {f.name: f for f in top_frames(parse_folded(FOLDED), 10)}
    assert top["match_orders (book.py:10)"].self_samples == 30
    assert top["match_orders (book.py:10)"].total_samples == 55
    assert top["main"].self_samples == 0 and top["main"].total_pct == 100.0
    first = top_frames(parse_folded(FOLDED), 1)
    assert [f.name for f in first] == ["match_orders (book.py:10)"]


def test_top_frames_counts_recursion_once() -> None:
    top = {f.name: f for f in top_frames({"a;b;a;b": 4}, 5)}
    assert top["a"].total_samples == 4 and top["b"].self_samples == 4


def test_diff_normalizes_and_includes_one_sided_frames() -> None:
    base = {"main;a": 50, "main;b": 50}  # 100 samples
    cand = {"main;a": 100, "main;c": 100}  # 200 samples
    d = diff_stacks(base, cand)
    assert d == {"main;a": (100, 100), "main;b": (100, 0), "main;c": (0, 100)}
    assert diff_stacks({}, {"x": 3}) == {"x": (0, 3)}


def _parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)


def test_render_svg_well_formed_with_one_rect_per_frame() -> None:
    stacks = parse_folded(FOLDED)
    svg = render_svg(stacks, title="baseline <&> profile")
    root = _parse(svg)
    rects = root.findall(f".//{SVG}rect")
    titles = root.findall(f".//{SVG}title")
    # all, main, run, idle, match_orders, log, insert
    assert len(rects) == 7 and len(titles) == 7
    tips = {t.text for t in titles}
    assert "match_orders (book.py:10) (55 samples, 68.75%)" in tips
    assert "all (80 samples, 100.00%)" in tips
    assert "baseline <&> profile" in "".join(root.itertext())


def test_render_svg_elides_narrow_labels_and_is_deterministic() -> None:
    stacks = {"wide_frame_name_here": 1000, "tiny_frame_with_a_long_name": 1}
    svg = render_svg(stacks, title="t", width=400)
    assert svg == render_svg(stacks, title="t", width=400)
    root = _parse(svg)
    labels = [t.text for g in root.iter(f"{SVG}g") for t in g.findall(f"{SVG}text")]
    assert "wide_frame_name_here" in labels
    assert "tiny_frame_with_a_long_name" not in labels
    assert frame_color("x") == frame_color("x")


def test_render_svg_empty() -> None:
    root = _parse(render_svg({}, title="empty"))
    assert root.findall(f".//{SVG}rect") == []


def test_render_diff_svg_colours_growth_red_and_shrink_blue() -> None:
    base = {"main;a": 50, "main;b": 50}
    cand = {"main;a": 150, "main;b": 50}
    root = _parse(render_diff_svg(base, cand, title="diff"))
    groups = root.findall(f".//{SVG}g")
    assert len(groups) == 4  # all, main, a, b
    by_name = {}
    for g in groups:
        tip = g.find(f"{SVG}title").text
        by_name[tip.split(" (")[0]] = (tip, g.find(f"{SVG}rect").get("fill"))
    tip_a, fill_a = by_name["a"]
    assert "base 50.00%" in tip_a and "candidate 75.00%" in tip_a and "+25.00 pp" in tip_a
    r, g_, b = (int(v) for v in fill_a[4:-1].split(","))
    assert r > b  # red: grew
    tip_b, fill_b = by_name["b"]
    assert "-25.00 pp" in tip_b
    r, g_, b = (int(v) for v in fill_b[4:-1].split(","))
    assert b > r  # blue: shrank
    assert by_name["main"][1] == "rgb(235,235,235)"  # unchanged: neutral
