"""Adapter: one checkpoint -> its ONNX artifact (model.onnx with preprocessing, manifest.json)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))
from quantbench.core.logs import run_step


def main() -> None:
    from quantbench.deploy.artifact import run_export

    run_export(
        checkpoint_path=snakemake.input.checkpoint,
        preprocessor_path=snakemake.input.preprocessor,
        card_path=snakemake.input.card,
        model=snakemake.wildcards.model,
        replicate=snakemake.params.replicate,
        onnx_out=snakemake.output.onnx,
        manifest_out=snakemake.output.manifest,
    )


run_step(snakemake.log[0], main)
