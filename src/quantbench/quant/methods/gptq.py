"""Kind ``gptq``: GPTQ weight-only quantization (Frantar et al. 2022, Algorithm 1).

Layers (every Linear and Conv1d) are quantized in the order the forward pass calls them, each on
the inputs it receives from the already-quantized layers before it
(:func:`quantbench.quant.weightonly.layers.quantize_layers`; a convolution is a matrix over
its unfolded inputs). For one layer with weight ``W`` (out, in) and calibration inputs ``X``
(n, in), GPTQ minimises ``‖W Xᵀ − Q Xᵀ‖²`` column by column: after quantizing column ``j``
its error is spread over the columns not yet quantized
through the inverse Hessian of the layer-wise objective, ``H = 2 XᵀX / n``.

Steps, named as in the paper:

1. ``H`` accumulated in float64 over calibration rows (``n`` counts rows);
2. dead inputs (``H[i, i] == 0``): ``H[i, i] = 1`` and ``W[:, i] = 0``;
3. act-order (optional): columns in descending ``diag(H)``, undone at the end;
4. dampening ``λ = percdamp · mean(diag(H))`` added to the diagonal, multiplied by 10 while the
   Cholesky factorisation fails; ``Hinv`` = upper Cholesky factor of ``H⁻¹``;
5. columns in blocks of ``blocksize``: inside a block each column is quantized and its scaled
   error ``err = (w − q) / Hinv[j, j]`` updates the rest of the block at once; the block's
   errors update the later columns lazily (one matrix product per block);
6. groups: a group's scale and zero are fitted when its first column is reached, on the current
   (error-updated) columns; with ``static_groups`` they are fitted on ``W`` before any update,
   in the original column order, so act-order needs no group index.

The grid and the packing are the ones ``rtn`` uses (:mod:`quantbench.quant.weightonly.grid`).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from quantbench.models import ModelSpec
from quantbench.quant.ao import backend
from quantbench.quant.base import CalibrationData, QuantizedModel
from quantbench.quant.weightonly.execution import build_module
from quantbench.quant.weightonly.grid import Grid, QuantizedWeight, dequantize, fit, group_count
from quantbench.quant.weightonly.grid import quantize as grid_quantize
from quantbench.quant.weightonly.layers import check_model_fits, quantize_layers, require_kernels
from quantbench.quant.weightonly.params import (
    check_bool,
    check_execution,
    check_grid_params,
    check_int,
)
from quantbench.quant.weightonly.params import check_fits as check_group_fits
from quantbench.quant.weightonly.result import finish
from quantbench.quant.weightonly.state import check_state

MAX_DAMP_TRIES = 10  # dampening grows tenfold per failed Cholesky factorisation
HESSIAN_CHUNK = 4096  # calibration rows per float64 accumulation step


@dataclass(frozen=True)
class Params:
    """GPTQ parameters.

    ``bits`` per code (2..8); ``group_size`` columns per scale/zero (-1 = per output channel);
    ``symmetric`` grid; ``act_order``: quantize columns in descending ``diag(H)``;
    ``static_groups``: fit group grids before the updates (no group index with act-order);
    ``percdamp``: dampening as a share of ``mean(diag(H))``; ``blocksize``: columns per lazy
    update; ``calibration_samples``: training rows the Hessians are built from;
    ``execution``: the path the codes run on at load (``auto``, ``dequantized``, ``int4``,
    ``int8``; see :mod:`quantbench.quant.weightonly`).
    """

    bits: int = 4
    group_size: int = 32
    symmetric: bool = False
    act_order: bool = False
    static_groups: bool = False
    percdamp: float = 0.01
    blocksize: int = 128
    calibration_samples: int = 2048
    execution: str = "auto"
    engine: str = "auto"  # int8 engine of the int8 path (quantization.engine, resolved)

    def __post_init__(self) -> None:
        check_grid_params(self.bits, self.group_size, self.symmetric)
        check_execution(self.execution, self.bits, self.group_size)
        backend.check_engine_name(self.engine)
        check_bool("act_order", self.act_order)
        check_bool("static_groups", self.static_groups)
        pd = self.percdamp
        if isinstance(pd, bool) or not isinstance(pd, (int, float)) or not 0 < pd <= 1:
            raise ValueError(f"percdamp must be a number in (0, 1], got {pd!r}")
        object.__setattr__(self, "percdamp", float(pd))
        check_int("blocksize", self.blocksize, "a positive int", lambda b: b >= 1)
        check_int(
            "calibration_samples", self.calibration_samples, "a positive int", lambda n: n >= 1
        )

    @property
    def grid(self) -> Grid:
        return Grid(self.bits, self.symmetric)


def check_fits(params: Params, in_widths: list[int]) -> None:
    """Raise ValueError if ``params.group_size`` cannot be used on these layer input widths."""
    check_group_fits(params.group_size, in_widths)


# ---------------------------------------------------------------- Hessian


def hessian(X: torch.Tensor, chunk: int = HESSIAN_CHUNK) -> torch.Tensor:
    """``H = 2 XᵀX / n`` (in, in) in float64 from X (n, in); n counts rows."""
    n, width = X.shape
    H = torch.zeros(width, width, dtype=torch.float64, device=X.device)  # (in, in)
    for start in range(0, n, chunk):
        x = X[start : start + chunk].double()  # (rows, in)
        H += x.T @ x
    return H * (2.0 / max(n, 1))


def drop_dead_inputs(H: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """Inputs never active (``H[i, i] == 0``): ``H[i, i] = 1``, ``W[:, i] = 0`` in place.

    Returns the (in,) bool mask of dead inputs.
    """
    dead = torch.diag(H) == 0  # (in,)
    H[dead, dead] = 1.0
    W[:, dead] = 0.0
    return dead


def act_order_permutation(H: torch.Tensor) -> torch.Tensor:
    """Column order of descending ``diag(H)`` (stable, so ties keep their order): (in,)."""
    return torch.argsort(torch.diag(H), descending=True, stable=True)


def inverse_hessian_cholesky(H: torch.Tensor, percdamp: float) -> tuple[torch.Tensor, float]:
    """``Hinv``: upper Cholesky factor of ``(H + λI)⁻¹`` (float64), and the ``λ`` used.

    ``λ = percdamp · mean(diag(H))`` grows tenfold while either factorisation fails.
    """
    eye = torch.eye(H.shape[0], dtype=torch.float64, device=H.device)
    damp = percdamp * float(torch.diag(H).mean())
    damp = damp if damp > 0 else percdamp
    for _ in range(MAX_DAMP_TRIES):
        L, info = torch.linalg.cholesky_ex(H + damp * eye)  # H + λI = L Lᵀ
        if int(info) == 0:
            Hinv, info = torch.linalg.cholesky_ex(torch.cholesky_inverse(L), upper=True)
            if int(info) == 0 and bool(torch.isfinite(Hinv).all()):
                return Hinv, damp
        damp *= 10.0
    raise RuntimeError(
        f"the Hessian is not positive definite even with dampening {damp / 10:g}; "
        "the calibration rows are probably not finite"
    )


# ---------------------------------------------------------------- groups


@dataclass
class GroupPlan:
    """Which grid each (permuted) column uses, and when a group's grid is fitted.

    ``column_group`` (in,): group of the column at each processed position; ``scales`` and
    ``zeros`` (out, groups); ``lazy``: grids fitted when the group's first column is reached.
    """

    grid: Grid
    group_size: int
    column_group: list[int]
    scales: torch.Tensor
    zeros: torch.Tensor
    lazy: bool
    _fitted: set[int] = field(default_factory=set)

    @classmethod
    def create(cls, W: torch.Tensor, perm: torch.Tensor, params: Params) -> GroupPlan:
        """Plan for W (out, in) in its original order and the processing order ``perm``."""
        out, width = W.shape
        gs = params.group_size
        groups = group_count(width, gs)
        scales = torch.zeros(out, groups, dtype=torch.float32, device=W.device)
        zeros = torch.zeros_like(scales)
        plan = cls(params.grid, gs, [0] * width, scales, zeros, lazy=False)
        if gs == -1:
            plan._store(0, W)
        elif params.static_groups:
            plan.column_group = (perm // gs).tolist()
            for g in range(groups):
                plan._store(g, W[:, g * gs : (g + 1) * gs])
        else:
            plan.column_group = [j // gs for j in range(width)]
            plan.lazy = True
        return plan

    def _store(self, g: int, columns: torch.Tensor) -> None:
        self.scales[:, g], self.zeros[:, g] = fit(columns, self.grid)
        self._fitted.add(g)

    def starts_group(self, j: int) -> bool:
        """True when position j opens a lazy group whose grid is not fitted yet."""
        return self.lazy and self.column_group[j] not in self._fitted

    def fit_group(self, j: int, upcoming: torch.Tensor) -> None:
        """Fit the group opening at position j on its current columns ``upcoming`` (out, ≥1)."""
        self._store(self.column_group[j], upcoming[:, : self.group_size])

    def params(self, j: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Scale and zero (out,) of the column at position j."""
        g = self.column_group[j]
        return self.scales[:, g], self.zeros[:, g]


