"""Config checking: defaults filled, and every bad config stopped with a one-line message."""

import copy
from pathlib import Path

import pytest
import yaml

from quantbench.core.config import ConfigError, load_schema, method_params, resolve_config

ROOT = Path(__file__).resolve().parents[2]
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
    assert cfg["models"] == {"mlp": {"arch": "mlp", "hidden": [256, 256], "dropout": 0.1}}
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
        "is wider than the layer width 256 of model mlp (mlp)",
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
    "empty hidden list": (lambda c: c["models"]["mlp"].update(hidden=[]), "models.mlp.hidden"),
    "old single model block": (
        lambda c: c.update(model={"hidden": [64]}),
        "move it under models, e.g. models: {mlp: {arch: mlp,",
    ),
    "empty model list": (lambda c: c.update(models={}), "no model variants"),
    "model without arch": (
        lambda c: c["models"].update(m={"hidden": [8]}),
        "models.m: 'arch' is a required property (set arch: mlp, cnn1d, transformer or custom)",
    ),
    "unknown arch": (
        lambda c: c["models"].update(m={"arch": "rnn"}),
        "models.m.arch: 'rnn' is not allowed; choose one of: mlp, cnn1d, transformer, custom",
    ),
    "model name not a wildcard": (
        lambda c: c["models"].update({"my-model": {"arch": "mlp"}}),
        "model name 'my-model' is not usable",
    ),
    "unknown model parameter": (
        lambda c: c["models"]["mlp"].update(width=64),
        "models.mlp: Additional properties are not allowed ('width' was unexpected); "
        "allowed keys: arch, dropout, hidden",
    ),
    "parameter of another arch": (
        lambda c: c["models"].update(t={"arch": "transformer", "hidden": [8]}),
        "allowed keys: arch, d_model, dropout, ffn, heads, layers",
    ),
    "even cnn1d kernel": (
        lambda c: c["models"].update(c={"arch": "cnn1d", "kernel_size": 4}),
        "models.c.kernel_size: 4 is even; use an odd size such as 5",
    ),
    "heads not dividing d_model": (
        lambda c: c["models"].update(t={"arch": "transformer", "d_model": 30, "heads": 4}),
        "models.t.heads: 4 does not divide d_model 30",
    ),
    "group size wider than a transformer's feed-forward": (
        lambda c: c["models"].update(t={"arch": "transformer", "d_model": 64, "ffn": 16}),
        "methods.gptq_w4.group_size: 32 is wider than the layer width 16 of model t "
        "(transformer); use at most 16",
    ),
    "group size wider than a cnn1d convolution's input": (
        lambda c: c["models"].update(c={"arch": "cnn1d", "channels": [8, 16], "hidden": 64}),
        "is wider than the layer width 24 of model c (cnn1d)",  # conv1: 8 channels x kernel 3
    ),
    "custom model without a path": (
        lambda c: c["models"].update(u={"arch": "custom", "factory": "f"}),
        "models.u: 'path' is a required property",
    ),
    "custom factory not a name": (
        lambda c: c["models"].update(u={"arch": "custom", "path": "x.py", "factory": "a b"}),
        "models.u.factory",
    ),
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


CUSTOM = {
    "missing file": (
        None,
        {},
        "models.u.path: model file {path} not found",
    ),
    "syntax error": ("def build(n_features, n_classes:\n", {}, "is not valid Python ("),
    "absent factory": (
        "import torch\ndef other(n_features, n_classes):\n    pass\nclass Net: pass\n",
        {},
        "models.u.factory: {path} defines no function 'build'; set factory to one of: Net, other",
    ),
    "too few parameters": (
        "def build(n):\n    pass\n",
        {},
        "models.u.factory: build(n) in {path} has the wrong signature; it must be "
        "factory(n_features, n_classes, **params)",
    ),
    "unknown parameter": (
        "def build(n_features, n_classes, width=8):\n    pass\n",
        {"widht": 4},
        "models.u.params: factory build in {path} does not take parameter 'widht'; it takes width",
    ),
    "missing parameter": (
        "def build(n_features, n_classes, width, *, depth=1, act):\n    pass\n",
        {"width": 4},
        "models.u.params: factory build in {path} needs parameter 'act'",
    ),
}


