"""Adapter: time one method's model against FP32 of the same replicate, in paired rounds."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))
from quantbench.core.logs import run_step


def main() -> None:
    from quantbench.measure.timing import run_timing

    run_timing(
        reference_path=snakemake.input.reference,
        candidate_path=snakemake.input.candidate,
        dataset_path=snakemake.input.dataset,
        info_path=snakemake.input.get("info"),
        model=snakemake.wildcards.model,
        method=snakemake.wildcards.method,
        replicate=snakemake.params.replicate,
        timing=snakemake.params.timing,
        timing_out=snakemake.output[0],
    )


run_step(snakemake.log[0], main)