# ---------------------------------------------------------------- Algorithm 1


def quantize_block(
    W: torch.Tensor, Hinv: torch.Tensor, i1: int, i2: int, plan: GroupPlan, Q: torch.Tensor
) -> torch.Tensor:
    """Quantize columns ``[i1, i2)`` of W into Q (codes returned), then update ``W[:, i2:]``.

    W, Q (out, in) float32 in processing order; Hinv (in, in) upper Cholesky factor of H⁻¹.
    """
    W1 = W[:, i1:i2].clone()  # (out, b) columns of this block, updated in place
    Q1 = torch.zeros_like(W1)  # (out, b)
    codes1 = torch.zeros_like(W1)  # (out, b)
    Err1 = torch.zeros_like(W1)  # (out, b) scaled errors
    Hinv1 = Hinv[i1:i2, i1:i2]  # (b, b)
    for i in range(i2 - i1):
        if plan.starts_group(i1 + i):
            plan.fit_group(i1 + i, torch.cat([W1[:, i:], W[:, i2:]], dim=1))
        scale, zero = plan.params(i1 + i)  # (out,), (out,)
        w = W1[:, i]  # (out,)
        d = Hinv1[i, i]  # scalar
        codes1[:, i] = grid_quantize(w, scale, zero, plan.grid)
        Q1[:, i] = dequantize(codes1[:, i], scale, zero)
        err = (w - Q1[:, i]) / d  # (out,)
        W1[:, i:] -= err.unsqueeze(1) @ Hinv1[i, i:].unsqueeze(0)  # (out, b - i)
        Err1[:, i] = err
    Q[:, i1:i2] = Q1
    W[:, i2:] -= Err1 @ Hinv[i1:i2, i2:]  # lazy batch update, (out, in - i2)
    return codes1


