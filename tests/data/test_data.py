"""Preprocessing: cleaning, stratified splits, encoders fitted on training rows, the data card."""

from __future__ import annotations

import json
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
import pytest

from quantbench.data.dataset import load_dataset
from quantbench.data.preprocess import preprocess, run_preprocess
from quantbench.data.settings import DataConfig, data_config_from_mapping
from quantbench.data.split import Preprocessor
from quantbench.data.tabular import data_files, expand_sources

CLASSES = ("web", "video", "voip")


def flows(n: int = 600, seed: int = 0) -> pd.DataFrame:
    """A small learnable flow table in the synthetic generator's layout (features + label)."""
    rng = np.random.default_rng(seed)
    label = np.array(CLASSES)[rng.integers(0, 3, n)]
    scale = pd.Series(label).map({"web": 1.0, "video": 10.0, "voip": 0.1}).to_numpy()
    return pd.DataFrame(
        {
            "Flow Duration": rng.gamma(2.0, 1000.0, n) * scale,
            "Total Fwd Packets": rng.integers(1, 200, n),
            "Packet Length Mean": rng.normal(500.0, 50.0, n) * scale,
            "label": label,
        }
    )


def write(frame: pd.DataFrame, path: Path) -> Path:
    frame.to_csv(path, index=False)
    return path


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    return write(flows(), tmp_path / "raw.csv")


