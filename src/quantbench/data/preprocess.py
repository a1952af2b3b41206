"""The preprocess step: raw flow files -> ``data/dataset.npz`` (see :mod:`quantbench.data.dataset`).

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
import os
from dataclasses import asdict
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import pandas as pd
from sklearn.preprocessing import LabelEncoder

from quantbench.core.files import atomic_path
from quantbench.data.columns import Layout, Rows, plan_layout, read_rows
from quantbench.data.dataset import SPLITS, Dataset, save_dataset
from quantbench.data.encoding import encoding_of, encoding_record, write_encoding
from quantbench.data.rawrows import RawRows, save_raw_rows
from quantbench.data.settings import DataConfig
from quantbench.data.split import (
    Preprocessor,
    _nonzero,
    check_classes,
    check_columns,
    fit_preprocessor,
    source_text,
    split_rows,
)
from quantbench.data.tabular import (
    Table,
    expand_sources,
    open_table,
)

log = logging.getLogger(__name__)


def _stack(rows: Rows) -> tuple[np.ndarray, np.ndarray, np.ndarray, pd.DataFrame | None]:
    """Concatenate the chunks (freeing them): features, label codes, non-finite rows, texts."""
    x = np.concatenate(rows.blocks) if rows.blocks else np.zeros((0, rows.n_numeric), np.float32)
    rows.blocks.clear()
    codes = np.concatenate(rows.codes) if rows.codes else np.zeros(0, np.int32)
    bad = np.concatenate(rows.nonfinite_rows) if rows.nonfinite_rows else np.zeros(0, bool)
    texts = pd.concat(rows.texts, ignore_index=True) if rows.texts else None
    rows.texts.clear()
    return x, codes, bad, texts


def _encode_labels(
    codes: np.ndarray, keep: np.ndarray, rows: Rows
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
    ds, pre, card, _ = preprocess_with_raw_test(raw_paths, cfg, seed)
    return ds, pre, card


def _raw_rows(block: np.ndarray, texts: pd.DataFrame | None, layout: Layout) -> RawRows:
    cats = np.empty((len(block), 0), dtype=str) if texts is None else (
        texts[list(layout.categorical)].to_numpy(dtype=str)
    )  # fmt: skip
    return RawRows(block.copy(), cats, layout.numeric, layout.categorical)


def preprocess_with_raw_test(
    raw_paths: str | list[str], cfg: DataConfig, seed: int
) -> tuple[Dataset, Preprocessor, dict[str, Any], RawRows]:
    """``preprocess``, plus the test split's raw feature rows (what a deployed model is fed)."""
    files = expand_sources(raw_paths, cfg.file_glob)
    tables = [open_table(f, cfg.read_spec()) for f in files]
    layout = plan_layout(tables, cfg)
    rows = read_rows(tables, layout, cfg)
    where = source_text(files)
    x, codes, bad, texts = _stack(rows)
    if len(x):
        check_columns(rows, layout, where)
    keep = ~bad if cfg.nonfinite == "drop" else np.ones(len(bad), dtype=bool)
    rows.dropped["nonfinite"] = int(np.count_nonzero(~keep))
    y, encoder, counts = _encode_labels(codes, keep, rows)
    check_classes(counts, rows, cfg, where)
    splits = split_rows(y, keep, cfg, seed)
    parts = {
        s: (x[idx], None if texts is None else texts.iloc[idx].reset_index(drop=True))
        for s, idx in splits.items()
    }
    del x, texts
    raw_test = _raw_rows(*parts["test"], layout)
    transformer, arrays = fit_preprocessor(parts, layout, cfg)
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
    return ds, pre, card, raw_test


def data_card(
    ds: Dataset, tables: list[Table], layout: Layout, rows: Rows, cfg: DataConfig, seed: int
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
    raw_test_out: str | os.PathLike[str] | None = None,
    encoding_out: str | os.PathLike[str] | None = None,
) -> None:
    """Preprocess and write the outputs together: on any error none of them exists.

    ``raw_test_out`` (optional) receives the test split's raw feature rows (``RawRows``);
    ``encoding_out`` (optional) the fitted preprocessing's numbers as JSON
    (:mod:`quantbench.data.encoding`), which the export reads without unpickling.
    """
    outs = [Path(dataset_out), Path(preprocessor_out), Path(card_out)]
    if encoding_out is not None and raw_test_out is None:
        raise ValueError("encoding_out needs raw_test_out")
    outs += [Path(raw_test_out)] if raw_test_out is not None else []
    outs += [Path(encoding_out)] if encoding_out is not None else []
    for p in outs:
        p.unlink(missing_ok=True)
    try:
        ds, pre, card, raw_test = preprocess_with_raw_test(raw_paths, cfg, seed)
        with contextlib.ExitStack() as stack:
            tmp_ds, tmp_pre, tmp_card, *tmp_raw = (
                stack.enter_context(atomic_path(p)) for p in outs
            )
            if len(tmp_raw) == 2:
                record = encoding_record(encoding_of(pre), pre.feature_names, pre.class_names)
                write_encoding(tmp_raw.pop(), record)
            save_dataset(tmp_ds, ds)
            joblib.dump(pre, tmp_pre)
            text = json.dumps(card, indent=2, sort_keys=True, allow_nan=False)
            tmp_card.write_text(text + "\n", encoding="utf-8")
            if tmp_raw:
                save_raw_rows(tmp_raw[0], raw_test)
    except BaseException:
        for p in outs:
            p.unlink(missing_ok=True)
        raise
