"""One quantbench checkpoint -> one ONNX graph that runs the method's own quantization.

:func:`export_graph` takes a :class:`quantbench.loader.LoadedModel` and returns a
:class:`ModelGraph`: the ONNX model (input ``features``: float32 ``[batch, n_features]``,
already preprocessed; output ``logits``: float32 ``[batch, n_classes]``), what each layer of
the torch model executes as in ONNX Runtime, and the graph-wide choices a user must know.

Per kind (the modules named hold the details):

- ``fp32``: the torch module as exported (:mod:`quantbench.deploy.onnx_fp32`);
- ``ptq_static``, ``qat``: QuantizeLinear/DequantizeLinear around each int8 layer with the
  torch model's own activation scales and zero points and its int8 weight codes and scales
  (:mod:`quantbench.deploy.onnx_int8`);
- ``ptq_dynamic``: the torch model's int8 weight codes and scales with ONNX Runtime's dynamic
  quantization (:mod:`quantbench.deploy.onnx_int8`);
- ``rtn``, ``gptq``: ``com.microsoft.MatMulNBits`` holding the checkpoint's codes, scales and
  zero points (:mod:`quantbench.deploy.onnx_nbits`).

A layer the graph cannot run on the method's codes keeps FP32 initializers (the dequantized
weights), and its :class:`LayerExport` says why: nothing falls back silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import onnx
from torch import nn

from quantbench.deploy import onnx_fp32

if TYPE_CHECKING:
    from quantbench.loader import LoadedModel


@dataclass(frozen=True)
class LayerExport:
    layer: str  # module name in the torch model ("layers.fc0", ...)
    executes_as: str  # e.g. "MatMulNBits 4-bit block 32", "MatMul fp32"
    fallback: str | None  # why it runs FP32 initializers instead of the method's codes


@dataclass(frozen=True)
class ModelGraph:
    model: onnx.ModelProto  # input "features" [batch, n_features], output "logits"
    layers: tuple[LayerExport, ...]
    opset: int
    notes: tuple[str, ...]  # graph-wide choices (accuracy_level, reduce_range, ...)


def parameter_layers(module: nn.Module) -> list[str]:
    """Names of the modules that own parameters directly, in definition order."""
    return [
        name
        for name, m in module.named_modules()
        if name and any(p is not None for p in m._parameters.values())
    ]


def ops_of(model: onnx.ModelProto, layer: str) -> list[str]:
    """Operator types of the nodes exported from ``layer`` (its own scope), in graph order."""
    ops = [n.op_type for n in model.graph.node if onnx_fp32.node_module(n) == layer]
    return list(dict.fromkeys(ops))


def fp32_layers(model: onnx.ModelProto, names: list[str], fallback: str | None = None):
    """A LayerExport per name: the FP32 operators it exported to (and ``fallback``)."""
    out = []
    for name in names:
        ops = ops_of(model, name) or ["element-wise ops"]
        out.append(LayerExport(name, f"{', '.join(ops)} fp32", fallback))
    return out


def export_fp32(loaded: LoadedModel) -> ModelGraph:
    module = loaded.module
    model = onnx_fp32.export_fp32(module, loaded.spec.n_features)
    layers = fp32_layers(model, parameter_layers(module))
    notes = ("fp32: the torch module exported with torch.onnx (dynamo), Gemm rewritten to MatMul",)
    return ModelGraph(onnx_fp32.finish(model), tuple(layers), onnx_fp32.OPSET, notes)


def export_graph(loaded: LoadedModel) -> ModelGraph:
    """The ONNX graph of a loaded checkpoint (see the module docstring); ValueError names a
    kind without an ONNX translation."""
    kind = loaded.meta["kind"]
    exporters = {"fp32": export_fp32}
    if kind not in exporters:
        raise ValueError(
            f"no ONNX export for kind {kind!r} yet; exportable kinds: {', '.join(exporters)}"
        )
    return exporters[kind](loaded)
