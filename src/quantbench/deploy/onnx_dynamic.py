"""``ptq_dynamic`` (and weight-only codes torch runs on its dynamic int8 kernels) in ONNX.

torch's dynamic int8 Linear (``quantized::linear_dynamic``) quantizes each call's input to
uint8 from the batch's own range, ``scale = (max(x, 0) - min(x, 0)) / qmax`` and
``zero_point = round(-min(x, 0) / scale)`` with ``qmax`` 127 (the modules ask their kernel for
reduce_range; :func:`activation_qmax` reads the range off the module rather than assuming it
from the engine), multiplies by its int8 weight codes in int32 and scales the sum back to
float. The graph does the same with standard operators: ReduceMin/ReduceMax ->
QuantizeLinear -> ``MatMulInteger`` with torch's int8 codes and zero points -> Cast -> Mul by
``input scale · weight scale`` (ONNX Runtime fuses the tail into ``MatMulIntegerToFloat``).
A dynamic Conv1d runs the same input rounding, then an FP32 convolution on DequantizeLinear
of its int8 codes, and rounds the output to the input's grid as torch's ``conv1d_dynamic``
does (ONNX Runtime has no dynamic int8 convolution kernel to fuse this into).
ONNX Runtime's own ``DynamicQuantizeLinear`` always uses 8 bits, which would round activations
differently from torch (and, on x86 CPUs without VNNI, let u8 x s8 pair sums saturate int16);
the 7-bit activations of the x86 engine cannot saturate there.

Like torch's, the activation range is that of the whole batch a call receives: a row's logits
depend (slightly) on the rows it is batched with.
"""

from __future__ import annotations

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper
from torch import nn

from quantbench.deploy import onnx_fp32
from quantbench.deploy.onnx_int8 import weight_codes
from quantbench.quant.ao import backend

SCALE_FLOOR = 1e-12  # an all-zero batch: any positive scale gives the same (zero) product


def fp32_twin(spec_module: nn.Module, converted: nn.Module) -> tuple[nn.Module, dict]:
    """``spec_module`` (a fresh FP32 module of the architecture) loaded with the converted
    module's FP32 parameters and the dequantized int8 weights; the dynamic layers by name."""
    state, dynamic = {}, {}
    for name, m in converted.named_modules():
        if name and any(name.startswith(f"{d}.") for d in dynamic):
            continue
        if backend.is_quantized_module(m, dynamic=True):
            if m._get_name() not in ("DynamicQuantizedLinear", "DynamicQuantizedConv1d"):
                raise ValueError(f"no ONNX translation for torch's {m._get_name()} ({name})")
            dynamic[name] = m
            bias = m.bias() if callable(m.bias) else m.bias
            state[f"{name}.weight"] = m.weight().dequantize()
            if bias is not None:
                state[f"{name}.bias"] = bias.detach()
            continue
        for key, value in [*m._parameters.items(), *m._buffers.items()]:
            if value is not None:
                state[f"{name}.{key}" if name else key] = value.detach()
    spec_module.load_state_dict(state)
    return spec_module.eval(), dynamic


QMAX_CHOICES = (127, 255)  # reduce_range (7-bit activations) or the full uint8 range


def _reference_linear(x: torch.Tensor, layer: nn.Module, qmax: int) -> torch.Tensor:
    """What a dynamic int8 Linear computes when it rounds its input to uint8 0..qmax."""
    lo, hi = torch.clamp(x.min(), max=0.0), torch.clamp(x.max(), min=0.0)
    scale = torch.clamp((hi - lo) / qmax, min=SCALE_FLOOR)
    zero_point = torch.round(-lo / scale)
    xq = torch.clamp(torch.round(x / scale) + zero_point, 0, qmax)
    bias = layer.bias()
    out = ((xq - zero_point) * scale) @ layer.weight().dequantize().T
    return out if bias is None else out + bias


