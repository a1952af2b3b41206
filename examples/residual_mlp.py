"""A user's own model for quantbench: a residual MLP (``arch: custom``).

quantbench imports this file and calls ``residual_mlp(n_features, n_classes, **params)``; the
model maps float32 rows ``(batch, n_features)`` to logits ``(batch, n_classes)``. Use it in a
config as::

    models:
      resmlp:
        arch: custom
        path: examples/residual_mlp.py
        factory: residual_mlp
        params: {width: 256, blocks: 2}

Everything a kind quantizes is a plain ``nn.Linear`` called as a module, and the forward pass
has no data-dependent Python branches, so torch.fx can trace it: every kind runs on it.
"""

from __future__ import annotations

import torch
from torch import nn


class ResidualBlock(nn.Module):
    """``x + fc2(relu(fc1(x)))``: two Linear layers with a skip connection."""

    def __init__(self, width: int, dropout: float) -> None:
        super().__init__()
        self.fc1 = nn.Linear(width, width)
        self.act = nn.ReLU()
        self.drop = nn.Dropout(dropout)
        self.fc2 = nn.Linear(width, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.fc2(self.drop(self.act(self.fc1(x))))


class ResidualMLP(nn.Module):
    def __init__(self, n_features: int, n_classes: int, width: int, blocks: int, dropout: float):
        super().__init__()
        self.stem = nn.Linear(n_features, width)
        self.stem_act = nn.ReLU()
        self.blocks = nn.Sequential(*[ResidualBlock(width, dropout) for _ in range(blocks)])
        self.head = nn.Linear(width, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (batch, F) -> (batch, n_classes)
        return self.head(self.blocks(self.stem_act(self.stem(x))))


def residual_mlp(
    n_features: int, n_classes: int, width: int = 256, blocks: int = 2, dropout: float = 0.1
) -> nn.Module:
    """The factory quantbench calls: ``width`` of every hidden layer, ``blocks`` residual blocks."""
    return ResidualMLP(n_features, n_classes, width, blocks, dropout)
