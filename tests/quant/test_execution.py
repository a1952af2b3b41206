"""Execution paths of the weight-only kinds: int4 kernel, int8 kernels, dequantized weights."""

from __future__ import annotations

import pytest
import torch

from quantbench.core import config
from quantbench.machine.kernels import INT4_OP, kernels_that_ran
from quantbench.machine.memory import resident_weight_bytes
from quantbench.models import resolve
from quantbench.quant.ao import backend, dynamic
from quantbench.quant.base import CalibrationData
from quantbench.quant.methods import gptq, rtn
from quantbench.quant.weightonly import int4
from quantbench.quant.weightonly.params import EXEC_FP32, EXEC_INT4, EXEC_INT8
from tests._toy import checkpoint_roundtrip

SPEC = resolve({"arch": "mlp", "hidden": [64, 64], "dropout": 0.0}, 30, 3)


def _setup(seed: int = 0):
    torch.manual_seed(seed)
    model = SPEC.build().eval()
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(500, 30, generator=g)
    y = torch.randint(0, 3, (500,), generator=g)
    return model, CalibrationData(x[:400], y[:400], x[400:], y[400:], seed=seed)


PATHS = {
    "rtn": (rtn, {"bits": 4, "group_size": 32}),
    "gptq": (gptq, {"bits": 4, "group_size": 32, "calibration_samples": 256}),
    "gptq_act_order": (
        gptq,
        {"bits": 4, "group_size": 32, "act_order": True, "calibration_samples": 256},
    ),
}


def _both(name: str):
    kind, params = PATHS[name]
    model, calib = _setup()
    q4 = kind.quantize(model, calib, kind.Params(**params, execution="int4"))
    deq = kind.quantize(model, calib, kind.Params(**params, execution="dequantized"))
    return kind, params, q4, deq, calib


@pytest.mark.parametrize("name", list(PATHS))
def test_int4_runs_the_int4_kernel_on_the_dequantized_weights(name):
    _, _, q4, deq, calib = _both(name)
    assert q4.state["layers"].keys() == deq.state["layers"].keys()
    for layer, entry in q4.state["layers"].items():  # the same file on disk for both paths
        for key, tensor in entry.items():
            other = deq.state["layers"][layer][key]
            assert torch.equal(tensor, other) if isinstance(tensor, torch.Tensor) else True
    x = calib.x_val
    assert kernels_that_ran(q4.module, x) == [INT4_OP]
    assert q4.info["execution"] == EXEC_INT4 and q4.info["execution_path"] == "int4"
    with torch.inference_mode():
        got = q4.module(x)
        want = deq.module(x.bfloat16().float())  # the same rounding of the inputs
    # bfloat16 activations between layers and bfloat16 scales: a few per cent of the logits
    assert float((got - want).abs().max()) <= 0.05 * float(want.abs().max())
    assert (got.argmax(1) == want.argmax(1)).float().mean() >= 0.95
    if name == "gptq_act_order":
        assert q4.info["g_idx_stored"]  # the permutation path is the one exercised
        assert any(m.source is not None for m in q4.module.modules() if hasattr(m, "source"))


@pytest.mark.parametrize("name", ["rtn", "gptq_act_order"])
def test_an_int4_checkpoint_loads_onto_the_same_kernel(tmp_path, name):
    kind, params, q4, _, calib = _both(name)
    variant = {**params, "execution": "int4"}
    module, _ = checkpoint_roundtrip(tmp_path, kind.__name__.rsplit(".")[-1], variant, q4.state)
    with torch.inference_mode():
        assert torch.equal(module(calib.x_val), q4.module(calib.x_val))
    assert resident_weight_bytes(module) < 0.35 * resident_weight_bytes(SPEC.build())


def test_auto_is_todays_default():
    model, calib = _setup()
    grouped = rtn.quantize(model, calib, rtn.Params(group_size=32))
    per_channel = rtn.quantize(model, calib, rtn.Params(group_size=-1))
    assert grouped.info["execution"] == EXEC_FP32
    assert per_channel.info["execution"] == EXEC_INT8
    assert kernels_that_ran(per_channel.module, calib.x_val) == ["quantized::linear_dynamic"]


def _per_channel_engines() -> list[str]:
    """Engines of this torch with a dynamic Linear for symmetric per-channel weights."""
    engines = []
    for engine in backend.supported_engines():
        torch.backends.quantized.engine = engine
        if dynamic.per_channel_dynamic_supported(engine):
            engines.append(engine)
    return engines


def _other_engine(engine: str) -> str:
    return "qnnpack" if engine != "qnnpack" else "x86"


