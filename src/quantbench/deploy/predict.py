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

import csv
import io
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

from quantbench.core.files import atomic_path
from quantbench.data.tabular import ReadSpec, Table, iter_chunks, open_table, text_frame
from quantbench.deploy.manifest import MODEL_FILE, Manifest, read_manifest

# Text that means "no value" in a numeric field (besides an empty one), as the workflow read it.
MISSING_TEXT = frozenset({"nan", "na", "n/a", "null", "none", "?", "-", ""})
PREDICTED = "predicted"
PROBABILITY = "probability_"
DECIMALS = 6  # probabilities are written with six decimals
UNKNOWN_CATEGORIES = ("error", "encode")
NONFINITE = ("error", "blank")


class PredictError(ValueError):
    """A CSV this artifact cannot classify; the message names file, row, column and the fix."""


def _norm(name: str) -> str:
    return "".join(ch for ch in name.lower() if ch.isalnum())


@dataclass(frozen=True)
class Job:
    """One prediction run: the CSV and what to do with values the model was not trained on."""

    source: Path
    unknown_categories: str = "error"
    nonfinite: str = "error"

    def __post_init__(self) -> None:
        if self.unknown_categories not in UNKNOWN_CATEGORIES:
            raise ValueError(f"unknown_categories must be one of {UNKNOWN_CATEGORIES}")
        if self.nonfinite not in NONFINITE:
            raise ValueError(f"nonfinite must be one of {NONFINITE}")


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


def _unusable_rows(
    block: np.ndarray, chunk: pd.DataFrame, cols: Columns, manifest: Manifest, job: Job
) -> np.ndarray:
    """Rows with a missing or infinite value the model cannot take (none where the graph
    imputes); PredictError unless ``job.nonfinite`` is ``blank``."""
    if manifest.reader.nonfinite == "median":
        return np.zeros(len(block), dtype=bool)  # the graph imputes them with training medians
    bad = ~np.isfinite(block)
    if bad.any() and job.nonfinite == "error":
        i, j = np.argwhere(bad)[0]
        raise PredictError(
            f"{job.source}: data row {int(chunk.index[i]) + 1}, column '{cols.numeric[j]}': "
            f"{'empty or NaN' if np.isnan(block[i, j]) else block[i, j]}; the model was trained "
            f"with data.nonfinite: {manifest.reader.nonfinite} (no missing or infinite values), "
            "so fill in a finite number, remove the row, or pass --nonfinite blank"
        )
    rows = bad.any(axis=1)
    block[rows] = 0.0  # classified, then written blank
    return rows


def _categories(chunk: pd.DataFrame, cols: Columns, manifest: Manifest, job: Job) -> Any:
    texts = text_frame(chunk, cols.categorical)
    for name in cols.categorical if job.unknown_categories == "error" else ():
        known = manifest.vocabularies[name]
        values = texts[name]
        unknown = ~values.isin(known).to_numpy()
        if unknown.any():
            pos = int(np.argmax(unknown))
            shown = ", ".join(known[:8]) + (", ..." if len(known) > 8 else "")
            raise PredictError(
                f"{job.source}: data row {int(chunk.index[pos]) + 1}, column '{name}': category "
                f"{values.iloc[pos]!r} was never seen in training (known: {shown}); map it to "
                "a known category, remove the row, or pass --unknown-categories encode"
            )
    return texts.to_numpy(dtype=object)


def _session(folder: Path) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    return ort.InferenceSession(str(folder / MODEL_FILE), opts, providers=["CPUExecutionProvider"])


def _predict_chunk(
    chunk: pd.DataFrame, cols: Columns, manifest: Manifest, sess: Any, job: Job
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, np.ndarray]:
    """(the kept columns, class indices, probabilities, rows to write blank) of one chunk."""
    feeds: dict[str, np.ndarray] = {}
    blank = np.zeros(len(chunk), dtype=bool)
    if cols.numeric:
        feeds["numeric"] = _numbers(chunk, cols.numeric, job.source)
        blank = _unusable_rows(feeds["numeric"], chunk, cols, manifest, job)
    if cols.categorical:
        feeds["categorical"] = _categories(chunk, cols, manifest, job)
    probs, label = sess.run(["probabilities", "label"], feeds)
    return chunk[list(cols.kept)], label, probs, blank


