"""What the fitted preprocessing does, as plain arrays, and its JSON file.

The preprocess step fits a scikit-learn pipeline (:mod:`quantbench.data.split`) and pickles it;
the export step needs only its numbers (the scaler's means and scales, the imputer's medians,
the categories of each categorical column) to build the same preprocessing as an ONNX graph.
Unpickling the pipeline would import scikit-learn (and through it scipy), seconds of start-up
in every export; so the preprocess step also writes those numbers as JSON
(``data/{rep}/encoding.json``, :func:`write_encoding`), which the export reads with the json
module alone (:func:`read_encoding`). Floats are written as Python floats, which read back
exactly; the arrays are float32 as the graph uses them.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

ENCODING_FORMAT = "quantbench-encoding"
ENCODING_VERSION = 1


@dataclass(frozen=True)
class Vocabulary:
    """One categorical column: its known categories in encoder order."""

    column: str
    categories: tuple[str, ...]


@dataclass(frozen=True)
class Encoding:
    """What the fitted preprocessor does, as plain arrays (the graph and the manifest use it)."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    mean: np.ndarray  # float32, one per numeric column
    scale: np.ndarray
    median: np.ndarray | None  # float32 fill values, None without imputing
    categorical_mode: str  # "onehot" or "ordinal" ("" without categorical columns)
    vocabularies: tuple[Vocabulary, ...]
    ordinal_mean: np.ndarray | None  # float32 scaler of the ordinal codes
    ordinal_scale: np.ndarray | None
    n_features: int

    def __post_init__(self) -> None:
        if not self.numeric and not self.categorical:
            raise ValueError("the preprocessor has no feature column")
        for name in ("mean", "scale"):
            if getattr(self, name).shape != (len(self.numeric),):
                raise ValueError(f"{name} needs one value per numeric column")
        if self.categorical_mode not in ("onehot", "ordinal", ""):
            raise ValueError(f"unknown categorical encoding {self.categorical_mode!r}")


def _scaler_arrays(scaler: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    mean = np.zeros(n) if scaler.mean_ is None else np.asarray(scaler.mean_)
    scale = np.ones(n) if scaler.scale_ is None else np.asarray(scaler.scale_)
    return mean.astype(np.float32), scale.astype(np.float32)


def encoding_of(pre: Any) -> Encoding:
    """The fitted parts of a :class:`~quantbench.data.split.Preprocessor`, checked."""
    from sklearn.pipeline import Pipeline

    parts = {name: step for name, step, _ in pre.transformer.transformers_ if name != "remainder"}
    numeric, categorical = tuple(pre.numeric_columns), tuple(pre.categorical_columns)
    mean = scale = np.zeros(0, np.float32)
    median = None
    if numeric:
        step = parts["numeric"]
        if isinstance(step, Pipeline):
            median = np.asarray(step.named_steps["impute"].statistics_, dtype=np.float32)
            step = step.named_steps["scale"]
        mean, scale = _scaler_arrays(step, len(numeric))
    mode, vocabs, o_mean, o_scale = "", (), None, None
    if categorical:
        step = parts["categorical"]
        if isinstance(step, Pipeline):
            mode, encoder = "ordinal", step.named_steps["encode"]
            o_mean, o_scale = _scaler_arrays(step.named_steps["scale"], len(categorical))
        else:
            mode, encoder = "onehot", step
        vocabs = tuple(
            Vocabulary(col, tuple(str(c) for c in cats))
            for col, cats in zip(categorical, encoder.categories_, strict=True)
        )
    return Encoding(
        numeric, categorical, mean, scale, median, mode, vocabs, o_mean, o_scale,
        n_features=len(pre.feature_names),
    )  # fmt: skip


def _floats(a: np.ndarray | None) -> list[float] | None:
    return None if a is None else [float(v) for v in a]


def encoding_record(
    enc: Encoding, feature_names: tuple[str, ...], class_names: tuple[str, ...]
) -> dict[str, Any]:
    """The JSON of an encoding, with the feature and class names of its dataset."""
    return {
        "format": ENCODING_FORMAT,
        "version": ENCODING_VERSION,
        "numeric": list(enc.numeric),
        "categorical": list(enc.categorical),
        "mean": _floats(enc.mean),
        "scale": _floats(enc.scale),
        "median": _floats(enc.median),
        "categorical_mode": enc.categorical_mode,
        "vocabularies": [
            {"column": v.column, "categories": list(v.categories)} for v in enc.vocabularies
        ],
        "ordinal_mean": _floats(enc.ordinal_mean),
        "ordinal_scale": _floats(enc.ordinal_scale),
        "n_features": enc.n_features,
        "feature_names": list(feature_names),
        "class_names": list(class_names),
    }


def write_encoding(path: str | os.PathLike[str], record: dict[str, Any]) -> None:
    text = json.dumps(record, indent=1, sort_keys=True, allow_nan=False)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text + "\n")


@dataclass(frozen=True)
class EncodingFile:
    """An ``encoding.json`` read back: the encoding, the dataset's feature and class names."""

    encoding: Encoding
    feature_names: tuple[str, ...]
    class_names: tuple[str, ...]


def _array(value: list[float] | None) -> np.ndarray | None:
    return None if value is None else np.asarray(value, dtype=np.float32)


def read_encoding(path: str | os.PathLike[str]) -> EncodingFile:
    """ValueError (one line) for a file that is not an encoding of this version."""
    try:
        with open(path, encoding="utf-8") as f:
            r = json.load(f)
        if r.get("format") != ENCODING_FORMAT or r.get("version") != ENCODING_VERSION:
            raise ValueError(f"not a {ENCODING_FORMAT} file of version {ENCODING_VERSION}")
        enc = Encoding(
            numeric=tuple(r["numeric"]),
            categorical=tuple(r["categorical"]),
            mean=np.asarray(r["mean"], dtype=np.float32),
            scale=np.asarray(r["scale"], dtype=np.float32),
            median=_array(r["median"]),
            categorical_mode=r["categorical_mode"],
            vocabularies=tuple(
                Vocabulary(v["column"], tuple(v["categories"])) for v in r["vocabularies"]
            ),
            ordinal_mean=_array(r["ordinal_mean"]),
            ordinal_scale=_array(r["ordinal_scale"]),
            n_features=int(r["n_features"]),
        )
        return EncodingFile(enc, tuple(r["feature_names"]), tuple(r["class_names"]))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ValueError(
            f"{path}: cannot read the preprocessing's encoding ({exc}); rerun the preprocess step"
        ) from None
