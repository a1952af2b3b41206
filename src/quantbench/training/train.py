"""FP32 training: Adam on minibatches, early stopping on validation loss, fixed seed."""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from quantbench.core.files import write_json
from quantbench.data.dataset import Dataset, load_dataset
from quantbench.machine.device import resolve_device
from quantbench.models import ModelSpec, resolve
from quantbench.training.checkpoint import save_checkpoint

log = logging.getLogger("quantbench.train")

DEVICES = ("auto", "cpu", "cuda")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 40
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    patience: int = 5
    device: str = "auto"
    threads: int = 1
    seed: int = 42

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "patience", "threads"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"train.{name} must be >= 1, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"train.lr must be > 0, got {self.lr}")
        if self.weight_decay < 0:
            raise ValueError(f"train.weight_decay must be >= 0, got {self.weight_decay}")
        if self.device not in DEVICES:
            raise ValueError(f"train.device must be one of {DEVICES}, got {self.device!r}")


def seed_everything(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def run_epoch(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    opt: torch.optim.Optimizer,
    batch_size: int,
    gen: torch.Generator,
) -> float:
    """One pass over shuffled minibatches; returns the mean training loss per row."""
    model.train()
    loss_fn = nn.CrossEntropyLoss(reduction="sum")
    order = torch.randperm(x.shape[0], generator=gen).to(x.device)
    total = 0.0
    for start in range(0, x.shape[0], batch_size):
        idx = order[start : start + batch_size]
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x[idx]), y[idx])
        loss.backward()
        opt.step()
        total += loss.item()
    return total / x.shape[0]


@torch.no_grad()
def evaluate_loss(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) in eval mode."""
    model.eval()
    logits = model(x)
    loss = nn.functional.cross_entropy(logits, y).item()
    acc = (logits.argmax(1) == y).float().mean().item()
    return loss, acc


def train_fp32(
    ds: Dataset, spec: ModelSpec, cfg: TrainConfig
) -> tuple[nn.Module, list[dict[str, Any]]]:
    """Train from a seeded init; return the best-validation-loss model (on CPU) and history."""
    gen = seed_everything(cfg.seed)
    device = resolve_device(cfg.device)
    model = spec.build().to(device)
    xt, yt = torch.from_numpy(ds.x_train).to(device), torch.from_numpy(ds.y_train).to(device)
    xv, yv = torch.from_numpy(ds.x_val).to(device), torch.from_numpy(ds.y_val).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    best_loss, best_state, stale, history = float("inf"), None, 0, []
    for epoch in range(1, cfg.epochs + 1):
        t0 = time.perf_counter()
        train_loss = run_epoch(model, xt, yt, opt, cfg.batch_size, gen)
        val_loss, val_acc = evaluate_loss(model, xv, yv)
        improved = val_loss < best_loss
        if improved:
            best_loss, best_state, stale = val_loss, copy.deepcopy(model.state_dict()), 0
        else:
            stale += 1
        history.append(
            {
                "epoch": epoch,
                "train_loss": train_loss,
                "val_loss": val_loss,
                "val_accuracy": val_acc,
                "seconds": time.perf_counter() - t0,
                "best": improved,
            }
        )
        log.info(
            "epoch %3d  train_loss %.4f  val_loss %.4f  val_acc %.4f%s",
            epoch, train_loss, val_loss, val_acc, "  *" if improved else "",
        )  # fmt: skip
        if stale >= cfg.patience:
            log.info("early stop: no lower validation loss for %d epochs", cfg.patience)
            break
    assert best_state is not None
    model.load_state_dict(best_state)
    return model.cpu().eval(), history


def train_summary(cfg: TrainConfig, history: list[dict[str, Any]], device: str) -> dict[str, Any]:
    best = min(history, key=lambda h: h["val_loss"])
    return {
        "config": asdict(cfg),
        "device": device,
        "epochs_run": len(history),
        "best_epoch": best["epoch"],
        "best_val_loss": best["val_loss"],
        "best_val_accuracy": best["val_accuracy"],
        "history": history,
    }


def run_training(
    dataset_path: str,
    model: dict[str, Any],
    train: dict[str, Any],
    seed: int,
    checkpoint_out: str,
    history_out: str,
) -> None:
    """The train_fp32 step: dataset in, FP32 checkpoint and history JSON out.

    ``model`` is a model spec, ``{arch: ..., **params}`` (:mod:`quantbench.models`; without
    ``arch`` it is an MLP). A bad spec stops here, before any training, with one line.
    """
    ds = load_dataset(dataset_path)
    spec = resolve(model, ds.n_features, ds.n_classes)
    cfg = TrainConfig(**train, seed=seed)
    torch.set_num_threads(cfg.threads)
    device = str(resolve_device(cfg.device))
    log.info("training %s on %s, %d train rows", spec, device, ds.x_train.shape[0])
    net, history = train_fp32(ds, spec, cfg)
    meta = {
        "method": "fp32",
        "kind": "fp32",
        "params": {"model": model, "train": train},
        "model": spec.to_dict(),
        "feature_names": list(ds.feature_names),
        "class_names": list(ds.class_names),
        "seed": seed,
    }
    save_checkpoint(checkpoint_out, meta, net.state_dict())
    write_json(history_out, train_summary(cfg, history, device))
