"""Adapter: measure which int8 engine runs the model fastest here (or record the explicit one)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))
from quantbench.core.logs import run_step


def main() -> None:
    settings = {
        "objective": snakemake.params.objective,
        "batch_size": snakemake.params.batch_size,
        "threads": snakemake.params.threads,
    }
    if snakemake.params.engine != "auto":  # named: no probe, none of its code (rule inputs)
        from quantbench.measure.engine_record import run_named_engine

        run_named_engine(
            model=snakemake.wildcards.model,
            requested=snakemake.params.engine,
            engine_out=snakemake.output[0],
            **settings,
        )
        return
    from quantbench.measure.probe import run_probe

    run_probe(
        checkpoint_path=snakemake.input.fp32,
        dataset_path=snakemake.input.dataset,
        model=snakemake.wildcards.model,
        requested=snakemake.params.engine,
        engine_out=snakemake.output[0],
        **settings,
    )


run_step(snakemake.log[0], main)
