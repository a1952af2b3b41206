"""Every kind on every architecture (tiny models, toy data): kernels, coverage, exact rebuild."""

from __future__ import annotations

import pytest
import torch

from quantbench.quant import coverage
from quantbench.quant.methods import registry as methods
from tests._toy import ARCHS, agreement, checkpoint_roundtrip, operators, predict, toy

FAST = {
    "ptq_dynamic": {"per_channel": True},
    "ptq_static": {"calibration_samples": 512},
    "qat": {"epochs": 1, "calibration_samples": 512},
    "rtn": {"bits": 4, "group_size": 8},
    "gptq": {"bits": 4, "group_size": 8, "calibration_samples": 512, "act_order": True},
}
# Operators each kind must run on each architecture (profiler names), and ones it must not.
STATIC = {
    "mlp": {"quantized::linear_relu", "quantized::linear"},
    "cnn1d": {"quantized::conv1d_relu", "quantized::linear_relu", "quantized::linear"},
    "transformer": {"quantized::linear", "quantized::linear_relu", "quantized::layer_norm"},
    "custom": {"quantized::linear_relu", "quantized::linear", "quantized::add"},
}
KERNELS = {
    ("ptq_dynamic", "cnn1d"): {"quantized::conv1d_dynamic", "quantized::linear_dynamic"},
    **{("ptq_dynamic", a): {"quantized::linear_dynamic"} for a in ("mlp", "transformer", "custom")},
    **{(k, a): ops for k in ("ptq_static", "qat") for a, ops in STATIC.items()},
}
# Post-training kinds keep the FP32 model's predictions; QAT fine-tunes, so it keeps accuracy.
MIN_AGREEMENT = {"ptq_dynamic": 0.97, "ptq_static": 0.95, "rtn": 0.9, "gptq": 0.93}


@pytest.fixture(scope="module", params=[(k, a) for a in ARCHS for k in FAST], ids=str)
def case(request):
    kind, arch = request.param
    t = toy(arch=arch)
    params = methods.make_params(kind, FAST[kind])
    return kind, arch, t, methods.get_kind(kind).quantize(t.model, t.calib, params)


def test_keeps_the_fp32_predictions_and_accuracy(case):
    kind, _, t, q = case
    pred, ref = predict(q.module, t.x_test), predict(t.model, t.x_test)
    if kind in MIN_AGREEMENT:
        assert agreement(pred, ref) >= MIN_AGREEMENT[kind]
    accuracy = agreement(pred, t.y_test)
    assert accuracy >= agreement(ref, t.y_test) - 0.03


def test_runs_the_kernels_of_its_kind(case):
    kind, arch, t, q = case
    ops = operators(q.module, t.x_test[:8])
    if kind in ("rtn", "gptq"):  # group-wise codes are dequantized to FP32 at load
        assert not any(op.startswith("quantized::") for op in ops)
    else:
        assert KERNELS[(kind, arch)] <= ops, sorted(ops)


def test_checkpoint_loads_weights_only_and_rebuilds_the_same_module(tmp_path, case):
    kind, _, t, q = case
    module, raw = checkpoint_roundtrip(tmp_path, kind, FAST[kind], q.state, t.spec)
    assert raw["model"] == t.spec.to_dict()
    with torch.no_grad():
        assert torch.equal(module(t.x_test), q.module(t.x_test))


def test_coverage_accounts_for_every_parameter(case):
    _, arch, t, q = case
    cov = q.info["coverage"]
    assert sum(e["params"] for e in cov["layers"]) == sum(p.numel() for p in t.model.parameters())
    assert cov["layers_quantized"] + cov["layers_fp32"] == len(cov["layers"])
    for e in cov["layers"]:
        assert ("how" in e) == e["quantized"] and ("why" in e) != e["quantized"]
    if arch != "transformer":  # every weight of these is in a Linear or Conv1d
        assert cov["weights_quantized"] == 1.0 and cov["macs_quantized"] == 1.0
        assert "other_macs" not in cov


@pytest.mark.parametrize("kind", list(FAST))
def test_transformer_coverage_names_what_stays_fp32(kind):
    t = toy(arch="transformer")
    q = methods.get_kind(kind).quantize(t.model, t.calib, methods.make_params(kind, FAST[kind]))
    cov = q.info["coverage"]
    entries = {e["layer"]: e for e in cov["layers"]}
    linear = [e for e in cov["layers"] if e["type"] == "Linear"]
    assert len(linear) == 5 and all(e["quantized"] for e in linear)  # qkv, proj, ff1, ff2, head
    assert not entries["tokenizer"]["quantized"] and "element-wise" in entries["tokenizer"]["why"]
    assert not entries["encoder.0.norm1"]["quantized"]
    # q·kᵀ and the weighted sum of v: n² · d_model multiply-accumulates each, n = 31 tokens
    assert cov["other_macs"]["macs"] == 2 * 31 * 31 * 16
    assert "attention" in cov["other_macs"]["why"]
    assert 0 < cov["macs_quantized"] < 1 and 0 < cov["weights_quantized"] < 1


def test_int8_kernel_share_follows_the_execution(case):
    kind, _, _, q = case
    share = q.info["coverage"]["macs_int8_kernels"]
    if kind in ("rtn", "gptq"):
        assert share == 0.0
    else:
        assert share == q.info["coverage"]["macs_quantized"]


def test_layer_macs_match_torchs_flop_counter():
    """Per-layer MACs from hooks add up to the FLOP counter's total where all products are in
    layers."""
    for arch in ("mlp", "cnn1d", "custom"):
        t = toy(arch=arch)
        x = coverage.probe(t.calib.x_train.shape[1])
        layers = coverage.inventory(t.model, x)
        assert sum(layer.macs for layer in layers) == coverage.total_macs(t.model, x) > 0
    t = toy(arch="mlp")
    macs = [layer.macs for layer in coverage.inventory(t.model, coverage.probe(30))]
    assert macs == [30 * 64, 64 * 64, 64 * 3]


@pytest.mark.parametrize("arch", ["mlp", "cnn1d"])
def test_models_that_declare_layer_only_macs_have_no_others(arch):
    """The built-ins that skip the operator-level count: every product is inside a layer."""
    t = toy(arch=arch)
    assert t.model.macs_in_layers_only
    layers = coverage.inventory(t.model, t.x_test[:4])
    assert coverage.total_macs(t.model, t.x_test[:4]) == sum(layer.macs for layer in layers)
