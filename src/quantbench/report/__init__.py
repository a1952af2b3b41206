"""The summarize step: statistics, tables, plots and a recommendation from the measured facts.

The score jobs write quality facts (labels and predictions per model, replicate and method),
the parity checks each ONNX artifact's predictions on the same rows, the time jobs paired timing
facts (FP32 and one method interleaved in rounds), the
probe_engine jobs each model's int8 engine record. Everything the
report states is computed here, from those files alone:

- ``facts``: read and check the quality and timing JSON against their schemas, group and pair;
- ``stats``: intervals, exact tests, bootstrap, measurable order, the Pareto front;
- ``metrics``: one record per model and method (FP32 included), checked against
  ``metrics.schema.json``; ``artifact_quality`` adds each ONNX artifact's own quality, scored
  on the predictions its parity record holds;
- ``tables``, ``recommend``, ``plots``: the summary, the recommendation and the plots, drawn
  from the records only, so that every printed figure is a field of a metrics JSON.

Nothing is written until everything has been computed; every write is atomic.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from quantbench.core.files import write_json, write_text
from quantbench.report import deploy, runtimes
from quantbench.report.artifact_quality import Parity, add_artifact_quality
from quantbench.report.facts import load_facts
from quantbench.report.metrics import Metrics, build_records, throughput_batch, validate_records
from quantbench.report.plots import PLOT_NAMES, write_plots
from quantbench.report.plotting import PLOT_FORMATS
from quantbench.report.recommend import RecommendConfig, recommendation, render_recommendation
from quantbench.report.stats import ReportConfig
from quantbench.report.tables import render_csv, render_results
from quantbench.report.wording import fixed

__all__ = ["PLOT_FORMATS", "PLOT_NAMES", "build_metrics", "fixed", "render_markdown", "summarize"]


def build_metrics(
    quality_paths: Sequence[str],
    timing_paths: Sequence[str],
    cfg: ReportConfig,
    engine_paths: Sequence[str] = (),
    parity: Sequence[Parity] = (),
) -> dict[str, list[Metrics]]:
    """Every model's metrics records (FP32 first, then methods by name), schema-checked; a
    method timed in ONNX Runtime gets its artifact's quality from the ``parity`` records
    ((path, record) pairs)."""
    facts = load_facts(quality_paths, timing_paths, engine_paths)
    by_model = {f.model: build_records(f, cfg) for f in facts}
    for f in facts:
        add_artifact_quality(by_model[f.model], f, parity, cfg)
    records = [r for rs in by_model.values() for r in rs]
    validate_records(records)
    throughput_batch(records)  # one batch size for the whole run
    return by_model


def render_markdown(by_model: dict[str, list[Metrics]], rec: dict[str, Any]) -> str:
    lines = ["# quantbench summary", "", *render_recommendation(rec), "", *render_results(by_model)]
    return "\n".join(lines) + "\n"


def summarize(
    quality_paths: Sequence[str],
    timing_paths: Sequence[str],
    metrics_dir: str,
    out_csv: str,
    out_md: str,
    out_recommendation: str,
    plot_dir: str,
    report: dict[str, Any],
    recommend: dict[str, Any],
    engine_paths: Sequence[str] = (),
    parity_paths: Sequence[str] = (),
    figures_paths: Sequence[str] = (),
) -> None:
    """Metrics JSON per model and method, summary CSV and Markdown, recommendation and plots.

    With parity records (exported artifacts), a method whose artifact fails parity is flagged
    and never recommended, the recommendation names the artifact, and each artifact's folder
    gets its ``figures.json`` (``figures_paths``).
    """
    report = dict(report)
    parity_cfg = deploy.ParityConfig.from_dict(dict(report.pop("parity", {})))
    cfg = ReportConfig.from_dict(report)
    goal = RecommendConfig.from_dict(dict(recommend))
    parity = deploy.load_parity(parity_paths)
    pairs = list(zip(map(str, parity_paths), parity, strict=True))
    by_model = build_metrics(quality_paths, timing_paths, cfg, engine_paths, pairs)
    verdicts = deploy.judge(parity, parity_cfg)
    rows = runtimes.rows_by_model(by_model)  # one row per (method, runtime)
    candidates, left = deploy.deployable(rows, verdicts)
    rec = recommendation(candidates, goal)
    md, csv = render_markdown(rows, rec), render_csv(rows)
    if verdicts:
        rec = deploy.add_artifacts(rec, verdicts, left)
        md, csv = render_markdown(rows, rec), deploy.add_csv_columns(csv, verdicts)
        section = [
            *deploy.render_parity(verdicts, parity_cfg, rec),
            *deploy.render_end_to_end(rows),
        ]
        md += "\n" + "\n".join(section) + "\n"
    figures = deploy.figures_records(figures_paths, by_model, parity, verdicts)
    for r in (r for rs in by_model.values() for r in rs):
        write_json(Path(metrics_dir) / r["model"] / f"{r['method']}.json", r)
    for path, content in figures.items():
        write_json(path, content)
    write_text(out_csv, csv)
    write_text(out_md, md)
    write_json(out_recommendation, rec)
    write_plots(rows, plot_dir)
