"""The FP32 ONNX graph of every architecture agrees with torch."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import pytest

from quantbench.deploy import onnx_fp32
from quantbench.deploy.graph import export_graph
from tests import _deploy, _toy


@pytest.mark.parametrize("arch", _toy.ARCHS)
def test_fp32_graph_matches_torch(tmp_path, arch):
    loaded = _deploy.checkpoint(tmp_path, arch, "fp32")
    graph = export_graph(loaded)
    x = _deploy.eval_rows()
    got, want = _deploy.onnx_logits(graph.model, x), _deploy.torch_logits(loaded, x)
    assert np.array_equal(got.argmax(1), want.argmax(1))
    assert np.abs(got - want).max() <= 1e-4
    assert "Gemm" not in _deploy.op_types(graph.model)
    assert graph.opset == onnx_fp32.OPSET
    assert all(layer.fallback is None for layer in graph.layers)
    assert {layer.layer for layer in graph.layers} == {
        name for name, m in loaded.module.named_modules() if name and m._parameters
    }


def test_fp32_graph_io_and_dynamic_batch(tmp_path):
    graph = export_graph(_deploy.checkpoint(tmp_path, "mlp", "fp32"))
    (inp,), (out,) = graph.model.graph.input, graph.model.graph.output
    assert (inp.name, out.name) == ("features", "logits")
    for value, width in ((inp, _toy.FEATURES), (out, _toy.CLASSES)):
        dims = value.type.tensor_type.shape.dim
        assert value.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
        assert (dims[0].dim_param, dims[1].dim_value) == ("batch", width)
    x = _deploy.eval_rows()
    assert _deploy.onnx_logits(graph.model, x[:1]).shape == (1, _toy.CLASSES)
    assert _deploy.onnx_logits(graph.model, x[:37]).shape == (37, _toy.CLASSES)


def test_fp32_export_is_deterministic(tmp_path):
    loaded = _deploy.checkpoint(tmp_path, "cnn1d", "fp32")
    first = export_graph(loaded).model.SerializeToString()
    assert export_graph(loaded).model.SerializeToString() == first
    assert str(_toy.EXAMPLE.parents[1]).encode() not in first  # no source paths inside


@pytest.mark.parametrize("kind", ["ptq_static", "ptq_dynamic", "gptq"])
def test_quantized_graphs_take_any_batch_size(tmp_path, kind):
    graph = export_graph(_deploy.checkpoint(tmp_path, "transformer", kind))
    session = _deploy.session(graph.model)
    x = _deploy.eval_rows().numpy()
    for n in (1, 3):
        assert session.run(["logits"], {"features": x[:n]})[0].shape == (n, _toy.CLASSES)


def test_unknown_kind_and_bad_accuracy_level_are_refused(tmp_path):
    loaded = _deploy.checkpoint(tmp_path, "mlp", "fp32")
    odd = dataclasses.replace(loaded, meta={**loaded.meta, "kind": "awq"})
    with pytest.raises(ValueError, match="no ONNX export for kind 'awq'"):
        export_graph(odd)
    rtn = _deploy.checkpoint(tmp_path, "mlp", "rtn")
    with pytest.raises(ValueError, match="accuracy_level must be 0, 1 or 4"):
        export_graph(rtn, accuracy_level=2)
