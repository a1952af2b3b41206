"""Architecture ``mlp``: Linear -> ReLU (-> Dropout) blocks and a linear head."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from quantbench.models import checks


@dataclass(frozen=True)
class Config:
    """``hidden``: widths of the hidden layers; ``dropout`` after each hidden ReLU (training)."""

    hidden: tuple[int, ...] = (256, 256)
    dropout: float = 0.1

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", checks.size_list("hidden", self.hidden))
        object.__setattr__(self, "dropout", checks.dropout(self.dropout))

    def to_dict(self) -> dict[str, Any]:
        return {"hidden": list(self.hidden), "dropout": self.dropout}


class MLP(nn.Module):
    """Linear -> ReLU (-> Dropout) blocks and a linear head, all inside ``self.layers``.

    Names are stable: hidden blocks are ``fc{i}``/``relu{i}``/``drop{i}``, the head is ``head``.
    Input and output are float32 ``(batch, n_features)`` -> ``(batch, n_classes)`` logits.
    """

    # Every multiply-accumulate of forward() happens inside a Linear or Conv1d layer, so the
    # coverage report needs no operator-level count (see coverage.total_macs).
    macs_in_layers_only = True

    def __init__(self, n_features: int, n_classes: int, cfg: Config) -> None:
        super().__init__()
        blocks: OrderedDict[str, nn.Module] = OrderedDict()
        width = n_features
        for i, h in enumerate(cfg.hidden):
            blocks[f"fc{i}"] = nn.Linear(width, h)
            blocks[f"relu{i}"] = nn.ReLU()
            if cfg.dropout > 0:
                blocks[f"drop{i}"] = nn.Dropout(cfg.dropout)
            width = h
        blocks["head"] = nn.Linear(width, n_classes)
        self.layers = nn.Sequential(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (batch, in) -> (batch, n_classes)
        return self.layers(x)


def build(cfg: Config, n_features: int, n_classes: int) -> nn.Module:
    return MLP(n_features, n_classes, cfg)
