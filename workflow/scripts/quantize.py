"""Adapter: quantize the FP32 checkpoint with one named method variant."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))
from quantbench.core.logs import run_step


def main() -> None:
    from quantbench.quant.quantize import run_quantization

    run_quantization(
        method=snakemake.wildcards.method,
        variant=snakemake.params.method,
        fp32_path=snakemake.input.fp32,
        dataset_path=snakemake.input.dataset,
        engine_path=snakemake.input.get("engine"),
        seed=snakemake.params.seed,
        device=snakemake.params.device,
        threads=snakemake.threads,
        checkpoint_out=snakemake.output.checkpoint,
        info_out=snakemake.output.info,
    )


run_step(snakemake.log[0], main)
