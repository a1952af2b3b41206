"""Adapter: raw flow records -> dataset.npz, fitted preprocessor (and its numbers as JSON), data
card and the test split's raw rows."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).resolve().parents[1] / "src"))
from quantbench.core.logs import run_step


def main() -> None:
    from quantbench.data.preprocess import run_preprocess
    from quantbench.data.settings import data_config_from_mapping

    run_preprocess(
        list(snakemake.input.raw),
        data_config_from_mapping(snakemake.params.data),
        seed=snakemake.params.seed,
        dataset_out=snakemake.output.dataset,
        preprocessor_out=snakemake.output.preprocessor,
        card_out=snakemake.output.card,
        raw_test_out=snakemake.output.raw_test,
        encoding_out=snakemake.output.encoding,
    )


run_step(snakemake.log[0], main)
