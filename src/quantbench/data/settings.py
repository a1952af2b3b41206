"""The preprocess step's settings: :class:`DataConfig` (validated on construction) and how
the workflow config's ``data`` section maps onto it."""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

from quantbench.data.presets import IDENTIFIER_COLUMNS, PRESETS, preset_defaults
from quantbench.data.tabular import (
    DUPLICATE_POLICIES,
    ENCODINGS,
    ReadSpec,
)

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


def bad_value(name: str, value: Any, allowed: str) -> ValueError:
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
                raise bad_value(name, value, "give a list of column names")
            object.__setattr__(self, name, tuple(value))
        for name in ("label_map", "label_aliases"):
            value = getattr(self, name)
            if not isinstance(value, dict):
                raise bad_value(name, value, "give a mapping {raw label: class}")
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
                raise bad_value(name, getattr(self, name), f"choose one of: {names}")
        if not isinstance(self.label_column, str) or not self.label_column.strip():
            raise bad_value("label_column", self.label_column, "name the column holding the class")
        if not isinstance(self.header, bool):
            raise bad_value("header", self.header, "use true or false")
        if not self.header and self.label_column not in self.column_names:
            raise bad_value(
                "column_names", self.column_names, "header: false needs every column named"
            )

    def _check_numbers(self) -> None:
        for name in ("val_fraction", "test_fraction"):
            value = getattr(self, name)
            if (
                isinstance(value, bool)
                or not isinstance(value, int | float)
                or not 0 < value <= 0.5
            ):
                raise bad_value(name, value, "use a number above 0 and at most 0.5")
        if self.val_fraction + self.test_fraction >= 1:
            raise bad_value(
                "val_fraction",
                self.val_fraction,
                f"val_fraction + test_fraction ({self.test_fraction}) must stay below 1",
            )
        if isinstance(self.chunk_rows, bool) or not isinstance(self.chunk_rows, int):
            raise bad_value("chunk_rows", self.chunk_rows, "use a whole number of rows >= 1000")
        if self.chunk_rows < 1000:
            raise bad_value("chunk_rows", self.chunk_rows, "use a whole number of rows >= 1000")

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


def min_class_rows(cfg: DataConfig) -> int:
    """Rows a class needs so that the stratified split can give each split at least one."""
    return max(3, math.ceil(1 / min(cfg.val_fraction, cfg.test_fraction) - 1e-9))
