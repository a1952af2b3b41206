"""Eager dynamic int8 quantization: Linear, Conv1d, GRU and LSTM on ``quantized::*_dynamic``
kernels, their weights-only checkpoint state, and per-channel dynamic Linear layers built from
codes already on an int8 grid (the weight-only kinds' ``int8`` execution)."""

from __future__ import annotations

import copy
import functools
from typing import Any

import torch
from torch import nn

from quantbench.quant.ao.backend import is_quantized_module, quiet, torch_ao, without_keys

# Recurrent layer types torch quantizes dynamically (their weights are per tensor).
_DYNAMIC_RNN = (nn.GRU, nn.LSTM)


def quantize_dynamic(model: nn.Module, per_channel: bool = True) -> nn.Module:
    """Every Linear, Conv1d, GRU and LSTM to int8 dynamic kernels (``quantized::
    linear_dynamic``, ``quantized::conv1d_dynamic``, ``aten::quantized_gru``/``_lstm``);
    ``model`` is not modified. torch's default dynamic mapping leaves convolutions out; its
    dynamic ``Conv1d`` module is added here."""
    tq = torch_ao()
    from torch.ao.nn.quantized import dynamic as nnqd
    from torch.ao.quantization.quantization_mappings import (
        get_default_dynamic_quant_module_mappings,
    )

    weights = tq.per_channel_dynamic_qconfig if per_channel else tq.default_dynamic_qconfig
    spec: dict[type, Any] = {nn.Linear: weights, nn.Conv1d: weights}
    spec |= dict.fromkeys(_DYNAMIC_RNN, tq.default_dynamic_qconfig)
    mapping = {**get_default_dynamic_quant_module_mappings(), nn.Conv1d: nnqd.Conv1d}
    with quiet():
        return tq.quantize_dynamic(copy.deepcopy(model).eval(), spec, mapping=mapping)


RNN_STATE = "quantized_rnn_weights"  # state key of a dynamic GRU/LSTM's int8 weights


def _rnn_key(name: str) -> str:
    return f"{name}.{RNN_STATE}" if name else RNN_STATE


def _dynamic_rnns(module: nn.Module) -> list[tuple[str, nn.Module]]:
    return [
        (name, m)
        for name, m in module.named_modules()
        if is_quantized_module(m, dynamic=True) and hasattr(m, "_all_weight_values")
    ]


def dynamic_state(module: nn.Module) -> dict[str, Any]:
    """``state_dict`` of a dynamic int8 module, loadable with ``weights_only=True``.

    torch packs dynamic GRU/LSTM weights into script objects the weights-only unpickler refuses;
    their int8 weights and float biases are stored as plain tensors under
    ``<name>.quantized_rnn_weights`` instead.
    """
    state = module.state_dict()
    for name, m in _dynamic_rnns(module):
        prefix = f"{name}._all_weight_values." if name else "_all_weight_values."
        state = without_keys(state, lambda k, prefix=prefix: k.startswith(prefix))
        state[_rnn_key(name)] = {**m.get_weight(), **m.get_bias()}
    return state


def load_dynamic_state(module: nn.Module, state: dict[str, Any]) -> nn.Module:
    """Inverse of :func:`dynamic_state` on a freshly quantized module of the same model."""
    rnns = dict(_dynamic_rnns(module))
    keys = {_rnn_key(name) for name in rnns}
    rest = without_keys(state, lambda k: k in keys)
    own = module.state_dict()  # the fresh module's packed RNN weights: placeholders, replaced
    for name in rnns:
        prefix = f"{name}._all_weight_values." if name else "_all_weight_values."
        rest |= {k: v for k, v in own.items() if k.startswith(prefix)}
    with quiet():
        module.load_state_dict(rest)
        for name, m in rnns.items():
            m.set_weight_bias(state[_rnn_key(name)])
    return module.eval()


def per_channel_dynamic_linear(
    weight: torch.Tensor, scales: torch.Tensor, zero_points: torch.Tensor, bias: torch.Tensor
) -> tuple[nn.Module, torch.Tensor]:
    """A dynamic int8 Linear (``quantized::linear_dynamic``) from a float weight already on a
    per-output-channel int8 grid; returns the module and the int8 codes it holds.

    weight: (out, in) float; scales: (out,) float64; zero_points: (out,) int64 in [-128, 127].
    """
    torch_ao()  # a clear error when torch.ao is gone
    from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear

    with quiet():
        qweight = torch.quantize_per_channel(weight, scales, zero_points, 0, torch.qint8)
        layer = DynamicLinear(weight.shape[1], weight.shape[0], bias_=True, dtype=torch.qint8)
        layer.set_weight_bias(qweight, bias.float())
    return layer, qweight.int_repr()


@functools.cache
def per_channel_dynamic_supported(engine: str, asymmetric: bool = False) -> bool:
    """Whether ``engine`` (the one in use) runs dynamic Linear with per-channel int8 weights;
    with ``asymmetric``, weights whose zero points are not all 0 (``onednn`` takes only
    symmetric weights)."""
    try:
        with quiet():
            if asymmetric:
                codes = torch.tensor([[1.0, 2.0, 3.0, 4.0]] * 2)
                zero_points = torch.tensor([0, 1])
                layer, _ = per_channel_dynamic_linear(
                    codes - zero_points[:, None], torch.ones(2).double(), zero_points,
                    torch.zeros(2),
                )  # fmt: skip
            else:
                layer = quantize_dynamic(nn.Sequential(nn.Linear(4, 2)), per_channel=True)
            layer(torch.ones(1, 4))
    except (RuntimeError, AssertionError, NotImplementedError):
        return False
    return True
