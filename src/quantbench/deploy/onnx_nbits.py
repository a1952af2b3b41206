"""Weight-only kinds (``rtn``, ``gptq``) as ``com.microsoft.MatMulNBits`` with the checkpoint's
own codes, scales and zero points.

MatMulNBits multiplies float activations ``A`` (…, K) by a weight stored as ``bits``-bit codes
in blocks of ``block_size`` consecutive input columns, each block with its own scale and zero
point: ``W[n, k] = (code - zero) · scale``, the grid of :mod:`quantbench.grid`. So each Linear
layer's block size is the checkpoint's group size, and:

- ``group_size: -1`` (one scale per output row) is one block covering the whole row, the block
  size being the power of two (≥ 16) at or above the input width; the padding columns hold the
  row's zero code, which dequantizes to 0;
- act-order groups (GPTQ's ``g_idx``) become contiguous blocks once the input columns are
  permuted: the graph gathers ``A``'s columns in that order before the product (ONNX Runtime
  deprecated MatMulNBits's own ``g_idx`` input);
- ONNX Runtime 1.32's CPU kernel takes 2, 4 and 8 bits; 3-bit codes are stored as 4-bit
  codes and 5- to 7-bit codes as 8-bit codes (the same codes and zero points, wider storage);
- whether ONNX Runtime accepts a (bits, block size) pair is asked of it once per pair.

A layer MatMulNBits cannot run (a convolution, a group size that is not a power of two, groups
that do not become contiguous blocks) runs FP32 with its dequantized weights, and says why.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from quantbench.deploy import onnx_fp32
from quantbench.quant.weightonly.grid import QuantizedWeight
from quantbench.quant.weightonly.packing import pack

NATIVE_BITS = (2, 4, 8)
MIN_BLOCK = 16


@dataclass(frozen=True)
class Plan:
    """How one layer's codes become MatMulNBits inputs."""

    bits: int  # storage bits (a native width at or above the codes' bits)
    block: int  # block_size
    perm: np.ndarray | None  # input columns in block order (act-order), else None


def _pow2_at_least(n: int) -> int:
    return max(MIN_BLOCK, 1 << (n - 1).bit_length())


def plan(qw: QuantizedWeight) -> Plan | str:
    """The layer's MatMulNBits layout, or why it has none."""
    width = qw.codes.shape[1]
    bits = next(b for b in NATIVE_BITS if b >= qw.grid.bits)
    if qw.group_size == -1:
        return Plan(bits, _pow2_at_least(width), None)
    gs = qw.group_size
    if gs < MIN_BLOCK or gs & (gs - 1):
        return (
            f"group size {gs} is not a power of two >= {MIN_BLOCK}, which MatMulNBits's "
            "block_size must be"
        )
    if qw.groups_contiguous:
        return Plan(bits, gs, None)
    g_idx = qw.g_idx.numpy()
    perm = np.argsort(g_idx, kind="stable")
    counts = np.bincount(g_idx, minlength=qw.scales.shape[1])
    if (counts[:-1] != gs).any() or counts[-1] > gs:
        return "act-order groups of unequal sizes do not become contiguous blocks"
    return Plan(bits, gs, perm)


