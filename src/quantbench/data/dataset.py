"""The preprocessed dataset contract: ``data/dataset.npz``.

Arrays: ``x_train``/``x_val``/``x_test`` float32 ``(n, n_features)`` already scaled with the
scaler fitted on the training split; ``y_*`` int64 class indices; ``feature_names`` and
``class_names`` as unicode arrays. Kept apart from the preprocessing code so that the jobs that
only read the dataset do not import pandas and scikit-learn.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from quantbench.core.files import atomic_path

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Dataset:
    x_train: np.ndarray
    y_train: np.ndarray
    x_val: np.ndarray
    y_val: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    feature_names: tuple[str, ...]
    class_names: tuple[str, ...]

    def __post_init__(self) -> None:
        for split in SPLITS:
            x, y = getattr(self, f"x_{split}"), getattr(self, f"y_{split}")
            if x.ndim != 2 or x.shape[1] != len(self.feature_names):
                raise ValueError(f"x_{split} must be (n, {len(self.feature_names)}), got {x.shape}")
            if y.shape != (x.shape[0],):
                raise ValueError(f"y_{split} must hold one label per row of x_{split}")

    @property
    def n_features(self) -> int:
        return len(self.feature_names)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)


def save_dataset(path: str | os.PathLike[str], ds: Dataset) -> None:
    arrays = {f"x_{s}": getattr(ds, f"x_{s}").astype(np.float32) for s in SPLITS}
    arrays |= {f"y_{s}": getattr(ds, f"y_{s}").astype(np.int64) for s in SPLITS}
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(
            fh,
            feature_names=np.array(ds.feature_names, dtype=str),
            class_names=np.array(ds.class_names, dtype=str),
            **arrays,
        )


def load_dataset(path: str | os.PathLike[str]) -> Dataset:
    with np.load(Path(path), allow_pickle=False) as z:
        return Dataset(
            **{f"x_{s}": z[f"x_{s}"] for s in SPLITS},
            **{f"y_{s}": z[f"y_{s}"] for s in SPLITS},
            feature_names=tuple(str(n) for n in z["feature_names"]),
            class_names=tuple(str(n) for n in z["class_names"]),
        )
