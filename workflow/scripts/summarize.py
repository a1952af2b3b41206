"""Adapter: metrics, summary, recommendation and plots from every quality and timing JSON."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))
from quantbench.core.logs import run_step


def main() -> None:
    from quantbench.report import summarize

    summarize(
        list(snakemake.input.quality),
        list(snakemake.input.timing),
        engine_paths=list(snakemake.input.engine),
        # results/metrics/{model}/{method}.json: the metrics folder is two levels up
        metrics_dir=str(Path(snakemake.output.metrics[0]).parent.parent),
        out_csv=snakemake.output.csv,
        out_md=snakemake.output.md,
        out_recommendation=snakemake.output.recommendation,
        plot_dir=str(Path(snakemake.output.plots[0]).parent),
        report=dict(snakemake.params.report),
        recommend=dict(snakemake.params.recommend),
    )


run_step(snakemake.log[0], main)
