"""Quantization-aware training: fine-tune the trained FP32 model under fake int8, then convert.

Starts from the FP32 weights it is given (never from scratch): the model is traced with FX graph
mode, the Conv1d/Linear+ReLU pairs found in its graph are fused, the layers get fake quantizers
(weights and activations rounded to the int8 grid in the forward pass, straight-through
gradients), a first pass over ``calibration_samples`` training rows sets
their ranges, and Adam fine-tunes with a low learning rate. Observers keep adapting until
``freeze_observers_epoch``, batch statistics until ``freeze_bn_epoch``; validation loss of the
fake-quantized model picks the best epoch (the starting point included) and stops early.
Observers are paused while validating, so validation rows never shape a quantization range.
The result converts to the same int8 kernels as ``ptq_static``.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from quantbench.models import ModelSpec
from quantbench.quant.ao import backend, fx, qconfigs
from quantbench.quant.base import CalibrationData, QuantizedModel
from quantbench.quant.methods import ptq_static

START_CHECKPOINT = "the trained FP32 model given to quantize (models/fp32.pt in the workflow)"


@dataclass(frozen=True)
class Params:
    epochs: int = 5  # most fine-tuning epochs
    lr: float = 1e-4  # Adam learning rate (well below FP32 training's)
    batch_size: int = 256
    patience: int = 2  # stop after this many epochs without a lower validation loss
    weight_decay: float = 0.0
    freeze_observers_epoch: int = 3  # quantization ranges stop moving after this epoch
    freeze_bn_epoch: int = 3  # batch-norm statistics stop moving after this epoch
    observer: str = "moving_average"  # activation observer: minmax | moving_average | histogram
    per_channel: bool = True  # one weight scale per output row (else one per layer)
    calibration_samples: int = 2048  # training rows that set the starting ranges
    engine: str = "auto"  # int8 engine (quantization.engine of the config)

    def __post_init__(self) -> None:
        for name, low in (
            ("epochs", 1),
            ("batch_size", 1),
            ("patience", 1),
            ("calibration_samples", 1),
            ("freeze_observers_epoch", 0),
            ("freeze_bn_epoch", 0),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
        for name in ("lr", "weight_decay"):
            if isinstance(getattr(self, name), bool):
                raise ValueError(f"{name} must be a number, got {getattr(self, name)!r}")
        if not float(self.lr) > 0:
            raise ValueError(f"lr must be > 0, got {self.lr!r}")
        if not float(self.weight_decay) >= 0:
            raise ValueError(f"weight_decay must be >= 0, got {self.weight_decay!r}")
        qconfigs.check_observer(self.observer)
        if not isinstance(self.per_channel, bool):
            raise ValueError(f"per_channel must be true or false, got {self.per_channel!r}")
        backend.check_engine_name(self.engine)


def start_model(fp32_model: nn.Module, calib: CalibrationData, params: Params) -> nn.Module:
    """The fake-quantized model before any fine-tuning: FP32 weights, ranges from training rows."""
    engine = backend.use_engine(params.engine)
    qconfig = qconfigs.qat_qconfig(engine, params.observer, params.per_channel)
    model = fx.prepare_qat(fp32_model.cpu(), qconfig, int(calib.x_train.shape[1]))
    fx.observe(model, calib.calibration_rows(params.calibration_samples).cpu())
    return model


def _train_epoch(
    model: nn.Module, calib: CalibrationData, params: Params, opt: Any, gen: torch.Generator
) -> float:
    """One pass over shuffled training minibatches; mean training loss per row."""
    x, y = calib.x_train.cpu(), calib.y_train.cpu()
    loss_fn = nn.CrossEntropyLoss(reduction="sum")
    order = torch.randperm(x.shape[0], generator=gen)
    total = 0.0
    for start in range(0, x.shape[0], params.batch_size):
        idx = order[start : start + params.batch_size]
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(model(x[idx]), y[idx])
        loss.backward()
        opt.step()
        total += float(loss.detach())
    return total / x.shape[0]


@torch.no_grad()
def _validate(model: nn.Module, calib: CalibrationData) -> tuple[float, float]:
    """(loss, accuracy) of the fake-quantized model on validation rows, observers paused."""
    model.eval()
    fx.set_observers(model, False)
    with backend.quiet():
        logits = model(calib.x_val.cpu())
    y = calib.y_val.cpu()
    loss = nn.functional.cross_entropy(logits, y).item()
    return loss, (logits.argmax(1) == y).float().mean().item()


def _set_phase(model: nn.Module, epoch: int, params: Params) -> tuple[bool, bool]:
    """Train mode with the freezing schedule of ``epoch``; (observers_frozen, bn_frozen)."""
    observers_frozen = epoch > params.freeze_observers_epoch
    bn_frozen = epoch > params.freeze_bn_epoch
    model.train()
    fx.set_observers(model, not observers_frozen)
    if bn_frozen:
        fx.freeze_batch_stats(model)
    return observers_frozen, bn_frozen


def fine_tune(
    fp32_model: nn.Module, calib: CalibrationData, params: Params
) -> tuple[nn.Module, list[dict[str, Any]], dict[str, Any]]:
    """Best fake-quantized model (eval mode), per-epoch history, and a summary.

    The summary holds the starting point's validation scores and ``best_epoch`` (0: the
    starting point itself was never beaten, so fine-tuning changed nothing).
    Deterministic for a given ``calib.seed``: dropout and shuffling draw from seeded generators.
    """
    torch.manual_seed(calib.seed)
    gen = torch.Generator().manual_seed(calib.seed)
    model = start_model(fp32_model, calib, params)
    opt = torch.optim.Adam(model.parameters(), lr=params.lr, weight_decay=params.weight_decay)
    val_loss, val_acc = _validate(model, calib)
    summary: dict[str, Any] = {"val_loss": val_loss, "val_accuracy": val_acc, "best_epoch": 0}
    best_loss, best_state, stale, history = val_loss, copy.deepcopy(model.state_dict()), 0, []
    for epoch in range(1, params.epochs + 1):
        observers_frozen, bn_frozen = _set_phase(model, epoch, params)
        with backend.quiet():
            train_loss = _train_epoch(model, calib, params, opt, gen)
        val_loss, val_acc = _validate(model, calib)
        history.append(
            {
                "epoch": epoch,
                "train_loss": train_loss,
                "val_loss": val_loss,
                "val_accuracy": val_acc,
                "observers_frozen": observers_frozen,
                "bn_frozen": bn_frozen,
            }
        )
        if val_loss < best_loss:
            best_loss, best_state, stale = val_loss, copy.deepcopy(model.state_dict()), 0
            summary["best_epoch"] = epoch
        else:
            stale += 1
            if stale >= params.patience:
                break
    model.load_state_dict(best_state)
    return model.eval(), history, summary


def quantize(fp32_model: nn.Module, calib: CalibrationData, params: Params) -> QuantizedModel:
    """Fine-tune under fake quantization from ``fp32_model``'s weights, then convert to int8."""
    t0 = time.perf_counter()
    fake_quant, history, summary = fine_tune(fp32_model, calib, params)
    tuned = time.perf_counter() - t0
    module = fx.convert(fake_quant)
    info: dict[str, Any] = {
        "bits": 8,
        "engine": str(torch.backends.quantized.engine),
        "execution": ptq_static.execution(module).removesuffix(")") + "; QAT fine-tuned)",
        "start_checkpoint": START_CHECKPOINT,
        "start": {k: summary[k] for k in ("val_loss", "val_accuracy")},
        "best_epoch": summary["best_epoch"],
        "history": history,
        "calibration_rows": min(params.calibration_samples, int(calib.x_train.shape[0])),
        "calibration_split": "train",
        "observer": params.observer,
        "weight_qscheme": backend.weight_qscheme(params.per_channel),
        "fine_tune_seconds": tuned,
        "coverage": ptq_static.static_coverage(fp32_model, module, int(calib.x_train.shape[1])),
        "quantize_seconds": time.perf_counter() - t0,
    }
    return QuantizedModel(module=module, state=module.state_dict(), info=info)


def rebuild(spec: ModelSpec, state: dict[str, Any], params: Params) -> nn.Module:
    """The runnable int8 module from checkpoint ``state`` (same trace/prepare/convert, no data)."""
    engine = backend.use_engine(params.engine)
    qconfig = qconfigs.qat_qconfig(engine, params.observer, params.per_channel)
    module = fx.convert(fx.prepare_qat(spec.build(), qconfig, spec.n_features))
    return fx.load_state(module, state)
