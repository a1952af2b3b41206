"""Machinery shared by the weight-only kinds (``rtn`` and ``gptq``).

- parameter checks both kinds share (bits, group size, symmetry) and :func:`check_model_fits`;
- :func:`matrix_layers`: the ``nn.Linear`` and ``nn.Conv1d`` layers in the order the forward
  pass calls them, found with forward hooks on a probe row (not from the model's structure);
- :func:`quantize_layers`: quantize them in that order, each on the inputs it receives from the
  already-quantized layers before it (captured by a hook), and measure its output error;
- the packed checkpoint state (:func:`pack_state`) and the runnable module built from it
  (:func:`build_module`), so ``quantize()`` and the checkpoint loader build the same module.

Execution paths (the ``execution`` parameter of both kinds; the disk format is the same for all):

- ``dequantized``: the codes are read back to float32 weights at load (any bits, any groups);
- ``int8``: per-channel codes (``group_size: -1``) of Linear layers run on torch's int8 dynamic
  kernels (``quantized::linear_dynamic``), bit for bit the same weights, on the run's int8
  engine (the ``engine`` parameter: the probed or named engine, set before the layers are
  built, as for the int8 kinds);
- ``int4``: codes of up to 4 bits with ``group_size`` -1 or a multiple of 32 run on torch's CPU
  int4 kernel (:class:`quantbench.int4.Int4Linear`, bfloat16 activations), packed at load;
  act-order groups become a column permutation of the inputs;
- ``auto`` (the default): ``int8`` for ``group_size: -1``, else ``dequantized``.

Convolutions always run dequantized (the kernels above are matrix products of Linear layers).

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

Packed state layout (``QuantizedModel.state``, stored in the checkpoint)::

    format "quantbench-weightonly"   version 1   bits int   group_size int
    layers {"layers.fc0": {"shape": weight shape, [out, in] or [out, C, k] (Conv1d),
                           "qweight": uint8 (bit-packed codes, row-major),
                           "scales":  float16 (out, groups),
                           "qzeros":  uint8 (bit-packed zero codes, (out, groups) row-major),
                           "bias":    float32 (out,),
                           "g_idx":   uint8 (bit-packed group of each input column, with
                                      ceil(log2(groups)) bits; int32 beyond 256 groups),
                                      only when act-order reordered the groups},
            ...}
    fp32   {state_dict key: tensor} of every parameter and buffer outside those layers
           (LayerNorm, embeddings, ...), only when there is any
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from quantbench.core.config import resolved_execution
from quantbench.quant import coverage
from quantbench.quant.ao import backend, dynamic
from quantbench.quant.base import QuantizedModel
from quantbench.quant.coverage import Decision, Layer
from quantbench.quant.weightonly import int4
from quantbench.quant.weightonly.grid import (
    BITS,
    Grid,
    QuantizedWeight,
    check_group_size,
    contiguous_groups,
    group_count,
)
from quantbench.quant.weightonly.packing import pack, unpack

log = logging.getLogger("quantbench.weightonly")

STATE_FORMAT = "quantbench-weightonly"
STATE_VERSION = 1
EXEC_INT8 = "int8 dynamic kernels (per-channel codes)"
EXEC_FP32 = "dequantized to fp32 at load (group-wise codes)"
EXEC_INT4 = f"int4 kernel ({int4.KERNEL_OP}, bfloat16 activations)"
EXECUTIONS = ("auto", "dequantized", "int4", "int8")

# (layer name, W (out, in) float32, X (n, in) float32) -> the layer's weight on the grid
LayerQuantizer = Callable[[str, torch.Tensor, torch.Tensor], QuantizedWeight]
# name -> (weight on the grid, bias or None, the layer's weight shape)
PackedLayers = dict[str, tuple[QuantizedWeight, torch.Tensor | None, list[int]]]


# ---------------------------------------------------------------- parameter checks


def check_int(name: str, value: Any, allowed: str, ok: Callable[[int], bool]) -> None:
    """ValueError naming ``name``, the bad ``value`` and the ``allowed`` values."""
    if not isinstance(value, int) or isinstance(value, bool) or not ok(value):
        raise ValueError(f"{name} must be {allowed}, got {value!r}")


def check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")


def check_grid_params(bits: Any, group_size: Any, symmetric: Any) -> None:
    """The parameters every weight-only kind shares."""
    check_int("bits", bits, f"one of {list(BITS)}", lambda b: b in BITS)
    check_group_size(group_size)
    check_bool("symmetric", symmetric)


def check_execution(execution: Any, bits: int, group_size: int) -> None:
    """ValueError (one line, naming the alternatives) for an execution path these codes cannot
    take; whether this torch and CPU have the int4 kernel is checked at quantize start."""
    if execution not in EXECUTIONS:
        raise ValueError(f"execution must be one of {', '.join(EXECUTIONS)}, got {execution!r}")
    if execution == "int8" and group_size != -1:
        raise ValueError(
            f"execution int8 needs group_size -1 (one scale per output channel), got "
            f"{group_size}; use group_size: -1, or execution: dequantized (or int4)"
        )
    if execution == "int4":
        problem = int4.code_problem(group_size, bits)
        if problem:
            raise ValueError(f"execution int4: {problem}; {int4.ALTERNATIVES}")


def layer_path(execution: str, group_size: int, shape: list[int]) -> str:
    """How one packed layer runs: ``int8``, ``int4`` or ``dequantized`` (convolutions)."""
    path = resolved_execution(execution, group_size)
    return path if len(shape) == 2 else "dequantized"


def require_kernels(
    model: nn.Module, execution: str, bits: int, group_size: int, n_features: int
) -> None:
    """Before any work: stop (one line, :class:`quantbench.int4.Int4Unavailable`) when the int4
    kernel cannot run the model's Linear layers on this torch and CPU."""
    if resolved_execution(execution, group_size) != "int4":
        return
    layers = [
        (name, int(m.in_features), int(m.out_features))
        for name, m in matrix_layers(model, coverage.probe(n_features))
        if isinstance(m, nn.Linear)
    ]
    int4.require_int4(layers, group_size, bits)


