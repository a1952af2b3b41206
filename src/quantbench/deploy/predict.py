"""Apply an artifact to a raw CSV: the predicted class and every class's probability per row.

The CSV is read with the rules the workflow read its data with (the manifest's ``reader``:
header or given column names, duplicate-name policy, encoding, identifier and dropped columns,
the label column), streamed in chunks so memory stays bounded whatever the file's size, and fed
raw to the artifact, whose graph holds the preprocessing. The output keeps the identifier
columns (and the label column, when the file has one), then ``predicted`` and one
``probability_<class>`` column per class. It is written to a temporary file and renamed at the
end: a failure leaves no output file. Needs onnxruntime, numpy and pandas only (no torch).

Every problem the user can fix raises :class:`PredictError` (or an ``ArtifactError`` /
``DataError``) with one line naming the file, the data row and column, and the fix.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from quantbench.deploy.manifest import MODEL_FILE, Manifest, read_manifest
from quantbench.files import atomic_path
from quantbench.tabular import ReadSpec, Table, iter_chunks, open_table, text_frame

# Text that means "no value" in a numeric field (besides an empty one), as the workflow read it.
MISSING_TEXT = frozenset({"nan", "na", "n/a", "null", "none", "?", "-", ""})
PREDICTED = "predicted"
PROBABILITY = "probability_"


class PredictError(ValueError):
    """A CSV this artifact cannot classify; the message names file, row, column and the fix."""


def _norm(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


@dataclass(frozen=True)
class Columns:
    """How the CSV's columns are used: features for the graph, columns carried to the output."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    kept: tuple[str, ...]  # identifiers and the label, in file order


def plan_columns(table: Table, manifest: Manifest) -> Columns:
    """Check the CSV's columns against the artifact's inputs; PredictError on a missing or
    unexpected one."""
    reader = manifest.reader
    features = (*manifest.numeric, *manifest.categorical)
    missing = [c for c in features if c not in table.columns]
    if missing:
        raise PredictError(
            f"{table.path}: column '{missing[0]}' is missing ({len(missing)} of the artifact's "
            f"{len(features)} feature columns are); give the columns the model was trained on, "
            "named as in the training data"
        )
    identifiers = {_norm(c) for c in reader.exclude_columns}
    kept, dropped = [], set(reader.drop_columns) | set(table.duplicates)
    for i, name in enumerate(table.columns):
        if name in features or name in dropped:
            continue
        if name == reader.label_column or _norm(name) in identifiers:
            kept.append(name)
            continue
        raise PredictError(
            f"{table.path}: column '{name}' (column {i + 1}) is not a feature of this artifact "
            "nor an identifier or label column; remove it from the file (the model was trained "
            "without it)"
        )
    return Columns(manifest.numeric, manifest.categorical, tuple(kept))


def _numbers(chunk: pd.DataFrame, columns: tuple[str, ...], where: Path) -> np.ndarray:
    out = np.empty((len(chunk), len(columns)), dtype=np.float32)
    for j, name in enumerate(columns):
        col = chunk[name]
        if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
            num = pd.to_numeric(col, errors="coerce")
            failed = (num.isna() & col.notna()).to_numpy()
            if failed.any():
                text = col[failed].astype(str).str.strip().str.lower()
                bad = ~text.isin(MISSING_TEXT).to_numpy()
                if bad.any():
                    pos = int(np.flatnonzero(failed)[np.argmax(bad)])
                    raise PredictError(
                        f"{where}: data row {int(chunk.index[pos]) + 1}, column '{name}': "
                        f"{col.iloc[pos]!r} is not a number; write a number there (this column "
                        "is numeric in the training data)"
                    )
            col = num
        out[:, j] = col.to_numpy(dtype=np.float32, na_value=np.nan)
    return out


def _check_finite(block: np.ndarray, chunk: pd.DataFrame, cols: Columns, manifest: Manifest,
                  where: Path) -> None:  # fmt: skip
    if manifest.reader.nonfinite == "median":
        return  # the graph imputes NaN and ±inf with the training medians
    bad = ~np.isfinite(block)
    if bad.any():
        i, j = np.argwhere(bad)[0]
        raise PredictError(
            f"{where}: data row {int(chunk.index[i]) + 1}, column '{cols.numeric[j]}': "
            f"{'empty or NaN' if np.isnan(block[i, j]) else block[i, j]}; the model was trained "
            f"with data.nonfinite: {manifest.reader.nonfinite} (no missing or infinite values), "
            "so fill in a finite number or remove the row"
        )


