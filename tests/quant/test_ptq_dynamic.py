"""ptq_dynamic: int8 weights, dynamic kernels, exact rebuild from a checkpoint."""

from __future__ import annotations

import pytest
import torch

from quantbench.quant.methods import ptq_dynamic
from quantbench.quant.methods.registry import make_params
from tests._toy import agreement, checkpoint_roundtrip, int8_layers, operators, predict, toy


@pytest.fixture(scope="module")
def result():
    t = toy()
    return ptq_dynamic.quantize(t.model, t.calib, ptq_dynamic.Params(per_channel=True))


def test_params():
    assert make_params("ptq_dynamic", {"kind": "ptq_dynamic"}) == ptq_dynamic.Params(False, "auto")
    with pytest.raises(ValueError, match=r"per_channel must be true or false, got 1"):
        ptq_dynamic.Params(per_channel=1)
    with pytest.raises(ValueError, match=r"engine must be one of auto, x86.*got 'gpu'"):
        ptq_dynamic.Params(engine="gpu")
    with pytest.raises(ValueError, match="does not take bits"):
        make_params("ptq_dynamic", {"kind": "ptq_dynamic", "bits": 4})


def test_agrees_with_fp32(result):
    t = toy()
    assert agreement(predict(result.module, t.x_test), predict(t.model, t.x_test)) >= 0.98


def test_runs_dynamic_int8_kernels(result):
    t = toy()
    ops = operators(result.module, t.x_test[:8])
    assert "quantized::linear_dynamic" in ops
    assert not ops & {"aten::addmm", "aten::linear"}
    assert int8_layers(result.module) == ["DynamicQuantizedLinear"] * 3


def test_weights_are_int8_per_channel(result):
    weight, bias = result.state["layers.fc0._packed_params._packed_params"]
    assert weight.dtype == torch.qint8
    assert weight.qscheme() == torch.per_channel_affine
    assert bias.dtype == torch.float32
    assert result.info["weight_qscheme"] == "per_channel_symmetric"


def test_per_tensor_weights_on_request():
    t = toy()
    q = ptq_dynamic.quantize(t.model, t.calib, ptq_dynamic.Params(per_channel=False))
    weight, _ = q.state["layers.fc1._packed_params._packed_params"]
    assert weight.qscheme() == torch.per_tensor_affine
    assert q.info["weight_qscheme"] == "per_tensor_symmetric"
    assert agreement(predict(q.module, t.x_test), predict(t.model, t.x_test)) >= 0.98
    rebuilt = ptq_dynamic.rebuild(t.spec, q.state, ptq_dynamic.Params(per_channel=False))
    assert torch.equal(rebuilt(t.x_test), q.module(t.x_test))


def test_info(result):
    assert result.info["bits"] == 8
    assert result.info["engine"] == torch.backends.quantized.engine
    assert result.info["execution"].startswith("int8 kernels (dynamic")
    assert result.info["quantize_seconds"] > 0


def test_rebuild_reproduces_outputs_exactly(result):
    t = toy()
    rebuilt = ptq_dynamic.rebuild(t.spec, result.state, ptq_dynamic.Params())
    assert torch.equal(rebuilt(t.x_test), result.module(t.x_test))


def test_checkpoint_round_trip(tmp_path, result):
    t = toy()
    module, raw = checkpoint_roundtrip(tmp_path, "ptq_dynamic", {"engine": "auto"}, result.state)
    weight, _ = raw["state"]["layers.head._packed_params._packed_params"]
    assert weight.is_quantized and weight.dtype == torch.qint8
    assert torch.equal(module(t.x_test), result.module(t.x_test))