def check_fits(group_size: int, in_widths: list[int], names: list[str] | None = None) -> None:
    """Check that ``group_size`` fits layers of these input widths, given in execution order.

    Rule: groups are consecutive runs of ``group_size`` input columns and the last group of a
    row may be shorter (ragged). A group may not be wider than a layer, except in the first
    layer, which reads the model's input (its width is set by the data, or by a kernel over it):
    there a wider group is one group per row. Raises ValueError naming the layer otherwise, or
    for a width below 1.
    """
    check_group_size(group_size)
    names = names or [f"layer {i}" for i in range(len(in_widths))]
    for i, (name, width) in enumerate(zip(names, in_widths, strict=True)):
        if not isinstance(width, int) or isinstance(width, bool) or width < 1:
            raise ValueError(f"{name}: input width must be a positive int, got {width!r}")
        if i > 0 and group_size > width:
            narrowest = min(in_widths[1:])
            raise ValueError(
                f"group_size {group_size} is wider than layer {name} ({width} input columns); "
                f"use a group_size of at most {narrowest} or -1 (one group per output channel)"
            )


# ---------------------------------------------------------------- the layers and their inputs

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


# ---------------------------------------------------------------- layer-by-layer quantization


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


# ---------------------------------------------------------------- packed state


def pack_layer(
    qw: QuantizedWeight, bias: torch.Tensor | None, shape: list[int] | None = None
) -> dict[str, Any]:
    """One layer's checkpoint entry (see the module docstring); ``shape``: the weight's own
    shape when it is not the matrix's (a Conv1d's (out, C, k))."""
    entry: dict[str, Any] = {
        "shape": [int(s) for s in (shape or qw.codes.shape)],
        "qweight": pack(qw.codes, qw.grid.bits),
        "scales": qw.scales.to(torch.float16).contiguous(),
        "qzeros": pack(qw.zeros, qw.grid.bits),
    }
    if bias is not None:
        entry["bias"] = bias.float().contiguous()
    if not qw.groups_contiguous:
        entry["g_idx"] = pack_g_idx(qw.g_idx, qw.scales.shape[1])
    return entry


def g_idx_bits(groups: int) -> int:
    """Bits per packed group index: enough for ``groups - 1``, at least 1."""
    return max(1, (groups - 1).bit_length())


def pack_g_idx(g_idx: torch.Tensor, groups: int) -> torch.Tensor:
    """Group index (in,) bit-packed into uint8 (up to 256 groups), else int32."""
    bits = g_idx_bits(groups)
    return pack(g_idx, bits) if bits <= 8 else g_idx.to(torch.int32).contiguous()


def unpack_g_idx(stored: torch.Tensor, groups: int, width: int) -> torch.Tensor:
    """Inverse of :func:`pack_g_idx`: the (in,) int64 group index."""
    if stored.dtype == torch.uint8:
        return unpack(stored, g_idx_bits(groups), (width,)).long()
    return stored.long()


def unpack_layer(entry: dict[str, Any], grid: Grid, group_size: int) -> QuantizedWeight:
    """The layer's weight on the grid (as the matrix (out, in)) from its checkpoint entry."""
    out, width = int(entry["shape"][0]), math.prod(int(s) for s in entry["shape"][1:])
    groups = group_count(width, group_size)
    g_idx = entry.get("g_idx")
    return QuantizedWeight(
        codes=unpack(entry["qweight"], grid.bits, (out, width)),
        scales=entry["scales"].float().reshape(out, groups),
        zeros=unpack(entry["qzeros"], grid.bits, (out, groups)),
        g_idx=(
            contiguous_groups(width, group_size)
            if g_idx is None
            else unpack_g_idx(g_idx, groups, width)
        ),
        grid=grid,
        group_size=group_size,
    )


def _packed_keys(layers: dict[str, Any]) -> set[str]:
    return {f"{name}.{p}" for name in layers for p in ("weight", "bias")}


