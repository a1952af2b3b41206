"""quantbench predict: raw CSV rows in, classes and probabilities out; one line on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest

from quantbench.data.settings import DataConfig
from quantbench.deploy.cli import main
from quantbench.deploy.predict import predict_csv
from tests.deploy_helpers import flows, make_artifact

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def made(tmp_path_factory: pytest.TempPathFactory):
    return make_artifact(tmp_path_factory.mktemp("artifact"))


def new_rows(n: int = 250, seed: int = 5) -> pd.DataFrame:
    return flows(n, seed=seed)


def expected(made, frame: pd.DataFrame) -> np.ndarray:
    logits = made.pre.transform(frame) @ made.weight + made.bias
    return np.exp(logits - logits.max(1, keepdims=True)) / np.exp(
        logits - logits.max(1, keepdims=True)
    ).sum(1, keepdims=True)


def test_predicts_every_row_in_chunks_keeping_identifiers(made, tmp_path: Path) -> None:
    frame = new_rows()
    src = tmp_path / "new.csv"
    frame.rename(columns={"proto": " proto "}).to_csv(src, index=False)  # header whitespace
    out = tmp_path / "out.csv"
    assert predict_csv(made.folder, src, out, chunk_rows=64) == 250
    got = pd.read_csv(out)
    assert list(got.columns) == [
        "Flow ID", "label", "predicted", "probability_video", "probability_voip", "probability_web",
    ]  # fmt: skip
    assert (got["Flow ID"] == frame["Flow ID"]).all() and (got["label"] == frame["label"]).all()
    probs = expected(made, frame)
    np.testing.assert_allclose(got.iloc[:, 3:].to_numpy(), probs, atol=1e-5)
    names = np.array(made.pre.class_names)
    assert (got["predicted"].to_numpy() == names[probs.argmax(1)]).all()


def test_without_label_or_identifier_columns(made, tmp_path: Path) -> None:
    src = tmp_path / "plain.csv"
    new_rows(20).drop(columns=["label", "Flow ID"]).to_csv(src, index=False)
    out = tmp_path / "out.csv"
    assert main(["predict", str(made.folder), str(src), "-o", str(out)]) == 0
    assert pd.read_csv(out).columns[0] == "predicted"


def _bad(made, tmp_path: Path, frame_or_text, capsys, artifact=None) -> str:
    src = tmp_path / "bad.csv"
    if isinstance(frame_or_text, str):
        src.write_text(frame_or_text)
    else:
        frame_or_text.to_csv(src, index=False)
    out = tmp_path / "out.csv"
    code = main(
        ["predict", str(artifact or made.folder), str(src), "-o", str(out), "--chunk-rows", "50"]
    )
    err = capsys.readouterr().err.strip()
    assert code == 1 and not out.exists()
    assert len(err.splitlines()) == 1 and err.startswith("quantbench predict: ")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".out.csv")]
    return err


def test_missing_column(made, tmp_path: Path, capsys) -> None:
    err = _bad(made, tmp_path, new_rows().drop(columns=["Total Fwd Packets"]), capsys)
    assert "bad.csv: column 'Total Fwd Packets' is missing" in err and "give the columns" in err


def test_extra_unexpected_column(made, tmp_path: Path, capsys) -> None:
    err = _bad(made, tmp_path, new_rows().assign(extra=1.0), capsys)
    assert "column 'extra' (column 8) is not a feature of this artifact" in err
    assert "remove it from the file" in err


def test_non_numeric_value_names_row_and_column(made, tmp_path: Path, capsys) -> None:
    frame = new_rows().astype({"Packet Length Mean": object})
    frame.loc[120, "Packet Length Mean"] = "12,5 kB"  # third chunk of 50 rows
    err = _bad(made, tmp_path, frame, capsys)
    assert "data row 121, column 'Packet Length Mean': '12,5 kB' is not a number" in err


def test_unknown_category(made, tmp_path: Path, capsys) -> None:
    frame = new_rows()
    frame.loc[7, "proto"] = "sctp"
    err = _bad(made, tmp_path, frame, capsys)
    assert "data row 8, column 'proto': category 'sctp' was never seen in training" in err
    assert "known: icmp, tcp, udp" in err


def test_nonfinite_value_when_trained_without_imputing(made, tmp_path: Path, capsys) -> None:
    frame = new_rows()
    frame.loc[3, "Flow Duration"] = np.inf
    err = _bad(made, tmp_path, frame, capsys)
    assert "data row 4, column 'Flow Duration': inf" in err and "data.nonfinite: drop" in err


def test_tampered_artifact(made, tmp_path: Path, capsys) -> None:
    import shutil

    copy = tmp_path / "tampered"
    shutil.copytree(made.folder, copy)
    model = onnx.load(copy / "model.onnx")
    model.graph.initializer[-1].raw_data = bytes(len(model.graph.initializer[-1].raw_data))
    onnx.save(model, copy / "model.onnx")
    err = _bad(made, tmp_path, new_rows(), capsys, artifact=copy)
    assert "differs from the manifest's" in err and "re-export the artifact" in err


def test_artifact_of_another_format_version(made, tmp_path: Path, capsys) -> None:
    import shutil

    copy = tmp_path / "old"
    shutil.copytree(made.folder, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    (copy / "manifest.json").write_text(json.dumps({**manifest, "format_version": 99}))
    err = _bad(made, tmp_path, new_rows(), capsys, artifact=copy)
    assert "artifact format version 99, this quantbench reads version 1" in err


def test_median_imputing_artifact_accepts_missing_values(tmp_path: Path) -> None:
    cfg = DataConfig(categorical_columns=("proto", "state"), nonfinite="median")
    made = make_artifact(tmp_path, cfg)
    frame = new_rows(40)
    frame.loc[[2, 9], "Flow Duration"] = [np.nan, np.inf]
    src, out = tmp_path / "gaps.csv", tmp_path / "out.csv"
    frame.to_csv(src, index=False)
    predict_csv(made.folder, src, out)
    got = pd.read_csv(out)
    np.testing.assert_allclose(got.iloc[:, 3:].to_numpy(), expected(made, frame), atol=1e-5)


def test_console_script_runs_without_torch(made, tmp_path: Path) -> None:
    src, out = tmp_path / "new.csv", tmp_path / "out.csv"
    new_rows(30).to_csv(src, index=False)
    code = (
        "import sys; from quantbench.deploy.cli import main; "
        f"rc = main(['predict', {str(made.folder)!r}, {str(src)!r}, '-o', {str(out)!r}]); "
        "assert 'torch' not in sys.modules, 'torch was imported'; "
        "assert 'sklearn' not in sys.modules, 'scikit-learn was imported'; sys.exit(rc)"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
        env={"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # no progress line when stderr is not a terminal
    assert len(pd.read_csv(out)) == 30


def test_progress_line_only_when_asked_for_a_terminal(made, tmp_path: Path, capsys) -> None:
    src, out = tmp_path / "new.csv", tmp_path / "out.csv"
    new_rows(120).to_csv(src, index=False)
    predict_csv(made.folder, src, out, chunk_rows=50, progress=True)
    err = capsys.readouterr().err
    updates = err.split("\r")[1:]  # one per chunk (50, 100, 120 rows), then the final line
    assert [u.split(" rows")[0] for u in updates] == ["quantbench predict: " + n for n in
                                                      ("50", "100", "120", "120")]  # fmt: skip
    assert err.endswith("\n") and err.count("\n") == 1
    predict_csv(made.folder, src, out, chunk_rows=50)  # stderr is not a terminal under pytest
    assert capsys.readouterr().err == ""


def test_recommended_artifact_or_one_line_when_none_passes(made, tmp_path: Path) -> None:
    from quantbench.deploy.predict import PredictError, predict_recommended

    src, out = tmp_path / "new.csv", tmp_path / "out.csv"
    new_rows(10).to_csv(src, index=False)
    rec = tmp_path / "recommendation.json"
    artifact = str(made.folder / "model.onnx")
    rec.write_text(json.dumps({"models": [{"model": "lin", "artifact": artifact}]}))
    assert predict_recommended(str(rec), "lin", str(src), str(out)) == 10
    rec.write_text(json.dumps({"models": [{"model": "lin", "artifact": None}]}))
    with pytest.raises(PredictError, match="no deployable artifact for model 'lin'"):
        predict_recommended(str(rec), "lin", str(src), str(tmp_path / "none.csv"))
    assert not (tmp_path / "none.csv").exists()


def test_the_console_script_points_at_the_cli() -> None:
    import importlib
    import re

    text = (ROOT / "pyproject.toml").read_text()  # tomllib needs Python 3.11
    section = text.split("[project.scripts]", 1)[1].split("\n[", 1)[0]
    module, func = re.search(r'^quantbench = "([\w.]+):(\w+)"$', section, re.M).groups()
    assert getattr(importlib.import_module(module), func) is main


FIXTURES = ROOT / "tests" / "fixtures"
PRESET_FILES = {
    "unsw_nb15": ("UNSW_NB15_training-set.csv", ["id", "attack_cat", "label"]),
    "nsl_kdd": ("KDDTrain+.txt", ["label", "difficulty"]),
    "cic_darknet2020": ("darknet.csv", None),
}


@pytest.mark.parametrize("preset", sorted(PRESET_FILES))
def test_a_preset_file_is_read_as_the_workflow_read_it(preset: str, tmp_path: Path) -> None:
    from quantbench.data.settings import data_config_from_mapping
    from quantbench.data.tabular import iter_chunks, numeric_block, open_table

    name, kept = PRESET_FILES[preset]
    path = FIXTURES / name
    cfg = data_config_from_mapping({"preset": preset, "csv": {"path": str(path)}})
    made = make_artifact(tmp_path, cfg, raw=path)
    out = tmp_path / "out.csv"
    args = ["predict", str(made.folder), str(path), "-o", str(out)]
    assert main([*args, "--unknown-categories", "encode", "--nonfinite", "blank"]) == 0
    got = pd.read_csv(out, dtype=str, keep_default_na=False)
    table = open_table(path, cfg.read_spec())
    raw = pd.concat(iter_chunks(table, cfg.read_spec(), set(table.columns)))
    assert len(got) == len(raw)
    if kept is not None:  # identifier and label columns come back as they were
        assert list(got.columns[: len(kept)]) == kept
        for c in kept:
            assert (got[c].str.strip() == raw[c].fillna("").astype(str).str.strip()).all(), c
    numbers = numeric_block(raw.reset_index(drop=True), made.pre.numeric_columns, "raw")
    blank = ~np.isfinite(numbers).all(axis=1)  # written blank: --nonfinite blank
    assert (got["predicted"] == "").to_numpy().tolist() == blank.tolist()
    assert set(got["predicted"][~blank]) <= set(made.pre.class_names)
    probs = got.filter(like="probability_")[~blank].astype(float).to_numpy()
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    assert (got.filter(like="probability_")[blank] == "").all(axis=None)
