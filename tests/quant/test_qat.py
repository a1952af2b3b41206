"""qat: starts from the FP32 weights, fine-tunes under fake int8, converts to the same kernels."""

from __future__ import annotations

import copy
import dataclasses

import pytest
import torch

from quantbench.quant.ao import fx
from quantbench.quant.methods import qat
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

PARAMS = qat.Params(epochs=3, freeze_observers_epoch=1, freeze_bn_epoch=2, patience=3)


@pytest.fixture(scope="module")
def result():
    t = toy()
    return qat.quantize(t.model, t.calib, PARAMS)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"epochs": 0}, r"epochs must be an integer >= 1, got 0"),
        ({"patience": 0}, r"patience must be an integer >= 1, got 0"),
        ({"batch_size": 2.5}, r"batch_size must be an integer >= 1, got 2\.5"),
        ({"freeze_observers_epoch": -1}, r"freeze_observers_epoch .* >= 0, got -1"),
        ({"lr": 0.0}, r"lr must be > 0, got 0\.0"),
        ({"weight_decay": -1e-4}, r"weight_decay must be >= 0"),
        ({"observer": "kl"}, r"minmax, moving_average, histogram, got 'kl'"),
        ({"engine": "tpu"}, r"auto, x86, .*got 'tpu'"),
    ],
)
def test_params_name_the_bad_value(kwargs, match):
    with pytest.raises(ValueError, match=match):
        qat.Params(**kwargs)


def test_params_from_config():
    p = make_params("qat", {"kind": "qat", "epochs": 5, "lr": 1.0e-4, "engine": "x86"})
    assert (p.epochs, p.lr, p.engine, p.patience, p.weight_decay) == (5, 1e-4, "x86", 2, 0.0)


def test_starts_from_the_given_fp32_weights():
    t = toy()
    start = qat.start_model(t.model, t.calib, PARAMS)
    fp32 = t.model.state_dict()
    for name in ("fc0", "fc1", "head"):
        layer = start.get_submodule(f"layers.{name}")
        assert torch.equal(layer.weight, fp32[f"layers.{name}.weight"])
        assert torch.equal(layer.bias, fp32[f"layers.{name}.bias"])
    fx.set_observers(start, False)  # else predicting would move its ranges to the test rows
    fp32_acc = (predict(t.model, t.x_test) == t.y_test).float().mean().item()
    start_acc = (predict(start, t.x_test) == t.y_test).float().mean().item()
    assert abs(start_acc - fp32_acc) <= 0.02


def test_converted_agrees_with_fake_quantized():
    t = toy()
    fake_quant, _, _ = qat.fine_tune(t.model, t.calib, PARAMS)
    converted = fx.convert(fake_quant)
    assert agreement(predict(converted, t.x_test), predict(fake_quant, t.x_test)) >= 0.99


def test_history_follows_the_freezing_schedule(result):
    history = result.info["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert [h["observers_frozen"] for h in history] == [False, True, True]
    assert [h["bn_frozen"] for h in history] == [False, False, True]
    for h in history:
        assert {"train_loss", "val_loss", "val_accuracy"} <= h.keys()
        assert 0.0 <= h["val_accuracy"] <= 1.0
    info = result.info
    assert info["bits"] == 8 and info["engine"] == torch.backends.quantized.engine
    assert "fp32" in info["start_checkpoint"].lower()
    assert 0 <= info["best_epoch"] <= 3 and info["quantize_seconds"] >= info["fine_tune_seconds"]


def test_early_stopping_keeps_the_best_state():
    """A learning rate that wrecks the model: the starting point stays the best state.

    fine_tune returns its model with the observers paused (as validation left them); the fresh
    start model is put in that same state, so both hold the same tensors and predicting with
    it cannot move its ranges. Every tensor (weights, ranges, observer statistics, flags) must
    then be the starting point's, bit for bit.
    """
    t = toy()
    params = dataclasses.replace(PARAMS, lr=1.0, epochs=5, patience=2)
    fake_quant, history, summary = qat.fine_tune(t.model, t.calib, params)
    start = qat.start_model(t.model, t.calib, params)
    fx.set_observers(start, False)  # else predicting would move its ranges to the test rows
    assert summary["best_epoch"] == 0 and len(history) == 2
    kept, expected = fake_quant.state_dict(), start.state_dict()
    assert kept.keys() == expected.keys()
    changed = [k for k in expected if not torch.equal(kept[k], expected[k])]
    assert changed == []
    assert torch.equal(predict(fake_quant, t.x_test), predict(start, t.x_test))


def test_deterministic_for_a_seed(result):
    t = toy()
    again = qat.quantize(copy.deepcopy(t.model), t.calib, PARAMS)
    assert torch.equal(again.module(t.x_test), result.module(t.x_test))


def test_validation_rows_never_shape_the_ranges():
    t = toy()
    sentinel = dataclasses.replace(t.calib, x_val=torch.full_like(t.calib.x_val, 1e4))
    q = qat.quantize(t.model, sentinel, dataclasses.replace(PARAMS, epochs=1))
    assert input_scale(q.state) * 255 < 100  # inputs are ~N(0, 1)


def test_runs_fused_int8_kernels(result):
    t = toy()
    ops = operators(result.module, t.x_test[:8])
    assert {"quantized::linear_relu", "quantized::linear"} <= ops
    assert not ops & {"aten::addmm", "aten::linear"}
    assert int8_layers(result.module).count("QuantizedLinearReLU") == 2


def test_rebuild_reproduces_outputs_exactly(result):
    t = toy()
    rebuilt = qat.rebuild(t.spec, result.state, PARAMS)
    assert torch.equal(rebuilt(t.x_test), result.module(t.x_test))


def test_checkpoint_round_trip(tmp_path, result):
    t = toy()
    params = dataclasses.asdict(PARAMS)
    module, raw = checkpoint_roundtrip(tmp_path, "qat", params, result.state)
    assert raw["params"]["epochs"] == 3 and input_scale(raw["state"]) > 0
    assert torch.equal(module(t.x_test), result.module(t.x_test))
