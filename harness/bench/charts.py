"""Inline SVG charts for the bench report: throughput bars and the run's timeline.

The charts are plain SVG strings with presentation attributes only (no ids, no
scripts, no ``<style>``), so several can sit in one HTML page without clashing.
"""

from __future__ import annotations

import math
from html import escape

from .model import BenchReport, CandidateReport, TimelineEntry

FONT = 'font-family="system-ui, -apple-system, Segoe UI, DejaVu Sans, sans-serif"'

STATUS_COLORS = {
    "succeeded": "#2f9e5b",
    "failed": "#d9453b",
    "timed_out": "#e0a21b",
    "stalled": "#e0a21b",
    "crashed": "#9c1c1c",
    "scope_violation": "#8e44ad",
    "dependency_failed": "#8a8f98",
    "cancelled": "#8a8f98",
    "conflicted": "#e8772e",
    "rejected_by_gate": "#c0392b",
}
KIND_COLORS = {
    "tests": "#14a3a3",
    "bench": "#3b6fd8",
    "profile": "#8b5cf6",
    "integrate": "#4338ca",
    "gate": "#334155",
}
MUTED = "#c3c8d0"


def fmt_value(v: float) -> str:
    """A metric value, compact but exact enough to compare (12,345 / 12.3 / 0.0123)."""
    if not math.isfinite(v):
        return str(v)
    a = abs(v)
    if a >= 1000:
        return f"{v:,.0f}"
    if a >= 10:
        return f"{v:,.1f}"
    return f"{v:.3g}"


def fmt_duration(s: float) -> str:
    """Seconds as ``42s``, ``12m05s`` or ``1h02m``."""
    s = max(0.0, s)
    if s < 60:
        return f"{s:.0f}s"
    if s < 3600:
        return f"{int(s // 60)}m{int(s % 60):02d}s"
    return f"{int(s // 3600)}h{int(s % 3600 // 60):02d}m"


def _nice_ticks(lo: float, hi: float, count: int = 6) -> list[float]:
    span = hi - lo
    if span <= 0:
        return [lo]
    raw = span / count
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    ticks = []
    t = first
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 10))
        t += step
    return ticks


def _text(x: float, y: float, s: str, *, anchor: str = "start", size: int = 12,
          fill: str = "#1f2937", weight: str = "normal") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" '
            f'font-weight="{weight}" fill="{fill}">{escape(s)}</text>')


def _interval(report: BenchReport, c: CandidateReport) -> tuple[float, float] | None:
    """The candidate's 95% interval expressed in metric units, against the baseline
    it was compared with (the integration's own, re-measured beside it)."""
    cmp = c.comparison
    if cmp is None:
        return None
    base = _reference(report, c)
    if report.metric.direction == "higher":
        return base * cmp.ci_low, base * cmp.ci_high
    return base / cmp.ci_high, base / cmp.ci_low


def _reference(report: BenchReport, c: CandidateReport) -> float:
    """The baseline median a candidate is compared with."""
    return c.reference.stats.median if c.reference is not None else report.baseline.stats.median


def _bar_color(c: CandidateReport, integration: bool) -> tuple[str, float]:
    cmp = c.comparison
    if cmp is None or not cmp.significant:
        return MUTED, 0.75
    if cmp.verdict == "slower":
        return "#d9453b", 1.0
    return ("#2563eb", 1.0) if integration else ("#2f9e5b", 1.0)


