"""Adapter: measure which int8 engine runs the model fastest here (or record the explicit one)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))
from quantbench.core.logs import run_step


def main() -> None:
    from quantbench.measure.probe import run_probe

    run_probe(
        checkpoint_path=snakemake.input.get("fp32"),
        dataset_path=snakemake.input.get("dataset"),
        model=snakemake.wildcards.model,
        requested=snakemake.params.engine,
        objective=snakemake.params.objective,
        batch_size=snakemake.params.batch_size,
        threads=snakemake.params.threads,
        engine_out=snakemake.output[0],
    )


run_step(snakemake.log[0], main)
