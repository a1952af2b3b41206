"""Dataset presets on small fixtures in each public dataset's real layout (invented values)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from quantbench.data.preprocess import preprocess, run_preprocess
from quantbench.data.presets import NSL_KDD_FEATURES, PRESETS, preset_defaults
from quantbench.data.settings import DataConfig, data_config_from_mapping

FIXTURES = Path(__file__).parents[1] / "fixtures"

# preset -> (path given as data.csv.path, classes, dropped columns that must be listed,
#            categorical columns, features)
EXPECTED: dict[str, tuple[str, tuple[str, ...], set[str], list[str], int]] = {
    "cic_darknet2020": (
        "darknet.csv",
        ("Audio-Streaming", "Browsing", "Chat", "File-Transfer", "Video-Streaming"),
        {"Flow ID", "Src IP", "Src Port", "Dst IP", "Dst Port", "Timestamp", "Label"},
        [],
        77,
    ),
    "iscx_vpn2016": ("iscx_vpn2016.arff", ("BROWSING", "CHAT", "STREAMING", "VOIP"), set(), [], 23),
    "cic_ids2017": (
        "ids2017.csv",
        ("BENIGN", "DDoS", "PortScan", "Web Attack \u2013 Brute Force"),
        {"Destination Port", "Fwd Header Length.1"},
        [],
        76,
    ),
    "cse_cic_ids2018": (
        "ids2018_*.csv",
        ("Benign", "FTP-BruteForce", "SSH-Bruteforce"),
        {"Flow ID", "Src IP", "Src Port", "Dst IP", "Dst Port", "Timestamp"},
        [],
        77,
    ),
    "unsw_nb15": (
        ".",
        ("Exploits", "Fuzzers", "Generic", "Normal"),
        {"id", "label"},
        ["proto", "service", "state"],
        39 + 9,
    ),
    "nsl_kdd": (
        ".",
        ("dos", "normal", "probe", "r2l"),
        {"difficulty"},
        ["protocol_type", "service", "flag"],
        38 + 9,
    ),
}


def _run(preset: str, tmp_path: Path, **csv: Any) -> tuple[Path, dict[str, Any]]:
    path = str(FIXTURES / EXPECTED[preset][0])
    cfg = data_config_from_mapping({"preset": preset, "csv": {"path": path, **csv}})
    out = tmp_path / "out"
    run_preprocess(path, cfg, 0, out / "d.npz", out / "p.joblib", out / "card.json")
    return out, json.loads((out / "card.json").read_text())


def test_every_preset_has_a_fixture_and_an_expectation() -> None:
    assert set(EXPECTED) == set(PRESETS)


@pytest.mark.parametrize("preset", sorted(EXPECTED))
def test_preset_reads_its_dataset_layout(preset: str, tmp_path: Path) -> None:
    _, classes, dropped, categorical, n_features = EXPECTED[preset]
    _, card = _run(preset, tmp_path)
    assert card["preset"] == preset
    assert tuple(card["class_names"]) == classes
    assert dropped <= set(card["columns_dropped"])
    assert card["categorical_columns"] == categorical
    assert len(card["feature_names"]) == n_features
    for split in ("train", "val", "test"):
        assert all(n > 0 for n in card["class_counts"][split].values()), split


def test_darknet_merges_spelling_variants_and_keeps_second_label(tmp_path: Path) -> None:
    _, card = _run("cic_darknet2020", tmp_path)
    assert card["label_column"] == "Label.1"
    assert card["class_counts"]["train"]["Audio-Streaming"] > card["class_counts"]["train"]["Chat"]
    assert card["rows_dropped"] == {"nonfinite": 1}


def test_ids2017_cp1252_whitespace_infinity_and_duplicate_header(tmp_path: Path) -> None:
    _, card = _run("cic_ids2017", tmp_path)
    assert card["encodings"] == {str(FIXTURES / "ids2017.csv"): "cp1252"}
    assert "Flow Duration" in card["feature_names"]  # header whitespace stripped
    assert card["columns_dropped"]["Fwd Header Length.1"].startswith("duplicate of")
    assert card["rows_dropped"] == {"nonfinite": 3}
    assert card["nonfinite_values"]["Flow Bytes/s"] == 3


def test_ids2018_repeated_headers_and_files_with_extra_id_columns(tmp_path: Path) -> None:
    _, card = _run("cse_cic_ids2018", tmp_path)
    assert [Path(f).name for f in card["source_files"]] == ["ids2018_a.csv", "ids2018_b.csv"]
    assert card["rows_dropped"] == {"nonfinite": 2, "repeated_header": 2}
    assert card["rows"]["read"] == 68


def test_nsl_kdd_names_columns_and_maps_attacks_to_categories(tmp_path: Path) -> None:
    _, card = _run("nsl_kdd", tmp_path)
    assert card["numeric_columns"][0] == "duration"
    assert "service_http" in card["feature_names"]
    raw, _, _ = preprocess(
        str(FIXTURES / "KDDTrain+.txt"),
        DataConfig(
            header=False,
            column_names=(*NSL_KDD_FEATURES, "label", "difficulty"),
            categorical_columns=("protocol_type", "service", "flag"),
            exclude_columns=("difficulty",),
        ),
        seed=0,
    )
    assert "neptune" in raw.class_names  # without the preset's label_map: raw attack names


def test_preset_keys_are_overridden_one_by_one(tmp_path: Path) -> None:
    cfg = data_config_from_mapping(
        {"preset": "unsw_nb15", "categorical": "ordinal", "csv": {"label_column": "label"}}
    )
    assert cfg.label_column == "label"  # user's
    assert cfg.categorical_columns == ("proto", "service", "state")  # preset's
    assert cfg.file_glob == "UNSW_NB15_t*-set.csv"
    _, card = _run("unsw_nb15", tmp_path, label_column="label", drop_columns=["attack_cat"])
    assert card["class_names"] == ["0", "1"]
    assert card["columns_dropped"]["attack_cat"] == "drop_columns"
    assert "label" not in card["columns_dropped"]  # the label column is never excluded


def test_unsw_binary_task_must_drop_attack_cat(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="'attack_cat' is not numeric"):
        _run("unsw_nb15", tmp_path, label_column="label", exclude_columns=["id"])


def test_user_label_map_replaces_the_preset_one(tmp_path: Path) -> None:
    nsl = {name: "attack" for name in preset_defaults("nsl_kdd")["label_map"]}
    _, card = _run("nsl_kdd", tmp_path, label_map={**nsl, "normal": "normal"})
    assert card["class_names"] == ["attack", "normal"]


def test_unknown_preset_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"data\.preset: 'cicids' is not a known preset"):
        data_config_from_mapping({"preset": "cicids"})