def throughput_chart(report: BenchReport, *, width: int = 1100) -> str:
    """Horizontal bars from the baseline median to each candidate's median (for the
    integration, from the baseline re-measured beside it, drawn as a short dashed mark).

    One ``<rect class="bar">`` per measured candidate and for the integration, an error
    bar for the 95% interval, a dashed baseline reference line; non-significant results
    are drawn muted. Unmeasured strategies get a row with their status instead.
    """
    rows: list[tuple[CandidateReport, bool]] = [(c, False) for c in report.candidates]
    if report.integration is not None:
        rows.append((report.integration, True))
    base = report.baseline.stats.median
    values = [base]
    for c, _ in rows:
        if c.measurement is not None:
            values += [c.measurement.stats.median, _reference(report, c)]
            iv = _interval(report, c)
            if iv:
                values.extend(iv)
    lo, hi = min(values), max(values)
    pad = max((hi - lo) * 0.08, abs(base) * 0.01)
    lo, hi = lo - pad, hi + pad
    left, right, top, row_h = 200, 190, 30, 28
    plot_w = width - left - right
    height = top + row_h * len(rows) + 46 + (10 if report.integration else 0)

    def x(v: float) -> float:
        return left + (v - lo) / (hi - lo) * plot_w

    unit = report.metric.unit or report.metric.name
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" '
           f'height="{height}" viewBox="0 0 {width} {height}" {FONT}>']
    axis_y = height - 34
    for t in _nice_ticks(lo, hi):
        tx = x(t)
        out.append(f'<line x1="{tx:.1f}" y1="{top - 8}" x2="{tx:.1f}" y2="{axis_y}" '
                   f'stroke="#eceff3"/>')
        out.append(_text(tx, axis_y + 16, fmt_value(t), anchor="middle", size=11,
                         fill="#6b7280"))
    out.append(_text(left + plot_w / 2, axis_y + 31, f"median {report.metric.name} ({unit})"
                     f" — {'higher' if report.metric.direction == 'higher' else 'lower'}"
                     " is better", anchor="middle", size=11, fill="#6b7280"))
    y = top
    for c, is_int in rows:
        if is_int:
            out.append(f'<line x1="12" y1="{y + 4}" x2="{width - 12}" y2="{y + 4}" '
                       f'stroke="#d1d5db"/>')
            y += 10
        cy = y + row_h / 2
        name = c.name if len(c.name) <= 28 else c.name[:26] + ".."
        out.append(_text(left - 10, cy + 4, name, anchor="end",
                         weight="bold" if is_int else "normal"))
        m = c.measurement
        if m is None:
            out.append(_text(x(base) + 8, cy + 4, f"not measured ({c.status})", size=11,
                             fill="#9ca3af"))
            y += row_h
            continue
        med = m.stats.median
        ref = _reference(report, c)
        color, opacity = _bar_color(c, is_int)
        x0, x1 = sorted((x(ref), x(med)))
        if c.reference is not None:  # its own baseline, measured beside it
            out.append(f'<line class="ref" x1="{x(ref):.1f}" y1="{cy - 11:.1f}" x2="{x(ref):.1f}" '
                       f'y2="{cy + 11:.1f}" stroke="#111827" stroke-width="1.5" stroke-dasharray="3 2"/>')
        cmp = c.comparison
        tip = f"{c.name}: median {fmt_value(med)} {unit}" + (
            f" against its baseline re-measured beside it, {fmt_value(ref)}" if c.reference is not None else "")
        if cmp is not None:
            tip += (f", x{cmp.speedup:.3f} [{cmp.ci_low:.3f}, {cmp.ci_high:.3f}] "
                    f"p={cmp.p_value:.3g}, {cmp.verdict}")
        out.append(f'<g><title>{escape(tip)}</title><rect class="bar" x="{x0:.1f}" '
                   f'y="{cy - 8:.1f}" width="{max(x1 - x0, 1.5):.1f}" height="16" rx="2" '
                   f'fill="{color}" fill-opacity="{opacity}"/></g>')
        iv = _interval(report, c)
        if iv:
            a, b = x(iv[0]), x(iv[1])
            out.append(f'<path d="M{a:.1f} {cy:.1f}H{b:.1f}M{a:.1f} {cy - 5:.1f}V{cy + 5:.1f}'
                       f'M{b:.1f} {cy - 5:.1f}V{cy + 5:.1f}" stroke="#111827" '
                       f'stroke-width="1.3" fill="none" opacity="{0.9 if opacity == 1 else 0.5}"/>')
        label = fmt_value(med)
        if cmp is not None:
            label += f"  ×{cmp.speedup:.3f}"
            if not cmp.significant:
                label += " (n.s.)"
        out.append(_text(width - right + 12, cy + 4, label, size=12,
                         fill="#111827" if opacity == 1 else "#6b7280",
                         weight="bold" if is_int else "normal"))
        y += row_h
    bx = x(base)
    out.append(f'<line x1="{bx:.1f}" y1="{top - 10}" x2="{bx:.1f}" y2="{axis_y}" '
               f'stroke="#111827" stroke-width="1.5" stroke-dasharray="5 3"/>')
    out.append(_text(bx, top - 14, f"baseline {fmt_value(base)}", anchor="middle", size=11,
                     fill="#111827", weight="bold"))
    out.append("</svg>")
    return "\n".join(out)


def _lane_order(report: BenchReport) -> list[str]:
    lanes = [e.lane for e in report.timeline]
    ordered = ["baseline"] if "baseline" in lanes else []
    ordered += [c.task_id for c in report.candidates if c.task_id in lanes]
    ordered += [lane for lane in dict.fromkeys(lanes)
                if lane not in ordered and lane not in ("integration", "gate")]
    ordered += [lane for lane in ("integration", "gate") if lane in lanes]
    return ordered


