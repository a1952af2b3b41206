"""Raw feature rows as the workflow read them: ``data/{rep}/test_raw.npz``.

The preprocess step stores the test split's rows before scaling and encoding (numeric values as
float32 exactly as parsed, non-finite ones as NaN where the imputer fills them; categories as
stripped strings), so the parity check can feed an artifact the raw rows a user would give it and
compare with the torch model on the same rows. numpy only: no pandas or scikit-learn needed.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from quantbench.core.files import atomic_path


@dataclass(frozen=True)
class RawRows:
    numeric: np.ndarray  # float32 [n, n_numeric]
    categorical: np.ndarray  # unicode [n, n_categorical] (zero columns without categories)
    numeric_columns: tuple[str, ...]
    categorical_columns: tuple[str, ...]

    def __post_init__(self) -> None:
        n = len(self.numeric)
        if self.numeric.shape != (n, len(self.numeric_columns)):
            raise ValueError(f"numeric must be (n, {len(self.numeric_columns)})")
        if self.categorical.shape != (n, len(self.categorical_columns)):
            raise ValueError(f"categorical must be ({n}, {len(self.categorical_columns)})")

    def __len__(self) -> int:
        return len(self.numeric)

    def feeds(self) -> dict[str, np.ndarray]:
        """The artifact's inputs: ``numeric`` and, with categorical columns, ``categorical``."""
        out = {"numeric": np.ascontiguousarray(self.numeric, dtype=np.float32)}
        if self.categorical_columns:
            out["categorical"] = self.categorical.astype(object)
        return out


def save_raw_rows(path: str | os.PathLike[str], rows: RawRows) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(
            fh,
            numeric=rows.numeric.astype(np.float32),
            categorical=rows.categorical.astype(str),
            numeric_columns=np.array(rows.numeric_columns, dtype=str),
            categorical_columns=np.array(rows.categorical_columns, dtype=str),
        )


def load_raw_rows(path: str | os.PathLike[str]) -> RawRows:
    with np.load(Path(path), allow_pickle=False) as z:
        n_cat = len(z["categorical_columns"])
        categorical = z["categorical"].reshape(len(z["numeric"]), n_cat)
        return RawRows(
            numeric=z["numeric"],
            categorical=categorical,
            numeric_columns=tuple(str(c) for c in z["numeric_columns"]),
            categorical_columns=tuple(str(c) for c in z["categorical_columns"]),
        )
