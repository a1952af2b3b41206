"""Adapter: score one model (FP32 or quantized) of one replicate into its quality record."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))
from quantbench.core.logs import run_step


def main() -> None:
    from quantbench.measure.score import run_scoring

    run_scoring(
        checkpoint_path=snakemake.input.checkpoint,
        dataset_path=snakemake.input.dataset,
        info_path=snakemake.input.get("info"),
        model=snakemake.wildcards.model,
        replicate=snakemake.params.replicate,
        quality_out=snakemake.output[0],
    )


run_step(snakemake.log[0], main)