def gptq_quantize(
    W: torch.Tensor, H: torch.Tensor, params: Params
) -> tuple[QuantizedWeight, dict[str, Any]]:
    """GPTQ of one layer: W (out, in) and its Hessian H (in, in) -> weight on the grid.

    Also returns ``{"damp", "dead_inputs"}``. Neither argument is modified.
    """
    W = W.detach().float().clone()  # (out, in)
    H = H.detach().double().clone()  # (in, in)
    dead = drop_dead_inputs(H, W)
    width = W.shape[1]
    perm = act_order_permutation(H) if params.act_order else torch.arange(width, device=W.device)
    plan = GroupPlan.create(W, perm, params)
    W, H = W[:, perm], H[perm][:, perm]
    Hinv, damp = inverse_hessian_cholesky(H, params.percdamp)
    Hinv = Hinv.float()  # (in, in) upper
    Q = torch.zeros_like(W)  # (out, in)
    codes = torch.cat(
        [
            quantize_block(W, Hinv, i1, min(i1 + params.blocksize, width), plan, Q)
            for i1 in range(0, width, params.blocksize)
        ],
        dim=1,
    )  # (out, in) in processing order
    invperm = torch.argsort(perm)
    qw = QuantizedWeight(
        codes=codes[:, invperm].to(torch.uint8),
        scales=plan.scales,
        zeros=plan.zeros.to(torch.uint8),
        g_idx=torch.tensor(plan.column_group, device=W.device)[invperm],
        grid=params.grid,
        group_size=params.group_size,
    )
    return qw, {"damp": damp, "dead_inputs": int(dead.sum())}


# ---------------------------------------------------------------- the kind


def quantize(fp32_model: nn.Module, calib: CalibrationData, params: Params) -> QuantizedModel:
    """GPTQ every Linear and Conv1d layer on calibration rows; report per-layer output errors."""
    t0 = time.perf_counter()
    n_features = int(calib.x_train.shape[1])
    check_model_fits(fp32_model, params.group_size, n_features)
    require_kernels(fp32_model, params.execution, params.bits, params.group_size, n_features)
    device = torch.device(calib.device)
    x_calib = calib.calibration_rows(params.calibration_samples).to(device)
    stats: list[dict[str, Any]] = []

    def quantize_layer(name: str, W: torch.Tensor, X: torch.Tensor) -> QuantizedWeight:
        qw, st = gptq_quantize(W, hessian(X), params)
        stats.append({"layer": name, **st})
        return qw

    layers, errors = quantize_layers(fp32_model, x_calib, calib.x_val, quantize_layer)
    extra: dict[str, Any] = {
        "act_order": params.act_order,
        "static_groups": params.static_groups,
        "percdamp": params.percdamp,
        "blocksize": params.blocksize,
        "calibration_rows": int(x_calib.shape[0]),
        "heldout_rows": int(calib.x_val.shape[0]),
        "device": str(device),
        "layers": stats,
    }
    return finish(
        fp32_model,
        layers,
        params.grid,
        params.group_size,
        errors,
        t0,
        extra,
        n_features,
        params.execution,
        params.engine,
    )


def rebuild(spec: ModelSpec, state: dict[str, Any], params: Params) -> nn.Module:
    """The runnable module of a checkpoint's packed state."""
    check_state(state, params.bits, params.group_size)
    with torch.random.fork_rng(devices=[]):
        skeleton = spec.build()
    return build_module(skeleton, state, params.grid, params.execution, params.engine)
