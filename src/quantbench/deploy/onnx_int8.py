"""int8 graphs: ``ptq_static``/``qat`` as QDQ, ``ptq_dynamic`` with dynamic quantization ops.

Static (``ptq_static``, ``qat``): the converted torch graph becomes its FP32 twin with explicit
quantizers (:mod:`quantbench.deploy.fx_sim`), which is exported; then each int8 layer's FP32
weight initializer is replaced by ``DequantizeLinear`` of torch's own int8 codes and
per-channel (or per-tensor) scales, and the bias of each ``Gemm``/``Conv`` fed by a
``DequantizeLinear`` by ``DequantizeLinear`` of int32 codes at scale ``input scale · weight
scale`` (what ONNX Runtime's ``QGemm``/``QLinearConv`` fusions take; the rounding moves a
logit by at most half of one int32 step, far below one output step). ONNX Runtime fuses
``DequantizeLinear -> Gemm/Conv -> QuantizeLinear`` into ``QGemm``/``QLinearConv``.

Dynamic (``ptq_dynamic``): each int8 Linear's ``MatMul`` becomes
``com.microsoft.DynamicQuantizeMatMul`` holding torch's int8 codes and scales; activations are
quantized per batch to uint8 by ONNX Runtime.
"""

from __future__ import annotations

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper
from torch import nn

from quantbench.deploy import fx_sim, onnx_fp32
from quantbench.deploy.onnx_fp32 import Site


def weight_codes(q: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray, int | None]:
    """(int8 codes, float32 scales, int8 zero points, axis or None) of a quantized weight."""
    codes = q.int_repr().numpy().astype(np.int8)
    if q.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric):
        scales = q.q_per_channel_scales().numpy().astype(np.float32)
        zps = q.q_per_channel_zero_points().numpy().astype(np.int8)
        return codes, scales, zps, int(q.q_per_channel_axis())
    scale = np.array(q.q_scale(), dtype=np.float32)
    return codes, scale, np.array(q.q_zero_point(), dtype=np.int8), None


def _dq_node(graph: onnx.GraphProto, name: str, codes, scales, zps, axis: int | None) -> str:
    """Initializers and a DequantizeLinear reading them; the name of its output."""
    onnx_fp32.add_initializer(graph, f"{name}.codes", codes)
    onnx_fp32.add_initializer(graph, f"{name}.scale", scales)
    onnx_fp32.add_initializer(graph, f"{name}.zero_point", zps)
    kwargs = {} if axis is None else {"axis": axis}
    node = helper.make_node(
        "DequantizeLinear",
        [f"{name}.codes", f"{name}.scale", f"{name}.zero_point"],
        [f"{name}.dequantized"],
        **kwargs,
    )
    graph.node.append(node)
    return f"{name}.dequantized"


# Operators that move values without changing them (max pooling picks one of its inputs).
_MOVES = ("Unsqueeze", "Squeeze", "Reshape", "Flatten", "Transpose", "MaxPool")


def _producer(graph: onnx.GraphProto, value: str) -> onnx.NodeProto | None:
    return next((n for n in graph.node if value in n.output), None)


def _dequantizer(graph: onnx.GraphProto, value: str) -> onnx.NodeProto | None:
    """The DequantizeLinear ``value`` comes from, through data movement only; else None."""
    node = _producer(graph, value)
    while node is not None and node.op_type in _MOVES:
        node = _producer(graph, node.input[0])
    return node if node is not None and node.op_type == "DequantizeLinear" else None


def _weight_layout(site: Site, codes: np.ndarray, axis: int | None):
    """Codes and axis as the node reads its weight: a MatMul reads ``Wᵀ`` (in, out)."""
    if site.node.op_type == "MatMul":
        return codes.T, (None if axis is None else 1 - axis)
    return codes, axis


def replace_weight(graph: onnx.GraphProto, site: Site, layer: str, q: torch.Tensor) -> None:
    """Feed ``site`` torch's int8 codes through DequantizeLinear instead of its FP32 weight,
    after checking that the FP32 weight is their dequantized value (the right layer)."""
    codes, scales, zps, axis = weight_codes(q)
    fp32 = numpy_helper.to_array(onnx_fp32.initializers(graph)[site.node.input[1]])
    codes, axis = _weight_layout(site, codes, axis)
    shape = [1] * codes.ndim
    if axis is not None:
        shape[axis] = -1
    expected = (codes.astype(np.float32) - zps.reshape(shape)) * scales.reshape(shape)
    if fp32.shape != codes.shape or not np.allclose(fp32, expected, rtol=1e-6, atol=1e-7):
        raise ValueError(f"the ONNX weight of {layer} does not hold its int8 codes")
    site.node.input[1] = _dq_node(graph, f"{layer}.weight", codes, scales, zps, axis)


def quantize_bias(graph: onnx.GraphProto, site: Site, layer: str, q: torch.Tensor) -> bool:
    """Bias of a Gemm/Conv fed by DequantizeLinear as int32 codes at the product's scale."""
    node = site.node
    if node.op_type not in ("Gemm", "Conv") or len(node.input) < 3 or not node.input[2]:
        return False
    inits = onnx_fp32.initializers(graph)
    source = _dequantizer(graph, node.input[0])
    if source is None or node.input[2] not in inits:
        return False
    x_scale = numpy_helper.to_array(inits[source.input[1]]).astype(np.float32)
    w_scales = weight_codes(q)[1]
    scale = (x_scale * w_scales).astype(np.float32)
    bias = numpy_helper.to_array(inits[node.input[2]]).astype(np.float64)
    codes = np.round(bias / scale.astype(np.float64))
    codes = np.clip(codes, -(2**31), 2**31 - 1).astype(np.int32)
    zps = np.zeros_like(codes) if scale.ndim else np.array(0, dtype=np.int32)
    node.input[2] = _dq_node(graph, f"{layer}.bias", codes, scale, zps, 0 if scale.ndim else None)
    return True


def static_graph(converted: nn.Module, n_features: int):
    """(ONNX model, {layer: (site op, bias quantized)}, simulated layers) of a static graph."""
    twin, layers = fx_sim.simulate(converted)
    flat, names = fx_sim.flat_calls(twin)
    model = onnx_fp32.export_fp32(flat, n_features, matmul=False, names=names)
    graph = model.graph
    weighted = {n: m for n, m in layers.items() if hasattr(m, "codes")}
    sites = onnx_fp32.matrix_sites(model, list(weighted))
    missing = sorted(set(weighted) - set(sites))
    if missing:
        raise ValueError(f"int8 layers {', '.join(missing)} not found in the exported graph")
    done = {}
    for name, site in sites.items():
        q = weighted[name].codes
        bias = quantize_bias(graph, site, name, q)
        replace_weight(graph, site, name, q)
        done[name] = (site.node.op_type, bias)
    return model, done, layers