@pytest.mark.parametrize("engine", _per_channel_engines())
def test_the_int8_path_runs_on_the_engine_its_parameters_name(tmp_path, engine):
    # quantize and load both set the engine named in the parameters (the run's probed or
    # named engine), whatever engine the process had before; symmetric codes (zero point 0)
    # are what every engine with per-channel dynamic weights takes
    model, calib = _setup()
    params = {"bits": 4, "group_size": -1, "symmetric": True, "execution": "int8",
              "engine": engine}  # fmt: skip
    torch.backends.quantized.engine = _other_engine(engine)
    q = rtn.quantize(model, calib, rtn.Params(**params))
    assert q.info["engine"] == engine == torch.backends.quantized.engine
    torch.backends.quantized.engine = _other_engine(engine)
    module, _ = checkpoint_roundtrip(tmp_path, "rtn", params, q.state)
    assert torch.backends.quantized.engine == engine
    assert kernels_that_ran(module, calib.x_val) == ["quantized::linear_dynamic"]
    with torch.inference_mode():
        assert torch.equal(module(calib.x_val), q.module(calib.x_val))


def test_codes_the_named_engine_cannot_hold_run_on_the_default_engine(monkeypatch, caplog):
    # onednn takes only symmetric per-channel weights: asymmetric codes then run on the first
    # engine of the default order that takes them, and the log says so
    engines = _per_channel_engines()
    named = next(e for e in engines if e != backend.select_engine("auto"))
    real = dynamic.per_channel_dynamic_supported
    monkeypatch.setattr(
        dynamic, "per_channel_dynamic_supported",
        lambda engine, asymmetric=False: real(engine) and not (asymmetric and engine == named),
    )  # fmt: skip
    model, calib = _setup()
    with caplog.at_level("INFO", logger="quantbench.weightonly"):
        q = rtn.quantize(model, calib, rtn.Params(group_size=-1, engine=named))
    assert q.info["engine"] == backend.select_engine("auto") == torch.backends.quantized.engine
    assert f"int8 engine {named} has no dynamic Linear for asymmetric" in caplog.text
    sym = rtn.quantize(model, calib, rtn.Params(group_size=-1, symmetric=True, engine=named))
    assert sym.info["engine"] == named


def test_no_engine_for_the_int8_path_stops_it_in_one_line(monkeypatch):
    monkeypatch.setattr(dynamic, "per_channel_dynamic_supported", lambda e, asymmetric=False: False)
    model, calib = _setup()
    with pytest.raises(ValueError, match="has a dynamic Linear for asymmetric per-") as err:
        rtn.quantize(model, calib, rtn.Params(group_size=-1, engine="x86"))
    assert "\n" not in str(err.value) and "use execution: dequantized" in str(err.value)
    # the other paths need no int8 engine
    assert rtn.quantize(model, calib, rtn.Params(group_size=32)).info["engine"] is None


@pytest.mark.parametrize(
    ("params", "match"),
    [
        ({"engine": "fastest"}, "engine must be one of"),
        ({"execution": "int8", "group_size": 32}, "int8 needs group_size -1"),
        ({"execution": "int4", "bits": 5}, "at most 4 bits, got bits: 5"),
        ({"execution": "int4", "group_size": 16}, "group_size 16 is not -1 or a multiple of 32"),
        ({"execution": "fast"}, "execution must be one of auto, dequantized, int4, int8"),
    ],
)
def test_paths_the_codes_cannot_take_are_refused(params, match):
    for kind in (rtn, gptq):
        with pytest.raises(ValueError, match=match):
            kind.Params(**params)


def test_a_missing_kernel_stops_before_any_work(monkeypatch):
    monkeypatch.setattr(int4, "kernel_problem", lambda: "torch 0.0 has no CPU int4 kernel")

    def no_work(*args, **kwargs):
        raise AssertionError("quantization started although the kernel is missing")

    for kind in (rtn, gptq):  # the name each kind calls
        monkeypatch.setattr(kind, "quantize_layers", no_work)
    model, calib = _setup()
    for kind, params in ((rtn, {}), (gptq, {"act_order": True})):
        with pytest.raises(int4.Int4Unavailable) as exc:
            kind.quantize(model, calib, kind.Params(**params, execution="int4"))
        message = str(exc.value)
        assert isinstance(exc.value, ValueError)  # a workflow step ends with this one line
        assert "\n" not in message and "layers.fc0: no int4 kernel" in message
        assert "use execution: dequantized, or execution: int8 with group_size: -1" in message


def test_the_config_check_knows_the_kernel_limits():
    limits = (int4.MAX_BITS, int4.KERNEL_GROUPS[0])
    assert limits == (config.INT4_MAX_BITS, config.INT4_GROUP_MULTIPLE)
