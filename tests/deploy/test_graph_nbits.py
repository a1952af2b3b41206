"""Weight-only ONNX graphs on the int4 execution path (rtn, gptq): MatMulNBits holding the
checkpoint's own codes (``export_nbits`` takes any grid, whatever the checkpoint's execution)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from onnx import helper, numpy_helper

from quantbench.deploy.graph import export_graph, export_nbits
from quantbench.quant.weightonly.grid import Grid
from quantbench.quant.weightonly.packing import unpack
from quantbench.quant.weightonly.state import unpack_layer
from tests import _deploy, _toy

WEIGHT_ONLY = ("rtn", "gptq")


def _parity(graph, loaded) -> tuple[float, float]:
    x = _deploy.eval_rows()
    got, want = _deploy.onnx_logits(graph.model, x), _deploy.torch_logits(loaded, x)
    return float((got.argmax(1) == want.argmax(1)).mean()), float(np.abs(got - want).max())


@pytest.mark.parametrize("kind", WEIGHT_ONLY)
@pytest.mark.parametrize("arch", _toy.ARCHS)
def test_weight_only_graph_agrees_with_torch(tmp_path, arch, kind):
    loaded = _deploy.checkpoint(tmp_path, arch, kind)
    graph = export_nbits(loaded)
    assert _parity(graph, loaded)[0] >= 0.995
    ops = _deploy.op_types(graph.model)
    assert "MatMulNBits" in ops and "Gemm" not in ops
    assert any("accuracy_level 4" in note for note in graph.notes)
    # at accuracy_level 0 the product is FP32 on exactly the dequantized codes
    exact = export_nbits(loaded, level=0)
    agreement, delta = _parity(exact, loaded)
    assert agreement == 1.0 and delta <= 1e-4


def _nodes(model, op):
    return [n for n in model.graph.node if n.op_type == op]


def _array(model, name):
    tensor = next(t for t in model.graph.initializer if t.name == name)
    return numpy_helper.to_array(tensor).copy()  # writable, for torch.from_numpy


def test_matmulnbits_holds_the_checkpoint_codes(tmp_path):
    loaded = _deploy.checkpoint(tmp_path, "mlp", "gptq")
    model = export_nbits(loaded).model
    grid = Grid(4, False)
    nodes = _nodes(model, "MatMulNBits")
    assert len(nodes) == len(loaded.state["layers"])
    for node in nodes:
        layer = node.input[1].removesuffix(".weight.packed")
        qw = unpack_layer(loaded.state["layers"][layer], grid, 16)
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        n, k = qw.codes.shape
        assert (attrs["N"], attrs["K"], attrs["bits"], attrs["block_size"]) == (n, k, 4, 16)
        packed = _array(model, node.input[1])
        codes = unpack(torch.from_numpy(packed.reshape(-1)), 4, (n, packed.shape[1] * 16))
        perm = _array(model, f"{layer}.act_order")  # act-order: columns in block order
        assert torch.equal(codes[:, :k], qw.codes[:, torch.from_numpy(perm)])
        assert np.array_equal(_array(model, node.input[2]), qw.scales.numpy())
        blocks = packed.shape[1]
        zeros = unpack(
            torch.from_numpy(_array(model, node.input[3]).reshape(-1)), 4, (n, -(-blocks // 2) * 2)
        )
        assert torch.equal(
            zeros[:, :blocks],
            qw.zeros[:, torch.unique_consecutive(qw.g_idx[torch.from_numpy(perm)])],
        )


def test_convolutions_fall_back_with_a_reason(tmp_path):
    graph = export_nbits(_deploy.checkpoint(tmp_path, "cnn1d", "rtn"))
    by_name = {layer.layer: layer for layer in graph.layers}
    for conv in ("blocks.conv0", "blocks.conv1"):
        assert by_name[conv].fallback and "Conv1d" in by_name[conv].fallback
        assert by_name[conv].executes_as.startswith("Conv fp32")
    assert by_name["fc"].fallback is None and by_name["fc"].executes_as.startswith("MatMulNBits")


@pytest.mark.parametrize(
    ("params", "expect"),
    [
        (
            {"bits": 4, "group_size": -1, "execution": "dequantized"},
            "MatMulNBits 4-bit block 32 (one block per output row",
        ),
        ({"bits": 3, "group_size": 16}, "MatMulNBits 4-bit block 16 holding 3-bit codes"),
        ({"bits": 5, "group_size": 16}, "MatMulNBits 8-bit block 16 holding 5-bit codes"),
        ({"bits": 2, "group_size": 32, "symmetric": True}, "MatMulNBits 2-bit block 32"),
    ],
)
def test_other_grids_keep_their_codes(tmp_path, params, expect):
    loaded = _deploy.checkpoint(tmp_path, "custom", "rtn", params)
    graph = export_nbits(loaded, level=0)
    stem = next(layer for layer in graph.layers if layer.layer == "stem")
    assert stem.executes_as.startswith(expect) and stem.fallback is None
    x = _deploy.eval_rows()
    got, want = _deploy.onnx_logits(graph.model, x), _deploy.torch_logits(loaded, x)
    assert np.array_equal(got.argmax(1), want.argmax(1))  # torch: the dequantized weights
    assert np.abs(got - want).max() <= 1e-4


def test_group_size_that_is_no_block_size_falls_back(tmp_path):
    loaded = _deploy.checkpoint(tmp_path, "mlp", "rtn", {"bits": 4, "group_size": 10})
    graph = export_nbits(loaded)
    assert all("power of two" in layer.fallback for layer in graph.layers)
    assert "MatMulNBits" not in _deploy.op_types(graph.model)
    x = _deploy.eval_rows()
    got, want = _deploy.onnx_logits(graph.model, x), _deploy.torch_logits(loaded, x)
    assert np.abs(got - want).max() <= 1e-4


def test_the_int4_execution_path_exports_matmulnbits(tmp_path):
    """export_graph follows the checkpoint's execution: int4 (torch's 4-bit kernel) is
    MatMulNBits in ONNX Runtime, at the accuracy level asked for."""
    params = {"bits": 4, "group_size": 32, "execution": "int4"}
    loaded = _deploy.checkpoint(tmp_path, "mlp", "rtn", params)
    for level in (0, 4):
        model = export_graph(loaded, accuracy_level=level).model
        nodes = _nodes(model, "MatMulNBits")
        assert len(nodes) == len(loaded.state["layers"])
        levels = {helper.get_attribute_value(a) for n in nodes for a in n.attribute
                  if a.name == "accuracy_level"}  # fmt: skip
        assert levels == {level}
