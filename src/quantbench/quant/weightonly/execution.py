"""The runnable module of a packed weight-only state, on its execution path (see ``params``):
int8 dynamic Linear layers on the run's engine, int4 kernel layers, or dequantized weights."""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import nn

from quantbench.core.config import resolved_execution
from quantbench.quant.ao import backend, dynamic
from quantbench.quant.weightonly import int4
from quantbench.quant.weightonly.grid import (
    Grid,
    QuantizedWeight,
)
from quantbench.quant.weightonly.params import layer_path
from quantbench.quant.weightonly.state import packed_keys, unpack_layer

log = logging.getLogger("quantbench.weightonly")


def int8_dynamic_linear(qw: QuantizedWeight, bias: torch.Tensor) -> nn.Module:
    """A dynamic quantized Linear whose qint8 weight dequantizes exactly to ``qw``.

    Per-channel codes only (one group per row). The int8 value of code ``q`` is
    ``q - 2**(bits-1)`` and its zero point ``zero - 2**(bits-1)``, so
    ``scale * (int8 - zero_point) == scale * (q - zero)`` bit for bit.
    """
    if qw.scales.shape[1] != 1:
        raise ValueError("int8 kernels need per-channel codes (one group per row)")
    offset = 1 << (qw.grid.bits - 1)
    scales = qw.scales[:, 0].double()
    zero_points = qw.zeros[:, 0].long() - offset
    layer, int8 = dynamic.per_channel_dynamic_linear(qw.dequantize(), scales, zero_points, bias)
    if not torch.equal(int8.long(), qw.codes.long() - offset):
        raise RuntimeError("int8 weight does not reproduce the quantized codes exactly")
    return layer


def _replace(model: nn.Module, name: str, layer: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent), child, layer)


def use_int8_engine(
    execution: str, group_size: int, engine: str, symmetric: bool = False
) -> str | None:
    """Make the int8 engine that runs these codes the process's engine and return it; None
    when they do not run on the int8 path.

    That is ``engine`` (``auto`` resolved: the run's probed or named engine) when it has a
    dynamic Linear for per-channel weights of this grid (asymmetric codes have non-zero zero
    points, which ``onednn`` refuses), else the first engine in the default order that has one
    (logged). ValueError (one line) when no engine of this torch has one.
    """
    if resolved_execution(execution, group_size) != "int8":
        return None
    wanted = backend.select_engine(engine)
    order = [wanted, backend.select_engine("auto"), *backend.supported_engines()]
    for name in dict.fromkeys(order):
        torch.backends.quantized.engine = name
        if dynamic.per_channel_dynamic_supported(name, asymmetric=not symmetric):
            if name != wanted:
                log.info(
                    "int8 engine %s has no dynamic Linear for %s per-channel weights; the "
                    "int8 path runs on %s",
                    wanted, "symmetric" if symmetric else "asymmetric", name,
                )  # fmt: skip
            return name
    raise ValueError(
        f"no int8 engine of this torch ({', '.join(dict.fromkeys(order))}) has a dynamic "
        f"Linear for {'symmetric' if symmetric else 'asymmetric'} per-channel weights, which "
        "execution int8 needs; use execution: dequantized"
    )


@torch.no_grad()
def build_module(
    skeleton: nn.Module,
    state: dict[str, Any],
    grid: Grid,
    execution: str = "auto",
    engine: str = "auto",
) -> nn.Module:
    """The runnable CPU module of a packed state on the ``execution`` path (module docstring).

    ``skeleton`` is a module of the same architecture (its values are all overwritten, and
    it is modified in place): a copy of the FP32 model, or one rebuilt from the checkpoint.
    On the int8 path ``engine`` becomes the process's int8 engine first.
    """
    group_size = int(state["group_size"])
    use_int8_engine(execution, group_size, engine, grid.symmetric)
    fp32 = state.get("fp32", {})
    expected = set(skeleton.state_dict())
    covered = packed_keys(state["layers"]) | set(fp32)
    if expected - covered:
        raise ValueError(f"state lacks {sorted(expected - covered)} of the model")
    _, unexpected = skeleton.load_state_dict(fp32, strict=False)
    if unexpected:
        raise ValueError(f"state holds {sorted(unexpected)}, which the model does not have")
    for name, entry in state["layers"].items():
        qw = unpack_layer(entry, grid, group_size)
        layer = skeleton.get_submodule(name)
        path = layer_path(execution, group_size, entry["shape"])
        if path == "int8":
            bias = entry.get("bias", torch.zeros(qw.codes.shape[0]))
            _replace(skeleton, name, int8_dynamic_linear(qw, bias))
            continue
        if path == "int4":
            _replace(skeleton, name, int4.Int4Linear.from_quantized(qw, entry.get("bias")))
            continue
        layer.weight.copy_(qw.dequantize().reshape(entry["shape"]))
        if "bias" in entry:
            layer.bias.copy_(entry["bias"].float())
    return skeleton.eval()
