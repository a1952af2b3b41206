"""Architecture ``transformer``: a small tabular transformer (one token per feature).

Feature ``j`` of a row becomes the token ``x_j · weight[j] + bias[j]`` (``d_model`` wide, the
feature tokenizer of FT-Transformer, Gorishniy et al. 2021); a learned class token goes first.
Pre-norm encoder layers follow (multi-head self-attention, then a ReLU feed-forward block, each
with a residual connection); the class token's final state, normalised, feeds a linear head.

Every matrix with weights is an ``nn.Linear`` (``qkv`` and ``proj`` inside attention, ``ff1``
and ``ff2`` in the feed-forward block, ``head``), so the weight-only and dynamic kinds see them
all. The tokenizer is an element-wise product (no matrix), and the two products inside attention
(``q·kᵀ`` and the weighted sum of ``v``) multiply activations by activations. Names are stable:
``tokenizer``, ``encoder.{i}.norm1|attn.qkv|attn.proj|norm2|ff1|act|ff2``, ``norm``, ``head``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from quantbench.models import checks


@dataclass(frozen=True)
class Config:
    """``d_model``: token width; ``heads`` (dividing ``d_model``); ``layers``: encoder layers;
    ``ffn``: hidden width of the feed-forward blocks; ``dropout`` on the residual branches
    (training only)."""

    d_model: int = 32
    heads: int = 2
    layers: int = 2
    ffn: int = 64
    dropout: float = 0.0

    def __post_init__(self) -> None:
        for name in ("d_model", "heads", "layers", "ffn"):
            checks.positive_int(name, getattr(self, name))
        if self.d_model % self.heads:
            raise ValueError(
                f"heads must divide d_model, got heads={self.heads} for d_model={self.d_model}"
            )
        object.__setattr__(self, "dropout", checks.dropout(self.dropout))

    def to_dict(self) -> dict[str, Any]:
        return {
            "d_model": self.d_model,
            "heads": self.heads,
            "layers": self.layers,
            "ffn": self.ffn,
            "dropout": self.dropout,
        }


class FeatureTokenizer(nn.Module):
    """``(batch, F)`` -> ``(batch, F + 1, d)``: a class token, then one token per feature."""

    def __init__(self, n_features: int, d_model: int) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(d_model)
        self.weight = nn.Parameter(torch.empty(n_features, d_model).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(n_features, d_model).uniform_(-bound, bound))
        self.cls = nn.Parameter(torch.empty(1, 1, d_model).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = x.unsqueeze(-1) * self.weight + self.bias  # (batch, F, d)
        return torch.cat([self.cls.expand(x.shape[0], -1, -1), tokens], dim=1)


class SelfAttention(nn.Module):
    """Multi-head self-attention with one ``qkv`` projection and an output ``proj``."""

    def __init__(self, d_model: int, heads: int) -> None:
        super().__init__()
        self.heads, self.head_dim, self.d_model = heads, d_model // heads, d_model
        self.scale = 1.0 / math.sqrt(self.head_dim)
        self.qkv = nn.Linear(d_model, 3 * d_model)
        self.proj = nn.Linear(d_model, d_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (batch, n, d) -> (batch, n, d)
        b, n = x.shape[0], x.shape[1]
        qkv = self.qkv(x).reshape(b, n, 3, self.heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]  # (batch, heads, n, hd) each
        # Explicit products (faster than the fused CPU kernel at these sizes, and counted by
        # torch's FLOP counter); einsum needs no transposed copy of k, which FX graph mode
        # would otherwise round to int8 on its way to an FP32 product.
        scores = torch.einsum("bhqd,bhkd->bhqk", q, k).mul(self.scale)  # (batch, heads, n, n)
        a = torch.einsum("bhqk,bhkd->bhqd", scores.softmax(dim=-1), v)  # (batch, heads, n, hd)
        return self.proj(a.transpose(1, 2).reshape(b, n, self.d_model))


class EncoderLayer(nn.Module):
    """Pre-norm: ``x + attn(norm1(x))``, then ``x + ff2(relu(ff1(norm2(x))))``."""

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(cfg.d_model)
        self.attn = SelfAttention(cfg.d_model, cfg.heads)
        self.drop1 = nn.Dropout(cfg.dropout)
        self.norm2 = nn.LayerNorm(cfg.d_model)
        self.ff1 = nn.Linear(cfg.d_model, cfg.ffn)
        self.act = nn.ReLU()
        self.ff2 = nn.Linear(cfg.ffn, cfg.d_model)
        self.drop2 = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop1(self.attn(self.norm1(x)))
        return x + self.drop2(self.ff2(self.act(self.ff1(self.norm2(x)))))


class TabularTransformer(nn.Module):
    """``(batch, n_features)`` float32 -> ``(batch, n_classes)`` logits."""

    def __init__(self, n_features: int, n_classes: int, cfg: Config) -> None:
        super().__init__()
        self.tokenizer = FeatureTokenizer(n_features, cfg.d_model)
        self.encoder = nn.Sequential(*[EncoderLayer(cfg) for _ in range(cfg.layers)])
        self.norm = nn.LayerNorm(cfg.d_model)
        self.head = nn.Linear(cfg.d_model, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(self.tokenizer(x))  # (batch, F + 1, d)
        return self.head(self.norm(h[:, 0]))  # the class token


def build(cfg: Config, n_features: int, n_classes: int) -> nn.Module:
    return TabularTransformer(n_features, n_classes, cfg)
