"""`--configfile` and the variant lists: merged variant by variant, null removes, replace: runs
a file's own list alone (config.yaml's comments and docs/config.md document the rule)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from snakemake.utils import update_config

from quantbench.core.config import ConfigError, apply_config_files, resolve_config
from tests.workflow_helpers import copy_workflow, planned_jobs, snakemake

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
DEFAULT = yaml.safe_load((ROOT / "config.yaml").read_text())
RTN_W8 = {"kind": "rtn", "bits": 8, "group_size": 32}


def with_files(*files: dict) -> dict:
    """The resolved config for config.yaml plus ``files`` in order, merged as Snakemake does:
    the files into one another, then the result into config.yaml."""
    given: dict = {}
    for extra in files:
        update_config(given, copy.deepcopy(extra))
    cfg = copy.deepcopy(DEFAULT)
    update_config(cfg, copy.deepcopy(given))
    return resolve_config(apply_config_files(cfg, given), SCHEMA)


def test_a_named_method_changes_only_the_keys_given():
    cfg = with_files({"methods": {"rtn_w4": {"bits": 8}}})
    assert set(cfg["methods"]) == set(DEFAULT["methods"])
    rtn = cfg["methods"]["rtn_w4"]
    assert (rtn["kind"], rtn["bits"], rtn["group_size"]) == ("rtn", 8, 32)
    assert cfg["methods"]["gptq_w4"]["bits"] == 4


def test_a_new_name_adds_a_method_to_the_default_ones():
    cfg = with_files({"methods": {"rtn_w8": RTN_W8}})
    assert set(cfg["methods"]) == {*DEFAULT["methods"], "rtn_w8"}
    assert cfg["methods"]["rtn_w8"]["bits"] == 8


def test_null_removes_a_method_and_a_model():
    extra = {
        "methods": {"qat": None},
        "models": {"mlp": None, "small": {"arch": "mlp", "hidden": [64]}},
    }
    cfg = with_files(extra)
    assert set(cfg["methods"]) == set(DEFAULT["methods"]) - {"qat"}
    assert set(cfg["models"]) == {"small"}


def test_a_named_model_changes_only_the_keys_given():
    cfg = with_files({"models": {"mlp": {"hidden": [64]}}})
    assert cfg["models"]["mlp"] == {"arch": "mlp", "hidden": [64], "dropout": 0.1}


def test_replace_runs_the_files_own_list_alone():
    cfg = with_files({"replace": ["methods"], "methods": {"rtn_w8": RTN_W8}})
    assert set(cfg["methods"]) == {"rtn_w8"}
    assert set(cfg["models"]) == set(DEFAULT["models"])  # models still merge


def test_two_files_merge_in_order():
    first = {"methods": {"rtn_w8": RTN_W8, "gptq_w3": {"kind": "gptq", "bits": 3}}}
    second = {"methods": {"gptq_w3": None, "rtn_w8": {"bits": 6}, "rtn_w4": None}}
    cfg = with_files(first, second)
    assert set(cfg["methods"]) == {*DEFAULT["methods"], "rtn_w8"} - {"rtn_w4"}
    assert cfg["methods"]["rtn_w8"]["bits"] == 6


def test_replace_in_one_of_two_files_covers_both_files_lists():
    first = {"replace": ["methods"], "methods": {"rtn_w8": RTN_W8}}
    second = {"methods": {"rtn_w3": {"kind": "rtn", "bits": 3}}}
    assert set(with_files(first, second)["methods"]) == {"rtn_w8", "rtn_w3"}


BAD = {
    "new name without a kind": (
        {"methods": {"rtn_w8": {"bits": 8}}},
        "methods.rtn_w8: 'kind' is a required property (a new method needs kind: ptq_dynamic, "
        "ptq_static, qat, rtn or gptq)",
    ),
    "replace without a list": (
        {"replace": ["methods"]},
        "replace: names methods but no config file lists methods; add a methods: list to the "
        "file, or take methods out of replace",
    ),
    "replace names an unknown section": (
        {"replace": ["method"], "methods": {"rtn_w8": RTN_W8}},
        "replace.0: 'method' is not allowed; choose one of: methods, models",
    ),
    "every method removed": (
        {"methods": dict.fromkeys(DEFAULT["methods"])},
        "methods: no method variants; list at least one",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_config_file_is_one_clear_line(case):
    extra, expected = BAD[case]
    with pytest.raises(ConfigError) as err:
        with_files(extra)
    assert expected in str(err.value)
    assert "\n" not in str(err.value)


def test_every_shipped_config_runs_the_variants_its_comments_name():
    """The files under configs/ with config.yaml as shipped."""
    sweep = yaml.safe_load((ROOT / "configs" / "bits_sweep.yaml").read_text())
    assert set(with_files(sweep)["methods"]) == set(sweep["methods"])
    wide = yaml.safe_load((ROOT / "configs" / "wide.yaml").read_text())
    cfg = with_files(wide)
    assert (set(cfg["models"]), set(cfg["methods"])) == ({"mlp_wide"}, set(wide["methods"]))
    archs = yaml.safe_load((ROOT / "configs" / "architectures.yaml").read_text())
    cfg = with_files(archs)
    assert set(cfg["models"]) == {"mlp", "cnn1d", "transformer"}
    assert set(cfg["methods"]) == set(DEFAULT["methods"])
    assert cfg["methods"]["qat"]["epochs"] == 2


# The same rule through Snakemake itself: dry runs of config.yaml with files given on the command
# line, as a user would type them.


def quantized_methods(workdir: Path, *files: str) -> set[str]:
    jobs = planned_jobs(workdir, "--configfile", *files, configfile=files[0])
    return {name[:-1].rsplit("/", 1)[1] for name in jobs if name.startswith("quantize[")}


@pytest.fixture(scope="module")
def workdir(tmp_path_factory) -> Path:
    workdir = copy_workflow(tmp_path_factory.mktemp("wf"))
    files = {
        "tweak.yaml": {"methods": {"rtn_w4": {"bits": 8}, "rtn_w8": RTN_W8, "qat": None}},
        "own.yaml": {"replace": ["methods"], "methods": {"rtn_w8": RTN_W8}},
        "second.yaml": {"methods": {"rtn_w8": {"bits": 6}, "ptq_static": None}},
        "kindless.yaml": {"methods": {"rtn_w3": {"bits": 3}}},
    }
    for name, content in files.items():
        (workdir / name).write_text(yaml.safe_dump(content))
    return workdir


def test_dry_run_adds_tweaks_and_removes(workdir):
    assert quantized_methods(workdir, "tweak.yaml") == {
        "ptq_dynamic", "ptq_static", "gptq_w4", "rtn_w4", "rtn_w8",
    }  # fmt: skip


def test_dry_run_with_replace_runs_the_files_own_list(workdir):
    assert quantized_methods(workdir, "own.yaml") == {"rtn_w8"}


def test_dry_run_with_two_files(workdir):
    assert quantized_methods(workdir, "tweak.yaml", "second.yaml") == {
        "ptq_dynamic", "gptq_w4", "rtn_w4", "rtn_w8",
    }  # fmt: skip


def test_dry_run_of_a_new_method_without_kind_stops_with_one_line(workdir):
    proc = snakemake(workdir, "--dry-run", configfile="kindless.yaml")
    assert proc.returncode != 0
    text = proc.stdout + proc.stderr
    lines = [line for line in text.splitlines() if "config error" in line]
    assert lines == ["config error: methods.rtn_w3: 'kind' is a required property (a new method "
                     "needs kind: ptq_dynamic, ptq_static, qat, rtn or gptq)"], text  # fmt: skip
