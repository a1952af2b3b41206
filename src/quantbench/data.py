"""The preprocess step: raw flow files -> ``data/dataset.npz`` (see :mod:`quantbench.dataset`).

``run_preprocess`` reads raw flow files (CSV or ARFF, chunked, features as float32), cleans them
(header whitespace, repeated header rows, duplicated names, inf/NaN per ``nonfinite``), drops
identifier and leakage columns, encodes labels (sorted class names), splits stratified, fits the
categorical encoder and scaler on training rows only, and writes the dataset, the fitted
:class:`Preprocessor` (joblib) and a data card (JSON) together.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
from collections import Counter
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.model_selection import train_test_split
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import LabelEncoder, OneHotEncoder, OrdinalEncoder, StandardScaler

from quantbench.dataset import SPLITS, Dataset, save_dataset
from quantbench.files import atomic_path
from quantbench.presets import IDENTIFIER_COLUMNS, PRESETS, preset_defaults
from quantbench.tabular import (
    DUPLICATE_POLICIES,
    ENCODINGS,
    DataError,
    ReadSpec,
    Table,
    expand_sources,
    iter_chunks,
    numeric_block,
    open_table,
    text_frame,
)

log = logging.getLogger(__name__)

# ---------------------------------------------------------------------------------------------
# Preprocessing: raw flow files -> Dataset + fitted Preprocessor + data card
# ---------------------------------------------------------------------------------------------

NONFINITE = ("drop", "median", "error")
CATEGORICAL = ("onehot", "ordinal")
# DataConfig fields that live under ``data.csv`` in the workflow config (the rest sit at ``data``).
CSV_KEYS = frozenset(
    {
        "path", "label_column", "drop_columns", "label_map", "label_aliases",
        "categorical_columns", "exclude_columns", "header", "column_names",
        "duplicate_columns", "encoding", "file_glob", "chunk_rows",
    }
)  # fmt: skip
# Config keys whose empty value means "not set" (the schema's defaults), so a preset's stays.
_EMPTY_IS_UNSET = frozenset({"drop_columns", "label_map"})


def config_key(name: str) -> str:
    """Where a DataConfig field sits in the workflow config, for messages."""
    return f"data.csv.{name}" if name in CSV_KEYS else f"data.{name}"


def _bad(name: str, value: Any, allowed: str) -> ValueError:
    return ValueError(f"{config_key(name)}: {value!r} is not allowed; {allowed}")


@dataclass(frozen=True)
class DataConfig:
    """How to read, clean, encode and split the rows (the config's ``data:`` mapping, flattened)."""

    path: str | None = None
    label_column: str = "label"
    drop_columns: tuple[str, ...] = ()
    label_map: dict[str, str] = field(default_factory=dict)
    nonfinite: str = "drop"
    val_fraction: float = 0.15
    test_fraction: float = 0.15
    preset: str | None = None
    categorical: str = "onehot"
    categorical_columns: tuple[str, ...] = ()
    exclude_columns: tuple[str, ...] = IDENTIFIER_COLUMNS
    label_aliases: dict[str, str] = field(default_factory=dict)
    header: bool = True
    column_names: tuple[str, ...] = ()
    duplicate_columns: str = "error"
    encoding: str = "auto"
    file_glob: str = "*.csv"
    chunk_rows: int = 50_000

    def __post_init__(self) -> None:
        for name in ("drop_columns", "categorical_columns", "exclude_columns", "column_names"):
            value = getattr(self, name)
            if isinstance(value, str) or not all(isinstance(v, str) for v in value):
                raise _bad(name, value, "give a list of column names")
            object.__setattr__(self, name, tuple(value))
        for name in ("label_map", "label_aliases"):
            value = getattr(self, name)
            if not isinstance(value, dict):
                raise _bad(name, value, "give a mapping {raw label: class}")
            object.__setattr__(self, name, {str(k): str(v) for k, v in value.items()})
        self._check_choices()
        self._check_numbers()

    def _check_choices(self) -> None:
        choices = {
            "nonfinite": NONFINITE,
            "categorical": CATEGORICAL,
            "duplicate_columns": DUPLICATE_POLICIES,
            "encoding": ENCODINGS,
            "preset": (None, *PRESETS),
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                names = ", ".join("null" if a is None else str(a) for a in allowed)
                raise _bad(name, getattr(self, name), f"choose one of: {names}")
        if not isinstance(self.label_column, str) or not self.label_column.strip():
            raise _bad("label_column", self.label_column, "name the column holding the class")
        if not isinstance(self.header, bool):
            raise _bad("header", self.header, "use true or false")
        if not self.header and self.label_column not in self.column_names:
            raise _bad("column_names", self.column_names, "header: false needs every column named")

    def _check_numbers(self) -> None:
        for name in ("val_fraction", "test_fraction"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not 0 < value <= 0.5
            ):
                raise _bad(name, value, "use a number above 0 and at most 0.5")
        if self.val_fraction + self.test_fraction >= 1:
            raise _bad(
                "val_fraction",
                self.val_fraction,
                f"val_fraction + test_fraction ({self.test_fraction}) must stay below 1",
            )
        if isinstance(self.chunk_rows, bool) or not isinstance(self.chunk_rows, int):
            raise _bad("chunk_rows", self.chunk_rows, "use a whole number of rows >= 1000")
        if self.chunk_rows < 1000:
            raise _bad("chunk_rows", self.chunk_rows, "use a whole number of rows >= 1000")

    def read_spec(self) -> ReadSpec:
        return ReadSpec(
            header=self.header,
            column_names=self.column_names,
            duplicate_columns=self.duplicate_columns,
            encoding=self.encoding,
            chunk_rows=self.chunk_rows,
        )


def data_config_from_mapping(d: dict[str, Any]) -> DataConfig:
    """DataConfig from the config's ``data:`` mapping: preset defaults, then the user's keys.

    ``source`` and ``synthetic`` are ignored; the keys under ``csv`` are flattened. A key that is
    null (or an empty ``label_map``/``drop_columns``) counts as not set, so the preset's applies.
    """
    flat = {k: v for k, v in d.items() if k not in ("source", "synthetic", "csv")}
    flat.update(d.get("csv") or {})
    known = {f.name for f in fields(DataConfig)}
    for where, keys in (("data.csv.", d.get("csv") or {}), ("data.", flat)):
        unknown = sorted(set(keys) - known)
        if unknown:
            raise ValueError(
                f"{where}{unknown[0]}: unknown key; allowed keys: {', '.join(sorted(known))}"
            )
    user = {
        k: v
        for k, v in flat.items()
        if k == "preset" or not (v is None or (k in _EMPTY_IS_UNSET and not v))
    }
    return DataConfig(**{**preset_defaults(flat.get("preset")), **user})


# --- column roles ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """Which columns are numeric features, categorical features, or dropped (and why)."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    dropped: dict[str, str]


def _norm(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


def _drop_reason(name: str, table: Table, cfg: DataConfig, exclude: set[str]) -> str | None:
    if name in table.duplicates and cfg.duplicate_columns == "first":
        return f"duplicate of '{table.duplicates[name]}' (duplicate_columns: first)"
    if name in cfg.drop_columns:
        return "drop_columns"
    if _norm(name) in exclude:
        return "identifier or leakage column (exclude_columns)"
    return None


def _table_layout(table: Table, cfg: DataConfig) -> Layout:
    if cfg.label_column not in table.columns:
        raise DataError(
            f"{table.path}: label column '{cfg.label_column}' not found; columns found: "
            f"{', '.join(table.columns)}; set data.csv.label_column (or data.preset)"
        )
    exclude = {_norm(c) for c in cfg.exclude_columns}
    dropped: dict[str, str] = {}
    for name in table.columns:
        reason = None if name == cfg.label_column else _drop_reason(name, table, cfg, exclude)
        if reason:
            dropped[name] = reason
    kept = [c for c in table.columns if c != cfg.label_column and c not in dropped]
    for name in cfg.categorical_columns:
        if name not in kept and name not in dropped:
            raise DataError(
                f"{table.path}: categorical column '{name}' not found; columns found: "
                f"{', '.join(table.columns)}; fix data.csv.categorical_columns"
            )
    cats = set(cfg.categorical_columns) | set(table.nominal)
    return Layout(
        numeric=tuple(c for c in kept if c not in cats),
        categorical=tuple(c for c in kept if c in cats),
        dropped=dropped,
    )


def plan_layout(tables: list[Table], cfg: DataConfig) -> Layout:
    """One layout for all files: every file must bring the same feature columns."""
    layouts = [_table_layout(t, cfg) for t in tables]
    first = layouts[0]
    for table, lay in zip(tables[1:], layouts[1:], strict=True):
        missing = set(first.numeric + first.categorical) - set(lay.numeric + lay.categorical)
        extra = set(lay.numeric + lay.categorical) - set(first.numeric + first.categorical)
        if missing or extra:
            raise DataError(
                f"{table.path}: its feature columns differ from {tables[0].path} "
                f"(missing: {sorted(missing)}, extra: {sorted(extra)}); add the extra ones to "
                "data.csv.drop_columns or read the files separately"
            )
    present = {c for t in tables for c in t.columns}
    for name in cfg.drop_columns:
        if name not in present:
            raise DataError(
                f"{tables[0].path}: drop_columns names '{name}', which no input file has; "
                f"columns found: {', '.join(tables[0].columns)}; fix data.csv.drop_columns"
            )
    dropped = {k: v for lay in layouts for k, v in lay.dropped.items()}
    return Layout(first.numeric, first.categorical, dropped)


# --- reading rows ------------------------------------------------------------------------------


@dataclass
class _Rows:
    """Rows gathered chunk by chunk (internal, mutable): float32 features, label codes, counts."""

    n_numeric: int
    blocks: list[np.ndarray] = field(default_factory=list)
    texts: list[pd.DataFrame] = field(default_factory=list)
    codes: list[np.ndarray] = field(default_factory=list)
    nonfinite_rows: list[np.ndarray] = field(default_factory=list)
    vocab: dict[str, int] = field(default_factory=dict)
    seen_labels: Counter[str] = field(default_factory=Counter)
    unmapped: Counter[str] = field(default_factory=Counter)
    dropped: Counter[str] = field(default_factory=Counter)
    read: int = 0

    def __post_init__(self) -> None:
        self.finite = np.zeros(self.n_numeric, dtype=np.int64)
        self.nonfinite = np.zeros(self.n_numeric, dtype=np.int64)


def _label_rows(chunk: pd.DataFrame, table: Table, cfg: DataConfig, rows: _Rows) -> pd.Series:
    """Final class name per row, NaN for a row to drop (the reason is counted in ``rows``)."""
    raw = chunk[cfg.label_column]
    label = raw.astype("str").str.strip()
    empty = chunk.isna().all(axis=1).to_numpy()
    missing = (raw.isna() | (label == "")).to_numpy()
    header = np.zeros(len(chunk), dtype=bool)
    if table.skip_lines and not table.arff:
        header = (label == cfg.label_column).to_numpy()
    if cfg.label_aliases:
        label = label.replace(cfg.label_aliases)
    rows.seen_labels.update(label[~missing].value_counts().to_dict())
    unmapped = np.zeros(len(chunk), dtype=bool)
    if cfg.label_map:
        mapped = label.map(cfg.label_map)
        unmapped = (mapped.isna() & label.notna()).to_numpy()
        label = mapped
    taken = np.zeros(len(chunk), dtype=bool)
    for reason, mask in (
        ("empty_row", empty),
        ("repeated_header", header),
        ("missing_label", missing),
        ("unmapped_label", unmapped),
    ):
        mask = mask & ~taken
        if reason == "unmapped_label":
            rows.unmapped.update(raw[mask].astype("str").str.strip().value_counts().to_dict())
        rows.dropped[reason] += int(np.count_nonzero(mask))
        taken |= mask
    return label.where(~taken)


def _add_chunk(
    chunk: pd.DataFrame, table: Table, layout: Layout, cfg: DataConfig, rows: _Rows
) -> None:
    rows.read += len(chunk)
    label = _label_rows(chunk, table, cfg, rows)
    keep = label.notna().to_numpy()
    if not keep.all():
        chunk, label = chunk[keep], label[keep]
    block = numeric_block(chunk, layout.numeric, str(table.path))
    finite = np.isfinite(block)
    rows.finite += finite.sum(axis=0)
    rows.nonfinite += len(block) - finite.sum(axis=0)
    bad_rows = ~finite.all(axis=1)
    if cfg.nonfinite == "error" and bad_rows.any():
        i = int(np.argmax(bad_rows))
        j = int(np.argmax(~finite[i]))
        raise DataError(
            f"{table.path}: column '{layout.numeric[j]}' holds {block[i, j]} in data row "
            f"{int(chunk.index[i]) + 1}; set data.nonfinite: drop (drop such rows) or median "
            "(impute from training rows), or fix the file"
        )
    if cfg.nonfinite == "median":
        block[~finite] = np.nan
    codes, uniques = pd.factorize(label)
    lookup = np.array([rows.vocab.setdefault(u, len(rows.vocab)) for u in uniques], np.int32)
    rows.codes.append(lookup[codes] if len(codes) else np.zeros(0, np.int32))
    rows.blocks.append(block)
    rows.nonfinite_rows.append(bad_rows)
    if layout.categorical:
        rows.texts.append(text_frame(chunk, layout.categorical))


def _read_rows(tables: list[Table], layout: Layout, cfg: DataConfig) -> _Rows:
    rows = _Rows(n_numeric=len(layout.numeric))
    spec = cfg.read_spec()
    text = {cfg.label_column, *layout.categorical}
    for table in tables:
        before = rows.read
        for chunk in iter_chunks(table, spec, text):
            _add_chunk(chunk, table, layout, cfg, rows)
        if rows.read == before:
            raise DataError(
                f"{table.path}: no data rows (a header only); point data.csv.path at a file "
                "with rows"
            )
        log.info("%s: %d rows read (%s)", table.path, rows.read - before, table.encoding)
    return rows


# --- checks, split, fit ------------------------------------------------------------------------


def _where(files: list[Path]) -> str:
    return str(files[0]) if len(files) == 1 else f"{files[0]} (and {len(files) - 1} more files)"


def _check_columns(rows: _Rows, layout: Layout, where: str) -> None:
    empty = [c for c, n in zip(layout.numeric, rows.finite, strict=True) if n == 0]
    if empty:
        raise DataError(
            f"{where}: column '{empty[0]}' has no finite value in any row (all empty, NaN or "
            "inf); add it to data.csv.drop_columns"
        )


def min_class_rows(cfg: DataConfig) -> int:
    """Rows a class needs so that the stratified split can give each split at least one."""
    return max(3, math.ceil(1 / min(cfg.val_fraction, cfg.test_fraction) - 1e-9))


def _nonzero(counts: Counter[str]) -> dict[str, int]:
    return {k: v for k, v in sorted(counts.items()) if v}


def _check_classes(counts: dict[str, int], rows: _Rows, cfg: DataConfig, where: str) -> None:
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


def _split(y: np.ndarray, keep: np.ndarray, cfg: DataConfig, seed: int) -> dict[str, np.ndarray]:
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


def _model_frame(block: np.ndarray, texts: pd.DataFrame | None, layout: Layout) -> pd.DataFrame:
    """The frame the fitted transformer sees: float32 numeric columns, then string categories."""
    frame = pd.DataFrame(block, columns=list(layout.numeric), copy=False)
    if texts is not None:
        for name in layout.categorical:
            frame[name] = texts[name].to_numpy()
    return frame


# --- the fitted preprocessor -------------------------------------------------------------------


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
        out = self.transformer.transform(_model_frame(block, texts, layout))
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


def _fit(
    parts: dict[str, tuple[np.ndarray, pd.DataFrame | None]], layout: Layout, cfg: DataConfig
) -> tuple[ColumnTransformer, dict[str, np.ndarray]]:
    """Fit on the training rows only, then transform every split (freeing raw rows as it goes)."""
    transformer = _transformer(layout, cfg)
    out: dict[str, np.ndarray] = {}
    for split in SPLITS:
        frame = _model_frame(*parts.pop(split), layout)
        fitted = transformer.fit_transform if split == "train" else transformer.transform
        out[split] = np.asarray(fitted(frame), dtype=np.float32)
        del frame
    return transformer, out


# --- the entry points --------------------------------------------------------------------------


def _stack(rows: _Rows) -> tuple[np.ndarray, np.ndarray, np.ndarray, pd.DataFrame | None]:
    """Concatenate the chunks (freeing them): features, label codes, non-finite rows, texts."""
    x = np.concatenate(rows.blocks) if rows.blocks else np.zeros((0, rows.n_numeric), np.float32)
    rows.blocks.clear()
    codes = np.concatenate(rows.codes) if rows.codes else np.zeros(0, np.int32)
    bad = np.concatenate(rows.nonfinite_rows) if rows.nonfinite_rows else np.zeros(0, bool)
    texts = pd.concat(rows.texts, ignore_index=True) if rows.texts else None
    rows.texts.clear()
    return x, codes, bad, texts


def _encode_labels(
    codes: np.ndarray, keep: np.ndarray, rows: _Rows
) -> tuple[np.ndarray, LabelEncoder, dict[str, int]]:
    """Class indices over sorted class names; classes left without rows disappear."""
    names = np.array(list(rows.vocab), dtype=object)
    per_code = np.bincount(codes[keep], minlength=len(names))
    counts = {str(names[i]): int(n) for i, n in enumerate(per_code) if n > 0}
    encoder = LabelEncoder().fit(sorted(counts))
    lookup = np.full(len(names), -1, dtype=np.int64)
    present = per_code > 0
    lookup[present] = encoder.transform(names[present])
    return lookup[codes], encoder, dict(sorted(counts.items()))


def preprocess(
    raw_paths: str | list[str], cfg: DataConfig, seed: int
) -> tuple[Dataset, Preprocessor, dict[str, Any]]:
    """Read, clean, split, encode and scale; return the dataset, the preprocessor, the data card."""
    files = expand_sources(raw_paths, cfg.file_glob)
    tables = [open_table(f, cfg.read_spec()) for f in files]
    layout = plan_layout(tables, cfg)
    rows = _read_rows(tables, layout, cfg)
    where = _where(files)
    x, codes, bad, texts = _stack(rows)
    if len(x):
        _check_columns(rows, layout, where)
    keep = ~bad if cfg.nonfinite == "drop" else np.ones(len(bad), dtype=bool)
    rows.dropped["nonfinite"] = int(np.count_nonzero(~keep))
    y, encoder, counts = _encode_labels(codes, keep, rows)
    _check_classes(counts, rows, cfg, where)
    splits = _split(y, keep, cfg, seed)
    parts = {
        s: (x[idx], None if texts is None else texts.iloc[idx].reset_index(drop=True))
        for s, idx in splits.items()
    }
    del x, texts
    transformer, arrays = _fit(parts, layout, cfg)
    pre = Preprocessor(
        transformer, encoder, cfg.label_column, layout.numeric, layout.categorical,
        cfg.label_aliases, cfg.label_map, cfg.nonfinite,
    )  # fmt: skip
    ds = Dataset(
        **{f"x_{s}": arrays[s] for s in SPLITS},
        **{f"y_{s}": y[splits[s]] for s in SPLITS},
        feature_names=pre.feature_names,
        class_names=pre.class_names,
    )
    card = data_card(ds, tables, layout, rows, cfg, seed)
    log.info("%d rows kept of %d; %d features, %d classes", card["rows"]["kept"], rows.read,
             ds.n_features, ds.n_classes)  # fmt: skip
    return ds, pre, card


def data_card(
    ds: Dataset, tables: list[Table], layout: Layout, rows: _Rows, cfg: DataConfig, seed: int
) -> dict[str, Any]:
    """What went in, what came out, and what was dropped and why (JSON-ready)."""
    split_counts = {
        s: {c: int(n) for c, n in zip(ds.class_names, np.bincount(getattr(ds, f"y_{s}"),
            minlength=ds.n_classes), strict=True)}
        for s in SPLITS
    }  # fmt: skip
    sizes = {s: len(getattr(ds, f"y_{s}")) for s in SPLITS}
    return {
        "preset": cfg.preset,
        "seed": seed,
        "source_files": [str(t.path) for t in tables],
        "encodings": {str(t.path): t.encoding.removesuffix("-sig") for t in tables},
        "label_column": cfg.label_column,
        "class_names": list(ds.class_names),
        "feature_names": list(ds.feature_names),
        "numeric_columns": list(layout.numeric),
        "categorical_columns": list(layout.categorical),
        "rows": {"read": rows.read, "kept": sum(sizes.values()), **sizes},
        "class_counts": split_counts,
        "rows_dropped": _nonzero(rows.dropped),
        "nonfinite_values": {
            c: int(n) for c, n in zip(layout.numeric, rows.nonfinite, strict=True) if n
        },
        "labels_unmapped": dict(sorted(rows.unmapped.items())),
        "columns_dropped": dict(sorted(layout.dropped.items())),
        "config": {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(cfg).items()},
    }


def run_preprocess(
    raw_paths: str | list[str],
    cfg: DataConfig,
    seed: int,
    dataset_out: str | os.PathLike[str],
    preprocessor_out: str | os.PathLike[str],
    card_out: str | os.PathLike[str],
) -> None:
    """Preprocess and write the three outputs together: on any error none of them exists."""
    outs = [Path(dataset_out), Path(preprocessor_out), Path(card_out)]
    for p in outs:
        p.unlink(missing_ok=True)
    try:
        ds, pre, card = preprocess(raw_paths, cfg, seed)
        with contextlib.ExitStack() as stack:
            tmp_ds, tmp_pre, tmp_card = (stack.enter_context(atomic_path(p)) for p in outs)
            save_dataset(tmp_ds, ds)
            joblib.dump(pre, tmp_pre)
            text = json.dumps(card, indent=2, sort_keys=True, allow_nan=False)
            tmp_card.write_text(text + "\n", encoding="utf-8")
    except BaseException:
        for p in outs:
            p.unlink(missing_ok=True)
        raise
