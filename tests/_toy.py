"""A small trained FP32 model for the int8 kind tests (no conftest fixtures, seeded, cached).

Three overlapping gaussian classes in 30 standardised features, split train/val/test, and an
``MLP(ModelConfig(30, (64, 64), 3))`` trained briefly with Adam: accurate but not perfect, so the
agreement tests see borderline rows.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from quantbench import ao
from quantbench.checkpoint import save_checkpoint
from quantbench.loader import load_model
from quantbench.methods.base import CalibrationData
from quantbench.model import MLP, ModelConfig

FEATURES = 30
CLASSES = 3
MODEL_CFG = ModelConfig(in_features=FEATURES, hidden=(64, 64), n_classes=CLASSES, dropout=0.1)


@dataclass(frozen=True)
class Toy:
    model: MLP  # trained FP32, eval mode
    calib: CalibrationData
    x_test: torch.Tensor
    y_test: torch.Tensor


def gaussian_mixture(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``n`` rows of three overlapping gaussian classes (two clusters each), standardised."""
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(CLASSES * 2, FEATURES, generator=g) * 0.45
    cluster = torch.randint(0, CLASSES * 2, (n,), generator=g)
    x = centers[cluster] + torch.randn(n, FEATURES, generator=g)
    x = (x - x.mean(0)) / x.std(0)
    return x.float(), (cluster % CLASSES).long()


def _train(x: torch.Tensor, y: torch.Tensor, seed: int, epochs: int = 8) -> MLP:
    torch.manual_seed(seed)
    model = MLP(MODEL_CFG)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(x.shape[0], generator=gen).split(128):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    return model.eval()


@functools.cache
def _build(seed: int) -> Toy:
    x, y = gaussian_mixture(4000, seed)
    (x_tr, x_va, x_te), (y_tr, y_va, y_te) = x.split([2800, 600, 600]), y.split([2800, 600, 600])
    calib = CalibrationData(x_train=x_tr, y_train=y_tr, x_val=x_va, y_val=y_va, seed=seed)
    return Toy(model=_train(x_tr, y_tr, seed), calib=calib, x_test=x_te, y_test=y_te)


def toy(seed: int = 0) -> Toy:
    """A fresh copy of the seeded toy setup (tests may modify the model freely)."""
    built = _build(seed)
    return Toy(copy.deepcopy(built.model), built.calib, built.x_test, built.y_test)


@torch.no_grad()
def predict(module: nn.Module, x: torch.Tensor) -> torch.Tensor:
    return module.eval()(x).argmax(1)


def agreement(a: torch.Tensor, b: torch.Tensor) -> float:
    """Share of rows where two prediction vectors agree."""
    return (a == b).float().mean().item()


@torch.no_grad()
def operators(module: nn.Module, x: torch.Tensor) -> set[str]:
    """Names of the operators one forward pass of ``module`` really ran (profiler events)."""
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        module.eval()(x)
    return {event.name for event in prof.events()}


def checkpoint_meta(kind: str, params: dict) -> dict:
    """Checkpoint meta as the quantize step writes it, for the toy model."""
    return {
        "method": f"{kind}_toy",
        "kind": kind,
        "params": {"kind": kind, **params},
        "model": MODEL_CFG.to_dict(),
        "feature_names": [f"f{i}" for i in range(FEATURES)],
        "class_names": ["video", "voip", "web"],
        "seed": 0,
    }


def checkpoint_roundtrip(
    tmp_path: Path, kind: str, params: dict, state: dict
) -> tuple[nn.Module, dict]:
    """Save ``state`` as a checkpoint; (module rebuilt by load_model, raw weights-only load)."""
    path = tmp_path / f"{kind}.pt"
    save_checkpoint(path, checkpoint_meta(kind, params), state)
    with ao.quiet():  # quantized tensors load through TypedStorage, deprecated upstream
        raw = torch.load(path, map_location="cpu", weights_only=True)
    return load_model(path).module, raw


def int8_layers(module: nn.Module) -> list[str]:
    """Class names of the quantized layers inside a converted module, input to output."""
    names = [m._get_name() for m in module.modules()]  # the names printed by repr()
    return [n for n in names if "Quantized" in n]
