"""Flame graphs from folded stacks: parsing, tables, plain and differential SVGs.

Input is the folded format (``frame;frame;frame count`` per line) that py-spy
``--format raw``, ``stackcollapse-*.pl`` and most profilers write. Graphs are drawn
as icicles (root on top, callees below) in self-contained SVG: no scripts, no styles
that could leak when the SVG is inlined into an HTML page, ``<title>`` tooltips.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

from pydantic import BaseModel, ConfigDict

ROW_HEIGHT = 17
FONT_SIZE = 11
CHAR_WIDTH = 6.4  # average glyph advance of an 11px sans-serif font
MIN_WIDTH = 0.3  # frames narrower than this many pixels are not drawn
_TOP = 34  # room for the title
_SIDE = 10


@dataclass
class FlameNode:
    """One frame in the call tree; ``total`` includes callees, ``self_count`` not."""

    name: str
    total: int = 0
    self_count: int = 0
    children: dict[str, FlameNode] = field(default_factory=dict)

    def child(self, name: str) -> FlameNode:
        """The child called ``name``, created when missing."""
        node = self.children.get(name)
        if node is None:
            node = self.children[name] = FlameNode(name)
        return node

    def depth(self) -> int:
        """Number of levels, this node included."""
        return 1 + max((c.depth() for c in self.children.values()), default=0)


class FrameStat(BaseModel):
    """Self and total samples of one frame name, for report tables."""

    model_config = ConfigDict(frozen=True, extra="ignore")  # the policy of harness.records

    name: str
    self_samples: int
    total_samples: int
    self_pct: float
    total_pct: float


def parse_folded(text: str) -> dict[str, int]:
    """Parse folded stacks into ``{"a;b;c": samples}``.

    Blank lines and lines without a trailing integer count are skipped; the count is
    whatever follows the *last* space, so frame names may contain spaces; duplicate
    stacks are summed; zero counts are dropped.
    """
    stacks: dict[str, int] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        stack, sep, count_text = line.rpartition(" ")
        if not sep or not stack.strip():
            continue
        try:
            count = int(count_text)
        except ValueError:
            continue
        stack = ";".join(f.strip() for f in stack.strip().split(";"))
        if count > 0:
            stacks[stack] = stacks.get(stack, 0) + count
    return stacks


def build_tree(stacks: dict[str, int], *, root: str = "all") -> FlameNode:
    """Fold stacks into a call tree under a synthetic root holding every sample."""
    top = FlameNode(root)
    for stack, count in stacks.items():
        node = top
        node.total += count
        for frame in stack.split(";"):
            node = node.child(frame)
            node.total += count
        node.self_count += count
    return top


def top_frames(stacks: dict[str, int], n: int = 15) -> list[FrameStat]:
    """The ``n`` frames with the most self time (ties broken by total, then name).

    Total time counts each sample once per frame even under recursion.
    """
    grand = sum(stacks.values())
    self_c: dict[str, int] = {}
    total_c: dict[str, int] = {}
    for stack, count in stacks.items():
        frames = stack.split(";")
        self_c[frames[-1]] = self_c.get(frames[-1], 0) + count
        for frame in set(frames):
            total_c[frame] = total_c.get(frame, 0) + count
    order = sorted(total_c, key=lambda f: (-self_c.get(f, 0), -total_c[f], f))
    pct = (lambda v: 100.0 * v / grand) if grand else (lambda v: 0.0)
    return [
        FrameStat(
            name=f,
            self_samples=self_c.get(f, 0),
            total_samples=total_c[f],
            self_pct=pct(self_c.get(f, 0)),
            total_pct=pct(total_c[f]),
        )
        for f in order[:n]
    ]


def diff_stacks(base: dict[str, int], cand: dict[str, int]) -> dict[str, tuple[int, int]]:
    """Per stack ``(base, cand)`` counts with the baseline scaled to the candidate's total.

    Stacks found on one side only appear with 0 on the other, so shares compare
    directly even when the two profiles hold different numbers of samples.
    """
    base_total = sum(base.values())
    cand_total = sum(cand.values())
    scale = cand_total / base_total if base_total and cand_total else 1.0
    return {
        stack: (round(base.get(stack, 0) * scale), cand.get(stack, 0))
        for stack in sorted(set(base) | set(cand))
    }


def frame_color(name: str) -> str:
    """A warm flame colour that depends only on the frame name."""
    h = zlib.crc32(name.encode("utf-8"))
    v1, v2, v3 = (h & 0xFF) / 255, ((h >> 8) & 0xFF) / 255, ((h >> 16) & 0xFF) / 255
    return f"rgb({215 + int(40 * v3)},{70 + int(160 * v1)},{int(60 * v2)})"


def _diff_color(delta: float, max_abs: float) -> str:
    if max_abs <= 0.0 or delta == 0.0:
        return "rgb(235,235,235)"
    level = min(1.0, abs(delta) / max_abs)
    fade = int(235 - 190 * level)
    return f"rgb(235,{fade},{fade})" if delta > 0 else f"rgb({fade},{fade},235)"


def _ink(fill: str) -> str:
    """Black or white text, whichever reads better on ``fill`` (an ``rgb(r,g,b)``)."""
    r, g, b = (int(v) for v in fill[4:-1].split(","))
    return "#111" if 0.299 * r + 0.587 * g + 0.114 * b > 140 else "#fff"


def _label(name: str, width: float) -> str:
    fits = int((width - 6) / CHAR_WIDTH)
    if fits < 3:
        return ""
    return name if len(name) <= fits else name[: fits - 2] + ".."


def _fmt_pct(share: float) -> str:
    return f"{100.0 * share:.2f}%"


@dataclass
class _Box:
    node: FlameNode
    path: tuple[str, ...]
    x: float
    width: float
    level: int


def _layout(tree: FlameNode, width: float) -> list[_Box]:
    total = tree.total
    if total <= 0:
        return []
    px = width / total
    boxes: list[_Box] = []

    def walk(node: FlameNode, path: tuple[str, ...], x: float, level: int) -> None:
        w = node.total * px
        if w < MIN_WIDTH:
            return
        boxes.append(_Box(node, path, x, w, level))
        cx = x
        for name in sorted(node.children):
            child = node.children[name]
            walk(child, path + (name,), cx, level + 1)
            cx += child.total * px

    walk(tree, (), float(_SIDE), 0)
    return boxes


def _svg(boxes: list[_Box], levels: int, *, title: str, subtitle: str, width: int,
         fill, tip) -> str:
    height = _TOP + max(levels, 1) * ROW_HEIGHT + 10
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="flame" width="{width}" '
        f'height="{height}" viewBox="0 0 {width} {height}" '
        f'font-family="Verdana, DejaVu Sans, sans-serif" font-size="{FONT_SIZE}">',
        f'<text x="{_SIDE}" y="18" font-size="14" font-weight="bold" fill="#222">'
        f"{escape(title)}</text>",
        f'<text x="{width - _SIDE}" y="18" text-anchor="end" fill="#666">'
        f"{escape(subtitle)}</text>",
    ]
    for b in boxes:
        y = _TOP + b.level * ROW_HEIGHT
        label = _label(b.node.name, b.width)
        colour = fill(b)
        out.append(
            f"<g><title>{escape(tip(b))}</title>"
            f'<rect x="{b.x:.2f}" y="{y}" width="{b.width:.2f}" height="{ROW_HEIGHT - 1}" '
            f'rx="2" fill="{colour}"/>'
            + (
                f'<text x="{b.x + 3:.2f}" y="{y + ROW_HEIGHT - 5}" fill="{_ink(colour)}">'
                f"{escape(label)}</text>"
                if label
                else ""
            )
            + "</g>"
        )
    if not boxes:
        out.append(f'<text x="{_SIDE}" y="{_TOP + 12}" fill="#666">no samples</text>')
    out.append("</svg>")
    return "\n".join(out)


def render_svg(stacks: dict[str, int], *, title: str, width: int = 1200) -> str:
    """A flame graph (icicle: root on top) of folded stacks as standalone SVG text.

    One ``<rect>`` and one ``<title>`` tooltip ("frame (N samples, P%)") per drawn
    frame, including the synthetic ``all`` root; frames under ``MIN_WIDTH`` pixels
    are omitted. Colours are a deterministic hash of the frame name.
    """
    tree = build_tree(stacks)
    total = tree.total
    boxes = _layout(tree, width - 2 * _SIDE)
    levels = max((b.level for b in boxes), default=0) + 1

    def tip(b: _Box) -> str:
        return f"{b.node.name} ({b.node.total:,} samples, {_fmt_pct(b.node.total / total)})"

    def fill(b: _Box) -> str:
        return "rgb(200,200,200)" if b.level == 0 else frame_color(b.node.name)

    return _svg(boxes, levels, title=title, subtitle=f"{total:,} samples", width=width,
                fill=fill, tip=tip)


def _path_totals(stacks: dict[str, int]) -> dict[tuple[str, ...], int]:
    totals: dict[tuple[str, ...], int] = {}
    for stack, count in stacks.items():
        frames = tuple(stack.split(";"))
        for i in range(len(frames) + 1):
            totals[frames[:i]] = totals.get(frames[:i], 0) + count
    return totals


def render_diff_svg(base: dict[str, int], cand: dict[str, int], *, title: str,
                    width: int = 1200) -> str:
    """A differential flame graph: the candidate's shape, coloured by change of share.

    Each frame (a call path) is red when its share of all samples grew from baseline
    to candidate and blue when it shrank, more saturated for larger changes; the
    tooltip gives both shares and the delta in percentage points. Paths that vanished
    in the candidate have no width and are not drawn.
    """
    base_totals = _path_totals(base)
    cand_totals = _path_totals(cand)
    bsum = base_totals.get((), 0)
    csum = cand_totals.get((), 0)

    def shares(path: tuple[str, ...]) -> tuple[float, float]:
        b = base_totals.get(path, 0) / bsum if bsum else 0.0
        c = cand_totals.get(path, 0) / csum if csum else 0.0
        return b, c

    tree = build_tree(cand)
    boxes = _layout(tree, width - 2 * _SIDE)
    levels = max((b.level for b in boxes), default=0) + 1
    max_abs = max((abs(c - b) for b, c in (shares(x.path) for x in boxes)), default=0.0)

    def tip(box: _Box) -> str:
        b, c = shares(box.path)
        return (f"{box.node.name} (base {_fmt_pct(b)}, candidate {_fmt_pct(c)}, "
                f"delta {100.0 * (c - b):+.2f} pp)")

    def fill(box: _Box) -> str:
        b, c = shares(box.path)
        return _diff_color(c - b, max_abs)

    subtitle = f"red: share grew, blue: shrank  |  base {bsum:,} / candidate {csum:,} samples"
    return _svg(boxes, levels, title=title, subtitle=subtitle, width=width,
                fill=fill, tip=tip)
