"""Adapter: summary table and plots from every metrics JSON."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))
from quantbench.logs import run_step


def main() -> None:
    from quantbench.report import summarize

    summarize(
        list(snakemake.input.metrics),
        out_csv=snakemake.output.csv,
        out_md=snakemake.output.md,
        plot_dir=str(Path(snakemake.output.plots[0]).parent),
    )


run_step(snakemake.log[0], main)
