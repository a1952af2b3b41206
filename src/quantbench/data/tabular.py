"""Reading tabular flow files: CSV (with or without a header) and ARFF, in chunks.

A file is opened once to learn its layout (encoding, column names, ARFF attribute kinds); its
rows are then streamed as pandas chunks so that a large file never sits in memory as text.
Every problem a user can fix is a :class:`DataError` whose one-line message names the file, the
column or line, and what to change.
"""

from __future__ import annotations

import codecs
import csv
import fnmatch
import glob
import gzip
import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)

ENCODINGS = ("auto", "utf-8", "cp1252", "latin-1")
DUPLICATE_POLICIES = ("error", "first", "rename")
_SCAN_BLOCK = 1 << 24
_ARFF_NUMERIC = ("numeric", "real", "integer")
_ARFF_TEXT = ("string",)


class DataError(ValueError):
    """Input data the workflow cannot use; the message names the file, the place and the fix."""


@dataclass(frozen=True)
class ReadSpec:
    """How to read every file: header or given names, duplicate-name policy, encoding, chunks."""

    header: bool = True
    column_names: tuple[str, ...] = ()
    duplicate_columns: str = "error"
    encoding: str = "auto"
    chunk_rows: int = 50_000

    def __post_init__(self) -> None:
        if self.duplicate_columns not in DUPLICATE_POLICIES:
            raise ValueError(f"duplicate_columns must be one of {DUPLICATE_POLICIES}")
        if self.encoding not in ENCODINGS:
            raise ValueError(f"encoding must be one of {ENCODINGS}")
        if not self.header and not self.column_names:
            raise ValueError("header: false needs column_names")


@dataclass(frozen=True)
class Table:
    """One opened file: its final column names and how to stream its rows."""

    path: Path
    columns: tuple[str, ...]
    encoding: str
    skip_lines: int
    duplicates: dict[str, str]  # renamed later copy -> the name it repeats
    nominal: tuple[str, ...] = ()  # ARFF nominal/string attributes
    arff: bool = False


def data_files(data: Mapping[str, Any]) -> list[Path]:
    """The input files the config's ``data:`` mapping names (for the workflow's rule inputs).

    Uses ``data.csv.path`` and ``data.csv.file_glob`` (else the preset's, else ``*.csv``);
    imports no more than pandas, so Snakemake can call it while it parses the workflow.
    """
    from quantbench.data.presets import preset_defaults

    csv_keys = data.get("csv") or {}
    pattern = csv_keys.get("file_glob") or preset_defaults(data.get("preset")).get("file_glob")
    if not csv_keys.get("path"):
        raise DataError("data.csv.path is not set; name a file, a folder or a glob")
    return expand_sources(str(csv_keys["path"]), pattern or "*.csv")


def expand_sources(path: str | list[str], file_glob: str = "*.csv") -> list[Path]:
    """Files named by a path, a folder (matched by ``file_glob``, case-insensitive) or a glob."""
    items = [path] if isinstance(path, str | Path) else list(path)
    if not items:
        raise DataError("no input file given; set data.csv.path to a file, a folder or a glob")
    files: list[Path] = []
    for item in map(str, items):
        files.extend(_expand_one(item, file_glob))
    return list(dict.fromkeys(files))


def _expand_one(item: str, file_glob: str) -> list[Path]:
    p = Path(item)
    if glob.has_magic(item):
        found = sorted(Path(f) for f in glob.glob(item) if Path(f).is_file())
        if not found:
            raise DataError(f"{item}: the pattern matches no file; check data.csv.path")
        return found
    if p.is_dir():
        found = sorted(
            f
            for f in p.iterdir()
            if f.is_file() and fnmatch.fnmatch(f.name.lower(), file_glob.lower())
        )
        if not found:
            raise DataError(
                f"{p}: the folder holds no file matching '{file_glob}'; "
                "set data.csv.file_glob or point data.csv.path at a file"
            )
        return found
    if not p.exists():
        raise DataError(f"{p}: no such file; check data.csv.path (a file, a folder or a glob)")
    return [p]


def detect_encoding(path: Path, requested: str) -> str:
    """The encoding that decodes the whole file: UTF-8 when it can, else Windows-1252/Latin-1."""
    if requested in ("cp1252", "latin-1"):
        return requested
    bad = _first_undecodable(path, "utf-8")
    if bad is None:
        return "utf-8-sig"
    offset, byte = bad
    if requested == "utf-8":
        raise DataError(
            f"{path}: byte 0x{byte:02x} at offset {offset} is not UTF-8; "
            "set data.csv.encoding: auto (or cp1252/latin-1), or re-save the file as UTF-8"
        )
    chosen = "cp1252" if _first_undecodable(path, "cp1252") is None else "latin-1"
    log.warning(
        "%s: byte 0x%02x at offset %d is not UTF-8; reading the file as %s",
        path,
        byte,
        offset,
        chosen,
    )
    return chosen


