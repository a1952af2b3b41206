"""Dynamic int8 ONNX graphs (ptq_dynamic; per-channel weight-only codes on torch's int8 path)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from onnx import numpy_helper

from quantbench.deploy import onnx_dynamic
from quantbench.deploy.graph import export_graph
from quantbench.quant.ao import backend
from tests import _deploy, _toy


def _parity(graph, loaded, x) -> tuple[float, float]:
    got, want = _deploy.onnx_logits(graph.model, x), _deploy.torch_logits(loaded, x)
    return float((got.argmax(1) == want.argmax(1)).mean()), float(np.abs(got - want).max())


@pytest.mark.parametrize("arch", _toy.ARCHS)
def test_dynamic_graph_agrees_with_torch_int8(tmp_path, arch):
    loaded = _deploy.checkpoint(tmp_path, arch, "ptq_dynamic")
    graph = export_graph(loaded)
    x = _deploy.eval_rows()
    assert _parity(graph, loaded, x)[0] >= 0.995
    # the activation range is the batch's, as in torch: a smaller batch agrees as well
    assert _parity(graph, loaded, x[:64])[0] >= 0.98
    assert "MatMulInteger" in _deploy.op_types(graph.model)
    assert all(layer.fallback is None for layer in graph.layers)
    assert any("x64quantprecision" in note for note in graph.notes)


def test_dynamic_graph_holds_torch_codes(tmp_path):
    loaded = _deploy.checkpoint(tmp_path, "custom", "ptq_dynamic", {"per_channel": True})
    model = export_graph(loaded).model
    inits = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    for name in ("stem", "blocks.0.fc1", "blocks.0.fc2", "head"):
        q = loaded.module.get_submodule(name).weight()
        assert np.array_equal(inits[f"{name}.weight.codes"], q.int_repr().numpy().T)
        assert np.array_equal(
            inits[f"{name}.weight.scale"], q.q_per_channel_scales().numpy().astype(np.float32)
        )
    x = _deploy.eval_rows()
    got, want = _deploy.onnx_logits(model, x), _deploy.torch_logits(loaded, x)
    assert np.abs(got - want).max() <= 1e-4  # MLP-like: the same integer products as torch


def test_per_channel_weight_only_codes_run_as_torch_int8(tmp_path):
    loaded = _deploy.checkpoint(tmp_path, "mlp", "rtn", {"bits": 4, "group_size": -1})
    graph = export_graph(loaded)
    assert all(layer.executes_as.startswith("int8 dynamic") for layer in graph.layers)
    x = _deploy.eval_rows()
    agreement, delta = _parity(graph, loaded, x)
    assert agreement == 1.0 and delta <= 1e-4
    inits = {t.name: numpy_helper.to_array(t) for t in graph.model.graph.initializer}
    codes = loaded.state["layers"]["layers.head"]
    head = loaded.module.get_submodule("layers.head").weight()
    assert np.array_equal(inits["layers.head.weight.codes"], head.int_repr().numpy().T)
    assert codes["scales"].shape[1] == 1


@pytest.mark.parametrize(
    "engine", [e for e in ("x86", "fbgemm", "onednn") if e in backend.supported_engines()]
)
def test_dynamic_graph_reproduces_torch_on_every_engine(tmp_path, engine):
    """The activation range comes from what torch's kernels compute, not from the engine's
    name: onednn's dynamic Linear honours the modules' reduce_range like x86 does."""
    loaded = _deploy.checkpoint(tmp_path, "mlp", "ptq_dynamic", {"engine": engine})
    graph = export_graph(loaded)
    agreement, delta = _parity(graph, loaded, _deploy.eval_rows())
    assert agreement >= 0.999 and delta <= 0.05  # onednn rounds a few ties its own way


def test_a_dynamic_linear_no_range_reproduces_is_refused():
    layer = torch.ao.nn.quantized.dynamic.Linear(4, 3)
    weight = torch.randn(3, 4, generator=torch.Generator().manual_seed(0)) * 0.3
    layer.set_weight_bias(torch.quantize_per_tensor(weight, 0.01, 0, torch.qint8), torch.zeros(3))

    class Skewed(torch.nn.Module):  # a kernel that rounds its input to another grid
        in_features = 4

        def __init__(self) -> None:
            super().__init__()
            self.inner = layer

        def _get_name(self) -> str:
            return "DynamicQuantizedLinear"

        def weight(self):
            return layer.weight()

        def bias(self):
            return layer.bias()

        def forward(self, x):
            return layer(x) + 0.5

    with pytest.raises(ValueError, match="matches neither 7- nor 8-bit activations"):
        onnx_dynamic.activation_qmax({"fc": Skewed()})


def test_one_activation_code_rounded_the_other_way_still_picks_the_range():
    # a cnn1d's fc layer on torch 2.13: one tie rounded apart from torch (7-bit), all of the
    # outputs off with 8 bits; outputs up to about 30
    steps = {127: 0.008, 255: 0.004}  # one activation step times the largest weight
    pick = onnx_dynamic.pick_qmax
    assert pick({127: 0.0134, 255: 0.2147}, {127: 2e-6, 255: 0.03}, 30.0, steps) == 127
    assert pick({127: 0.2147, 255: 1e-6}, {127: 0.03, 255: 1e-7}, 30.0, steps) == 255
    with pytest.raises(ValueError, match="matches neither"):  # not clearly nearer
        pick({127: 0.10, 255: 0.21}, {127: 0.0005, 255: 0.001}, 30.0, steps)
    with pytest.raises(ValueError, match="matches neither"):  # every output off, both ranges
        pick({127: 0.5, 255: 2.5}, {127: 0.5, 255: 2.4}, 30.0, steps)
