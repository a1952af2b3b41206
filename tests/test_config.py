"""Config checking: defaults filled, and every bad config stopped with a one-line message."""

import copy
from pathlib import Path

import pytest
import yaml

from quantbench.config import ConfigError, method_params, resolve_config

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow" / "schemas" / "config.schema.yaml"
DEFAULT = yaml.safe_load((ROOT / "config.yaml").read_text())


def resolve(mutate):
    cfg = copy.deepcopy(DEFAULT)
    mutate(cfg)
    return resolve_config(cfg, SCHEMA)


def test_default_config_resolves_with_every_default_filled():
    cfg = resolve(lambda c: None)
    assert cfg["evaluate"]["threads"] == 1
    assert cfg["train"]["threads"] == 1
    assert cfg["methods"]["gptq_w4"]["percdamp"] == pytest.approx(0.01)
    assert cfg["methods"]["ptq_static"]["per_channel"] is True
    assert cfg["data"]["csv"]["drop_columns"] == []


def test_minimal_config_takes_schema_defaults():
    cfg = resolve_config({"methods": {"r": {"kind": "rtn"}}}, SCHEMA)
    assert cfg["seed"] == 42
    assert cfg["model"]["hidden"] == [256, 256]
    assert cfg["methods"]["r"] == {
        "kind": "rtn", "bits": 4, "group_size": 32, "symmetric": False, "execution": "auto",
    }  # fmt: skip


BAD = {
    "unknown top-level key": (lambda c: c.update(colour="red"), "'colour' was unexpected"),
    "unknown nested key": (lambda c: c["train"].update(epoch=3), "allowed keys: batch_size"),
    "wrong type": (lambda c: c["train"].update(batch_size="big"), "train.batch_size"),
    "unknown method kind": (
        lambda c: c["methods"].update(x={"kind": "awq"}),
        "methods.x.kind: 'awq' is not allowed; choose one of",
    ),
    "bits above 8": (lambda c: c["methods"]["rtn_w4"].update(bits=9), "methods.rtn_w4.bits"),
    "bits below 2": (lambda c: c["methods"]["gptq_w4"].update(bits=1), "methods.gptq_w4.bits"),
    "group size not fitting a layer": (
        lambda c: c["methods"]["rtn_w4"].update(group_size=512),
        "is wider than the hidden layer width 256",
    ),
    "group size zero": (lambda c: c["methods"]["rtn_w4"].update(group_size=0), "group_size"),
    "non-positive epochs": (lambda c: c["train"].update(epochs=0), "train.epochs"),
    "non-positive batch size": (lambda c: c["evaluate"].update(batch_size=-1), "batch_size"),
    "non-positive qat epochs": (lambda c: c["methods"]["qat"].update(epochs=0), "qat.epochs"),
    "empty method list": (lambda c: c.update(methods={}), "no method variants"),
    "method name not a wildcard": (
        lambda c: c["methods"].update({"gptq-w4": {"kind": "gptq"}}),
        "method name 'gptq-w4' is not usable",
    ),
    "reserved method name": (
        lambda c: c["methods"].update({"fp32": {"kind": "rtn"}}),
        "'fp32' is reserved",
    ),
    "misspelt method parameter": (
        lambda c: c["methods"]["gptq_w4"].update(groupsize=32),
        "'groupsize' was unexpected",
    ),
    "unknown observer": (
        lambda c: c["methods"]["ptq_static"].update(observer="max"),
        "choose one of: minmax, moving_average, histogram",
    ),
    "unknown data source": (lambda c: c["data"].update(source="s3"), "data.source"),
    "csv source without a path": (lambda c: c["data"].update(source="csv"), "data.csv.path"),
    "fraction out of range": (lambda c: c["data"].update(test_fraction=0.9), "data.test_fraction"),
    "unknown engine": (lambda c: c["quantization"].update(engine="tpu"), "quantization.engine"),
    "empty hidden list": (lambda c: c["model"].update(hidden=[]), "model.hidden"),
    "method without kind": (lambda c: c["methods"].update(x={"bits": 4}), "'kind' is a required"),
    "int4 for 8-bit codes": (
        lambda c: c["methods"]["gptq_w4"].update(bits=8, execution="int4"),
        "methods.gptq_w4.execution: the int4 kernel holds codes of at most 4 bits, got bits: 8; "
        "use execution: dequantized, or execution: int8 with group_size: -1",
    ),
    "int4 for groups of 16": (
        lambda c: c["methods"]["rtn_w4"].update(group_size=16, execution="int4"),
        "methods.rtn_w4.execution: the int4 kernel needs group_size -1 or a multiple of 32",
    ),
    "int8 for grouped codes": (
        lambda c: c["methods"]["rtn_w4"].update(execution="int8"),
        "methods.rtn_w4.execution: int8 needs group_size -1",
    ),
    "unknown execution path": (
        lambda c: c["methods"]["rtn_w4"].update(execution="int2"),
        "choose one of: auto, dequantized, int4, int8",
    ),
    "unknown probe objective": (
        lambda c: c["quantization"].update(probe_objective="energy"),
        "quantization.probe_objective",
    ),
    "fewer timed passes than rounds": (
        lambda c: c["evaluate"].update(throughput_repeats=30),
        "evaluate.throughput_repeats (30) is below evaluate.rounds (100)",
    ),
    "fewer batch-1 calls than rounds": (
        lambda c: c["evaluate"].update(rounds=50, latency_samples=20),
        "evaluate.latency_samples (20) is below evaluate.rounds (50)",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_config_is_one_clear_line(case):
    mutate, expected = BAD[case]
    with pytest.raises(ConfigError) as err:
        resolve(mutate)
    message = str(err.value)
    assert expected in message
    assert "\n" not in message


def test_empty_config_is_refused():
    with pytest.raises(ConfigError, match="config is empty"):
        resolve_config({}, SCHEMA)


def test_engine_reaches_int8_kinds_only():
    cfg = resolve(lambda c: None)
    assert method_params(cfg, "ptq_static", "x86")["engine"] == "x86"
    assert "engine" not in method_params(cfg, "rtn_w4", "x86")
    assert "engine" not in cfg["methods"]["ptq_static"]  # the config itself is not changed


def test_resolved_config_does_not_depend_on_key_order():
    a = resolve(lambda c: None)
    b = resolve(lambda c: c.update(dict(reversed(list(c.items())))))
    assert list(a) == sorted(a)
    assert repr(a) == repr(resolve_config(dict(reversed(list(DEFAULT.items()))), SCHEMA)) == repr(b)


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_resolves(path):
    """Each file under configs/ is merged into config.yaml as `--configfile` does (key by key,
    `methods:` replaced whole) and must pass the same checks as any run."""
    from snakemake.utils import update_config

    extra = yaml.safe_load(path.read_text())
    cfg = copy.deepcopy(DEFAULT)
    update_config(cfg, extra)
    if "methods" in extra:
        cfg["methods"] = dict(extra["methods"])
    resolved = resolve_config(cfg, SCHEMA)
    assert set(resolved["methods"]) == set(extra.get("methods", DEFAULT["methods"]))
