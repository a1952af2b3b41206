"""The preprocessing graph reproduces Preprocessor.transform on raw rows, in ONNX Runtime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pandas as pd
import pytest

from quantbench.data.encoding import encoding_of
from quantbench.data.preprocess import preprocess_with_raw_test, run_preprocess
from quantbench.data.rawrows import load_raw_rows
from quantbench.data.settings import DataConfig
from quantbench.deploy.preprocess_graph import preprocess_graph

CLASSES = ("web", "video", "voip")


def flows(n: int = 600, seed: int = 0, nonfinite: bool = False) -> pd.DataFrame:
    """Flows with two numeric columns, a count and two categorical columns."""
    rng = np.random.default_rng(seed)
    label = np.array(CLASSES)[rng.integers(0, 3, n)]
    scale = pd.Series(label).map({"web": 1.0, "video": 10.0, "voip": 0.1}).to_numpy()
    duration = rng.gamma(2.0, 1000.0, n) * scale
    if nonfinite:
        duration[rng.choice(n, 30, replace=False)] = np.nan
        duration[rng.choice(n, 10, replace=False)] = np.inf
    return pd.DataFrame(
        {
            "Flow Duration": duration,
            "Total Fwd Packets": rng.integers(1, 200, n),
            "proto": np.array(["tcp", "udp", "icmp"])[rng.integers(0, 3, n)],
            "Packet Length Mean": rng.normal(500.0, 50.0, n) * scale,
            "state": np.array(["CON", "FIN", "INT", ""])[rng.integers(0, 4, n)],
            "label": label,
        }
    )


def session(model) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


@pytest.mark.parametrize(
    ("categorical", "nonfinite", "cats"),
    [("onehot", "drop", ("proto", "state")), ("ordinal", "median", ("proto", "state")),
     ("onehot", "median", ()), ("ordinal", "drop", ("proto",))],
)  # fmt: skip
def test_graph_matches_transform_on_raw_test_rows(tmp_path: Path, categorical, nonfinite, cats):
    raw = tmp_path / "raw.csv"
    frame = flows(nonfinite=nonfinite == "median")
    frame = frame.drop(columns=[c for c in ("proto", "state") if c not in cats])
    frame.to_csv(raw, index=False)
    cfg = DataConfig(categorical=categorical, categorical_columns=cats, nonfinite=nonfinite)
    ds, pre, _, rows = preprocess_with_raw_test(str(raw), cfg, seed=1)
    enc = encoding_of(pre)
    model = preprocess_graph(enc, opset=18)
    names = [i.name for i in model.graph.input]
    assert names == (["numeric", "categorical"] if cats else ["numeric"])
    (features,) = session(model).run(["features"], rows.feeds())
    assert features.shape == ds.x_test.shape
    np.testing.assert_allclose(features, ds.x_test, atol=1e-5, rtol=1e-5)
    if nonfinite == "median":
        assert np.isnan(rows.numeric).any()  # imputed in the graph, not before it


def test_unknown_category_encodes_like_the_encoder(tmp_path: Path) -> None:
    raw = tmp_path / "raw.csv"
    flows().to_csv(raw, index=False)
    for mode in ("onehot", "ordinal"):
        cfg = DataConfig(categorical=mode, categorical_columns=("proto", "state"))
        _, pre, _, rows = preprocess_with_raw_test(str(raw), cfg, seed=1)
        sess = session(preprocess_graph(encoding_of(pre), opset=18))
        frame = pd.DataFrame(rows.numeric[:3], columns=list(rows.numeric_columns))
        frame["proto"], frame["state"] = ["sctp", "tcp", "gre"], ["CON", "XYZ", "FIN"]
        want = pre.transform(frame)
        cats = frame[["proto", "state"]].to_numpy(dtype=object)
        (got,) = sess.run(None, {"numeric": rows.numeric[:3], "categorical": cats})
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_run_preprocess_writes_raw_test_rows(tmp_path: Path) -> None:
    raw = tmp_path / "raw.csv"
    flows().to_csv(raw, index=False)
    outs = {k: tmp_path / f"{k}.out" for k in ("ds", "pre", "card", "rawtest")}
    cfg = DataConfig(categorical_columns=("proto", "state"))
    run_preprocess(str(raw), cfg, 1, outs["ds"], outs["pre"], outs["card"], outs["rawtest"])
    rows = load_raw_rows(outs["rawtest"])
    assert rows.numeric.dtype == np.float32 and len(rows) == 90
    assert rows.categorical_columns == ("proto", "state")
    assert set(rows.categorical[:, 1]) <= {"CON", "FIN", "INT", "missing"}
