"""ptq_static: calibration on training rows only, int8 kernels, exact rebuild from a checkpoint."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from quantbench.quant.base import CalibrationData
from quantbench.quant.methods import ptq_static
from quantbench.quant.methods.registry import make_params
from tests._toy import (
    agreement,
    checkpoint_roundtrip,
    input_scale,
    int8_layers,
    operators,
    predict,
    toy,
)


@pytest.fixture(scope="module")
def result():
    t = toy()
    return ptq_static.quantize(t.model, t.calib, ptq_static.Params())


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"calibration_samples": 0}, r"calibration_samples must be an integer >= 1, got 0"),
        ({"calibration_samples": 1.5}, r"calibration_samples .* got 1\.5"),
        ({"observer": "kl"}, r"minmax, moving_average, histogram, got 'kl'"),
        ({"per_channel": "yes"}, r"per_channel must be true or false, got 'yes'"),
        ({"engine": "tpu"}, r"auto, x86, fbgemm, qnnpack, onednn, got 'tpu'"),
    ],
)
def test_params_name_the_bad_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ptq_static.Params(**kwargs)


def test_defaults_and_registry():
    p = make_params("ptq_static", {"kind": "ptq_static", "engine": "auto"})
    assert p == ptq_static.Params(2048, "histogram", True, "auto")


@pytest.mark.parametrize("observer", ["minmax", "moving_average", "histogram"])
def test_agrees_with_fp32(observer):
    t = toy()
    q = ptq_static.quantize(t.model, t.calib, ptq_static.Params(observer=observer))
    assert agreement(predict(q.module, t.x_test), predict(t.model, t.x_test)) >= 0.98


def test_per_tensor_weights_also_work():
    t = toy()
    q = ptq_static.quantize(t.model, t.calib, ptq_static.Params(per_channel=False))
    weight, _ = q.state["layers.fc0._packed_params._packed_params"]
    assert weight.qscheme() == torch.per_tensor_affine
    assert agreement(predict(q.module, t.x_test), predict(t.model, t.x_test)) >= 0.98


def test_runs_fused_int8_kernels(result):
    t = toy()
    ops = operators(result.module, t.x_test[:8])
    assert {"quantized::linear_relu", "quantized::linear"} <= ops
    assert not ops & {"aten::addmm", "aten::linear", "aten::relu"}
    assert int8_layers(result.module) == [
        "QuantizedLinearReLU",
        "QuantizedDropout",
        "QuantizedLinearReLU",
        "QuantizedDropout",
        "QuantizedLinear",
    ]
    weight, _ = result.state["layers.fc1._packed_params._packed_params"]
    assert weight.dtype == torch.qint8 and weight.qscheme() == torch.per_channel_affine


def test_info(result):
    info = result.info
    assert info["bits"] == 8 and info["engine"] == torch.backends.quantized.engine
    assert info["execution"] == "int8 kernels (static, fused Linear+ReLU)"
    assert info["calibration_rows"] == 2048 and info["calibration_split"] == "train"
    assert info["quantize_seconds"] > 0


def test_calibrates_on_the_requested_training_rows(monkeypatch):
    t = toy()
    asked = []
    original = CalibrationData.calibration_rows

    def spy(self, n):
        asked.append(n)
        return original(self, n)

    monkeypatch.setattr(CalibrationData, "calibration_rows", spy)
    q = ptq_static.quantize(t.model, t.calib, ptq_static.Params(calibration_samples=300))
    assert asked == [300] and q.info["calibration_rows"] == 300


def test_validation_rows_never_reach_the_observers():
    """Validation rows replaced by huge sentinels change nothing: no observer saw them."""
    t = toy()
    sentinel = dataclasses.replace(t.calib, x_val=torch.full_like(t.calib.x_val, 1e4))
    params = ptq_static.Params(observer="minmax")
    clean = ptq_static.quantize(t.model, t.calib, params)
    poisoned = ptq_static.quantize(t.model, sentinel, params)
    assert input_scale(poisoned.state) * 255 < 100  # inputs are ~N(0, 1)
    x = t.x_test
    assert torch.equal(clean.module(x), poisoned.module(x))


def test_rebuild_reproduces_outputs_exactly(result):
    t = toy()
    rebuilt = ptq_static.rebuild(t.spec, result.state, ptq_static.Params())
    assert torch.equal(rebuilt(t.x_test), result.module(t.x_test))


def test_checkpoint_round_trip(tmp_path, result):
    t = toy()
    module, raw = checkpoint_roundtrip(tmp_path, "ptq_static", {"engine": "auto"}, result.state)
    weight, _ = raw["state"]["layers.fc0._packed_params._packed_params"]
    assert weight.is_quantized
    assert torch.equal(module(t.x_test), result.module(t.x_test))