def test_splits_scaled_on_training_rows_and_stratified(raw: Path) -> None:
    ds, pre, card = preprocess(str(raw), DataConfig(path=str(raw)), seed=0)
    assert ds.class_names == ("video", "voip", "web")  # sorted
    assert ds.feature_names == ("Flow Duration", "Total Fwd Packets", "Packet Length Mean")
    assert ds.x_train.dtype == np.float32 and ds.y_train.dtype.kind == "i"
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (420, 90, 90)
    np.testing.assert_allclose(ds.x_train.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(ds.x_train.std(axis=0), 1.0, atol=1e-4)
    assert np.abs(ds.x_val.mean(axis=0)).max() > 1e-4  # not refitted on validation rows
    shares = [np.bincount(y, minlength=3) / len(y) for y in (ds.y_train, ds.y_val, ds.y_test)]
    np.testing.assert_allclose(shares[1], shares[0], atol=0.02)
    np.testing.assert_allclose(shares[2], shares[0], atol=0.02)
    assert isinstance(pre, Preprocessor) and pre.class_names == ds.class_names
    assert card["rows"] == {"read": 600, "kept": 600, "train": 420, "val": 90, "test": 90}
    assert sum(card["class_counts"]["test"].values()) == 90


def test_same_seed_same_split_other_seed_other_split(raw: Path) -> None:
    cfg = DataConfig(path=str(raw))
    a, _, _ = preprocess(str(raw), cfg, seed=3)
    b, _, _ = preprocess(str(raw), cfg, seed=3)
    c, _, _ = preprocess(str(raw), cfg, seed=4)
    np.testing.assert_array_equal(a.x_test, b.x_test)
    assert not np.array_equal(a.x_test, c.x_test)


def test_run_preprocess_writes_three_loadable_outputs(raw: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    paths = (out / "dataset.npz", out / "preprocessor.joblib", out / "data_card.json")
    run_preprocess(str(raw), DataConfig(path=str(raw)), 7, *paths)
    ds = load_dataset(paths[0])
    pre = joblib.load(paths[1])
    card = json.loads(paths[2].read_text())
    assert card["seed"] == 7 and card["source_files"] == [str(raw)]
    assert card["feature_names"] == list(ds.feature_names) == list(pre.feature_names)
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in paths)


def test_preprocessor_transforms_raw_rows_like_the_dataset(raw: Path) -> None:
    ds, pre, _ = preprocess(str(raw), DataConfig(path=str(raw)), seed=0)
    again = pre.transform(pd.read_csv(raw))
    every = np.concatenate([ds.x_train, ds.x_val, ds.x_test])
    np.testing.assert_allclose(np.sort(again, axis=0), np.sort(every, axis=0), rtol=1e-6)
    labels = pre.encode_labels(pd.read_csv(raw)["label"])
    assert sorted(np.bincount(labels)) == sorted(
        np.bincount(np.concatenate([ds.y_train, ds.y_val, ds.y_test]))
    )


def test_nonfinite_drop_median_and_card_reasons(tmp_path: Path) -> None:
    frame = flows().astype({"Packet Length Mean": object})
    frame.loc[[3, 4], "Packet Length Mean"] = "Infinity"
    frame.loc[5, "Flow Duration"] = np.nan
    raw = write(frame, tmp_path / "raw.csv")
    ds, _, card = preprocess(str(raw), DataConfig(path=str(raw)), seed=0)
    assert card["rows_dropped"] == {"nonfinite": 3}
    assert card["nonfinite_values"] == {"Flow Duration": 1, "Packet Length Mean": 2}
    assert card["rows"]["kept"] == 597
    ds, pre, card = preprocess(str(raw), DataConfig(path=str(raw), nonfinite="median"), seed=0)
    assert card["rows"]["kept"] == 600 and "nonfinite" not in card["rows_dropped"]
    assert np.isfinite(ds.x_train).all() and np.isfinite(ds.x_test).all()
    assert np.isfinite(pre.transform(frame.head(6))).all()


def test_messy_header_repeated_header_rows_empty_rows(tmp_path: Path) -> None:
    lines = write(flows(60), tmp_path / "clean.csv").read_text().splitlines()
    header = ",".join(f" {c} " for c in lines[0].split(","))
    messy = [header, *lines[1:20], header, ",,,", *lines[20:], header]
    (tmp_path / "messy.csv").write_text("\n".join(messy) + "\n")
    ds, _, card = preprocess(str(tmp_path / "messy.csv"), DataConfig(), seed=0)
    assert ds.feature_names[0] == "Flow Duration"
    assert card["rows_dropped"] == {"empty_row": 1, "repeated_header": 2}
    assert card["rows"]["kept"] == 60


def test_chunked_reading_matches_one_chunk(tmp_path: Path) -> None:
    raw = write(flows(2500), tmp_path / "raw.csv")
    small, _, _ = preprocess(str(raw), DataConfig(chunk_rows=1000), seed=0)
    whole, _, _ = preprocess(str(raw), DataConfig(), seed=0)
    np.testing.assert_array_equal(small.x_train, whole.x_train)
    np.testing.assert_array_equal(small.y_test, whole.y_test)


def test_folder_and_glob_concatenate_files(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    write(flows(300, seed=1), tmp_path / "d" / "a.csv")
    write(flows(300, seed=2), tmp_path / "d" / "B.CSV")
    (tmp_path / "d" / "notes.txt").write_text("not data")
    assert [p.name for p in expand_sources(str(tmp_path / "d"))] == ["B.CSV", "a.csv"]
    _, _, card = preprocess(str(tmp_path / "d" / "*.csv"), DataConfig(), seed=0)
    assert card["rows"]["read"] == 300  # the glob itself is case-sensitive
    _, _, card = preprocess(str(tmp_path / "d"), DataConfig(), seed=0)
    assert card["rows"]["read"] == 600 and len(card["source_files"]) == 2


def test_gzip_file_and_data_files_for_the_workflow(tmp_path: Path) -> None:
    flows().to_csv(tmp_path / "a.csv.gz", index=False)
    _, _, card = preprocess(str(tmp_path / "a.csv.gz"), DataConfig(), seed=0)
    assert card["rows"]["read"] == 600
    write(flows(), tmp_path / "b.csv")
    data = {"preset": None, "csv": {"path": str(tmp_path), "file_glob": None}}
    assert data_files(data) == [tmp_path / "b.csv"]
    data = {"preset": "nsl_kdd", "csv": {"path": str(tmp_path)}}
    with pytest.raises(ValueError, match="no file matching 'KDDTrain"):
        data_files(data)


def test_identifiers_and_drop_columns_are_dropped_with_reasons(tmp_path: Path) -> None:
    frame = flows()
    frame.insert(0, "Flow ID", [f"f{i}" for i in range(len(frame))])
    frame.insert(1, "src_ip", "10.0.0.1")
    frame["Bwd IAT Mean"] = 1.0
    raw = write(frame, tmp_path / "raw.csv")
    cfg = data_config_from_mapping({"csv": {"path": str(raw), "drop_columns": ["Bwd IAT Mean"]}})
    ds, _, card = preprocess(str(raw), cfg, seed=0)
    assert "Flow ID" not in ds.feature_names and "Bwd IAT Mean" not in ds.feature_names
    assert card["columns_dropped"] == {
        "Bwd IAT Mean": "drop_columns",
        "Flow ID": "identifier or leakage column (exclude_columns)",
        "src_ip": "identifier or leakage column (exclude_columns)",
    }


@pytest.mark.parametrize("encoding", ["onehot", "ordinal"])
def test_categorical_columns_fitted_on_training_rows(tmp_path: Path, encoding: str) -> None:
    frame = flows()
    frame["proto"] = np.where(frame["label"] == "voip", "udp", "tcp")
    frame.loc[7, "proto"] = np.nan
    raw = write(frame, tmp_path / "raw.csv")
    cfg = DataConfig(categorical_columns=("proto",), categorical=encoding)
    ds, pre, card = preprocess(str(raw), cfg, seed=0)
    assert card["categorical_columns"] == ["proto"]
    if encoding == "onehot":
        assert ds.feature_names[-3:] == ("proto_missing", "proto_tcp", "proto_udp")
        unseen = frame.head(2).assign(proto="sctp")
        np.testing.assert_array_equal(pre.transform(unseen)[:, -3:], 0.0)  # unknown: all zeros
    else:
        assert ds.feature_names[-1] == "proto"
        assert np.isfinite(pre.transform(frame.head(2).assign(proto="sctp"))).all()


def test_label_map_aliases_and_unmapped_rows(tmp_path: Path) -> None:
    frame = flows()
    frame.loc[frame.index[:40], "label"] = "VIDEO"
    raw = write(frame, tmp_path / "raw.csv")
    cfg = DataConfig(
        label_aliases={"VIDEO": "video"}, label_map={"video": "streaming", "voip": "realtime"}
    )
    ds, pre, card = preprocess(str(raw), cfg, seed=0)
    assert ds.class_names == ("realtime", "streaming")
    n_web = int((frame["label"] == "web").sum())
    assert card["rows_dropped"] == {"unmapped_label": n_web}
    assert card["labels_unmapped"] == {"web": n_web}
    assert list(pre.encode_labels(["VIDEO", "voip"])) == [1, 0]


def test_duplicate_column_policies(tmp_path: Path) -> None:
    lines = write(flows(), tmp_path / "x.csv").read_text().splitlines()
    dup = ["Flow Duration," + lines[0]] + [f"{r.split(',')[0]},{r}" for r in lines[1:]]
    (tmp_path / "dup.csv").write_text("\n".join(dup) + "\n")
    ds, _, card = preprocess(str(tmp_path / "dup.csv"), DataConfig(duplicate_columns="first"), 0)
    assert ds.n_features == 3
    assert card["columns_dropped"] == {"Flow Duration.1": "duplicate of 'Flow Duration' "
                                       "(duplicate_columns: first)"}  # fmt: skip
    ds, _, _ = preprocess(str(tmp_path / "dup.csv"), DataConfig(duplicate_columns="rename"), 0)
    assert ds.feature_names[:2] == ("Flow Duration", "Flow Duration.1")


def test_non_utf8_file_falls_back_with_a_logged_note(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    frame = flows()
    frame["label"] = frame["label"].replace({"web": "web \u2013 tls"})
    raw = tmp_path / "raw.csv"
    frame.to_csv(raw, index=False, encoding="cp1252")
    ds, _, card = preprocess(str(raw), DataConfig(), seed=0)
    assert "web \u2013 tls" in ds.class_names
    assert card["encodings"] == {str(raw): "cp1252"}
    assert "is not UTF-8; reading the file as cp1252" in caplog.text


def test_arff_numeric_and_nominal_attributes(tmp_path: Path) -> None:
    rows = [f"{i},{i % 5}.5,{'tcp' if i % 3 else 'udp'},{'AB'[i % 2]}" for i in range(40)]
    rows[4] = "?,1,tcp,A"
    text = [
        "% a comment",
        "@RELATION 'flows'",
        "@attribute duration numeric",
        "@attribute 'mean iat' REAL",
        "@attribute proto {tcp,udp}",
        "@attribute class1 {A,B}",
        "@data",
        *rows,
    ]
    (tmp_path / "f.arff").write_text("\n".join(text) + "\n")
    cfg = DataConfig(label_column="class1", nonfinite="median")
    ds, _, card = preprocess(str(tmp_path / "f.arff"), cfg, seed=0)
    assert ds.class_names == ("A", "B")
    assert ds.feature_names == ("duration", "mean iat", "proto_tcp", "proto_udp")
    assert card["nonfinite_values"] == {"duration": 1} and card["rows"]["kept"] == 40


def test_no_header_file_with_column_names(tmp_path: Path) -> None:
    body = write(flows(), tmp_path / "x.csv").read_text().splitlines()[1:]
    (tmp_path / "nohead.txt").write_text("\n".join(body) + "\n")
    names = ("Flow Duration", "Total Fwd Packets", "Packet Length Mean", "label")
    cfg = data_config_from_mapping({"csv": {"header": False, "column_names": list(names)}})
    ds, _, card = preprocess(str(tmp_path / "nohead.txt"), cfg, seed=0)
    assert ds.n_features == 3 and card["rows"]["read"] == 600


def test_mapping_flattens_csv_and_treats_null_as_unset() -> None:
    cfg = data_config_from_mapping(
        {
            "source": "csv",
            "synthetic": {"n_flows": 10},
            "csv": {"path": "x.csv", "label_column": None, "drop_columns": [], "label_map": {}},
            "nonfinite": "median",
            "val_fraction": 0.2,
            "test_fraction": 0.1,
            "preset": None,
            "categorical": "ordinal",
        }
    )
    assert (cfg.path, cfg.label_column, cfg.nonfinite, cfg.val_fraction) == (
        "x.csv",
        "label",
        "median",
        0.2,
    )
    assert cfg.categorical == "ordinal" and cfg.drop_columns == ()