def _entry_color(e: TimelineEntry) -> str:
    if e.kind in ("attempt", "retry") or e.status != "succeeded":
        return STATUS_COLORS.get(e.status, "#8a8f98")
    return KIND_COLORS.get(e.kind, "#8a8f98")


def timeline_chart(report: BenchReport, *, width: int = 1200) -> str:
    """A Gantt chart of the run: one lane per task plus baseline/integration/gate lanes.

    Each entry is a ``<rect class="tl-bar" data-kind=...>``; attempts are coloured by
    status, retries have a dark dashed outline, phases (tests, bench, profile,
    integrate, gate) by kind, or by status when they failed.
    """
    lanes = _lane_order(report)
    names = {c.task_id: c.name for c in report.candidates}
    left, right, top, lane_h = 190, 20, 14, 26
    plot_w = width - left - right
    end = max((e.end for e in report.timeline), default=1.0) or 1.0
    steps = [10, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400]
    step = next((s for s in steps if end / s <= 10), steps[-1])
    legend_y = top + lane_h * max(len(lanes), 1) + 50
    height = legend_y + 22

    def x(t: float) -> float:
        return left + t / end * plot_w

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}" '
           f'height="{height}" viewBox="0 0 {width} {height}" {FONT}>']
    axis_y = top + lane_h * len(lanes) + 4
    for i, lane in enumerate(lanes):
        y = top + i * lane_h
        if i % 2 == 0:
            out.append(f'<rect x="0" y="{y}" width="{width}" height="{lane_h}" '
                       f'fill="#f7f8fa"/>')
        label = names.get(lane, lane)
        label = label if len(label) <= 26 else label[:24] + ".."
        bold = "bold" if lane in ("baseline", "integration", "gate") else "normal"
        out.append(_text(left - 10, y + lane_h / 2 + 4, label, anchor="end", weight=bold))
    t = 0.0
    while t <= end + 1e-9:
        tx = x(t)
        out.append(f'<line x1="{tx:.1f}" y1="{top}" x2="{tx:.1f}" y2="{axis_y}" '
                   f'stroke="#e5e7eb"/>')
        out.append(_text(tx, axis_y + 15, fmt_duration(t), anchor="middle", size=11,
                         fill="#6b7280"))
        t += step
    index = {lane: i for i, lane in enumerate(lanes)}
    for e in report.timeline:
        y = top + index[e.lane] * lane_h + 5
        x0, x1 = x(e.start), x(max(e.end, e.start))
        w = max(x1 - x0, 2.0)
        stroke = (' stroke="#111827" stroke-width="1.5" stroke-dasharray="4 2"'
                  if e.kind == "retry" else ' stroke="#ffffff" stroke-width="0.5"')
        tip = (f"{names.get(e.lane, e.lane)} — {e.label} ({e.kind}, {e.status}): "
               f"{fmt_duration(e.start)} → {fmt_duration(e.end)}, "
               f"{fmt_duration(e.end - e.start)}")
        label = e.label if e.kind != "retry" else f"↻ {e.label}"
        inner = ""
        if w > len(label) * 6.6 + 8:
            inner = _text(x0 + 4, y + 12, label, size=11, fill="#ffffff")
        out.append(f'<g><title>{escape(tip)}</title><rect class="tl-bar" '
                   f'data-kind="{escape(e.kind)}" data-status="{escape(e.status)}" '
                   f'x="{x0:.1f}" y="{y}" width="{w:.1f}" height="{lane_h - 10}" rx="3" '
                   f'fill="{_entry_color(e)}"{stroke}/>{inner}</g>')
    out.append(_text(left + plot_w / 2, axis_y + 32, "time since run start", anchor="middle",
                     size=11, fill="#6b7280"))
    statuses = sorted({e.status for e in report.timeline if e.kind in ("attempt", "retry")})
    kinds = [k for k in KIND_COLORS if any(e.kind == k for e in report.timeline)]
    items = [(s.replace("_", " "), STATUS_COLORS.get(s, "#8a8f98"), False) for s in statuses]
    items += [(k, KIND_COLORS[k], False) for k in kinds]
    if any(e.kind == "retry" for e in report.timeline):
        items.append(("retry", "#ffffff", True))
    lx = left
    for name, color, dashed in items:
        extra = ' stroke="#111827" stroke-dasharray="4 2"' if dashed else ""
        out.append(f'<rect x="{lx}" y="{legend_y}" width="14" height="12" rx="2" '
                   f'fill="{color}"{extra}/>')
        out.append(_text(lx + 19, legend_y + 10, name, size=11, fill="#374151"))
        lx += 30 + len(name) * 7
    out.append("</svg>")
    return "\n".join(out)
