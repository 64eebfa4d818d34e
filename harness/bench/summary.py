"""The few lines a person reads at the end of a bench run."""

from __future__ import annotations

from pathlib import Path

from .model import BenchReport, integrate_policy, total_spend


def summary_text(report: BenchReport, html: Path) -> str:
    s = report.summary
    unit = report.metric.unit or report.metric.name
    lines = [f"bench {report.target.name} (run {report.run_id})",
             f"  baseline     {s.baseline_median:,.0f} {unit} (median of {report.baseline.stats.n})"]
    if s.integrated_median is not None and s.speedup is not None:
        sig = "significant" if s.significant else "not significant"
        ref = report.integration.reference if report.integration else None
        against = f" (against the baseline re-measured alongside: {ref.stats.median:,.0f})" if ref else ""
        lines.append(f"  integrated   {s.integrated_median:,.0f} {unit}{against}")
        lines.append(f"  speedup      x{s.speedup:.2f}  95% interval [{s.ci_low:.2f}, {s.ci_high:.2f}]  "
                     f"{s.verdict}, {sig}")
    else:
        lines.append("  integrated   none (nothing to fold passed the gate)")
    lines.append(f"  folds        {integrate_policy(report)}, fastest first")
    lines.append(f"  strategies   {s.folded} folded, {s.conflicted} conflicted, {s.rejected_by_gate} rejected "
                 f"by the gate, {s.failed_tests} failed tests, {s.not_improved} not improved, "
                 f"{s.failed} failed, {s.timed_out} timed out, {s.retried} retried")
    spent = total_spend(report.candidates)
    if spent is not None:
        lines.append(f"  model        {spent.calls} call(s), {spent.input_tokens:,} in / {spent.output_tokens:,} out "
                     f"tokens, ${spent.cost_usd:.4f} over every strategy")
    for c in report.candidates:
        cmp = c.comparison
        speed = f"x{cmp.speedup:.2f} [{cmp.ci_low:.2f}, {cmp.ci_high:.2f}]" if cmp else "-"
        tries = f"{c.retries} retr{'y' if c.retries == 1 else 'ies'}"
        cost = ""
        if spent is not None:
            cost = (f"{c.spend.tokens:,} tok ${c.spend.cost_usd:.4f}" if c.spend else "no model")
            cost = f" {tries:<11} {cost:<22}"
        lines.append(f"    {c.name:<28} {c.status:<16}{cost} {speed:<22} {c.merge_outcome}"
                     + (f" ({c.merge_detail})" if c.merge_detail and c.merge_outcome != "folded" else ""))
    lines.append(f"  report       {html}")
    return "\n".join(lines)
