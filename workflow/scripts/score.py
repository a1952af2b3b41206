"""Adapter: score one model (FP32 or quantized) of one replicate into its quality record; with
deploy.export (the rule then declares the artifact's files) export and check it in the same
process."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))
from quantbench.core.logs import run_step


def main() -> None:
    job = {
        "checkpoint_path": snakemake.input.checkpoint,
        "dataset_path": snakemake.input.dataset,
        "info_path": snakemake.input.get("info"),
        "model": snakemake.wildcards.model,
        "replicate": snakemake.params.replicate,
        "quality_out": snakemake.output.quality,
    }
    if snakemake.output.get("onnx") is None:  # no deploy.export: the rule declares no artifact
        from quantbench.measure.score import run_scoring

        run_scoring(**job)
        return
    from quantbench.deploy.score_export import DeployPaths, run_score_export

    deploy = DeployPaths(
        encoding=snakemake.input.encoding,
        card=snakemake.input.card,
        raw_test=snakemake.input.raw_test,
        onnx_out=snakemake.output.onnx,
        manifest_out=snakemake.output.manifest,
        parity_out=snakemake.output.parity,
        accuracy_level=snakemake.params.accuracy_level,
    )
    run_score_export(**job, deploy=deploy)


run_step(snakemake.log[0], main)
