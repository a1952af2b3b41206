"""Weight-only ONNX graphs on the dequantized execution path (rtn, gptq; the default for
grouped codes): the checkpoint's packed codes in the file, read back to torch's own float32
weights when ONNX Runtime opens the session."""

from __future__ import annotations

import math

import numpy as np
import onnx
import pytest
from onnx import helper

from quantbench.deploy import onnx_codes
from quantbench.deploy.graph import export_graph
from quantbench.measure.ort import optimized_ops
from quantbench.quant.weightonly.grid import Grid
from quantbench.quant.weightonly.state import unpack_layer
from tests import _deploy, _toy

READ_BACK = {"BitShift", "BitwiseAnd", "Expand", "Gather"}  # ops of the read-back subgraphs


def _weights(model: onnx.ModelProto, names: list[str]) -> dict[str, np.ndarray]:
    """The tensors ``names`` as the graph computes them (added as outputs, run in ORT)."""
    probe = onnx.ModelProto.FromString(model.SerializeToString())
    for name in names:
        probe.graph.output.append(helper.make_empty_tensor_value_info(name))
    session = _deploy.session(probe)
    rows = np.zeros((1, _toy.spec_of().n_features), np.float32)
    return dict(zip(names, session.run(names, {"features": rows}), strict=True))


def _check_weights(loaded, model: onnx.ModelProto, bits: int, symmetric: bool = False) -> None:
    """Every quantized layer's weight, as the graph computes it, is bit for bit torch's
    dequantized weight (the product's input: transposed for MatMul, shaped for Conv)."""
    state = loaded.state
    grid = Grid(bits, symmetric)
    producer = {out: node for node in model.graph.node for out in node.output}
    consumers = {}
    for node in model.graph.node:
        made_by = producer.get(node.input[1]) if node.op_type in ("MatMul", "Conv") else None
        if made_by is not None and made_by.input[0].endswith(".weight.matrix"):
            consumers[made_by.input[0].removesuffix(".weight.matrix")] = node
    assert sorted(consumers) == sorted(state["layers"])
    names = [node.input[1] for node in consumers.values()]
    computed = _weights(model, names)
    for layer, node in consumers.items():
        qw = unpack_layer(state["layers"][layer], grid, int(state["group_size"]))
        matrix = qw.dequantize().numpy()
        got = computed[node.input[1]]
        want = matrix.T if node.op_type == "MatMul" else matrix.reshape(got.shape)
        assert got.dtype == np.float32 and np.array_equal(got, want), layer


@pytest.mark.parametrize("kind", ["rtn", "gptq"])
@pytest.mark.parametrize("arch", _toy.ARCHS)
def test_dequantized_graph_reads_back_torchs_weights(tmp_path, arch, kind):
    loaded = _deploy.checkpoint(tmp_path, arch, kind)
    graph = export_graph(loaded)
    assert "MatMulNBits" not in _deploy.op_types(graph.model)
    assert all(layer.fallback is None for layer in graph.layers)
    for layer in graph.layers:
        if layer.layer in loaded.state["layers"]:
            assert "read back at session start from 4-bit codes" in layer.executes_as, layer
    assert any(note.startswith("dequantized:") for note in graph.notes)
    _check_weights(loaded, graph.model, 4)
    x = _deploy.eval_rows()
    got, want = _deploy.onnx_logits(graph.model, x), _deploy.torch_logits(loaded, x)
    assert np.array_equal(got.argmax(1), want.argmax(1))
    assert np.abs(got - want).max() <= 1e-4  # FP32 products, summed in another order


def test_the_file_holds_the_packed_codes_not_float_weights(tmp_path):
    loaded = _deploy.checkpoint(tmp_path, "mlp", "gptq")
    model = export_graph(loaded).model
    inits = {t.name: t for t in model.graph.initializer}
    assert not [
        t
        for t in inits.values()
        if t.data_type == onnx.TensorProto.FLOAT and math.prod(t.dims) >= 64 * 30
    ]  # fmt: skip  (no float weight matrix left)
    for layer, entry in loaded.state["layers"].items():
        out, width = entry["shape"][0], math.prod(entry["shape"][1:])
        codes = inits[f"{layer}.weight.codes.packed"]
        assert codes.data_type == onnx.TensorProto.UINT8
        assert math.prod(codes.dims) == math.ceil(out * width / 2)  # two 4-bit codes a byte
        assert inits[f"{layer}.weight.scales"].data_type == onnx.TensorProto.FLOAT16
    assert any(name.endswith(".g_idx") for name in inits)  # act-order groups keep their index


def test_onnx_runtime_folds_the_read_back_when_the_session_opens(tmp_path):
    loaded = _deploy.checkpoint(tmp_path, "cnn1d", "rtn")
    path = tmp_path / "model.onnx"
    onnx.save(export_graph(loaded).model, path)
    ops = optimized_ops(path)
    assert not READ_BACK & {op.rsplit(":", 1)[-1] for op in ops}, ops
    assert "Conv" in ops or "com.microsoft:FusedConv" in ops


@pytest.mark.parametrize(
    ("params", "stored"),
    [
        ({"bits": 4, "group_size": -1, "execution": "dequantized"}, "per output channel"),
        ({"bits": 3, "group_size": 16}, "3-bit codes stored 4-bit (groups of 16)"),
        ({"bits": 5, "group_size": 16}, "5-bit codes stored 8-bit (groups of 16)"),
        ({"bits": 2, "group_size": 32, "symmetric": True}, "2-bit codes (groups of 32)"),
        ({"bits": 8, "group_size": 10}, "8-bit codes (groups of 10)"),  # a narrower last group
    ],
)
def test_other_grids_read_back_exactly(tmp_path, params, stored):
    loaded = _deploy.checkpoint(tmp_path, "custom", "rtn", params)
    graph = export_graph(loaded)
    stem = next(layer for layer in graph.layers if layer.layer == "stem")
    assert stem.fallback is None and stored in stem.executes_as, stem.executes_as
    _check_weights(loaded, graph.model, params["bits"], params.get("symmetric", False))


def test_storage_widths_never_straddle_a_byte():
    assert [onnx_codes.storage_bits(b) for b in range(2, 9)] == [2, 4, 4, 8, 8, 8, 8]
