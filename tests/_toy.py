"""Small trained FP32 models for the kind tests (no conftest fixtures, seeded, cached).

Three overlapping gaussian classes in 30 standardised features, split train/val/test, and a
model of each built-in architecture (``SPECS``: an MLP 30 -> 64 -> 64 -> 3, a small 1-D CNN and
a one-layer transformer) trained briefly with Adam: accurate but not perfect, so the agreement
tests see borderline rows.

The models are trained in float64 and then rounded to float32. Trained in float32, their weights
depend on the CPU's floating-point path: Adam divides each gradient by its running scale, so
the last-bit differences between two matmul kernels (MKL's on one CPU, another's elsewhere) grow
into weight differences of ~1e-3 within a few epochs, and every threshold on the toy's
agreement would then hold for a slightly different model on each CPU. In float64 they stay
at float32's last bit (identical weights across MKL's code branches, within 2e-7 with torch's
scalar kernels instead of its AVX-512 ones), far below what moves an int8 decision.
"""

from __future__ import annotations

import copy
import functools
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from quantbench.models import ModelSpec, resolve
from quantbench.quant.ao import backend
from quantbench.quant.base import CalibrationData
from quantbench.quant.loader import load_model
from quantbench.training.checkpoint import save_checkpoint

FEATURES = 30
CLASSES = 3
EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "residual_mlp.py"
SPECS = {
    "mlp": {"arch": "mlp", "hidden": [64, 64], "dropout": 0.1},
    "cnn1d": {"arch": "cnn1d", "channels": [8, 16], "kernel_size": 3, "pool": 2, "hidden": 32},
    "transformer": {"arch": "transformer", "d_model": 16, "heads": 2, "layers": 1, "ffn": 32},
    "custom": {"arch": "custom", "path": str(EXAMPLE), "factory": "residual_mlp",
               "params": {"width": 32, "blocks": 1}},
}  # fmt: skip
EPOCHS = {"mlp": 8, "cnn1d": 8, "transformer": 4, "custom": 8}
ARCHS = tuple(SPECS)


def spec_of(arch: str = "mlp") -> ModelSpec:
    return resolve(SPECS[arch], FEATURES, CLASSES)


MODEL_SPEC = spec_of("mlp")


@dataclass(frozen=True)
class Toy:
    model: nn.Module  # trained FP32, eval mode
    spec: ModelSpec
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


def _train(x: torch.Tensor, y: torch.Tensor, seed: int, spec: ModelSpec, epochs: int) -> nn.Module:
    """Adam in float64 from float32 initial weights; the trained model in float32."""
    torch.manual_seed(seed)
    model = spec.build().double()
    x = x.double()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(seed)
    model.train()
    for _ in range(epochs):
        for idx in torch.randperm(x.shape[0], generator=gen).split(128):
            opt.zero_grad()
            nn.functional.cross_entropy(model(x[idx]), y[idx]).backward()
            opt.step()
    return model.float().eval()


@functools.cache
def _build(seed: int, arch: str) -> Toy:
    x, y = gaussian_mixture(4000, seed)
    (x_tr, x_va, x_te), (y_tr, y_va, y_te) = x.split([2800, 600, 600]), y.split([2800, 600, 600])
    calib = CalibrationData(x_train=x_tr, y_train=y_tr, x_val=x_va, y_val=y_va, seed=seed)
    spec = spec_of(arch)
    model = _train(x_tr, y_tr, seed, spec, EPOCHS[arch])
    return Toy(model=model, spec=spec, calib=calib, x_test=x_te, y_test=y_te)


def toy(seed: int = 0, arch: str = "mlp") -> Toy:
    """A fresh copy of the seeded toy setup (tests may modify the model freely)."""
    built = _build(seed, arch)
    return Toy(copy.deepcopy(built.model), built.spec, built.calib, built.x_test, built.y_test)


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


def checkpoint_meta(kind: str, params: dict, spec: ModelSpec = MODEL_SPEC) -> dict:
    """Checkpoint meta as the quantize step writes it, for a toy model."""
    return {
        "method": f"{kind}_toy",
        "kind": kind,
        "params": {"kind": kind, **params},
        "model": spec.to_dict(),
        "feature_names": [f"f{i}" for i in range(FEATURES)],
        "class_names": ["video", "voip", "web"],
        "seed": 0,
    }


def checkpoint_roundtrip(
    tmp_path: Path, kind: str, params: dict, state: dict, spec: ModelSpec = MODEL_SPEC
) -> tuple[nn.Module, dict]:
    """Save ``state`` as a checkpoint; (module rebuilt by load_model, raw weights-only load)."""
    path = tmp_path / f"{kind}.pt"
    save_checkpoint(path, checkpoint_meta(kind, params, spec), state)
    with backend.quiet():  # quantized tensors load through TypedStorage, deprecated upstream
        raw = torch.load(path, map_location="cpu", weights_only=True)
    return load_model(path).module, raw


def int8_layers(module: nn.Module) -> list[str]:
    """Class names of the quantized layers inside a converted module, input to output."""
    names = [m._get_name() for m in module.modules()]  # the names printed by repr()
    return [n for n in names if "Quantized" in n]


def input_scale(state: dict) -> float:
    """Scale of the int8 quantizer at a static model's input (FX names it ``*input_scale_0``)."""
    return float(next(v for k, v in state.items() if k.endswith("input_scale_0")))
