"""What every quantization kind receives and returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class CalibrationData:
    """Preprocessed (scaled) float32 rows a method may use.

    ``x_train``/``y_train`` are training rows only: calibration and fine-tuning draw from them.
    ``x_val``/``y_val`` are for early stopping (QAT) and held-out error reports, never for
    calibration. Test rows never reach a method.
    """

    x_train: torch.Tensor  # (n_train, in_features) float32
    y_train: torch.Tensor  # (n_train,) int64
    x_val: torch.Tensor  # (n_val, in_features) float32
    y_val: torch.Tensor  # (n_val,) int64
    seed: int = 0
    device: str = "cpu"

    def __post_init__(self) -> None:
        if self.x_train.ndim != 2 or self.x_train.shape[0] != self.y_train.shape[0]:
            raise ValueError("x_train must be (n, features) with one label per row")
        if self.x_val.ndim != 2 or self.x_val.shape[0] != self.y_val.shape[0]:
            raise ValueError("x_val must be (n, features) with one label per row")

    def calibration_rows(self, n: int) -> torch.Tensor:
        """The first ``n`` training rows after a seeded shuffle (all of them if ``n`` is larger)."""
        g = torch.Generator().manual_seed(self.seed)
        idx = torch.randperm(self.x_train.shape[0], generator=g)[: min(n, self.x_train.shape[0])]
        return self.x_train[idx]


@dataclass
class QuantizedModel:
    """A method's result.

    ``module``: runnable CPU model in eval mode, exactly what loading the checkpoint rebuilds.
    ``state``: what the checkpoint stores (tensors, numbers, strings, lists, dicts only, so
    ``torch.load(weights_only=True)`` reads it back); packed weights stay packed here.
    ``info``: JSON-serialisable facts (``bits``, per-layer errors, timings) for the info JSON.
    """

    module: nn.Module
    state: dict[str, Any]
    info: dict[str, Any] = field(default_factory=dict)
