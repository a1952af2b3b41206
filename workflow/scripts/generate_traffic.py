"""Adapter: generate the default synthetic traffic CSV."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))
from quantbench.core.logs import run_step


def main() -> None:
    from quantbench.data.synthetic import SyntheticConfig, write_flows_csv

    cfg = SyntheticConfig(**snakemake.params.synthetic, seed=snakemake.params.seed)
    write_flows_csv(cfg, snakemake.output[0])


run_step(snakemake.log[0], main)
