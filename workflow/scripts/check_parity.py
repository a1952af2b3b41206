"""Adapter: an artifact in ONNX Runtime against its torch model on the raw test rows."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))
from quantbench.core.logs import run_step


def main() -> None:
    from quantbench.deploy.parity import run_parity

    run_parity(
        artifact_dir=str(Path(snakemake.input.onnx).parent),
        checkpoint_path=snakemake.input.checkpoint,
        dataset_path=snakemake.input.dataset,
        raw_test_path=snakemake.input.raw_test,
        out=snakemake.output[0],
    )


run_step(snakemake.log[0], main)