def custom_model(tmp_path, source, params):
    path = tmp_path / "user_model.py"
    if source is not None:
        path.write_text(source)
    return path, {"arch": "custom", "path": str(path), "factory": "build", "params": params}


@pytest.mark.parametrize("case", sorted(CUSTOM))
def test_bad_custom_model_is_one_clear_line_at_config_time(tmp_path, case):
    """The file is parsed, never imported: config checking runs no user code."""
    source, params, expected = CUSTOM[case]
    path, model = custom_model(tmp_path, source, params)
    with pytest.raises(ConfigError) as err:
        resolve(lambda c: c["models"].update(u=model))
    assert expected.format(path=path) in str(err.value)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(
    "source",
    [
        "def build(n_features, n_classes, **params):\n    pass\n",
        "def build(n_features, n_classes, width=8, depth=2):\n    pass\n",
        "from torch import nn\nbuild = nn.Linear\n",  # not a plain function: checked by its job
        "from os.path import *\n",  # a star import may bring it
        "import sys\nif sys:\n    def build(a, b, width=1):\n        pass\n",
        "raise SystemExit('never run at config time')\ndef build(a, b, width=1): pass\n",
    ],
)
def test_custom_models_the_source_allows_are_accepted(tmp_path, source):
    _, model = custom_model(tmp_path, source, {"width": 4})
    cfg = resolve(lambda c: c["models"].update(u=model))
    assert cfg["models"]["u"] == {**model, "params": {"width": 4}}


def test_example_custom_module_resolves():
    example = {"arch": "custom", "path": str(ROOT / "examples" / "residual_mlp.py"),
               "factory": "residual_mlp", "params": {"width": 64, "blocks": 1}}  # fmt: skip
    assert resolve(lambda c: c["models"].update(res=example))["models"]["res"] == example


def test_each_architecture_gets_its_defaults():
    cfg = resolve(
        lambda c: c["models"].update(
            c={"arch": "cnn1d"}, t={"arch": "transformer"}, m={"arch": "mlp", "hidden": [64]}
        )
    )
    assert cfg["models"]["c"] == {"arch": "cnn1d", "channels": [32, 64], "dropout": 0.0,
                                  "hidden": 128, "kernel_size": 3, "pool": 2}  # fmt: skip
    assert cfg["models"]["t"] == {"arch": "transformer", "d_model": 32, "dropout": 0.0,
                                  "ffn": 64, "heads": 2, "layers": 2}  # fmt: skip
    assert cfg["models"]["m"] == {"arch": "mlp", "dropout": 0.1, "hidden": [64]}


def test_schema_defaults_match_the_architectures_own():
    """The schema's per-arch defaults are the library's Config defaults (one truth, two places)."""
    from dataclasses import MISSING, fields

    from quantbench.models import get_arch

    schema = yaml.safe_load(SCHEMA.read_text())
    for arch in ("mlp", "cnn1d", "transformer", "custom"):
        props = schema["$defs"][f"model_{arch}"]["properties"]
        lib = {f.name: f for f in fields(get_arch(arch).Config)}
        assert set(props) - {"arch"} == set(lib), arch
        for name, f in lib.items():
            if f.default is not MISSING:
                want = list(f.default) if isinstance(f.default, tuple) else f.default
                assert props[name]["default"] == want, (arch, name)


def test_empty_config_is_refused():
    with pytest.raises(ConfigError, match="config is empty"):
        resolve_config({}, SCHEMA)


def test_engine_reaches_int8_kinds_only():
    cfg = resolve(lambda c: None)
    assert method_params(cfg, "ptq_static", "x86")["engine"] == "x86"
    assert "engine" not in method_params(cfg, "rtn_w4", "x86")  # groups of 32: dequantized
    assert "engine" not in cfg["methods"]["ptq_static"]  # the config itself is not changed


