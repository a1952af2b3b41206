"""Weight-only kinds (``rtn``, ``gptq``) on their dequantized execution path: the checkpoint's
packed codes in the file, read back to float32 weights once, when a session opens.

Each quantized layer's FP32 weight initializer is replaced by a constant subgraph of standard
ONNX operators that computes it from what the checkpoint stores:

- the codes, bit-packed as in the checkpoint (:func:`quantbench.quant.weightonly.packing.pack`)
  at a storage width that divides a byte (2, 4 or 8 bits; 3-bit codes take 4, 5- to 7-bit codes
  take 8), unpacked by ``BitShift`` and ``BitwiseAnd``;
- the zero points, packed the same way, and the scales as float16 (the checkpoint's own
  precision), widened by ``Cast``;
- each input column's group: contiguous groups are spread by ``Expand`` and ``Reshape``, while
  act-order groups (GPTQ's ``g_idx``) are looked up by ``Gather`` from a stored index;
- ``W = scale · (code - zero)`` in float32, the arithmetic of
  :meth:`quantbench.quant.weightonly.grid.QuantizedWeight.dequantize`, so the weights are bit
  for bit torch's, then laid out as the product expects (transposed for ``MatMul``, reshaped for
  ``Conv``).

Every input of that subgraph is an initializer, so ONNX Runtime's constant folding (any graph
optimization level above ``ORT_DISABLE_ALL``) computes the weights once at session start and
runs the products in FP32, what torch's ``execution: dequantized`` runs. The file keeps the
codes' size; a session holds FP32 weights. (``DequantizeLinear`` on int4 would be the one-node
form, but ONNX Runtime neither folds it nor leaves it alone: it fuses it with the ``MatMul`` into
its 4-bit kernel, which is the ``int4`` execution path, :mod:`quantbench.deploy.onnx_nbits`.)
"""

from __future__ import annotations

import numpy as np
import onnx
import torch
from onnx import TensorProto, helper, numpy_helper

from quantbench.deploy import onnx_fp32
from quantbench.quant.weightonly.grid import QuantizedWeight
from quantbench.quant.weightonly.packing import pack

STORAGE_BITS = (2, 4, 8)  # code widths that never straddle a byte


def storage_bits(bits: int) -> int:
    return next(b for b in STORAGE_BITS if b >= bits)


class _Builder:
    """Appends the nodes and initializers of one layer's subgraph, names prefixed by layer."""

    def __init__(self, graph: onnx.GraphProto, prefix: str) -> None:
        self.graph, self.prefix = graph, prefix

    def const(self, name: str, array: np.ndarray) -> str:
        return onnx_fp32.add_initializer(self.graph, f"{self.prefix}.{name}", array)

    def node(self, op: str, inputs: list[str], name: str, out: str | None = None, **attrs) -> str:
        output = out or f"{self.prefix}.{name}"
        self.graph.node.append(helper.make_node(op, inputs, [output], **attrs))
        return output

    def unpack(self, values: torch.Tensor, bits: int, name: str) -> str:
        """``values`` (unsigned ints < 2**bits, any shape) stored packed, read back as float32
        of the same shape."""
        width = storage_bits(bits)
        packed = pack(values, width).numpy()
        per_byte = 8 // width
        byte = self.node(
            "Unsqueeze", [self.const(f"{name}.packed", packed), self.axes(-1)], f"{name}.bytes"
        )
        shifts = self.const(f"{name}.shifts", np.arange(0, 8, width, dtype=np.uint8))
        mask = self.const(f"{name}.mask", np.array((1 << width) - 1, dtype=np.uint8))
        split = self.node("BitShift", [byte, shifts], f"{name}.shifted", direction="RIGHT")
        codes = self.node("BitwiseAnd", [split, mask], f"{name}.codes")
        dims = self.shape(list(values.shape))
        if packed.size * per_byte == values.numel():
            shaped = self.node("Reshape", [codes, dims], f"{name}.shaped")
        else:  # the pad codes of the last byte dropped
            flat = self.node("Reshape", [codes, self.shape([-1])], f"{name}.flat")
            kept = self.node(
                "Slice", [flat, self.shape([0]), self.shape([values.numel()])], f"{name}.kept"
            )
            shaped = self.node("Reshape", [kept, dims], f"{name}.shaped")
        return self.node("Cast", [shaped], f"{name}.float", to=TensorProto.FLOAT)

    def per_column(self, grouped: str, qw: QuantizedWeight, name: str) -> str:
        """``grouped`` (out, groups) spread to (out, in): each column its group's value."""
        out, width = qw.codes.shape
        groups = qw.scales.shape[1]
        if qw.groups_contiguous:
            span = width if qw.group_size == -1 else qw.group_size
            cube = self.node("Unsqueeze", [grouped, self.axes(2)], f"{name}.cube")
            spread = self.node("Expand", [cube, self.shape([out, groups, span])], f"{name}.spread")
            if groups * span == width:
                return self.node("Reshape", [spread, self.shape([out, width])], name)
            rows = self.node("Reshape", [spread, self.shape([out, groups * span])], f"{name}.rows")
            return self.node(
                "Slice", [rows, self.shape([0]), self.shape([width]), self.axes(1)], name
            )  # the last group is narrower
        g_idx = qw.g_idx.numpy()
        index_type = np.uint8 if groups <= 256 else np.int32
        stored = self.const(f"{name}.g_idx", g_idx.astype(index_type))
        index = self.node("Cast", [stored], f"{name}.index", to=TensorProto.INT64)
        return self.node("Gather", [grouped, index], name, axis=1)

    def axes(self, axis: int) -> str:
        return self.shape([axis])

    def shape(self, dims: list[int]) -> str:
        """An int64 vector initializer shared by every layer (shapes, axes, slice bounds)."""
        name = "int64_" + "_".join(str(d) for d in dims)
        return onnx_fp32.add_initializer(self.graph, name, np.array(dims, np.int64))


