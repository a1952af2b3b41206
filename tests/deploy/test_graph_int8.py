"""int8 ONNX graphs (ptq_static, qat) run torch's own scales and codes and agree with torch."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import numpy_helper

from quantbench.deploy.graph import export_graph
from tests import _deploy, _toy

STATIC_KINDS = ("ptq_static", "qat")


def _agreement(graph, loaded) -> float:
    x = _deploy.eval_rows()
    got, want = _deploy.onnx_logits(graph.model, x), _deploy.torch_logits(loaded, x)
    return float((got.argmax(1) == want.argmax(1)).mean())


@pytest.mark.parametrize("kind", STATIC_KINDS)
@pytest.mark.parametrize("arch", _toy.ARCHS)
def test_static_graph_agrees_with_torch_int8(tmp_path, arch, kind):
    loaded = _deploy.checkpoint(tmp_path, arch, kind)
    graph = export_graph(loaded)
    assert _agreement(graph, loaded) >= 0.995
    ops = _deploy.op_types(graph.model)
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    int8 = [layer for layer in graph.layers if layer.executes_as.startswith("QDQ int8")]
    assert int8 and all(layer.fallback is None for layer in graph.layers)


def _initializer(model, name):
    return numpy_helper.to_array(next(t for t in model.graph.initializer if t.name == name))


def test_static_graph_holds_torch_scales_and_codes(tmp_path):
    loaded = _deploy.checkpoint(tmp_path, "custom", "ptq_static")
    model = export_graph(loaded).model
    for name in ("stem", "blocks.0.fc1", "blocks.0.fc2", "head"):
        q = loaded.module.get_submodule(name).weight()
        codes = _initializer(model, f"{name}.weight.codes")
        assert codes.dtype == np.int8
        assert np.array_equal(codes, q.int_repr().numpy())
        scales = _initializer(model, f"{name}.weight.scale")
        assert np.array_equal(scales, q.q_per_channel_scales().numpy().astype(np.float32))
    # every activation scale torch uses is a QuantizeLinear scale of the graph, and vice versa
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    graph_scales = {
        float(inits[n.input[1]]) for n in model.graph.node if n.op_type == "QuantizeLinear"
    }
    gm = loaded.module
    torch_scales = {float(gm.get_submodule(n).scale) for n in ("stem", "blocks.0.fc1", "head")}
    torch_scales |= {float(gm.get_submodule(n).scale) for n in ("blocks.0.fc2",)}
    torch_scales |= {float(v) for k, v in gm.state_dict().items() if k.endswith("scale_0")}
    assert {np.float32(s) for s in graph_scales} == {np.float32(s) for s in torch_scales}


def test_static_graph_fuses_to_integer_kernels(tmp_path):
    loaded = _deploy.checkpoint(tmp_path, "cnn1d", "ptq_static")
    model = export_graph(loaded).model
    options = _deploy.ort.SessionOptions()
    options.optimized_model_filepath = str(tmp_path / "optimized.onnx")
    options.graph_optimization_level = _deploy.ort.GraphOptimizationLevel.ORT_ENABLE_EXTENDED
    _deploy.ort.InferenceSession(model.SerializeToString(), options)
    optimized = _deploy.onnx.load(options.optimized_model_filepath)
    ops = {n.op_type for n in optimized.graph.node}
    assert {"QGemm", "QLinearConv"} <= ops
    assert not ops & {"Gemm", "Conv", "MatMul"}


def test_per_tensor_static_weights_keep_one_scale(tmp_path):
    params = {"calibration_samples": 2048, "observer": "minmax", "per_channel": False}
    loaded = _deploy.checkpoint(tmp_path, "mlp", "ptq_static", params)
    graph = export_graph(loaded)
    assert _agreement(graph, loaded) >= 0.995
    q = loaded.module.get_submodule("layers.fc0").weight()
    scale = _initializer(graph.model, "layers.fc0.weight.scale")
    assert scale.shape == () and scale == np.float32(q.q_scale())
    assert all("per-tensor" in layer.executes_as for layer in graph.layers)


def test_static_graph_finds_each_layer_of_repeated_blocks(tmp_path, monkeypatch):
    """blocks.0.fc1 and blocks.1.fc1 share their last name, which the exporter's scopes show."""
    spec = {**_toy.SPECS["custom"], "params": {"width": 32, "blocks": 2}}
    monkeypatch.setitem(_toy.SPECS, "custom_2_blocks", spec)
    monkeypatch.setitem(_toy.EPOCHS, "custom_2_blocks", _toy.EPOCHS["custom"])
    loaded = _deploy.checkpoint(tmp_path, "custom_2_blocks", "ptq_static")
    graph = export_graph(loaded)
    int8 = {layer.layer for layer in graph.layers if layer.executes_as.startswith("QDQ int8")}
    assert int8 == {"stem", "blocks.0.fc1", "blocks.0.fc2", "blocks.1.fc1", "blocks.1.fc2", "head"}
    assert all(layer.fallback is None for layer in graph.layers)
    assert _agreement(graph, loaded) >= 0.995