def activation_qmax(dynamic: dict[str, nn.Module], rows: int = 256, seed: int = 0) -> int:
    """The activation range torch's dynamic layers really use, measured on a probe batch.

    torch's dynamic modules ask their kernels for ``reduce_range``; whether a kernel honours it
    depends on the engine and the torch build, so the graph copies what the first dynamic
    Linear computes rather than what an engine's name suggests. ValueError (one line) when
    neither range reproduces it."""
    linears = [m for m in dynamic.values() if m._get_name() == "DynamicQuantizedLinear"]
    if not linears:
        return QMAX_CHOICES[0]  # a Conv1d alone: torch's modules ask for reduce_range
    layer = linears[0]
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(rows, layer.in_features, generator=gen) * 3.0
    with torch.inference_mode():
        y = layer(x)
        diffs = {q: (_reference_linear(x, layer, q) - y).abs() for q in QMAX_CHOICES}
        span = float(torch.clamp(x.max(), min=0.0) - torch.clamp(x.min(), max=0.0))
        w_max = float(layer.weight().dequantize().abs().max())
    largest = {q: float(d.max()) for q, d in diffs.items()}
    mean = {q: float(d.mean()) for q, d in diffs.items()}
    steps = {q: span / q * w_max for q in QMAX_CHOICES}  # one input code's effect, at most
    return pick_qmax(largest, mean, float(y.abs().max()), steps)


SEPARATION = 4.0  # the right range's mean error is at most a quarter of the wrong one's


def pick_qmax(
    largest: dict[int, float], mean: dict[int, float], y_max: float, steps: dict[int, float]
) -> int:
    """The activation range whose reproduction of torch's output is best: exact (its largest
    error within float rounding), or off only where an input code rounded the other way near
    a tie: each such code moves one output by at most one activation step times the largest
    weight (``steps``), so they stay rare and leave the mean error far below a step, while the
    wrong range moves every output. ValueError (one line) when neither range stands out."""
    best, other = sorted(mean, key=mean.__getitem__)
    exact = largest[best] <= 1e-4 * (1.0 + y_max)
    rare = mean[best] <= 0.1 * steps[best] and mean[best] * SEPARATION <= mean[other]
    errors = {q: round(largest[q], 6) for q in largest}
    if not (exact or rare):
        raise ValueError(
            f"torch's dynamic Linear matches neither 7- nor 8-bit activations (errors {errors}); "
            "export it as FP32 or report the torch build"
        )
    return best


def _add(graph: onnx.GraphProto, op: str, inputs: list[str], output: str, **attrs) -> str:
    graph.node.append(helper.make_node(op, inputs, [output], **attrs))
    return output


def _const(graph: onnx.GraphProto, name: str, value: np.ndarray) -> str:
    return onnx_fp32.add_initializer(graph, name, value)


def _check_weight(graph, node, layer: str, codes, scales, zps, axis, transpose: bool) -> None:
    fp32 = numpy_helper.to_array(onnx_fp32.initializers(graph)[node.input[1]])
    shape = [1] * codes.ndim
    if axis is not None:
        shape[axis] = -1
    expected = (codes.astype(np.float32) - zps.reshape(shape)) * scales.reshape(shape)
    expected = expected.T if transpose else expected
    if fp32.shape != expected.shape or not np.allclose(fp32, expected, rtol=1e-6, atol=1e-7):
        raise ValueError(f"the ONNX weight of {layer} does not hold its int8 codes")


