"""encoding.json: the fitted preprocessing's numbers, read back exactly and without sklearn."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import joblib
import numpy as np
import pytest

from quantbench.data.encoding import encoding_of, read_encoding
from quantbench.data.preprocess import run_preprocess
from quantbench.data.settings import DataConfig
from tests.deploy_helpers import flows

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module", params=["onehot", "ordinal"])
def data(request, tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp(request.param)
    frame = flows(400)
    numeric = [c for c in frame.columns if c not in ("proto", "state", "label")]
    frame.loc[3, numeric[0]] = np.nan  # the imputer gets a median to fill
    frame.to_csv(root / "raw.csv", index=False)
    cfg = DataConfig(categorical_columns=("proto", "state"), categorical=request.param,
                     nonfinite="median")  # fmt: skip
    names = ("dataset.npz", "preprocessor.joblib", "data_card.json", "test_raw.npz")
    run_preprocess(str(root / "raw.csv"), cfg, 3, *(root / n for n in names),
                   encoding_out=root / "encoding.json")  # fmt: skip
    return root


def test_the_file_holds_exactly_what_the_fitted_preprocessor_does(data: Path):
    pre = joblib.load(data / "preprocessor.joblib")
    want, got = encoding_of(pre), read_encoding(data / "encoding.json")
    assert got.feature_names == pre.feature_names and got.class_names == pre.class_names
    enc = got.encoding
    assert want.median is not None and want.vocabularies  # imputer and categories both fitted
    assert (want.ordinal_mean is not None) == (want.categorical_mode == "ordinal")
    assert (enc.numeric, enc.categorical) == (want.numeric, want.categorical)
    assert enc.categorical_mode == want.categorical_mode
    assert enc.vocabularies == want.vocabularies and enc.n_features == want.n_features
    for name in ("mean", "scale", "median", "ordinal_mean", "ordinal_scale"):
        a, b = getattr(enc, name), getattr(want, name)
        assert (a is None) == (b is None), name
        if a is not None:  # bit for bit: float32 values survive the JSON round trip
            assert a.dtype == np.float32 and a.tobytes() == b.tobytes(), name


def test_an_export_reads_it_without_importing_sklearn(data: Path):
    code = (
        "import sys; sys.path.insert(0, sys.argv[1])\n"
        "from quantbench.data.encoding import read_encoding\n"
        "from quantbench.deploy.preprocess_graph import preprocess_graph\n"
        "preprocess_graph(read_encoding(sys.argv[2]).encoding, 21)\n"
        "print(' '.join(m for m in ('sklearn', 'scipy', 'joblib') if m in sys.modules))\n"
    )
    cmd = [sys.executable, "-c", code, str(ROOT / "src"), str(data / "encoding.json")]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_a_damaged_file_is_refused_in_one_line(data: Path, tmp_path: Path):
    record = json.loads((data / "encoding.json").read_text())
    del record["mean"]
    bad = tmp_path / "encoding.json"
    bad.write_text(json.dumps(record))
    with pytest.raises(ValueError, match="rerun the preprocess step") as err:
        read_encoding(bad)
    assert "\n" not in str(err.value) and str(bad) in str(err.value)
    bad.write_text(json.dumps({**record, "version": 99}))
    with pytest.raises(ValueError, match="not a quantbench-encoding file of version 1"):
        read_encoding(bad)
