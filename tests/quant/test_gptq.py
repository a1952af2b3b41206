"""GPTQ: Algorithm 1 checked against RTN, the grid, act-order, dampening and the checkpoint."""

from __future__ import annotations

import copy
import functools
import os
from dataclasses import asdict
from pathlib import Path

import pytest
import torch
from torch import nn

from quantbench.models import ModelSpec, resolve
from quantbench.quant.base import CalibrationData
from quantbench.quant.loader import load_model
from quantbench.quant.methods import gptq, rtn
from quantbench.quant.methods import registry as methods
from quantbench.quant.weightonly.grid import Grid, dequantize, quantize_weight
from quantbench.quant.weightonly.layers import output_error
from quantbench.quant.weightonly.params import EXEC_FP32
from quantbench.quant.weightonly.state import pack_layer, unpack_layer
from quantbench.training.checkpoint import save_checkpoint

SMALL = resolve({"arch": "mlp", "hidden": [32, 32], "dropout": 0.0}, 12, 3)
LINEARS = ["layers.fc0", "layers.fc1", "layers.head"]
DEAD_FEATURE = 5  # always 0 in the toy data: fc0 sees one dead input


@functools.cache
def _toy() -> tuple[nn.Module, CalibrationData]:
    """A small MLP trained briefly on six gaussian clusters (three classes)."""
    g = torch.Generator().manual_seed(0)
    centers = torch.randn(6, SMALL.n_features, generator=g) * 1.5
    cluster = torch.randint(0, 6, (1600,), generator=g)
    x = centers[cluster] + torch.randn(1600, SMALL.n_features, generator=g)
    x[:, DEAD_FEATURE] = 0.0
    y = cluster % 3
    torch.manual_seed(0)
    model = SMALL.build()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(60):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x[:1200]), y[:1200]).backward()
        opt.step()
    calib = CalibrationData(x[:1200], y[:1200], x[1200:], y[1200:], seed=3)
    return model.eval(), calib


def toy() -> tuple[nn.Module, CalibrationData]:
    model, calib = _toy()
    return copy.deepcopy(model), calib


def _layer_problem(out: int = 8, width: int = 24, n: int = 200, seed: int = 1):
    """W (out, in) and H from inputs whose columns have distinct scales (distinct diag(H))."""
    g = torch.Generator().manual_seed(seed)
    W = torch.randn(out, width, generator=g)
    X = torch.randn(n, width, generator=g) * torch.linspace(0.2, 3.0, width)[torch.randperm(width)]
    return W, gptq.hessian(X), X


# ---------------------------------------------------------------- Algorithm 1


@pytest.mark.parametrize(
    "kw",
    [
        {"bits": 4, "group_size": -1},
        {"bits": 3, "group_size": 8, "blocksize": 5},
        {"bits": 2, "group_size": 10, "act_order": True},  # ragged last group
        {"bits": 8, "group_size": 8, "act_order": True, "static_groups": True},
        {"bits": 4, "group_size": 8, "symmetric": True, "blocksize": 3},
    ],
)
def test_identity_hessian_makes_gptq_equal_rtn(kw: dict) -> None:
    params = gptq.Params(**kw)
    W = torch.randn(8, 24, generator=torch.Generator().manual_seed(2))
    qw, _ = gptq.gptq_quantize(W, torch.eye(24, dtype=torch.float64), params)
    ref = quantize_weight(W, params.grid, params.group_size)
    assert torch.equal(qw.codes, ref.codes)
    assert torch.equal(qw.scales, ref.scales) and torch.equal(qw.zeros, ref.zeros)
    assert torch.equal(qw.dequantize(), ref.dequantize())


@pytest.mark.parametrize(
    "kw",
    [
        {"group_size": 8},
        {"group_size": 8, "act_order": True, "static_groups": True},
        {"group_size": -1, "act_order": True, "blocksize": 7},
        {"group_size": 8, "symmetric": True},
    ],
)
def test_weights_on_the_grid_give_zero_error(kw: dict) -> None:
    params = gptq.Params(bits=3, **kw)
    grid, gs, out, width = params.grid, params.group_size, 6, 24
    span = width if gs == -1 else gs
    g = torch.Generator().manual_seed(4)
    low = 1 if grid.symmetric else 0
    codes = torch.randint(low, grid.maxq + 1, (out, width), generator=g).float()
    codes[:, ::span], codes[:, 1::span] = low, grid.maxq  # each group spans its whole grid
    groups = width // span
    scale = 2.0 ** torch.randint(-5, 0, (out, groups), generator=g).float()
    zero = torch.full((out, groups), 4.0) if grid.symmetric else torch.full((out, groups), 2.0)
    cols = torch.arange(width) // span
    W = dequantize(codes, scale[:, cols], zero[:, cols])
    _, H, X = _layer_problem(out, width)
    qw, _ = gptq.gptq_quantize(W, H, params)
    assert torch.equal(qw.dequantize(), W)
    assert output_error(X, W, qw.dequantize()) == 0.0


