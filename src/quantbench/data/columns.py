"""Column roles (numeric, categorical, dropped and why) and reading the rows of every raw file,
chunk by chunk, into float32 features and label codes."""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from quantbench.data.settings import DataConfig
from quantbench.data.tabular import (
    DataError,
    Table,
    iter_chunks,
    numeric_block,
    text_frame,
)

log = logging.getLogger("quantbench.data.preprocess")  # the step's logger


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


@dataclass
class Rows:
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


def _label_rows(chunk: pd.DataFrame, table: Table, cfg: DataConfig, rows: Rows) -> pd.Series:
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
    chunk: pd.DataFrame, table: Table, layout: Layout, cfg: DataConfig, rows: Rows
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


def read_rows(tables: list[Table], layout: Layout, cfg: DataConfig) -> Rows:
    rows = Rows(n_numeric=len(layout.numeric))
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
