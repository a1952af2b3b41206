"""Architecture ``cnn1d``: 1-D convolutions over the feature vector, pooling, a linear head.

The feature vector is read as a sequence of one channel, ``(batch, 1, n_features)``. Each block
is ``Conv1d`` (odd kernel, zero padding that keeps the length) -> ``ReLU`` -> ``MaxPool1d``;
the last block's channels and positions are flattened into an optional hidden ``Linear`` ->
``ReLU`` and the linear head. Names are stable: ``blocks.conv{i}``, ``blocks.relu{i}``,
``blocks.pool{i}``, ``fc``/``fc_relu``/``drop``, ``head``.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from quantbench.models import checks


@dataclass(frozen=True)
class Config:
    """``channels``: output channels of each conv block; ``kernel_size`` (odd) of every conv;
    ``pool``: max-pool window after each block (1 = no pooling); ``hidden``: width of the
    Linear+ReLU between the flattened features and the head (0 = none); ``dropout`` before the
    head (training only)."""

    channels: tuple[int, ...] = (32, 64)
    kernel_size: int = 3
    pool: int = 2
    hidden: int = 128
    dropout: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", checks.size_list("channels", self.channels))
        k = checks.positive_int("kernel_size", self.kernel_size)
        if k % 2 == 0:
            raise ValueError(
                f"kernel_size must be odd (the padding keeps the length), got {k}; use {k + 1}"
            )
        checks.positive_int("pool", self.pool)
        checks.positive_int("hidden", self.hidden, low=0)
        object.__setattr__(self, "dropout", checks.dropout(self.dropout))

    def to_dict(self) -> dict[str, Any]:
        return {
            "channels": list(self.channels),
            "kernel_size": self.kernel_size,
            "pool": self.pool,
            "hidden": self.hidden,
            "dropout": self.dropout,
        }

    def positions(self, n_features: int) -> int:
        """Sequence length after the last block; ValueError when pooling leaves none."""
        length = n_features
        for i in range(len(self.channels)):
            length //= self.pool
            if length < 1:
                raise ValueError(
                    f"cnn1d: {n_features} features leave no positions after block {i} "
                    f"(max-pool {self.pool} per block); use fewer channels entries or a "
                    "smaller pool"
                )
        return length


class CNN1d(nn.Module):
    """``(batch, n_features)`` float32 -> ``(batch, n_classes)`` logits."""

    # Every multiply-accumulate of forward() happens inside a Linear or Conv1d layer, so the
    # coverage report needs no operator-level count (see coverage.total_macs).
    macs_in_layers_only = True

    def __init__(self, n_features: int, n_classes: int, cfg: Config) -> None:
        super().__init__()
        length = cfg.positions(n_features)
        blocks: OrderedDict[str, nn.Module] = OrderedDict()
        c_in = 1
        for i, c in enumerate(cfg.channels):
            blocks[f"conv{i}"] = nn.Conv1d(c_in, c, cfg.kernel_size, padding=cfg.kernel_size // 2)
            blocks[f"relu{i}"] = nn.ReLU()
            if cfg.pool > 1:
                blocks[f"pool{i}"] = nn.MaxPool1d(cfg.pool)
            c_in = c
        self.blocks = nn.Sequential(blocks)
        width = c_in * length
        self.fc: nn.Module = nn.Linear(width, cfg.hidden) if cfg.hidden else nn.Identity()
        self.fc_relu: nn.Module = nn.ReLU() if cfg.hidden else nn.Identity()
        width = cfg.hidden or width
        self.drop = nn.Dropout(cfg.dropout) if cfg.dropout > 0 else nn.Identity()
        self.head = nn.Linear(width, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # torch.flatten (not nn.Flatten) keeps int8 tensors int8 in FX graph mode
        h = torch.flatten(self.blocks(x.unsqueeze(1)), 1)  # (batch, 1, F) -> (batch, C * L)
        h = self.fc_relu(self.fc(h))  # (batch, hidden)
        return self.head(self.drop(h))


def build(cfg: Config, n_features: int, n_classes: int) -> nn.Module:
    return CNN1d(n_features, n_classes, cfg)
