"""Adapter: measure one model (FP32 or quantized) into its metrics JSON."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))
from quantbench.logs import run_step


def main() -> None:
    from quantbench.evaluate import run_evaluation

    run_evaluation(
        checkpoint_path=snakemake.input.checkpoint,
        dataset_path=snakemake.input.dataset,
        info_path=snakemake.input.get("info"),
        timing=snakemake.params.timing,
        engine=snakemake.params.engine,
        metrics_out=snakemake.output[0],
    )


run_step(snakemake.log[0], main)
