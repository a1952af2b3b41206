"""The matrix layers of a model and their layer-by-layer weight-only quantization.

- :func:`matrix_layers`: the ``nn.Linear`` and ``nn.Conv1d`` layers in the order the forward
  pass calls them, found with forward hooks on a probe row (not from the model's structure);
- :func:`quantize_layers`: quantize them in that order, each on the inputs it receives from the
  already-quantized layers before it (captured by a hook), and measure its output error.

Each layer is a matrix ``W`` (out, in) applied to rows ``X`` (n, in). A Linear's rows are its
input vectors (a transformer's tokens are rows too). A ``Conv1d`` with weight (out, C, k) is
the matrix ``W = weight.reshape(out, C·k)`` applied to its unfolded input, one row of ``C·k``
values per output position (column ``c·k + j`` is channel ``c`` at kernel tap ``j``), as the
GPTQ reference code treats ``Conv2d`` with ``nn.Unfold``. Output error of a layer with
quantized weight ``Ŵ``::

    error = ‖X Wᵀ − X Ŵᵀ‖²_F / n        (sum over rows and outputs, divided by the row count)

``X`` is what the layer receives in the weight-only model: the rows passed through the layers
before it with *their quantized weights*, in float32 (so for GPTQ, the very inputs its Hessian
was built from). The bias cancels. It is reported on calibration rows (training rows only) and
on held-out rows (validation rows).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from quantbench.core.config import resolved_execution
from quantbench.quant import coverage
from quantbench.quant.weightonly import int4
from quantbench.quant.weightonly.grid import (
    QuantizedWeight,
)
from quantbench.quant.weightonly.params import check_fits

# (layer name, W (out, in) float32, X (n, in) float32) -> the layer's weight on the grid
LayerQuantizer = Callable[[str, torch.Tensor, torch.Tensor], QuantizedWeight]


# name -> (weight on the grid, bias or None, the layer's weight shape)
PackedLayers = dict[str, tuple[QuantizedWeight, torch.Tensor | None, list[int]]]


def require_kernels(
    model: nn.Module, execution: str, bits: int, group_size: int, n_features: int
) -> None:
    """Before any work: stop (one line, :class:`quantbench.quant.weightonly.int4.Int4Unavailable`)
    when the int4 kernel cannot run the model's Linear layers on this torch and CPU."""
    if resolved_execution(execution, group_size) != "int4":
        return
    layers = [
        (name, int(m.in_features), int(m.out_features))
        for name, m in matrix_layers(model, coverage.probe(n_features))
        if isinstance(m, nn.Linear)
    ]
    int4.require_int4(layers, group_size, bits)


MatrixLayer = nn.Linear | nn.Conv1d


def unsupported(module: nn.Module) -> str | None:
    """Why a Linear or Conv1d cannot be handled as a matrix here (None: it can)."""
    if isinstance(module, nn.Conv1d):
        if module.groups != 1:
            return f"grouped convolution (groups={module.groups}): not one matrix"
        if module.padding_mode != "zeros":
            return f"convolution with padding_mode={module.padding_mode!r}: only zero padding"
        if isinstance(module.padding, str) and module.padding != "valid" and module.stride[0] != 1:
            return "convolution with padding='same' and a stride: not supported"
    return None


def matrix_layers(model: nn.Module, x: torch.Tensor) -> list[tuple[str, MatrixLayer]]:
    """``(name, module)`` of every Linear and Conv1d the forward pass calls, in call order.

    ``x`` is a probe batch; layers that are never called, or that :func:`unsupported` refuses,
    are left out (the coverage record names them and says why).
    """
    modules = dict(model.named_modules())
    return [
        (layer.name, modules[layer.name])
        for layer in coverage.inventory(model, x)
        if layer.order >= 0
        and isinstance(modules[layer.name], (nn.Linear, nn.Conv1d))
        and unsupported(modules[layer.name]) is None
    ]


def as_matrix(module: MatrixLayer) -> torch.Tensor:
    """The layer's weight as a matrix (out, in): a Conv1d weight (out, C, k) -> (out, C·k)."""
    return module.weight.detach().reshape(module.weight.shape[0], -1).clone()


def _conv_padding(conv: nn.Conv1d) -> tuple[int, int]:
    """(left, right) zero padding of a Conv1d, 'same' and 'valid' resolved."""
    if conv.padding == "valid":
        return 0, 0
    if conv.padding == "same":
        total = conv.dilation[0] * (conv.kernel_size[0] - 1)
        return total // 2, total - total // 2
    return conv.padding[0], conv.padding[0]