def pack_state(
    layers: PackedLayers, bits: int, group_size: int, fp32_model: nn.Module
) -> dict[str, Any]:
    """The checkpoint ``state`` of a weight-only model (plain containers and tensors only).

    Parameters and buffers of ``fp32_model`` outside the packed layers are kept as they are.
    """
    state: dict[str, Any] = {
        "format": STATE_FORMAT,
        "version": STATE_VERSION,
        "bits": int(bits),
        "group_size": int(group_size),
        "layers": {n: pack_layer(qw, bias, shape) for n, (qw, bias, shape) in layers.items()},
    }
    packed = _packed_keys(layers)
    rest = backend.without_keys(fp32_model.state_dict(), lambda k: k in packed)
    if rest:
        state["fp32"] = rest
    return state


_EXEC_TEXT = {"int8": EXEC_INT8, "int4": EXEC_INT4, "dequantized": EXEC_FP32}


def execution(
    group_size: int, shapes: list[list[int]] | None = None, execution: str = "auto"
) -> str:
    """How the packed codes run (the info JSON's ``execution``), from the resolved path."""
    path = resolved_execution(execution, group_size)
    if path == "dequantized":
        return EXEC_FP32
    if shapes and any(len(s) != 2 for s in shapes):
        return f"{_EXEC_TEXT[path]} for Linear layers; convolutions {EXEC_FP32.split(' (')[0]}"
    return _EXEC_TEXT[path]


# ---------------------------------------------------------------- runnable module


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


def check_state(state: dict[str, Any], bits: int, group_size: int) -> None:
    """Refuse a state of another format, bit width or group size than the parameters say."""
    if state.get("format") != STATE_FORMAT or state.get("version") != STATE_VERSION:
        raise ValueError(
            f"state is not {STATE_FORMAT} version {STATE_VERSION} "
            f"(got {state.get('format')!r} version {state.get('version')!r})"
        )
    if (state.get("bits"), state.get("group_size")) != (bits, group_size):
        raise ValueError(
            f"state holds bits={state.get('bits')}, group_size={state.get('group_size')} but "
            f"the parameters say bits={bits}, group_size={group_size}"
        )


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
    covered = _packed_keys(state["layers"]) | set(fp32)
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


def decide(state: dict[str, Any], grid: Grid, execution: str = "auto"):
    """Coverage verdicts of a weight-only model: the packed layers are the quantized ones."""
    group_size = int(state["group_size"])
    where = "per output channel" if group_size == -1 else f"groups of {group_size}"

    def verdict(layer: Layer, fp32_module: nn.Module) -> Decision:
        entry = state["layers"].get(layer.name)
        if entry is not None:
            path = layer_path(execution, group_size, entry["shape"])
            return Decision(
                True,
                f"{grid.bits}-bit codes, {where}; {_EXEC_TEXT[path]}",
                int8_kernel=path != "dequantized",
            )
        return Decision(False, fp32_reason(layer, fp32_module))

    return verdict


def fp32_reason(layer: Layer, module: nn.Module) -> str:
    """Why the weight-only kinds leave this layer FP32."""
    if isinstance(module, (nn.Linear, nn.Conv1d)):
        if layer.order < 0:
            return (
                "not called as a module in the forward pass (its parent uses the weight "
                "directly, as nn.MultiheadAttention does): no inputs to calibrate on"
            )
        return unsupported(module) or "not a matrix layer"
    if isinstance(module, (nn.RNNBase, nn.modules.conv._ConvNd)):
        return (
            f"{type(module).__name__}: the weight-only kinds quantize Linear and Conv1d layers "
            "(ptq_dynamic has int8 GRU/LSTM kernels, ptq_static and qat convolution kernels)"
        )
    return coverage.fp32_reason(module)


def finish(
    fp32_model: nn.Module,
    layers: PackedLayers,
    grid: Grid,
    group_size: int,
    layer_error: list[dict[str, Any]],
    t0: float,
    extra: dict[str, Any],
    n_features: int,
    path: str = "auto",
    engine: str = "auto",
) -> QuantizedModel:
    """Pack the layers, build the module from the packed state (on the ``path`` execution
    path, with ``engine`` on the int8 path) and describe the result."""
    fp32_model = fp32_model.cpu().eval()
    state = pack_state(layers, grid.bits, group_size, fp32_model)
    module = build_module(copy.deepcopy(fp32_model), state, grid, path, engine)
    shapes = [entry["shape"] for entry in state["layers"].values()]
    verdicts = decide(state, grid, path)
    info = {
        "bits": grid.bits,
        "group_size": group_size,
        "symmetric": grid.symmetric,
        "execution": execution(group_size, shapes, path),
        "execution_path": resolved_execution(path, group_size),
        # build_module set the engine the int8 path runs on (the run's, or the fallback)
        "engine": (
            str(torch.backends.quantized.engine)
            if resolved_execution(path, group_size) == "int8"
            else None
        ),
        "layer_error": layer_error,
        "g_idx_stored": [n for n, e in state["layers"].items() if "g_idx" in e],
        "coverage": coverage.report(fp32_model, coverage.probe(n_features), verdicts),
        **extra,
        "quantize_seconds": time.perf_counter() - t0,
    }
    return QuantizedModel(module=module, state=state, info=info)
