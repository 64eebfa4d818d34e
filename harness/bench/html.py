"""The bench report as one self-contained HTML page (inline CSS and SVG, works offline).

Also the comparison of two runs, as a text table and as a page, for
``harness bench compare RUN_A RUN_B``.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from html import escape
from pathlib import Path

from ..records import ModelSpend
from .charts import fmt_value, throughput_chart, timeline_chart
from .model import BenchReport, CandidateReport, Measurement, integrate_policy, save_report
from .stats import Comparison, compare

_CSS = """
:root{--fg:#1f2937;--mut:#6b7280;--line:#e5e7eb;--bg:#f4f6f9}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);
 font:14px/1.45 system-ui,-apple-system,"Segoe UI","DejaVu Sans",sans-serif}
main{max-width:1260px;margin:0 auto;padding:24px 28px 60px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:18px;margin:0 0 12px}
.meta{color:var(--mut);font-size:13px}.meta b{color:var(--fg);font-weight:600}
section{background:#fff;border:1px solid var(--line);border-radius:10px;
 padding:18px 20px;margin-top:18px;box-shadow:0 1px 2px rgba(0,0,0,.03)}
.cards{display:flex;gap:14px;flex-wrap:wrap;margin-bottom:14px}
.card{flex:1 1 200px;border:1px solid var(--line);border-radius:8px;padding:12px 14px}
.card .k{color:var(--mut);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.card .v{font-size:24px;font-weight:650;margin-top:2px}
.card .s{color:var(--mut);font-size:12.5px}
.chips{display:flex;gap:8px;flex-wrap:wrap}
.chip{border:1px solid var(--line);border-radius:999px;padding:3px 10px;font-size:12.5px}
.chip b{font-weight:650}
table{border-collapse:collapse;width:100%;font-size:13px}
th{text-align:left;color:var(--mut);font-weight:600;font-size:12px;
 border-bottom:2px solid var(--line);padding:6px 8px;vertical-align:bottom}
td{border-bottom:1px solid var(--line);padding:7px 8px;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.name b,td.name code{white-space:nowrap}tr.int .sub{font-weight:400}td.why{min-width:120px}td.merge{min-width:140px;max-width:380px;overflow-wrap:anywhere}
.tablebox{overflow-x:auto}
table.top{max-width:620px;margin-top:10px}table.top td{padding:3px 8px}
tr.int td{background:#f5f8ff;font-weight:600}
.badge{display:inline-block;border-radius:4px;padding:1px 7px;font-size:12px;
 font-weight:600;white-space:nowrap;color:#fff;background:#8a8f98}
.b-good{background:#2f9e5b}.b-bad{background:#d9453b}.b-warn{background:#e0a21b}
.b-crit{background:#9c1c1c}.b-pur{background:#8e44ad}.b-org{background:#e8772e}
.b-blue{background:#2563eb}.b-mut{background:#eef0f3;color:#4b5563}
.sub{color:var(--mut);font-size:12px}
code{font:12px ui-monospace,SFMono-Regular,Menlo,monospace;background:#f3f4f6;
 padding:1px 4px;border-radius:3px}
details{border:1px solid var(--line);border-radius:8px;margin:10px 0;padding:0 12px}
details[open]{padding-bottom:12px}
summary{cursor:pointer;padding:9px 0;font-weight:600}
summary .sub{font-weight:400;margin-left:8px}
.svgbox{overflow-x:auto}.svgbox svg{max-width:100%;height:auto;display:block}
.note{color:var(--mut);font-style:italic;padding:8px 0}
pre{background:#f8fafc;border:1px solid var(--line);border-radius:6px;padding:10px;
 overflow:auto;font-size:12px}
footer{color:var(--mut);font-size:12px;margin-top:20px;text-align:center}
"""

_BADGE = {
    "succeeded": "b-good", "failed": "b-bad", "timed_out": "b-warn", "stalled": "b-warn",
    "crashed": "b-crit", "scope_violation": "b-pur", "conflicted": "b-org",
    "rejected_by_gate": "b-bad", "faster": "b-good", "slower": "b-bad",
    "no-change": "b-mut", "folded": "b-good", "failed_tests": "b-bad",
    "not_improved": "b-mut", "not_run": "b-mut", "dependency_failed": "b-mut",
    "cancelled": "b-mut", "ok": "b-good",
}


def _e(s: object) -> str:
    return escape(str(s), quote=True)


def badge(value: str) -> str:
    """A coloured status/verdict/outcome badge."""
    return f'<span class="badge {_BADGE.get(value, "")}">{_e(value.replace("_", " "))}</span>'


def _speedup(cmp: Comparison | None) -> str:
    if cmp is None:
        return "—"
    return (f'×{cmp.speedup:.3f}<div class="sub">[{cmp.ci_low:.3f}, '
            f"{cmp.ci_high:.3f}]</div>")


def _median(m: Measurement | None) -> str:
    if m is None:
        return "—"
    return (f"{_e(fmt_value(m.stats.median))} <span class=\"sub\">± "
            f"{100 * m.stats.rel_spread / 2:.1f}%</span>")


def _tests(c: CandidateReport) -> str:
    t = c.tests
    if t is None:
        return '<span class="sub">—</span>'
    bad = t.failed + t.errored
    more = f'<div class="sub">{bad} failing</div>' if bad else ""
    title = _e("\n".join(t.failing)) if t.failing else ""
    return (f'<span title="{title}" style="white-space:nowrap">'
            f'{badge("ok") if t.ok else badge("failed")} <span class="sub">{t.passed} passed'
            f"</span></span>{more}")


def _spend(s: ModelSpend | None) -> str:
    if s is None:
        return '<td class="num"><span class="sub">—</span></td>'
    refused = f", {s.refused} refused" if s.refused else ""
    return (f'<td class="num">{s.tokens:,}<div class="sub">{s.input_tokens:,} in / {s.output_tokens:,} out, '
            f"{s.calls} call(s){refused}</div>${s.cost_usd:.4f}</td>")


def _row(c: CandidateReport, cls: str = "", model: bool = False) -> str:
    detail = f'<div class="sub">{_e(c.merge_detail)}</div>' if c.merge_detail else ""
    verdict = badge(c.comparison.verdict) if c.comparison else '<span class="sub">—</span>'
    p = f'<div class="sub">p={c.comparison.p_value:.2g}</div>' if c.comparison else ""
    return (
        f'<tr class="{cls}"><td class="name"><b>{_e(c.name)}</b><div class="sub">'
        f"<code>{_e(c.task_id)}</code></div></td><td>{badge(c.status)}</td>"
        f'<td class="num">{c.attempts} / {c.retries}</td>'
        + (_spend(c.spend) if model else "") +
        f'<td class="why">{_e(c.exit_reason or "—")}</td><td>{_tests(c)}</td>'
        f'<td class="num">{_median(c.measurement)}</td>'
        f'<td class="num">{_speedup(c.comparison)}</td><td>{verdict}{p}</td>'
        f'<td class="merge">{badge(c.merge_outcome)}{detail}</td></tr>'
    )


def _strategy_table(report: BenchReport) -> str:
    model = any(c.spend is not None for c in report.candidates)
    head = ("<tr><th>strategy</th><th>status</th><th>attempts / retries</th>"
            + ("<th>model tokens / cost</th>" if model else "") +
            "<th>exit reason</th><th>tests</th><th>median ± spread</th>"
            "<th>speedup [95% CI]</th><th>verdict</th><th>merge</th></tr>")
    rows = [_row(c, model=model) for c in report.candidates]
    if report.integration is not None:
        rows.append(_row(report.integration, "int", model=model))
    return f'<div class="tablebox"><table>{head}{"".join(rows)}</table></div>'


_UNSAFE = re.compile(r"^(script|foreignobject|iframe|object|embed)$", re.I)


def _safe_svg(text: str) -> str | None:
    """The SVG element of ``text`` if it is well-formed and carries nothing executable."""
    body = re.sub(r"^\s*<\?xml[^>]*\?>", "", text)
    body = re.sub(r"<!DOCTYPE[^>]*>", "", body, flags=re.I).strip()
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return None
    if not root.tag.endswith("svg"):
        return None
    for el in root.iter():
        if _UNSAFE.match(el.tag.rsplit("}", 1)[-1]):
            return None
        for k, v in el.attrib.items():
            if k.lower().startswith("on") or "javascript:" in v.lower():
                return None
    return body


def _inline_svg(artifacts_dir: Path, rel: str | None, what: str) -> str:
    if not rel:
        return f'<div class="note">No {_e(what)} was recorded.</div>'
    path = Path(rel) if Path(rel).is_absolute() else artifacts_dir / rel
    try:
        svg = _safe_svg(path.read_text(encoding="utf-8"))
    except OSError:
        return f'<div class="note">{_e(what)} missing: <code>{_e(rel)}</code></div>'
    if svg is None:
        return (f'<div class="note">{_e(what)} not shown (not a plain SVG): '
                f"<code>{_e(rel)}</code></div>")
    return f'<div class="svgbox">{svg}</div>'


def _top_table(m: Measurement | None) -> str:
    if m is None or m.profile is None or not m.profile.top_frames:
        return ""
    rows = "".join(
        f'<tr><td><code>{_e(f.name)}</code></td><td class="num">{f.self_pct:.1f}%</td>'
        f'<td class="num">{f.total_pct:.1f}%</td></tr>' for f in m.profile.top_frames)
    return ('<table class="top"><tr><th>top frames by self time</th>'
            f"<th>self</th><th>total</th></tr>{rows}</table>")


def _flames(report: BenchReport, artifacts_dir: Path) -> str:
    parts = []

    def block(title: str, sub: str, body: str, open_: bool = False) -> None:
        parts.append(f'<details{" open" if open_ else ""}><summary>{_e(title)}'
                     f'<span class="sub">{_e(sub)}</span></summary>{body}</details>')

    bp = report.baseline.profile
    block("baseline", "flame graph", _inline_svg(artifacts_dir, bp and bp.svg,
          "baseline flame graph") + _top_table(report.baseline), True)
    if report.integration is not None:
        m = report.integration.measurement
        ip = m.profile if m else None
        block("integration", "flame graph and difference against the baseline",
              _inline_svg(artifacts_dir, ip and ip.svg, "integration flame graph")
              + _inline_svg(artifacts_dir, ip and ip.diff_svg, "integration differential graph")
              + _top_table(m))
    for c in report.candidates:
        if c.measurement is None:
            continue
        p = c.measurement.profile
        block(c.name, "differential flame graph against the baseline (red grew, blue shrank)",
              _inline_svg(artifacts_dir, p and p.diff_svg, f"{c.name} differential graph")
              + _top_table(c.measurement))
    return "".join(parts)


def _summary(report: BenchReport) -> str:
    s = report.summary
    unit = _e(report.metric.unit)
    cards = [("baseline", fmt_value(s.baseline_median), unit)]
    if s.integrated_median is not None:
        cards.append(("integrated", fmt_value(s.integrated_median), unit))
    if s.speedup is not None:
        sig = badge(s.verdict or "no-change") + (" significant" if s.significant
                                                  else " not significant")
        cards.append(("speedup", f"×{s.speedup:.3f}",
                      f"95% CI [{s.ci_low:.3f}, {s.ci_high:.3f}] · {sig}"))
    html = "".join(f'<div class="card"><div class="k">{k}</div><div class="v">{_e(v)}</div>'
                   f'<div class="s">{sub}</div></div>' for k, v, sub in cards)
    counts = [("strategies", len(report.candidates)), ("folded", s.folded),
              ("conflicted", s.conflicted), ("rejected by gate", s.rejected_by_gate),
              ("failed tests", s.failed_tests), ("not improved", s.not_improved),
              ("failed", s.failed), ("timed out", s.timed_out), ("retried", s.retried)]
    chips = "".join(f'<span class="chip">{_e(k)} <b>{v}</b></span>' for k, v in counts)
    policy = f'<div class="sub">The integration folds {_e(integrate_policy(report))}, fastest first.</div>'
    return f'<div class="cards">{html}</div><div class="chips">{chips}</div>{policy}'


def _page(title: str, body: str) -> str:
    return (f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><main>"
            f"{body}<footer>generated by harness bench</footer></main></body></html>\n")


def render_html(report: BenchReport, *, artifacts_dir: str | Path) -> str:
    """The whole report page; artifact paths in the report resolve against ``artifacts_dir``."""
    adir = Path(artifacts_dir)
    r, m = report, report.metric
    header = (
        f"<h1>harness bench — {_e(r.target.name)}</h1>"
        f'<div class="meta">run <b>{_e(r.run_id)}</b> · {_e(r.created_at.isoformat())} · '
        f"target <code>{_e(r.target.path)}</code> at <code>{_e(r.target.base_commit[:12])}</code>"
        f"<br>metric <b>{_e(m.name)}</b> ({_e(m.unit or 'no unit')}, {_e(m.direction)} is "
        f"better) · machine <b>{_e(r.machine.hostname)}</b>, {r.machine.cpus} CPUs, "
        f"{_e(r.machine.platform)}, Python {_e(r.machine.python)} · baseline "
        f"{r.baseline.stats.n} samples ({r.baseline.warmups_dropped} warm-ups dropped)</div>")
    spec = _e(json.dumps(r.spec, indent=2, sort_keys=True, default=str))
    body = (
        f"<header>{header}</header>"
        f"<section><h2>Summary</h2>{_summary(r)}</section>"
        f"<section><h2>Throughput by strategy</h2>"
        f'<div class="sub" style="margin-bottom:8px">Bars run from the baseline median to '
        f"each median; whiskers are the 95% bootstrap interval; grey bars are not "
        f'significant.</div><div class="svgbox">{throughput_chart(r)}</div></section>'
        f"<section><h2>Strategies</h2>{_strategy_table(r)}</section>"
        f"<section><h2>Timeline</h2>"
        f'<div class="svgbox">{timeline_chart(r)}</div></section>'
        f"<section><h2>Flame graphs</h2>{_flames(r, adir)}</section>"
        f"<section><details><summary>Bench spec</summary><pre>{spec}</pre></details></section>")
    return _page(f"harness bench {r.run_id} — {r.target.name}", body)


def write_report(report: BenchReport, out_dir: str | Path) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.html`` into ``out_dir``; returns both paths.

    Artifact paths in the report are taken relative to ``out_dir``.
    """
    out = Path(out_dir)
    json_path = save_report(report, out / "report.json")
    html_path = out / "report.html"
    html_path.write_text(render_html(report, artifacts_dir=out), encoding="utf-8")
    return json_path, html_path

# --- two runs side by side -------------------------------------------------------------


def _cross(a: BenchReport, b: BenchReport) -> Comparison | None:
    """B's integrated result against A's (or baseline against baseline without one)."""
    ma = a.integration.measurement if a.integration else None
    mb = b.integration.measurement if b.integration else None
    ma, mb = ma or a.baseline, mb or b.baseline
    try:
        return compare(ma.samples, mb.samples, direction=a.metric.direction)
    except ValueError:
        return None


def _pairs(a: BenchReport, b: BenchReport):
    names = list(dict.fromkeys([c.name for c in a.candidates] + [c.name for c in b.candidates]))
    ca = {c.name: c for c in a.candidates}
    cb = {c.name: c for c in b.candidates}
    return [(n, ca.get(n), cb.get(n)) for n in names]


def _cell(c: CandidateReport | None) -> tuple[str, str, str]:
    if c is None:
        return "absent", "", ""
    sp = f"x{c.comparison.speedup:.3f}" if c.comparison else "-"
    return sp, c.comparison.verdict if c.comparison else c.status, c.merge_outcome


def _warnings(a: BenchReport, b: BenchReport) -> list[str]:
    w = []
    if a.metric != b.metric:
        w.append(f"metrics differ: {a.metric.name} vs {b.metric.name}")
    if (a.machine.hostname, a.machine.cpus) != (b.machine.hostname, b.machine.cpus):
        w.append(f"machines differ ({a.machine.hostname} vs {b.machine.hostname}): "
                 "absolute numbers do not compare")
    if a.target.base_commit != b.target.base_commit:
        w.append("base commits differ")
    return w


def compare_reports(a: BenchReport, b: BenchReport) -> str:
    """Two runs side by side as a plain-text table (for the terminal)."""
    lines = [f"A: {a.run_id} ({a.target.name} @ {a.target.base_commit[:12]})",
             f"B: {b.run_id} ({b.target.name} @ {b.target.base_commit[:12]})"]
    lines += [f"warning: {w}" for w in _warnings(a, b)]

    def headline(r: BenchReport) -> tuple[str, str, str]:
        s = r.summary
        integ = fmt_value(s.integrated_median) if s.integrated_median is not None else "-"
        sp = (f"x{s.speedup:.3f} [{s.ci_low:.3f}, {s.ci_high:.3f}]"
              if s.speedup is not None else "-")
        return fmt_value(s.baseline_median), integ, sp

    ha, hb = headline(a), headline(b)
    lines.append("")
    lines.append(f"{'':<24}{'A':<30}{'B':<30}")
    for label, va, vb in zip(("baseline median", "integrated median", "speedup vs baseline"),
                             ha, hb):
        lines.append(f"{label:<24}{va:<30}{vb:<30}")
    cross = _cross(a, b)
    if cross is not None:
        lines.append(f"B vs A (integrated): x{cross.speedup:.3f} "
                     f"[{cross.ci_low:.3f}, {cross.ci_high:.3f}] {cross.verdict} "
                     f"(p={cross.p_value:.2g})")
    lines.append("")
    lines.append(f"{'strategy':<24}{'A speedup':<11}{'A verdict':<11}{'A merge':<18}"
                 f"{'B speedup':<11}{'B verdict':<11}{'B merge':<18}")
    for name, ca, cb in _pairs(a, b):
        sa, va, ma = _cell(ca)
        sb, vb, mb = _cell(cb)
        lines.append(f"{name[:23]:<24}{sa:<11}{va:<11}{ma:<18}{sb:<11}{vb:<11}{mb:<18}")
    return "\n".join(line.rstrip() for line in lines) + "\n"


def render_compare_html(a: BenchReport, b: BenchReport) -> str:
    """Two runs side by side as a self-contained HTML page."""
    warn = "".join(f'<div class="chip" style="border-color:#e0a21b">⚠ {_e(w)}</div>'
                   for w in _warnings(a, b))
    cross = _cross(a, b)
    cards = ""
    for tag, r in (("A", a), ("B", b)):
        s = r.summary
        v = f"×{s.speedup:.3f}" if s.speedup is not None else "—"
        sub = (f"{_e(r.run_id)} · integrated {_e(fmt_value(s.integrated_median))}"
               if s.integrated_median is not None else _e(r.run_id))
        cards += (f'<div class="card"><div class="k">{tag}: speedup vs own baseline</div>'
                  f'<div class="v">{_e(v)}</div><div class="s">{sub}</div></div>')
    if cross is not None:
        cards += (f'<div class="card"><div class="k">B vs A integrated</div>'
                  f'<div class="v">×{cross.speedup:.3f}</div><div class="s">95% CI '
                  f"[{cross.ci_low:.3f}, {cross.ci_high:.3f}] · {badge(cross.verdict)}"
                  "</div></div>")
    rows = []
    for name, ca, cb in _pairs(a, b):
        cells = ""
        for c in (ca, cb):
            if c is None:
                cells += '<td colspan="3" class="sub">absent</td>'
                continue
            verdict = badge(c.comparison.verdict) if c.comparison else badge(c.status)
            cells += (f'<td class="num">{_speedup(c.comparison)}</td><td>{verdict}</td>'
                      f"<td>{badge(c.merge_outcome)}</td>")
        rows.append(f"<tr><td><b>{_e(name)}</b></td>{cells}</tr>")
    table = ("<table><tr><th>strategy</th><th>A speedup</th><th>A verdict</th><th>A merge</th>"
             "<th>B speedup</th><th>B verdict</th><th>B merge</th></tr>"
             f"{''.join(rows)}</table>")
    body = (f"<header><h1>harness bench compare</h1><div class=\"meta\">A <b>{_e(a.run_id)}</b>"
            f" · B <b>{_e(b.run_id)}</b> · target {_e(a.target.name)} · metric "
            f"{_e(a.metric.name)}</div></header>"
            f'<section><h2>Headline</h2><div class="cards">{cards}</div>'
            f'<div class="chips">{warn}</div></section>'
            f"<section><h2>Strategies</h2>{table}</section>")
    return _page(f"harness bench compare {a.run_id} vs {b.run_id}", body)
