"""Coverage: which layers of a model a kind quantized, which stayed FP32 and why.

Every module that owns parameters is one entry of the inventory, found by running one probe row
through the FP32 model with forward hooks (not by assumptions about the model's structure):
its qualified name, type, parameter count, the position of its first call in the forward pass,
and its multiply-accumulates (MACs) for one sample:

- ``Linear``: ``in_features`` MACs per output value (tokens times outputs);
- ``Conv1d``: ``in_channels / groups · kernel_size`` MACs per output value;
- ``GRU``/``LSTM``/``RNN``: per time step and layer, ``gates · hidden · (input + hidden)``
  per direction.

The model's total MACs come from torch's FLOP counter (``torch.utils.flop_counter``, all matrix
products and convolutions, halved), so products outside any module (the activation-by-activation
products inside attention) are counted as well; element-wise operations are not MACs.

A kind decides for each entry whether its weights are stored and run quantized
(:class:`Decision`); every parameter of the model is in exactly one entry, so a kind can never
skip a layer silently.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

_GATES = {nn.GRU: 3, nn.LSTM: 4, nn.RNN: 1}
OTHER_MACS_WHY = (
    "products between activations (attention scores and their weighted sum of values) and "
    "any matrix product outside a layer module: FP32, no int8 kernel multiplies two activations"
)


@dataclass(frozen=True)
class Layer:
    """One module that owns parameters, as one probe row through the FP32 model saw it."""

    name: str  # qualified name ("" for the model itself)
    type: str  # class name
    params: int  # parameters it owns directly
    macs: int  # multiply-accumulates for one sample (0 for element-wise layers)
    order: int  # position of its first call in the forward pass; -1 if never called


@dataclass(frozen=True)
class Decision:
    """A kind's verdict on one layer: ``note`` says how it runs (quantized) or why not."""

    quantized: bool  # weights stored and used quantized
    note: str
    int8_kernel: bool = False  # its products run on integer kernels


def probe(n_features: int) -> torch.Tensor:
    """The probe batch: one row of zeros (shapes are what matter, not values)."""
    return torch.zeros(1, n_features)


def _rnn_macs(module: nn.RNNBase, x: torch.Tensor) -> int:
    steps = x.shape[1] if module.batch_first and x.dim() == 3 else x.shape[0]
    dirs = 2 if module.bidirectional else 1
    gates = next(g for cls, g in _GATES.items() if isinstance(module, cls))
    width, total = module.input_size, 0
    for _ in range(module.num_layers):
        total += dirs * gates * module.hidden_size * (width + module.hidden_size)
        width = module.hidden_size * dirs
    return int(steps * total)


def layer_macs(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> int:
    """MACs of one call of a matrix layer (batch of one row); 0 for any other module."""
    if isinstance(module, nn.Linear):
        return int(output.numel() * module.in_features)
    if isinstance(module, nn.Conv1d):
        per_output = module.in_channels // module.groups * module.kernel_size[0]
        return int(output.numel() * per_output)
    if isinstance(module, nn.RNNBase) and inputs and isinstance(inputs[0], torch.Tensor):
        return _rnn_macs(module, inputs[0])
    return 0


def owners(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Modules owning at least one parameter directly, in ``named_modules`` order."""
    return [
        (name, m)
        for name, m in model.named_modules()
        if any(p is not None for p in m._parameters.values())
    ]


@torch.no_grad()
def inventory(model: nn.Module, x: torch.Tensor) -> list[Layer]:
    """Every parameter-owning module, in execution order (never-called ones last)."""
    found = owners(model)
    order: dict[str, int] = {}
    macs: dict[str, int] = dict.fromkeys((n for n, _ in found), 0)

    def hook_for(name: str):
        def hook(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
            order.setdefault(name, len(order))
            macs[name] += layer_macs(module, inputs, output)

        return hook

    handles = [m.register_forward_hook(hook_for(n)) for n, m in found]
    was_training = model.training
    try:
        model.eval()(x)
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    seen: set[int] = set()  # a weight shared by two modules counts once, for the first
    layers = []
    for n, m in found:
        own = [p for p in m.parameters(recurse=False) if id(p) not in seen]
        seen.update(id(p) for p in own)
        layers.append(Layer(n, type(m).__name__, sum(p.numel() for p in own),
                            macs[n] // x.shape[0], order.get(n, -1)))  # fmt: skip
    return sorted(layers, key=lambda layer: (layer.order < 0, layer.order))


def _sdpa_cpu(query, key, value, *args, out_shape=None, **kwargs) -> int:
    return sdpa_flop_count(query, key, value)


@torch.no_grad()
def total_macs(model: nn.Module, x: torch.Tensor) -> int:
    """All matrix-product and convolution MACs of one forward pass per sample (FLOPs / 2)."""
    extra = {}
    cpu_sdpa = getattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if cpu_sdpa is not None:
        extra[cpu_sdpa] = _sdpa_cpu
    counter = FlopCounterMode(display=False, custom_mapping=extra)
    was_training = model.training
    try:
        with counter:
            model.eval()(x)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops() // 2 // x.shape[0])


def _share(part: int, whole: int) -> float:
    return part / whole if whole else 1.0


def report(
    model: nn.Module, x: torch.Tensor, decide: Callable[[Layer, nn.Module], Decision]
) -> dict[str, Any]:
    """The coverage record of one quantized model (JSON-ready); ``decide`` sees each layer.

    ``weights_quantized``: share of parameters stored quantized; ``macs_quantized``: share of
    MACs whose weights are quantized; ``macs_int8_kernels``: share run by integer kernels.
    """
    layers = inventory(model, x)
    total_params = sum(layer.params for layer in layers)  # every parameter, each once
    entries, q_params, q_macs, int8_macs = [], 0, 0, 0
    for layer in layers:
        d = decide(layer, model.get_submodule(layer.name))
        entries.append(
            {"layer": layer.name, "type": layer.type, "params": layer.params,
             "macs": layer.macs, "quantized": d.quantized, "int8_kernel": d.int8_kernel,
             "how" if d.quantized else "why": d.note}
        )  # fmt: skip
        q_params += layer.params if d.quantized else 0
        q_macs += layer.macs if d.quantized else 0
        int8_macs += layer.macs if d.int8_kernel else 0
    layer_total = sum(layer.macs for layer in layers)
    # Counting every operator costs a dispatch mode, which loads torch's compiler stack (~1.5 s
    # per process); models whose products all happen inside their layers declare so.
    exact = getattr(model, "macs_in_layers_only", False)
    macs = layer_total if exact else max(total_macs(model, x), layer_total)
    out: dict[str, Any] = {
        "layers": entries,
        "layers_quantized": sum(e["quantized"] for e in entries),
        "layers_fp32": sum(not e["quantized"] for e in entries),
        "params": total_params,
        "macs": macs,
        "weights_quantized": _share(q_params, total_params),
        "macs_quantized": _share(q_macs, macs),
        "macs_int8_kernels": _share(int8_macs, macs),
    }
    if macs > layer_total:
        out["other_macs"] = {"macs": macs - layer_total, "why": OTHER_MACS_WHY}
    return out


def fp32_reason(module: nn.Module) -> str:
    """Why a layer of this type has no quantized weights in any kind (type-level facts)."""
    if isinstance(module, (nn.LayerNorm, nn.GroupNorm, nn.modules.batchnorm._NormBase)):
        return "normalisation: element-wise scale and shift, no matrix product"
    if isinstance(module, (nn.Embedding, nn.EmbeddingBag)):
        return "embedding lookup: no matrix product"
    return "its parameters are used element-wise (no matrix product), as in an embedding"