def input_rows(module: MatrixLayer, x: torch.Tensor) -> torch.Tensor:
    """The rows ``X`` (n, in) the layer's matrix multiplies, from one input tensor ``x``.

    Linear: ``x`` (..., in) -> (prod(...), in). Conv1d: ``x`` (batch, C, L) -> its unfolded
    input (batch · L_out, C · k), columns in the order of :func:`as_matrix`.
    """
    if isinstance(module, nn.Linear):
        return x.reshape(-1, module.in_features)
    if x.dim() == 2:  # an unbatched (C, L) input
        x = x.unsqueeze(0)
    x = nn.functional.pad(x, _conv_padding(module))  # (batch, C, L + padding)
    cols = nn.functional.unfold(
        x.unsqueeze(2),  # (batch, C, 1, L): a one-row image
        kernel_size=(1, module.kernel_size[0]),
        dilation=(1, module.dilation[0]),
        stride=(1, module.stride[0]),
    )  # (batch, C · k, L_out)
    return cols.transpose(1, 2).reshape(-1, cols.shape[1])


@torch.no_grad()
def captured_rows(
    model: nn.Module, module: MatrixLayer, x: torch.Tensor, chunk: int = 1024
) -> torch.Tensor:
    """Rows ``X`` (n, in) the layer receives when ``x`` runs through ``model`` (every call)."""
    rows: list[torch.Tensor] = []

    def hook(_module: nn.Module, inputs: tuple[Any, ...]) -> None:
        rows.append(input_rows(module, inputs[0].detach()))

    handle = module.register_forward_pre_hook(hook)
    try:
        for start in range(0, x.shape[0], chunk):
            model(x[start : start + chunk])
    finally:
        handle.remove()
    return torch.cat(rows)


def check_model_fits(model: nn.Module, group_size: int, n_features: int) -> None:
    """:func:`check_fits` on the model's own matrix layers, in execution order."""
    layers = matrix_layers(model, coverage.probe(n_features))
    check_fits(group_size, [as_matrix(m).shape[1] for _, m in layers], [n for n, _ in layers])


def output_error(X: torch.Tensor, W: torch.Tensor, W_hat: torch.Tensor) -> float:
    """``‖X Wᵀ − X Ŵᵀ‖²_F / n`` in float64; X (n, in), W and Ŵ (out, in)."""
    D = (W.double() - W_hat.double()).T  # (in, out)
    return float((X.double() @ D).pow(2).sum() / max(X.shape[0], 1))


def _bias(module: MatrixLayer) -> torch.Tensor | None:
    return None if module.bias is None else module.bias.detach().float().cpu().clone()


@torch.no_grad()
def quantize_layers(
    fp32_model: nn.Module,
    x_calib: torch.Tensor,
    x_heldout: torch.Tensor,
    quantize_layer: LayerQuantizer,
) -> tuple[PackedLayers, list[dict[str, Any]]]:
    """Quantize every matrix layer in call order, each on the inputs the quantized layers
    before it give.

    Returns the layers (on CPU) and ``[{"layer", "calib", "heldout", "rows"}, ...]`` output
    errors. Runs on the device of ``x_calib``; ``fp32_model`` itself is left untouched.
    """
    model = copy.deepcopy(fp32_model).eval().to(x_calib.device)
    x_heldout = x_heldout.to(x_calib.device)
    probe = coverage.probe(x_calib.shape[1]).to(x_calib.device)
    layers: PackedLayers = {}
    errors: list[dict[str, Any]] = []
    for name, module in matrix_layers(model, probe):
        W = as_matrix(module)  # (out, in)
        X, X_held = captured_rows(model, module, x_calib), captured_rows(model, module, x_heldout)
        qw = quantize_layer(name, W, X)
        W_hat = qw.dequantize()  # (out, in)
        errors.append(
            {
                "layer": name,
                "calib": output_error(X, W, W_hat),
                "heldout": output_error(X_held, W, W_hat),
                "rows": {"calib": int(X.shape[0]), "heldout": int(X_held.shape[0])},
            }
        )
        module.weight.copy_(W_hat.reshape(module.weight.shape))
        layers[name] = (to_cpu(qw), _bias(module), list(module.weight.shape))
    return layers, errors


def to_cpu(qw: QuantizedWeight) -> QuantizedWeight:
    return QuantizedWeight(
        codes=qw.codes.cpu(),
        scales=qw.scales.cpu(),
        zeros=qw.zeros.cpu(),
        g_idx=qw.g_idx.cpu(),
        grid=qw.grid,
        group_size=qw.group_size,
    )