def replace_weight(
    graph: onnx.GraphProto, site: onnx_fp32.Site, layer: str, qw: QuantizedWeight
) -> None:
    """Replace the FP32 weight initializer of the layer's ``MatMul`` or ``Conv`` by the subgraph
    that computes it from ``qw`` (after checking that it holds exactly their dequantized values:
    the right layer)."""
    node = site.node
    name = node.input[1]
    fp32 = numpy_helper.to_array(onnx_fp32.initializers(graph)[name])
    matrix = qw.dequantize().numpy()  # (out, in)
    expected = matrix.T if node.op_type == "MatMul" else matrix.reshape(fp32.shape)
    if fp32.shape != expected.shape or not np.array_equal(fp32, expected):
        raise ValueError(f"the ONNX weight of {layer} does not hold its dequantized codes")
    b = _Builder(graph, f"{layer}.weight")
    bits = qw.grid.bits
    codes = b.unpack(qw.codes, bits, "codes")
    zeros = b.per_column(b.unpack(qw.zeros, bits, "zero_points"), qw, "zero_points.cols")
    scales = qw.scales.numpy().astype(np.float32)
    half = scales.astype(np.float16)
    if np.array_equal(half.astype(np.float32), scales):  # the checkpoint's precision: exact
        scales = b.node("Cast", [b.const("scales", half)], "scales.float", to=TensorProto.FLOAT)
    else:
        scales = b.const("scales", scales)
    centred = b.node("Sub", [codes, zeros], "centred")
    weight = b.node("Mul", [centred, b.per_column(scales, qw, "scales.cols")], "matrix")
    onnx_fp32.remove_initializer(graph, name)  # the subgraph's output takes its name
    if node.op_type == "MatMul":
        b.node("Transpose", [weight], "transposed", out=name, perm=[1, 0])
    else:
        b.node("Reshape", [weight, b.shape(list(fp32.shape))], "shaped", out=name)


def describe(qw: QuantizedWeight, op: str) -> str:
    bits, width = qw.grid.bits, storage_bits(qw.grid.bits)
    stored = f"{bits}-bit codes" + (f" stored {width}-bit" if width != bits else "")
    groups = "per output channel" if qw.group_size == -1 else f"groups of {qw.group_size}"
    order = "" if qw.groups_contiguous else ", act-order group index"
    return f"{op} fp32 on weights read back at session start from {stored} ({groups}{order})"