@functools.cache
def ort_accepts(bits: int, block: int, accuracy_level: int) -> str | None:
    """None when ONNX Runtime runs MatMulNBits with these attributes, else its first line."""
    import onnxruntime as ort

    k, n = block, 16
    node = helper.make_node(
        "MatMulNBits", ["A", "B", "s"], ["Y"], domain=onnx_fp32.MS_DOMAIN,
        K=k, N=n, bits=bits, block_size=block, accuracy_level=accuracy_level,
    )  # fmt: skip
    inits = [
        numpy_helper.from_array(np.zeros((n, 1, block * bits // 8), np.uint8), "B"),
        numpy_helper.from_array(np.ones((n, 1), np.float32), "s"),
    ]
    graph = helper.make_graph(
        [node], "probe",
        [helper.make_tensor_value_info("A", TensorProto.FLOAT, [1, k])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [1, n])], inits,
    )  # fmt: skip
    model = helper.make_model(
        graph,
        opset_imports=[
            helper.make_opsetid("", onnx_fp32.OPSET),
            helper.make_opsetid(onnx_fp32.MS_DOMAIN, 1),
        ],
    )
    try:
        session = ort.InferenceSession(
            model.SerializeToString(), providers=["CPUExecutionProvider"]
        )
        session.run(None, {"A": np.ones((1, k), np.float32)})
    except Exception as exc:  # the runtime's refusal, whatever its type
        return str(exc).strip().splitlines()[0][-200:]
    return None


def pack_blocks(qw: QuantizedWeight, p: Plan) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(B (N, blocks, blob) uint8, scales (N, blocks) float32, zero points (N, ·) uint8)."""
    codes, zeros = qw.codes.long(), qw.zeros.long()
    if p.perm is not None:
        codes = codes[:, torch.from_numpy(p.perm)]
    n, width = codes.shape
    blocks = math.ceil(width / p.block)
    pad = blocks * p.block - width
    if pad:  # the last block's own zero code: the padding dequantizes to exactly 0
        codes = torch.cat([codes, zeros[:, -1:].expand(n, pad)], dim=1)
    packed = pack(codes, p.bits).numpy().reshape(n, blocks, p.block * p.bits // 8)
    per_byte = 8 // p.bits
    zpad = (-blocks) % per_byte
    zeros = torch.cat([zeros, zeros.new_zeros(n, zpad)], dim=1) if zpad else zeros
    packed_zeros = pack(zeros, p.bits).numpy().reshape(n, -1)
    return packed, qw.scales.numpy().astype(np.float32), packed_zeros


def replace_matmul(
    graph: onnx.GraphProto, site: onnx_fp32.Site, layer: str, qw: QuantizedWeight,
    p: Plan, accuracy_level: int,
) -> None:  # fmt: skip
    """Swap the layer's FP32 MatMul for MatMulNBits on its codes (after checking that the FP32
    weight is their dequantized value: the right layer)."""
    node = site.node
    fp32 = numpy_helper.to_array(onnx_fp32.initializers(graph)[node.input[1]])
    expected = qw.dequantize().numpy().T
    if fp32.shape != expected.shape or not np.allclose(fp32, expected, rtol=1e-6, atol=1e-7):
        raise ValueError(f"the ONNX weight of {layer} does not hold its dequantized codes")
    b, scales, zeros = pack_blocks(qw, p)
    names = [f"{layer}.weight.{s}" for s in ("packed", "scales", "zero_points")]
    for name, array in zip(names, (b, scales, zeros), strict=True):
        onnx_fp32.add_initializer(graph, name, array)
    a = node.input[0]
    if p.perm is not None:
        perm = onnx_fp32.add_initializer(graph, f"{layer}.act_order", p.perm.astype(np.int64))
        gather = helper.make_node("Gather", [a, perm], [f"{layer}.act_order_input"], axis=-1)
        graph.node.append(gather)
        a = gather.output[0]
    n, k = qw.codes.shape
    nbits = helper.make_node(
        "MatMulNBits", [a, *names], [node.output[0]], domain=onnx_fp32.MS_DOMAIN,
        K=k, N=n, bits=p.bits, block_size=p.block, accuracy_level=accuracy_level,
    )  # fmt: skip
    graph.node.remove(node)
    graph.node.append(nbits)


def describe(qw: QuantizedWeight, p: Plan, accuracy_level: int) -> str:
    text = f"MatMulNBits {p.bits}-bit block {p.block}"
    if p.bits != qw.grid.bits:
        text += f" holding {qw.grid.bits}-bit codes"
    if qw.group_size == -1:
        text += " (one block per output row: per-channel)"
    if p.perm is not None:
        text += ", input columns gathered in act-order"
    return f"{text}, accuracy_level {accuracy_level}"