def test_act_order_permutation_round_trips() -> None:
    W, H, _ = _layer_problem()
    perm = gptq.act_order_permutation(H)
    assert not torch.equal(perm, torch.arange(24))
    assert bool((torch.diag(H)[perm].diff() <= 0).all())
    ordered, _ = gptq.gptq_quantize(W, H, gptq.Params(bits=3, group_size=-1, act_order=True))
    plain, _ = gptq.gptq_quantize(
        W[:, perm], H[perm][:, perm], gptq.Params(bits=3, group_size=-1, act_order=False)
    )
    invperm = torch.argsort(perm)
    assert torch.equal(ordered.codes, plain.codes[:, invperm])
    assert torch.equal(ordered.dequantize(), plain.dequantize()[:, invperm])


def test_act_order_groups_keep_their_index_through_packing() -> None:
    W, H, _ = _layer_problem()
    qw, _ = gptq.gptq_quantize(W, H, gptq.Params(bits=4, group_size=8, act_order=True))
    perm = gptq.act_order_permutation(H)
    assert torch.equal(qw.g_idx[perm], torch.arange(24) // 8)  # groups in processing order
    assert not qw.groups_contiguous
    entry = pack_layer(qw, torch.zeros(8))
    assert entry["g_idx"].dtype == torch.uint8  # 3 groups -> 2-bit packed group index
    back = unpack_layer(entry, qw.grid, 8)
    assert torch.equal(back.g_idx, qw.g_idx) and torch.equal(back.dequantize(), qw.dequantize())
    static, _ = gptq.gptq_quantize(
        W, H, gptq.Params(bits=4, group_size=8, act_order=True, static_groups=True)
    )
    assert static.groups_contiguous
    assert "g_idx" not in pack_layer(static, torch.zeros(8))


def test_singular_hessian_is_handled_by_dampening() -> None:
    g = torch.Generator().manual_seed(5)
    X = torch.randn(6, 16, generator=g)  # fewer rows than inputs: H has rank <= 6
    X[:, 3] = 0.0  # a dead input
    X[:, 8] = X[:, 7]  # two identical inputs
    H = gptq.hessian(X)
    W = torch.randn(5, 16, generator=g)
    qw, stats = gptq.gptq_quantize(W, H, gptq.Params(bits=3, group_size=8, act_order=True))
    W_hat = qw.dequantize()
    assert stats["dead_inputs"] == 1 and bool((W_hat[:, 3] == 0).all())
    assert bool(torch.isfinite(W_hat).all())
    rtn_err = output_error(X, W, quantize_weight(W, qw.grid, 8).dequantize())
    assert output_error(X, W, W_hat) <= rtn_err


def test_dampening_grows_until_cholesky_succeeds() -> None:
    H = torch.tensor([[1.0, 1.01], [1.01, 1.0]], dtype=torch.float64)  # indefinite
    Hinv, damp = gptq.inverse_hessian_cholesky(H, percdamp=1e-6)
    assert damp > 0.01 and torch.equal(Hinv, torch.triu(Hinv))
    expected = torch.linalg.inv(H + damp * torch.eye(2, dtype=torch.float64))
    assert torch.allclose(Hinv.T @ Hinv, expected)
    with pytest.raises(RuntimeError, match="not positive definite"):
        gptq.inverse_hessian_cholesky(torch.full((2, 2), float("nan"), dtype=torch.float64), 0.01)


def test_hessian_counts_rows_not_batches() -> None:
    X = torch.randn(10, 4, generator=torch.Generator().manual_seed(6))
    expected = 2.0 * X.double().T @ X.double() / 10
    assert torch.allclose(gptq.hessian(X, chunk=3), expected)


# ---------------------------------------------------------------- the kind on a model


@pytest.mark.parametrize("bits", [2, 3, 4, 8])
def test_calibration_error_not_above_rtn_on_every_layer(bits: int) -> None:
    model, calib = toy()
    g = gptq.quantize(model, calib, gptq.Params(bits=bits, group_size=8, act_order=True))
    r = rtn.quantize(model, calib, rtn.Params(bits=bits, group_size=8))
    assert g.info["calibration_rows"] == r.info["calibration_rows"] == 1200
    for ge, re in zip(g.info["layer_error"], r.info["layer_error"], strict=True):
        assert ge["layer"] == re["layer"]
        assert ge["calib"] <= re["calib"], (bits, ge, re)


def test_info_describes_the_run() -> None:
    model, calib = toy()
    q = gptq.quantize(model, calib, gptq.Params(bits=3, group_size=8, calibration_samples=500))
    info = q.info
    assert info["bits"] == 3 and info["group_size"] == 8 and info["calibration_rows"] == 500
    assert info["execution"] == EXEC_FP32
    assert [e["layer"] for e in info["layer_error"]] == LINEARS
    assert all(e["calib"] >= 0 and e["heldout"] >= 0 for e in info["layer_error"])
    assert info["layers"][0]["dead_inputs"] == 1 and info["quantize_seconds"] > 0


def test_layer_error_is_measured_on_propagated_inputs() -> None:
    model, calib = toy()
    q = gptq.quantize(model, calib, gptq.Params(bits=2, group_size=-1))
    x = calib.x_val
    W_hat0 = q.module.layers.fc0.weight().dequantize()  # int8 kernels: exact codes
    hidden = torch.relu(x @ W_hat0.T + model.layers.fc0.bias).detach()
    W1, W_hat1 = model.layers.fc1.weight.detach(), q.module.layers.fc1.weight().dequantize()
    expected = float(((hidden @ (W1 - W_hat1).T) ** 2).sum() / x.shape[0])
    assert q.info["layer_error"][1]["heldout"] == pytest.approx(expected, rel=1e-4)


def test_deterministic_and_fp32_model_untouched() -> None:
    model, calib = toy()
    before = copy.deepcopy(model.state_dict())
    params = gptq.Params(bits=3, group_size=8, act_order=True)
    a, b = gptq.quantize(model, calib, params), gptq.quantize(model, calib, params)
    for name, entry in a.state["layers"].items():
        for key, value in entry.items():
            other = b.state["layers"][name][key]
            assert torch.equal(value, other) if torch.is_tensor(value) else value == other
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("group_size", [8, -1])
def test_rebuild_gives_the_same_outputs(group_size: int) -> None:
    model, calib = toy()
    params = gptq.Params(bits=4, group_size=group_size, act_order=True)
    q = gptq.quantize(model, calib, params)
    again = gptq.rebuild(SMALL, q.state, params)
    with torch.no_grad():
        assert torch.equal(q.module(calib.x_val), again(calib.x_val))


def test_checkpoint_round_trip(tmp_path: Path) -> None:
    model, calib = toy()
    variant = {"kind": "gptq", "bits": 3, "group_size": 8, "act_order": True}
    params = methods.make_params("gptq", variant)
    q = gptq.quantize(model, calib, params)
    meta = {
        "method": "gptq_w3",
        "kind": "gptq",
        "params": variant,
        "model": SMALL.to_dict(),
        "feature_names": [f"f{i}" for i in range(SMALL.n_features)],
        "class_names": ["a", "b", "c"],
        "seed": 3,
    }
    path = tmp_path / "gptq_w3.pt"
    save_checkpoint(path, meta, q.state)
    loaded = load_model(path)
    assert loaded.meta["params"] == variant and asdict(params)["bits"] == 3
    with torch.no_grad():
        assert torch.equal(loaded.module(calib.x_val), q.module(calib.x_val))
    raw = torch.load(path, weights_only=True)
    assert raw["state"]["layers"]["layers.fc1"]["qweight"].dtype == torch.uint8


def _size_ratio(tmp_path: Path, fp32: nn.Module, spec: ModelSpec, state: dict, kind: str) -> float:
    meta = {
        "method": "m",
        "kind": kind,
        "params": {},
        "model": spec.to_dict(),
        "feature_names": [],
        "class_names": [],
        "seed": 0,
    }
    save_checkpoint(tmp_path / "fp32.pt", {**meta, "kind": "fp32"}, fp32.state_dict())
    save_checkpoint(tmp_path / "q.pt", meta, state)
    return os.path.getsize(tmp_path / "q.pt") / os.path.getsize(tmp_path / "fp32.pt")


@pytest.mark.parametrize(("bits", "target"), [(4, 0.18), (3, 0.15), (2, 0.11)])
def test_checkpoint_size_targets_on_the_default_model(tmp_path: Path, bits: int, target) -> None:
    torch.manual_seed(0)
    spec = resolve({"arch": "mlp", "hidden": [256, 256]}, 29, 3)
    model = spec.build().eval()
    x = torch.randn(512, 29)
    calib = CalibrationData(x, torch.zeros(512, dtype=torch.long), x[:64], torch.zeros(64).long())
    params = gptq.Params(bits=bits, group_size=32, act_order=True, calibration_samples=512)
    q = gptq.quantize(model, calib, params)
    assert q.info["g_idx_stored"]  # the largest layout: act-order group index included
    assert _size_ratio(tmp_path, model, spec, q.state, "gptq") <= target


def test_params_are_validated() -> None:
    assert gptq.Params() == gptq.Params(4, 32, False, False, False, 0.01, 128, 2048)
    with pytest.raises(ValueError, match=r"percdamp must be a number in \(0, 1\], got 0"):
        gptq.Params(percdamp=0)
    with pytest.raises(ValueError, match="blocksize must be a positive int, got 0"):
        gptq.Params(blocksize=0)
    with pytest.raises(ValueError, match="act_order must be true or false, got 'yes'"):
        gptq.Params(act_order="yes")
    with pytest.raises(ValueError, match=r"bits must be one of \[2, 3, 4, 5, 6, 7, 8\], got 9"):
        gptq.Params(bits=9)
    with pytest.raises(ValueError, match="does not take"):
        methods.make_params("gptq", {"kind": "gptq", "bitz": 4})


def test_group_size_rule() -> None:
    gptq.check_fits(gptq.Params(group_size=32), [29, 256, 256])  # ragged or single groups fit
    with pytest.raises(ValueError, match="layer 1: input width must be a positive int, got 0"):
        gptq.check_fits(gptq.Params(group_size=32), [29, 0])
    assert Grid(4).maxq == 15