def _categories(chunk: pd.DataFrame, cols: Columns, manifest: Manifest, where: Path) -> Any:
    texts = text_frame(chunk, cols.categorical)
    for name in cols.categorical:
        known = manifest.vocabularies[name]
        values = texts[name]
        unknown = ~values.isin(known).to_numpy()
        if unknown.any():
            pos = int(np.argmax(unknown))
            shown = ", ".join(known[:8]) + (", ..." if len(known) > 8 else "")
            raise PredictError(
                f"{where}: data row {int(chunk.index[pos]) + 1}, column '{name}': category "
                f"{values.iloc[pos]!r} was never seen in training (known: {shown}); map it to "
                "a known category or remove the row"
            )
    return texts.to_numpy(dtype=object)


def _session(folder: Path) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(folder / MODEL_FILE), opts, providers=["CPUExecutionProvider"])


def _predict_chunk(
    chunk: pd.DataFrame, cols: Columns, manifest: Manifest, sess: Any, where: Path
) -> pd.DataFrame:
    feeds: dict[str, np.ndarray] = {}
    if cols.numeric:
        feeds["numeric"] = _numbers(chunk, cols.numeric, where)
        _check_finite(feeds["numeric"], chunk, cols, manifest, where)
    if cols.categorical:
        feeds["categorical"] = _categories(chunk, cols, manifest, where)
    probs, label = sess.run(["probabilities", "label"], feeds)
    out = pd.DataFrame({c: chunk[c].to_numpy() for c in cols.kept}, index=chunk.index)
    out[PREDICTED] = np.asarray(manifest.classes, dtype=object)[label]
    for k, name in enumerate(manifest.classes):
        out[f"{PROBABILITY}{name}"] = probs[:, k]
    return out


def _progress(enabled: bool) -> Callable[[int, bool], None]:
    """A one-line progress counter on stderr, only when stderr is a terminal."""
    start = time.perf_counter()

    def show(rows: int, final: bool = False) -> None:
        if enabled:
            rate = rows / max(time.perf_counter() - start, 1e-9)
            end = "\n" if final else ""
            print(f"\rquantbench predict: {rows:,} rows ({rate:,.0f} rows/s)", end=end,
                  file=sys.stderr, flush=True)  # fmt: skip

    return show


def _chunks(table: Table, manifest: Manifest, cols: Columns, chunk_rows: int) -> Iterator:
    r = manifest.reader
    spec = ReadSpec(r.header, r.column_names, r.duplicate_columns, r.encoding, chunk_rows)
    yield from iter_chunks(table, spec, {*cols.categorical, *cols.kept})


def predict_csv(
    artifact: str | Path,
    csv_path: str | Path,
    out_path: str | Path,
    chunk_rows: int | None = None,
    progress: bool | None = None,
) -> int:
    """Classify every row of ``csv_path`` into ``out_path``; the number of rows written."""
    manifest = read_manifest(artifact)
    folder = Path(artifact) if Path(artifact).is_dir() else Path(artifact).parent
    r = manifest.reader
    source = Path(csv_path)
    if not source.is_file():
        raise PredictError(f"{source}: no such file; name the CSV to classify")
    table = open_table(source, ReadSpec(r.header, r.column_names, r.duplicate_columns, r.encoding))
    cols = plan_columns(table, manifest)
    sess = _session(folder)
    show = _progress(sys.stderr.isatty() if progress is None else progress)
    rows = 0
    with atomic_path(out_path) as tmp, open(tmp, "w", encoding="utf-8", newline="") as fh:
        for chunk in _chunks(table, manifest, cols, chunk_rows or r.chunk_rows):
            frame = _predict_chunk(chunk, cols, manifest, sess, source)
            _write(frame, fh, header=rows == 0)
            rows += len(frame)
            show(rows, False)
        if rows == 0:
            raise PredictError(f"{source}: no data rows (a header only); give a file with rows")
    show(rows, True)
    return rows


def _write(frame: pd.DataFrame, fh: IO[str], header: bool) -> None:
    frame.to_csv(fh, header=header, index=False, float_format="%.6g", lineterminator="\n")