@pytest.mark.parametrize(
    ("variant", "runs_int8"),
    [
        ({"kind": "rtn", "bits": 4, "group_size": -1}, True),  # auto: per-channel -> int8
        ({"kind": "gptq", "bits": 4, "group_size": -1, "execution": "int8"}, True),
        ({"kind": "gptq", "bits": 4, "group_size": -1, "execution": "int4"}, False),
        ({"kind": "rtn", "bits": 4, "group_size": -1, "execution": "dequantized"}, False),
        ({"kind": "rtn", "bits": 3, "group_size": 32}, False),
    ],
)
def test_engine_reaches_weight_only_variants_on_the_int8_path(variant, runs_int8):
    cfg = resolve(lambda c: c.update(methods={"w": variant}))
    params = method_params(cfg, "w", "onednn")
    assert (params.get("engine") == "onednn") is runs_int8
    assert runs_int8 or "engine" not in params


def test_resolved_config_does_not_depend_on_key_order():
    a = resolve(lambda c: None)
    b = resolve(lambda c: c.update(dict(reversed(list(c.items())))))
    assert list(a) == sorted(a)
    assert repr(a) == repr(resolve_config(dict(reversed(list(DEFAULT.items()))), SCHEMA)) == repr(b)


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_resolves(path):
    """Each file under configs/ is merged into config.yaml as `--configfile` does (key by key,
    variant by variant, `replace:` honoured) and must pass the same checks as any run."""
    from snakemake.utils import update_config

    from quantbench.core.config import apply_config_files

    extra = yaml.safe_load(path.read_text())
    cfg = copy.deepcopy(DEFAULT)
    update_config(cfg, copy.deepcopy(extra))
    resolved = resolve_config(apply_config_files(cfg, extra), SCHEMA)
    for section in ("methods", "models"):
        listed = set(extra.get(section, {}))
        default = set() if section in extra.get("replace", []) else set(DEFAULT[section])
        assert set(resolved[section]) == default | listed


@pytest.mark.parametrize("path", sorted((ROOT / "workflow" / "schemas").glob("*.yaml")))
def test_schemas_read_the_same_with_the_fast_loader(path):
    """load_schema uses libyaml when PyYAML has it; the result must be PyYAML's own safe_load."""
    assert load_schema(path) == yaml.safe_load(path.read_text(encoding="utf-8"))


def test_runtimes_default_to_both_and_need_torch_and_the_artifacts():
    assert resolve(lambda c: None)["runtimes"] == ["torch", "onnxruntime"]
    assert resolve(lambda c: c.update(runtimes=["torch"]))["runtimes"] == ["torch"]
    with pytest.raises(ConfigError, match="runtimes") as err:
        resolve(lambda c: c.update(runtimes=["onnxruntime"]))
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match=r"deploy.export is false; set deploy.export: true"):
        resolve(lambda c: c.update(deploy={"export": False}))
    off = resolve(lambda c: c.update(deploy={"export": False}, runtimes=["torch"]))
    assert off["deploy"]["export"] is False


@pytest.mark.parametrize("device", ["auto", "cuda", "cpu"])
def test_only_training_and_gptq_may_use_a_gpu(device):
    from quantbench.core.config import quantize_device, uses_gpu

    cfg = resolve(lambda c: c["train"].update(device=device))
    on_gpu = {m for m in cfg["methods"] if uses_gpu(cfg, "quantize", m)}
    assert on_gpu == (set() if device == "cpu" else {"gptq_w4"})
    assert uses_gpu(cfg, "train_fp32") is (device != "cpu")
    assert not any(uses_gpu(cfg, rule) for rule in ("preprocess", "score", "time"))
    assert quantize_device(cfg, "rtn_w4") == "cpu"
    assert quantize_device(cfg, "gptq_w4") == device
