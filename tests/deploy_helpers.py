"""Small artifacts for the deploy tests: real preprocessing, a linear model graph made here."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
from onnx import TensorProto, helper, numpy_helper

from quantbench.data.encoding import encoding_of
from quantbench.data.preprocess import preprocess_with_raw_test
from quantbench.data.settings import DataConfig
from quantbench.deploy.artifact import assemble, manifest_record, write_artifact

CLASSES = ("web", "video", "voip")


def flows(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """Flows with an identifier, three numeric columns, two categorical ones and the label."""
    rng = np.random.default_rng(seed)
    label = np.array(CLASSES)[rng.integers(0, 3, n)]
    scale = pd.Series(label).map({"web": 1.0, "video": 10.0, "voip": 0.1}).to_numpy()
    return pd.DataFrame(
        {
            "Flow ID": [f"flow-{i}" for i in range(n)],
            "Flow Duration": rng.gamma(2.0, 1000.0, n) * scale,
            "Total Fwd Packets": rng.integers(1, 200, n),
            "proto": np.array(["tcp", "udp", "icmp"])[rng.integers(0, 3, n)],
            "Packet Length Mean": rng.normal(500.0, 50.0, n) * scale,
            "state": np.array(["CON", "FIN", "INT"])[rng.integers(0, 3, n)],
            "label": label,
        }
    )


@dataclass(frozen=True)
class Layer:
    layer: str
    executes_as: str
    fallback: str | None


@dataclass(frozen=True)
class Graph:
    """Shaped like quantbench.deploy.graph.ModelGraph."""

    model: onnx.ModelProto
    layers: tuple[Layer, ...]
    opset: int
    notes: tuple[str, ...]


def linear_graph(weight: np.ndarray, bias: np.ndarray, opset: int = 18) -> Graph:
    """features [batch, n] -> logits = features @ weight + bias, as the exporter's contract."""
    n, k = weight.shape
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["features", "w"], ["mm"], name="fc_matmul"),
            helper.make_node("Add", ["mm", "b"], ["logits"], name="fc_add"),
        ],
        "model",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", n])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", k])],
        initializer=[numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    return Graph(model, (Layer("fc", "MatMul (fp32)", None),), opset, ("test graph",))


@dataclass(frozen=True)
class Made:
    folder: Path
    raw_csv: Path
    weight: np.ndarray
    bias: np.ndarray
    pre: object
    rows: object
    ds: object


def make_artifact(
    tmp_path: Path, cfg: DataConfig | None = None, seed: int = 0, raw: Path | None = None
) -> Made:
    """An artifact of a seeded linear model over the preprocessing of ``raw`` (default:
    ``flows()`` written to ``tmp_path``)."""
    if raw is None:
        raw = tmp_path / "raw.csv"
        flows(seed=seed).to_csv(raw, index=False)
    cfg = cfg or DataConfig(categorical_columns=("proto", "state"))
    ds, pre, card, rows = preprocess_with_raw_test(str(raw), cfg, seed=1)
    rng = np.random.default_rng(seed)
    weight = rng.normal(0, 1, (ds.n_features, ds.n_classes)).astype(np.float32)
    bias = rng.normal(0, 0.1, ds.n_classes).astype(np.float32)
    enc = encoding_of(pre)
    graph = linear_graph(weight, bias)
    model = assemble(enc, graph.model, ds.n_classes)
    meta = {"method": "fp32", "kind": "fp32", "params": {}, "model": {"arch": "linear"}}
    record = manifest_record(
        enc, graph, classes=pre.class_names, card=card, meta=meta,
        identity={"model": "lin", "replicate": "seed1"}, checkpoint_sha256="0" * 64,
        onnx_sha256="",
    )  # fmt: skip
    folder = tmp_path / "artifact"
    write_artifact(model, record, folder / "model.onnx", folder / "manifest.json")
    return Made(folder, raw, weight, bias, pre, rows, ds)
