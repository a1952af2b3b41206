"""The FP32 classifier: a plain MLP whose layer names the quantization methods rely on."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn


@dataclass(frozen=True)
class ModelConfig:
    """Shape of the MLP; stored in every checkpoint so any method can rebuild the module."""

    in_features: int
    hidden: tuple[int, ...]
    n_classes: int
    dropout: float = 0.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        if self.in_features < 1:
            raise ValueError(f"in_features must be >= 1, got {self.in_features}")
        if self.n_classes < 2:
            raise ValueError(f"n_classes must be >= 2, got {self.n_classes}")
        if not self.hidden or any(h < 1 for h in self.hidden):
            raise ValueError(
                f"hidden must be a non-empty list of positive sizes, got {self.hidden}"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelConfig:
        return cls(
            in_features=int(d["in_features"]),
            hidden=tuple(d["hidden"]),
            n_classes=int(d["n_classes"]),
            dropout=float(d.get("dropout", 0.0)),
        )


class MLP(nn.Module):
    """Linear -> ReLU (-> Dropout) blocks and a linear head, all inside ``self.layers``.

    Names are stable: hidden blocks are ``fc{i}``/``relu{i}``/``drop{i}``, the head is ``head``.
    Input and output are float32 ``(batch, in_features)`` -> ``(batch, n_classes)`` logits.
    """

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        blocks: OrderedDict[str, nn.Module] = OrderedDict()
        width = cfg.in_features
        for i, h in enumerate(cfg.hidden):
            blocks[f"fc{i}"] = nn.Linear(width, h)
            blocks[f"relu{i}"] = nn.ReLU()
            if cfg.dropout > 0:
                blocks[f"drop{i}"] = nn.Dropout(cfg.dropout)
            width = h
        blocks["head"] = nn.Linear(width, cfg.n_classes)
        self.layers = nn.Sequential(blocks)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (batch, in) -> (batch, n_classes)
        return self.layers(x)

    def linear_names(self) -> list[str]:
        """Qualified names of the Linear layers, input to output (``layers.fc0``, ...)."""
        return [f"layers.{n}" for n, m in self.layers.named_children() if isinstance(m, nn.Linear)]

    def fusion_groups(self) -> list[list[str]]:
        """Linear+ReLU pairs that eager-mode fusion merges into one ``LinearReLU``."""
        return [[f"layers.fc{i}", f"layers.relu{i}"] for i in range(len(self.cfg.hidden))]
