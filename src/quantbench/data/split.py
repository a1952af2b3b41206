"""Checks on the gathered rows, the stratified split, and the :class:`Preprocessor` fitted on
training rows only (categorical encoder, imputer, scaler, label encoder)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import LabelEncoder, OneHotEncoder, OrdinalEncoder, StandardScaler

from quantbench.data.columns import Layout, Rows
from quantbench.data.dataset import SPLITS
from quantbench.data.settings import DataConfig, min_class_rows
from quantbench.data.tabular import (
    DataError,
    numeric_block,
    text_frame,
)


def source_text(files: list[Path]) -> str:
    return str(files[0]) if len(files) == 1 else f"{files[0]} (and {len(files) - 1} more files)"


def check_columns(rows: Rows, layout: Layout, where: str) -> None:
    empty = [c for c, n in zip(layout.numeric, rows.finite, strict=True) if n == 0]
    if empty:
        raise DataError(
            f"{where}: column '{empty[0]}' has no finite value in any row (all empty, NaN or "
            "inf); add it to data.csv.drop_columns"
        )


def _nonzero(counts: Counter[str]) -> dict[str, int]:
    return {k: v for k, v in sorted(counts.items()) if v}


def check_classes(counts: dict[str, int], rows: Rows, cfg: DataConfig, where: str) -> None:
    found = ", ".join(f"{k!r}" for k, _ in rows.seen_labels.most_common(12)) or "none"
    if not counts and cfg.label_map:
        raise DataError(
            f"{where}: data.csv.label_map maps none of the labels found ({found}); its keys must "
            f"be values of column '{cfg.label_column}'"
        )
    if not counts:
        raise DataError(
            f"{where}: no row is left to train on (dropped: {_nonzero(rows.dropped)}); check "
            f"data.csv.label_column '{cfg.label_column}', or set data.nonfinite: median"
        )
    if len(counts) == 1:
        (name, n), *_ = counts.items()
        fix = "map labels to two or more classes in data.csv.label_map" if cfg.label_map else (
            f"check that data.csv.label_column '{cfg.label_column}' is the class column"
        )  # fmt: skip
        raise DataError(f"{where}: only one class ({name!r}, {n} rows); {fix}")
    need = min_class_rows(cfg)
    small = sorted((n, c) for c, n in counts.items() if n < need)
    if small:
        n, name = small[0]
        raise DataError(
            f"{where}: class {name!r} has {n} rows but the stratified split (val_fraction "
            f"{cfg.val_fraction}, test_fraction {cfg.test_fraction}) needs at least {need}; merge "
            "it into another class with data.csv.label_map, or leave it out of label_map to drop it"
        )


def split_rows(
    y: np.ndarray, keep: np.ndarray, cfg: DataConfig, seed: int
) -> dict[str, np.ndarray]:
    idx = np.flatnonzero(keep)
    rest, test = train_test_split(
        idx, test_size=cfg.test_fraction, stratify=y[idx], random_state=seed
    )
    train, val = train_test_split(
        rest,
        test_size=cfg.val_fraction / (1 - cfg.test_fraction),
        stratify=y[rest],
        random_state=seed,
    )
    return {"train": np.sort(train), "val": np.sort(val), "test": np.sort(test)}


def _transformer(layout: Layout, cfg: DataConfig) -> ColumnTransformer:
    scale: Any = StandardScaler()
    if cfg.nonfinite == "median":
        impute = SimpleImputer(strategy="median", keep_empty_features=True)
        scale = Pipeline([("impute", impute), ("scale", scale)])
    parts: list[tuple[str, Any, list[str]]] = []
    if layout.numeric:
        parts.append(("numeric", scale, list(layout.numeric)))
    if layout.categorical and cfg.categorical == "onehot":
        encode = OneHotEncoder(handle_unknown="ignore", sparse_output=False, dtype=np.float32)
        parts.append(("categorical", encode, list(layout.categorical)))
    elif layout.categorical:
        encode = OrdinalEncoder(
            handle_unknown="use_encoded_value", unknown_value=-1, dtype=np.float32
        )
        steps = Pipeline([("encode", encode), ("scale", StandardScaler())])
        parts.append(("categorical", steps, list(layout.categorical)))
    return ColumnTransformer(parts, sparse_threshold=0.0, verbose_feature_names_out=False)


def model_frame(block: np.ndarray, texts: pd.DataFrame | None, layout: Layout) -> pd.DataFrame:
    """The frame the fitted transformer sees: float32 numeric columns, then string categories."""
    frame = pd.DataFrame(block, columns=list(layout.numeric), copy=False)
    if texts is not None:
        for name in layout.categorical:
            frame[name] = texts[name].to_numpy()
    return frame


@dataclass(frozen=True)
class Preprocessor:
    """What turns raw rows into model inputs: the fitted ColumnTransformer and label encoder.

    Saved with joblib next to the dataset; ``transform`` applies it to any raw DataFrame with
    the same columns (header whitespace is stripped, extra columns are ignored).
    """

    transformer: ColumnTransformer
    label_encoder: LabelEncoder
    label_column: str
    numeric_columns: tuple[str, ...]
    categorical_columns: tuple[str, ...]
    label_aliases: dict[str, str]
    label_map: dict[str, str]
    nonfinite: str

    @property
    def feature_names(self) -> tuple[str, ...]:
        return tuple(str(n) for n in self.transformer.get_feature_names_out())

    @property
    def class_names(self) -> tuple[str, ...]:
        return tuple(str(c) for c in self.label_encoder.classes_)

    def transform(self, frame: pd.DataFrame) -> np.ndarray:
        """Scaled, encoded float32 features of a raw DataFrame."""
        frame = frame.rename(columns=lambda c: str(c).strip())
        layout = Layout(self.numeric_columns, self.categorical_columns, {})
        missing = [c for c in (*layout.numeric, *layout.categorical) if c not in frame.columns]
        if missing:
            raise DataError(f"input frame: feature columns missing: {', '.join(missing)}")
        block = numeric_block(frame, layout.numeric, "input frame")
        if self.nonfinite == "median":
            block[~np.isfinite(block)] = np.nan
        texts = text_frame(frame, layout.categorical) if layout.categorical else None
        out = self.transformer.transform(model_frame(block, texts, layout))
        return np.asarray(out, dtype=np.float32)

    def encode_labels(self, labels: Any) -> np.ndarray:
        """Class indices of raw labels (aliases and label_map applied as in training)."""
        label = pd.Series(labels).astype("str").str.strip().replace(self.label_aliases)
        if self.label_map:
            label = label.map(self.label_map)
        unknown = sorted(set(label[~label.isin(self.class_names)].astype(str)))
        if unknown:
            raise DataError(f"labels not among the classes {self.class_names}: {unknown[:5]}")
        return self.label_encoder.transform(label.to_numpy(dtype=object)).astype(np.int64)


def fit_preprocessor(
    parts: dict[str, tuple[np.ndarray, pd.DataFrame | None]], layout: Layout, cfg: DataConfig
) -> tuple[ColumnTransformer, dict[str, np.ndarray]]:
    """Fit on the training rows only, then transform every split (freeing raw rows as it goes)."""
    transformer = _transformer(layout, cfg)
    out: dict[str, np.ndarray] = {}
    for split in SPLITS:
        frame = model_frame(*parts.pop(split), layout)
        fitted = transformer.fit_transform if split == "train" else transformer.transform
        out[split] = np.asarray(fitted(frame), dtype=np.float32)
        del frame
    return transformer, out
