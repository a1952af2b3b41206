"""Shared fixtures: a small seeded 3-class dataset in the dataset.npz contract."""

import numpy as np
import pytest

from quantbench.data.dataset import Dataset, save_dataset


def make_toy_dataset(n: int = 900, features: int = 10, seed: int = 0) -> Dataset:
    """Three gaussian classes with overlap, already standardised, split 60/20/20."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(0, 1.2, size=(3, features))
    y = rng.integers(0, 3, size=n)
    x = (centers[y] + rng.normal(0, 1.0, size=(n, features))).astype(np.float32)
    a, b = int(0.6 * n), int(0.8 * n)
    return Dataset(
        x_train=x[:a],
        y_train=y[:a],
        x_val=x[a:b],
        y_val=y[a:b],
        x_test=x[b:],
        y_test=y[b:],
        feature_names=tuple(f"f{i}" for i in range(features)),
        class_names=("video", "voip", "web"),
    )


@pytest.fixture
def toy_dataset() -> Dataset:
    return make_toy_dataset()


@pytest.fixture
def toy_dataset_path(tmp_path, toy_dataset):
    path = tmp_path / "dataset.npz"
    save_dataset(path, toy_dataset)
    return path