def _open_bytes(path: Path) -> IO[bytes]:
    """The file's bytes, decompressed when it ends in ``.gz``."""
    return gzip.open(path, "rb") if path.suffix.lower() == ".gz" else open(path, "rb")


def _open_text(path: Path, encoding: str, errors: str = "strict") -> codecs.StreamReader:
    return codecs.getreader(encoding)(_open_bytes(path), errors=errors)


def _first_undecodable(path: Path, encoding: str) -> tuple[int, int] | None:
    decoder = codecs.getincrementaldecoder(encoding)()
    done = 0
    with _open_bytes(path) as fh:
        while block := fh.read(_SCAN_BLOCK):
            try:
                decoder.decode(block)
            except UnicodeDecodeError as exc:
                return done + exc.start, block[exc.start]
            done += len(block)
        try:
            decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            return done + exc.start, 0
    return None


def open_table(path: Path, spec: ReadSpec) -> Table:
    """Learn a file's layout without reading its rows."""
    if path.stat().st_size == 0:
        raise DataError(f"{path}: the file is empty; point data.csv.path at a file with rows")
    encoding = detect_encoding(path, spec.encoding)
    if path.name.lower().endswith((".arff", ".arff.gz")) or _looks_like_arff(path, encoding):
        names, nominal, skip = read_arff_header(path, encoding)
        return Table(path, names, encoding, skip, {}, nominal, arff=True)
    first = _first_row(path, encoding)
    if spec.header:
        names, dups = dedupe_columns(path, [c.strip() for c in first], spec.duplicate_columns)
        return Table(path, names, encoding, 1, dups)
    if len(first) != len(spec.column_names):
        raise DataError(
            f"{path}: line 1 has {len(first)} fields but {len(spec.column_names)} column names "
            "are given; check data.preset / data.csv.column_names, or data.csv.header"
        )
    return Table(path, spec.column_names, encoding, 0, {})


def _first_row(path: Path, encoding: str) -> list[str]:
    with _open_text(path, encoding) as fh:
        for row in csv.reader(fh):
            if any(cell.strip() for cell in row):
                return row
    raise DataError(f"{path}: the file holds only blank lines; point data.csv.path at a CSV")


def _looks_like_arff(path: Path, encoding: str) -> bool:
    with _open_text(path, encoding, errors="replace") as fh:
        for line in fh:
            text = line.strip()
            if text and not text.startswith("%"):
                return text.lower().startswith("@relation")
    return False


def dedupe_columns(
    path: Path, names: list[str], policy: str
) -> tuple[tuple[str, ...], dict[str, str]]:
    """Apply the duplicate-name policy; return unique names and {renamed copy: original}."""
    seen: set[str] = set()
    out: list[str] = []
    dups: dict[str, str] = {}
    for i, name in enumerate(names):
        if not name:
            name = f"unnamed_{i + 1}"
        if name in seen:
            if policy == "error":
                first = names.index(name) + 1
                raise DataError(
                    f"{path}: column name '{name}' appears more than once (columns {first} and "
                    f"{i + 1}); set data.csv.duplicate_columns: first (drop later copies) or "
                    "rename (keep them as name.1, ...), or fix the header"
                )
            new = _unique(name, seen | set(names))
            dups[new] = name
            name = new
        seen.add(name)
        out.append(name)
    return tuple(out), dups


def _unique(name: str, taken: set[str]) -> str:
    k = 1
    while f"{name}.{k}" in taken:
        k += 1
    return f"{name}.{k}"


def read_arff_header(path: Path, encoding: str) -> tuple[tuple[str, ...], tuple[str, ...], int]:
    """Attribute names, the nominal/string ones, and the number of lines before the data."""
    names: list[str] = []
    nominal: list[str] = []
    with _open_text(path, encoding) as fh:
        for lineno, line in enumerate(fh, start=1):
            text = line.strip()
            low = text.lower()
            if not text or text.startswith("%") or low.startswith("@relation"):
                continue
            if low.startswith("@attribute"):
                name, kind = _parse_attribute(path, lineno, text)
                names.append(name)
                if kind != "numeric":
                    nominal.append(name)
            elif low.startswith("@data"):
                if not names:
                    raise DataError(f"{path}: no @attribute line before @data; fix the header")
                deduped, _ = dedupe_columns(path, names, "error")
                return deduped, tuple(nominal), lineno
            else:
                raise DataError(
                    f"{path} line {lineno}: unexpected header line '{text[:60]}'; an ARFF header "
                    "holds only @relation, @attribute and comment lines before @data"
                )
    raise DataError(f"{path}: no @data line; the ARFF file is cut short or is not ARFF")


