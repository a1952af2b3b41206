"""The FP32 export: torch layers found from the exporter's scope paths; a cheap first export."""

from __future__ import annotations

import hashlib
import subprocess
import sys
from collections import OrderedDict
from pathlib import Path

import pytest
import torch
from torch import nn

from quantbench.deploy import onnx_fp32
from quantbench.deploy.graph import export_graph
from tests import _deploy

ROOT = Path(__file__).resolve().parents[2]
MODULES = [
    "layers", "layers.fc0", "encoder", "encoder.0", "encoder.0.attn", "encoder.0.attn.qkv",
    "blocks", "blocks.0", "blocks.0.fc1", "inner", "inner.fc", "other", "other.fc",
]  # fmt: skip


@pytest.mark.parametrize(
    ("node", "module"),
    [
        ("/layers/fc0/Gemm", "layers.fc0"),
        ("/encoder/encoder.0/attn/qkv/MatMul", "encoder.0.attn.qkv"),
        ("/encoder/encoder.0/attn/Constant_3", "encoder.0.attn"),
        ("/blocks/blocks.0/fc1/Gemm", "blocks.0.fc1"),
        ("/inner/fc_1/Gemm", "inner.fc"),  # the second call of inner.fc
        ("/Flatten", None),  # outside every module
        ("Constant_12", None),  # no scope at all
        ("/layers/fc9/Gemm", None),  # no such module
        ("/fc/Gemm", None),  # inner.fc or other.fc: ambiguous
    ],
)
def test_scope_paths_name_the_module_or_none(node, module):
    assert onnx_fp32.scope_module(node, MODULES) == module


class Nested(nn.Module):
    """Containers, a module dict, a grandchild called from the root and a module called twice."""

    def __init__(self) -> None:
        super().__init__()
        self.a = nn.Sequential(nn.Sequential(nn.Linear(4, 4)), nn.ReLU())
        self.b = nn.ModuleList([nn.ModuleList([nn.Linear(4, 4), nn.Linear(4, 4)])])
        self.d = nn.ModuleDict({"k": nn.Linear(4, 4)})
        self.inner = nn.Sequential(OrderedDict(fc=nn.Linear(4, 4)))
        self.other = nn.Sequential(OrderedDict(fc=nn.Linear(4, 4)))
        self.head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.b[0][1](self.b[0][0](self.a(x)))
        x = self.inner.fc(self.d["k"](x))  # scope "fc": inner.fc or other.fc, so no module
        return self.head(self.other(self.other(x)))


def test_exported_nodes_carry_their_torch_module():
    torch.manual_seed(0)
    model = onnx_fp32.export_fp32(Nested(), 4, matmul=False)
    gemms = [onnx_fp32.node_module(n) for n in model.graph.node if n.op_type == "Gemm"]
    assert gemms == ["a.0.0", "b.0.0", "b.0.1", "d.k", None, "other.fc", "other.fc", "head"]
    sites = onnx_fp32.matrix_sites(model, ["a.0.0", "d.k", "inner.fc", "other.fc"])
    assert sorted(sites) == ["a.0.0", "d.k"]  # inner.fc untraced, other.fc found twice
    finished = onnx_fp32.finish(model)
    assert all(not n.metadata_props for n in finished.graph.node)
    assert onnx_fp32.MODULE_KEY.encode() not in finished.SerializeToString()


def test_layer_without_a_module_falls_back_with_its_reason(tmp_path, monkeypatch):
    real = onnx_fp32.scope_module

    def lose_head(node: str, modules: list[str]) -> str | None:
        found = real(node, modules)
        return None if found == "layers.head" else found

    monkeypatch.setattr(onnx_fp32, "scope_module", lose_head)
    graph = export_graph(_deploy.checkpoint(tmp_path, "mlp", "rtn"))
    by_name = {layer.layer: layer for layer in graph.layers}
    assert by_name["layers.fc0"].fallback is None
    head = by_name["layers.head"]
    assert head.fallback and "not found" in head.fallback
    assert head.executes_as == "operators not traced to it fp32 on the dequantized codes"
    assert "BitShift" in _deploy.op_types(graph.model)  # the traced layers keep their codes
    untraced = [n for n in graph.model.graph.node if n.op_type == "MatMul"][-1]
    inits = {t.name for t in graph.model.graph.initializer}
    assert untraced.input[1] in inits  # the head: its float weights as they are


_CHILD = """
import hashlib, sys, warnings
import torch
from torch import nn
from quantbench.deploy import onnx_fp32
torch.manual_seed(0)
module = nn.Sequential(nn.Linear(6, 5), nn.ReLU(), nn.Linear(5, 3))
warnings.simplefilter("error")  # a warning the export lets through fails it
model = onnx_fp32.finish(onnx_fp32.export_fp32(module, 6))
print(hashlib.sha256(model.SerializeToString()).hexdigest())
print(" ".join(m for m in ("torch._dynamo", "onnxscript") if m in sys.modules))
"""


def test_first_export_in_a_process_is_quiet_deterministic_and_skips_dynamo():
    runs = [
        subprocess.run(
            [sys.executable, "-c", _CHILD],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=ROOT,
            env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"},
        )
        for _ in range(2)
    ]
    for run in runs:
        assert run.returncode == 0 and run.stderr == "", run.stderr
        digest, imported, end = run.stdout.split("\n")
        assert len(digest) == len(hashlib.sha256().hexdigest()) and end == ""
        assert imported == ""  # neither torch._dynamo nor onnxscript was imported
    assert runs[0].stdout == runs[1].stdout  # the same bytes in two fresh processes
