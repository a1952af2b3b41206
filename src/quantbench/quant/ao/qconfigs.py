"""The QConfigs of the static int8 kinds: an activation observer and a weight observer."""

from __future__ import annotations

from typing import Any

import torch

from quantbench.quant.ao.backend import activation_range, torch_ao

OBSERVERS: tuple[str, ...] = ("minmax", "moving_average", "histogram")


def check_observer(observer: str) -> None:
    """ValueError unless ``observer`` names an activation observer of ``OBSERVERS``."""
    if observer not in OBSERVERS:
        raise ValueError(f"observer must be one of {', '.join(OBSERVERS)}, got {observer!r}")


def _observer_class(observer: str) -> type:
    check_observer(observer)
    names = {
        "minmax": "MinMaxObserver",
        "moving_average": "MovingAverageMinMaxObserver",
        "histogram": "HistogramObserver",
    }
    return getattr(torch_ao(), names[observer])


def _weight_observer(per_channel: bool) -> tuple[type, dict[str, Any]]:
    """Symmetric qint8 weights, one scale per output row when ``per_channel``."""
    tq = torch_ao()
    if per_channel:
        kwargs = {"dtype": torch.qint8, "qscheme": torch.per_channel_symmetric, "ch_axis": 0}
        return tq.PerChannelMinMaxObserver, kwargs
    return tq.MinMaxObserver, {"dtype": torch.qint8, "qscheme": torch.per_tensor_symmetric}


def static_qconfig(engine: str, observer: str, per_channel: bool) -> Any:
    """QConfig for post-training static quantization: activation observer + weight observer."""
    tq = torch_ao()
    lo, hi = activation_range(engine)
    activation = _observer_class(observer).with_args(
        dtype=torch.quint8, qscheme=torch.per_tensor_affine, quant_min=lo, quant_max=hi
    )
    weight_cls, weight_kwargs = _weight_observer(per_channel)
    return tq.QConfig(activation=activation, weight=weight_cls.with_args(**weight_kwargs))


def qat_qconfig(engine: str, observer: str, per_channel: bool) -> Any:
    """QConfig for QAT: fake quantizers driven by the same observers as ``static_qconfig``."""
    tq = torch_ao()
    lo, hi = activation_range(engine)
    activation = tq.FakeQuantize.with_args(
        observer=_observer_class(observer),
        quant_min=lo,
        quant_max=hi,
        dtype=torch.quint8,
        qscheme=torch.per_tensor_affine,
    )
    weight_cls, weight_kwargs = _weight_observer(per_channel)
    weight = tq.FakeQuantize.with_args(
        observer=weight_cls, quant_min=-128, quant_max=127, **weight_kwargs
    )
    return tq.QConfig(activation=activation, weight=weight)
