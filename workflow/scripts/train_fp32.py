"""Adapter: train the FP32 model and write its checkpoint and history."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))
from quantbench.core.logs import run_step


def main() -> None:
    from quantbench.training.train import run_training

    run_training(
        dataset_path=snakemake.input.dataset,
        model=snakemake.params.model,
        train=snakemake.params.train,
        seed=snakemake.params.seed,
        checkpoint_out=snakemake.output.checkpoint,
        history_out=snakemake.output.history,
    )


run_step(snakemake.log[0], main)
