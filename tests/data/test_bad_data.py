"""Bad inputs end in one clear DataError (file, place, fix) and leave no output behind."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from quantbench.data.preprocess import run_preprocess
from quantbench.data.settings import data_config_from_mapping
from quantbench.data.tabular import DataError

OUTPUTS = ("dataset.npz", "preprocessor.joblib", "data_card.json")


def _rows(n: int = 30, classes: tuple[str, ...] = ("web", "video", "voip")) -> list[str]:
    return [f"{i},{(i * 7) % 13}.5,{classes[i % len(classes)]}" for i in range(n)]


def _csv(lines: list[str], header: str = "Flow Duration,Packet Length Mean,label") -> str:
    return "\n".join([header, *lines]) + "\n"


def good() -> str:
    return _csv(_rows())


def _arff(attribute: str) -> str:
    head = ["@relation flows", "@attribute duration numeric", attribute, "@attribute class1 {a,b}"]
    return "\n".join([*head, "@data", *[f"{i},{i},{'ab'[i % 2]}" for i in range(20)]]) + "\n"


# name -> (files to write {name: text|bytes}, path given to run_preprocess, config keys,
#          fragments the message must hold)
Case = tuple[dict[str, str | bytes], str, dict[str, Any], tuple[str, ...]]
CASES: dict[str, Case] = {
    "missing_file": ({}, "nope.csv", {}, ("nope.csv", "no such file", "data.csv.path")),
    "empty_file": ({"f.csv": ""}, "f.csv", {}, ("f.csv", "empty", "data.csv.path")),
    "blank_lines_only": ({"f.csv": "\n\n  \n"}, "f.csv", {}, ("f.csv", "blank lines")),
    "header_only": ({"f.csv": _csv([])}, "f.csv", {}, ("f.csv", "no data rows", "header")),
    "label_column_missing": (
        {"f.csv": good()},
        "f.csv",
        {"label_column": "Label"},
        ("f.csv", "'Label' not found", "Flow Duration, Packet Length Mean, label", "label_column"),
    ),
    "one_class": (
        {"f.csv": _csv(_rows(classes=("web",)))},
        "f.csv",
        {},
        ("f.csv", "only one class ('web', 30 rows)", "label_column"),
    ),
    "class_too_small": (
        {"f.csv": _csv([*_rows(), "1,1,chat", "2,2,chat"])},
        "f.csv",
        {},
        ("f.csv", "class 'chat' has 2 rows", "needs at least 7", "label_map"),
    ),
    "non_numeric_feature": (
        {"f.csv": _csv([*_rows(), "3,fast,web"])},
        "f.csv",
        {},
        ("f.csv", "'Packet Length Mean' is not numeric", "'fast'", "row 31", "drop_columns"),
    ),
    "all_nan_column": (
        {"f.csv": _csv([f"{i},,{'ab'[i % 2]}" for i in range(30)])},
        "f.csv",
        {},
        ("f.csv", "'Packet Length Mean' has no finite value", "drop_columns"),
    ),
    "inf_with_nonfinite_error": (
        {"f.csv": _csv([*_rows(), "5,Infinity,web"])},
        "f.csv",
        {"nonfinite": "error"},
        ("f.csv", "'Packet Length Mean' holds inf in data row 31", "data.nonfinite: drop"),
    ),
    "nan_with_nonfinite_error": (
        {"f.csv": _csv(["1,NaN,web", *_rows()])},
        "f.csv",
        {"nonfinite": "error"},
        ("f.csv", "holds nan in data row 1", "median"),
    ),
    "duplicated_column_names": (
        {"f.csv": _csv(_rows(), header="Flow Duration,Flow Duration,label")},
        "f.csv",
        {},
        ("f.csv", "'Flow Duration' appears more than once", "columns 1 and 2", "duplicate_columns"),
    ),
    "ragged_row": (
        {"f.csv": _csv([*_rows(10), "1,2,3,web", *_rows(20)])},
        "f.csv",
        {},
        ("f.csv line 12", "4 fields where the header has 3", "fix or delete that line"),
    ),
    "label_map_matches_nothing": (
        {"f.csv": good()},
        "f.csv",
        {"label_map": {"WEB": "web", "Video": "video"}},
        ("f.csv", "label_map maps none of the labels found", "'web'", "label"),
    ),
    "label_map_to_one_class": (
        {"f.csv": good()},
        "f.csv",
        {"label_map": {"web": "any", "video": "any", "voip": "any"}},
        ("f.csv", "only one class ('any', 30 rows)", "label_map"),
    ),
    "not_utf8_when_utf8_required": (
        {"f.csv": _csv(_rows()).replace("voip", "vo\u2013ip").encode("cp1252")},
        "f.csv",
        {"encoding": "utf-8"},
        ("f.csv", "byte 0x96 at offset", "not UTF-8", "data.csv.encoding: auto"),
    ),
    "glob_matches_nothing": ({}, "data/*.csv", {}, ("data/*.csv", "matches no file")),
    "folder_without_match": (
        {"d/notes.txt": "x"},
        "d",
        {},
        ("d", "no file matching '*.csv'", "data.csv.file_glob"),
    ),
    "arff_bad_attribute": (
        {"f.arff": _arff("@attribute size")},
        "f.arff",
        {"label_column": "class1"},
        ("f.arff line 3", "@attribute size", "numeric|real|integer|string"),
    ),
    "arff_unknown_type": (
        {"f.arff": _arff("@attribute when date")},
        "f.arff",
        {"label_column": "class1"},
        ("f.arff line 3", "'@attribute when date'", "{value1,value2,...}"),
    ),
    "arff_without_data": (
        {"f.arff": "@relation x\n@attribute a numeric\n@attribute class1 {a,b}\n"},
        "f.arff",
        {"label_column": "class1"},
        ("f.arff", "no @data line"),
    ),
    "files_with_different_columns": (
        {"d/a.csv": good(), "d/b.csv": _csv(_rows(), header="Flow Duration,Bwd IAT Mean,label")},
        "d",
        {},
        ("b.csv", "differ from", "a.csv", "Packet Length Mean", "Bwd IAT Mean", "drop_columns"),
    ),
    "drop_column_not_in_file": (
        {"f.csv": good()},
        "f.csv",
        {"drop_columns": ["Flow IAT Max"]},
        (
            "f.csv",
            "drop_columns names 'Flow IAT Max'",
            "columns found",
            "fix data.csv.drop_columns",
        ),
    ),
    "categorical_column_not_in_file": (
        {"f.csv": good()},
        "f.csv",
        {"categorical_columns": ["proto"]},
        ("f.csv", "categorical column 'proto' not found", "categorical_columns"),
    ),
    "no_header_wrong_field_count": (
        {"f.txt": "\n".join(_rows()) + "\n"},
        "f.txt",
        {"header": False, "column_names": ["a", "label"]},
        ("f.txt", "line 1 has 3 fields but 2 column names", "data.csv.header"),
    ),
    "every_row_nonfinite": (
        {
            "f.csv": _csv(
                ["0,,voip", *(f"inf,{i},web" if i % 2 else f",{i},voip" for i in range(30))]
            )
        },
        "f.csv",
        {},
        ("f.csv", "no row is left", "'nonfinite': 31", "data.nonfinite: median"),
    ),
    "every_label_empty": (
        {"f.csv": _csv([f"{i},{i}," for i in range(30)])},
        "f.csv",
        {},
        ("f.csv", "no row is left", "missing_label", "label_column 'label'"),
    ),
}


def _write(tmp_path: Path, files: dict[str, str | bytes]) -> None:
    for name, content in files.items():
        target = tmp_path / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8")


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_fails_clearly_and_leaves_no_output(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    files, path, keys, fragments = CASES[name]
    _write(tmp_path, files)
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "results"
    out.mkdir()
    for stale in OUTPUTS:  # a previous run's outputs must not survive a failed run
        (out / stale).write_text("old")
    cfg = data_config_from_mapping({"csv": {"path": path, **keys}})
    with pytest.raises(DataError) as info:
        run_preprocess(path, cfg, 0, *(out / o for o in OUTPUTS))
    message = str(info.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, f"{fragment!r} not in {message!r}"
    assert sorted(p.name for p in out.iterdir()) == []


CONFIG_CASES: dict[str, tuple[dict[str, Any], tuple[str, ...]]] = {
    "unknown_preset": ({"preset": "kdd99"}, ("data.preset", "'kdd99'", "nsl_kdd", "unsw_nb15")),
    "negative_fraction": (
        {"val_fraction": -0.1},
        ("data.val_fraction", "-0.1", "above 0 and at most 0.5"),
    ),
    "fraction_one": (
        {"test_fraction": 1.0},
        ("data.test_fraction", "1.0", "above 0 and at most 0.5"),
    ),
    "fractions_sum_to_one": (
        {"val_fraction": 0.5, "test_fraction": 0.5},
        ("data.val_fraction", "0.5", "must stay below 1"),
    ),
    "bad_nonfinite": ({"nonfinite": "zero"}, ("data.nonfinite", "'zero'", "drop, median, error")),
    "bad_categorical": ({"categorical": "hash"}, ("data.categorical", "onehot, ordinal")),
    "bad_encoding": ({"csv": {"encoding": "ascii"}}, ("data.csv.encoding", "auto, utf-8")),
    "bad_duplicate_policy": (
        {"csv": {"duplicate_columns": "last"}},
        ("data.csv.duplicate_columns", "error, first, rename"),
    ),
    "unknown_key": ({"csv": {"lable_column": "x"}}, ("data.csv.lable_column", "unknown key")),
    "no_header_without_names": ({"csv": {"header": False}}, ("data.csv.column_names",)),
    "drop_columns_not_a_list": ({"csv": {"drop_columns": "id"}}, ("data.csv.drop_columns",)),
    "tiny_chunks": ({"csv": {"chunk_rows": 10}}, ("data.csv.chunk_rows", ">= 1000")),
}


@pytest.mark.parametrize("name", sorted(CONFIG_CASES))
def test_bad_data_config_names_key_value_and_choices(name: str) -> None:
    mapping, fragments = CONFIG_CASES[name]
    with pytest.raises(ValueError) as info:
        data_config_from_mapping(mapping)
    for fragment in fragments:
        assert fragment in str(info.value), f"{fragment!r} not in {info.value!s}"


def test_cases_are_distinct_and_enough() -> None:
    assert len(CASES) + len(CONFIG_CASES) >= 30
    assert len({case[3] for case in CASES.values()}) == len(CASES)