def _qparams(graph: onnx.GraphProto, x: str, p: str, qmax: int) -> tuple[str, str]:
    """(scale, uint8 zero point) of the batch ``x`` as torch's dynamic kernels choose them."""
    zero = _const(graph, f"{p}.zero", np.array(0.0, np.float32))
    lo = _add(graph, "ReduceMin", [x], f"{p}.min", keepdims=0)
    hi = _add(graph, "ReduceMax", [x], f"{p}.max", keepdims=0)
    lo, hi = _add(graph, "Min", [lo, zero], f"{p}.lo"), _add(graph, "Max", [hi, zero], f"{p}.hi")
    top = _const(graph, f"{p}.qmax", np.array(float(qmax), np.float32))
    raw = _add(graph, "Div", [_add(graph, "Sub", [hi, lo], f"{p}.span"), top], f"{p}.raw")
    floor = _const(graph, f"{p}.floor", np.array(SCALE_FLOOR, np.float32))
    scale = _add(graph, "Max", [raw, floor], f"{p}.scale")
    steps = _add(graph, "Neg", [_add(graph, "Div", [lo, scale], f"{p}.lo_steps")], f"{p}.steps")
    zp = _add(graph, "Clip", [_add(graph, "Round", [steps], f"{p}.round"), zero, top], f"{p}.zpf")
    return scale, _add(graph, "Cast", [zp], f"{p}.zp", to=TensorProto.UINT8)


def replace_matmul(
    graph: onnx.GraphProto, site: onnx_fp32.Site, layer: str, q: torch.Tensor, qmax: int
) -> None:
    """Swap the layer's FP32 MatMul for torch's dynamic int8 product on its codes."""
    node = site.node
    codes, scales, zps, axis = weight_codes(q)
    _check_weight(graph, node, layer, codes, scales, zps, axis, transpose=True)
    p = f"{layer}.dynamic"
    scale, zp = _qparams(graph, node.input[0], p, qmax)
    xq = _add(graph, "QuantizeLinear", [node.input[0], scale, zp], f"{p}.xq")
    w = _const(graph, f"{layer}.weight.codes", codes.T.copy())
    wz = _const(graph, f"{layer}.weight.zero_point", zps)
    acc = _add(graph, "MatMulInteger", [xq, w, zp, wz], f"{p}.acc")
    accf = _add(graph, "Cast", [acc], f"{p}.acc_f", to=TensorProto.FLOAT)
    w_scale = _const(graph, f"{layer}.weight.scale", scales)
    both = _add(graph, "Mul", [scale, w_scale], f"{p}.out_scale")
    graph.node.append(helper.make_node("Mul", [accf, both], [node.output[0]]))
    graph.node.remove(node)


def replace_conv(
    graph: onnx.GraphProto, site: onnx_fp32.Site, layer: str, q: torch.Tensor, qmax: int
) -> None:
    """torch's dynamic int8 convolution: the input rounded to its batch's uint8 grid, the
    product on the int8 codes (DequantizeLinear), and the output rounded to the input's grid
    again (torch's ``conv1d_dynamic`` requantizes with the input's scale and zero point)."""
    node = site.node
    codes, scales, zps, axis = weight_codes(q)
    _check_weight(graph, node, layer, codes, scales, zps, axis, transpose=False)
    p = f"{layer}.dynamic"
    scale, zp = _qparams(graph, node.input[0], p, qmax)
    xq = _add(graph, "QuantizeLinear", [node.input[0], scale, zp], f"{p}.xq")
    node.input[0] = _add(graph, "DequantizeLinear", [xq, scale, zp], f"{p}.x")
    onnx_fp32.add_initializer(graph, f"{layer}.weight.codes", codes)
    onnx_fp32.add_initializer(graph, f"{layer}.weight.scale", scales)
    onnx_fp32.add_initializer(graph, f"{layer}.weight.zero_point", zps)
    inputs = [f"{layer}.weight.{s}" for s in ("codes", "scale", "zero_point")]
    kwargs = {} if axis is None else {"axis": axis}
    node.input[1] = _add(graph, "DequantizeLinear", inputs, f"{layer}.weight.dequantized", **kwargs)
    out = node.output[0]
    node.output[0] = f"{p}.y"
    yq = _add(graph, "QuantizeLinear", [node.output[0], scale, zp], f"{p}.yq")
    graph.node.append(helper.make_node("DequantizeLinear", [yq, scale, zp], [out]))
