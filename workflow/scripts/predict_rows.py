"""Adapter: classify the configured CSV with the model's recommended artifact."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))
from quantbench.core.logs import run_step


def main() -> None:
    from quantbench.deploy.predict import predict_recommended

    predict_recommended(
        recommendation_path=snakemake.input.recommendation,
        model=snakemake.wildcards.model,
        csv_path=snakemake.input.csv,
        out_path=snakemake.output[0],
    )


run_step(snakemake.log[0], main)