def _fixed_point(probs: np.ndarray) -> np.ndarray:
    """Probabilities as ``d.dddddd`` fields, comma-separated, newline-terminated: one fixed-width
    byte row per input row (formatting floats one by one would take most of the run)."""
    n, k = probs.shape
    q = np.rint(np.clip(probs, 0.0, 1.0).astype(np.float64) * 10**DECIMALS).astype(np.int64)
    out = np.empty((n, k, DECIMALS + 3), dtype=np.uint8)
    out[:, :, 0] = ord("0") + q // 10**DECIMALS
    out[:, :, 1] = ord(".")
    for i in range(DECIMALS):
        out[:, :, 2 + i] = ord("0") + (q // 10 ** (DECIMALS - 1 - i)) % 10
    out[:, :, -1] = ord(",")
    out[:, -1, -1] = ord("\n")
    return out.reshape(n, -1).view(f"S{k * (DECIMALS + 3)}").ravel()


def _cell(text: str) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow([text])
    return buf.getvalue()


def _row(values: Any) -> bytes:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="").writerow(["" if pd.isna(v) else v for v in values])
    return buf.getvalue().encode()


class _Writer:
    """Writes the output CSV: kept columns, ``predicted``, one probability column per class."""

    def __init__(self, fh: IO[bytes], kept: tuple[str, ...], classes: tuple[str, ...]) -> None:
        self.fh, self.kept = fh, kept
        self.names = np.array([(_cell(c) + ",").encode() for c in classes], dtype=object)
        header = [*kept, PREDICTED, *(f"{PROBABILITY}{c}" for c in classes)]
        fh.write((",".join(_cell(h) for h in header) + "\n").encode())

    def write(
        self, kept: pd.DataFrame, label: np.ndarray, probs: np.ndarray, blank: np.ndarray
    ) -> None:
        prefix = self.names[label]
        values = _fixed_point(probs)
        if blank.any():  # an empty class and empty probabilities
            prefix, values = prefix.copy(), values.astype(object)
            prefix[blank] = b","
            values[blank] = b"," * (probs.shape[1] - 1) + b"\n"
        if self.kept:
            text = kept.to_csv(header=False, index=False, lineterminator="\n").encode()
            lines = text.split(b"\n")[: len(kept)]
            if text.count(b"\n") != len(kept):  # a kept value holds a line break: row by row
                lines = [_row(values) for values in kept.itertuples(index=False)]
            prefix = [a + b"," + b for a, b in zip(lines, prefix, strict=True)]
        self.fh.write(b"".join(a + b for a, b in zip(prefix, values, strict=True)))


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
    unknown_categories: str = "error",
    nonfinite: str = "error",
) -> int:
    """Classify every row of ``csv_path`` into ``out_path``; the number of rows written.

    ``unknown_categories``: ``error`` (a category never seen in training stops the run) or
    ``encode`` (it is encoded as the workflow scored such rows: no one-hot bit, ordinal -1).
    ``nonfinite`` (artifacts trained without imputing): ``error`` (a missing or infinite value
    stops the run) or ``blank`` (that row gets an empty class and empty probabilities).
    """
    manifest = read_manifest(artifact)
    folder = Path(artifact) if Path(artifact).is_dir() else Path(artifact).parent
    r = manifest.reader
    source = Path(csv_path)
    job = Job(source, unknown_categories, nonfinite)
    if not source.is_file():
        raise PredictError(f"{source}: no such file; name the CSV to classify")
    table = open_table(source, ReadSpec(r.header, r.column_names, r.duplicate_columns, r.encoding))
    cols = plan_columns(table, manifest)
    sess = _session(folder)
    show = _progress(sys.stderr.isatty() if progress is None else progress)
    rows = 0
    with atomic_path(out_path) as tmp, open(tmp, "wb") as fh:
        writer = _Writer(fh, cols.kept, manifest.classes)
        for chunk in _chunks(table, manifest, cols, chunk_rows or r.chunk_rows):
            writer.write(*_predict_chunk(chunk, cols, manifest, sess, job))
            rows += len(chunk)
            show(rows, False)
        if rows == 0:
            raise PredictError(f"{source}: no data rows (a header only); give a file with rows")
    show(rows, True)
    return rows


def predict_recommended(recommendation_path: str, model: str, csv_path: str, out_path: str) -> int:
    """Classify ``csv_path`` with the artifact ``recommendation.json`` names for ``model``."""
    import json

    rec = json.loads(Path(recommendation_path).read_text(encoding="utf-8"))
    entry = next((m for m in rec["models"] if m["model"] == model), None)
    artifact = entry and entry.get("artifact")
    if not artifact:
        raise PredictError(
            f"{recommendation_path}: no deployable artifact for model '{model}' (none passes "
            "parity, or deploy.export is off); see summary.md, 'Deployable ONNX artifacts'"
        )
    return predict_csv(Path(artifact).parent, csv_path, out_path, progress=False)