_ATTRIBUTE = re.compile(r"@attribute\s+('(?:[^']|\\')*'|\"[^\"]*\"|\S+)\s+(.+)$", re.IGNORECASE)


def _parse_attribute(path: Path, lineno: int, text: str) -> tuple[str, str]:
    m = _ATTRIBUTE.match(text)
    kind = m.group(2).strip() if m else ""
    if m and kind.lower() in _ARFF_NUMERIC:
        return m.group(1).strip("'\""), "numeric"
    if m and (kind.lower() in _ARFF_TEXT or (kind.startswith("{") and kind.endswith("}"))):
        return m.group(1).strip("'\""), "nominal"
    raise DataError(
        f"{path} line {lineno}: cannot read '{text[:80]}'; write @attribute <name> "
        "numeric|real|integer|string|{value1,value2,...}"
    )


def iter_chunks(table: Table, spec: ReadSpec, text_columns: set[str]) -> Iterator[pd.DataFrame]:
    """Stream a file's rows as DataFrames; ``text_columns`` are kept as strings.

    The index counts data rows from 0 across chunks, so ``index + 1`` is the data row number.
    """
    as_text = {c: "str" for c in table.columns if c in text_columns or c in table.nominal}
    options = {"na_values": ["?"], "quotechar": "'", "skipinitialspace": True}
    reader = pd.read_csv(
        table.path,
        header=None,
        names=list(table.columns),
        skiprows=table.skip_lines,
        dtype=as_text,
        encoding=table.encoding,
        chunksize=spec.chunk_rows,
        low_memory=False,
        comment="%" if table.arff else None,
        **(options if table.arff else {}),
    )
    try:
        yield from reader
    except pd.errors.ParserError as exc:
        raise _ragged(table, exc) from None
    finally:
        reader.close()


def _ragged(table: Table, exc: Exception) -> DataError:
    m = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(exc))
    if not m:
        return DataError(f"{table.path}: cannot parse the file ({exc}); check that it is a CSV")
    expected, line, saw = m.groups()
    return DataError(
        f"{table.path} line {line}: {saw} fields where the header has {expected}; "
        "fix or delete that line (a stray comma or an unquoted text field)"
    )


# Strings that mean "no value" in a numeric column (besides an empty field).
_NA_TEXT = frozenset({"nan", "na", "n/a", "null", "none", "?", "-", ""})


def numeric_block(frame: pd.DataFrame, columns: tuple[str, ...], where: str) -> np.ndarray:
    """The named columns as one float32 array; DataError on text that is not a number.

    ``Infinity``/``inf`` become ±inf and empty or ``NaN`` fields become NaN, left to the caller's
    non-finite policy. Messages number rows as ``index + 1`` (data rows from 1, as iter_chunks).
    """
    out = np.empty((len(frame), len(columns)), dtype=np.float32)
    for j, name in enumerate(columns):
        col = frame[name]
        if not pd.api.types.is_numeric_dtype(col) or pd.api.types.is_bool_dtype(col):
            col = _to_number(col, name, where)
        out[:, j] = col.to_numpy(dtype=np.float32, na_value=np.nan)
    return out


def _to_number(col: pd.Series, name: str, where: str) -> pd.Series:
    if pd.api.types.is_bool_dtype(col):
        return col.astype(np.float32)
    num = pd.to_numeric(col, errors="coerce")
    failed = num.isna() & col.notna()
    if failed.any():
        text = col[failed].astype(str).str.strip().str.lower()
        bad = ~text.isin(_NA_TEXT)
        if bad.any():
            pos = int(np.flatnonzero(failed.to_numpy())[np.argmax(bad.to_numpy())])
            raise DataError(
                f"{where}: column '{name}' is not numeric ({col.iloc[pos]!r} in data row "
                f"{_row_number(col.index[pos])}); add it to data.csv.drop_columns, or to "
                "data.csv.categorical_columns if it is a category"
            )
    return num


def text_frame(frame: pd.DataFrame, columns: tuple[str, ...]) -> pd.DataFrame:
    """Categorical columns as stripped Python strings, empty fields as ``"missing"``."""
    out = pd.DataFrame(index=pd.RangeIndex(len(frame)))
    for name in columns:
        col = frame[name].astype("str").str.strip()
        col = col.where(frame[name].notna().to_numpy() & (col != "").to_numpy(), "missing")
        out[name] = col.to_numpy(dtype=object)
    return out


def _row_number(index: Any) -> str:
    return str(index + 1) if isinstance(index, int | np.integer) else repr(index)
