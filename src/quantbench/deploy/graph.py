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
import torch
from torch import nn

from quantbench.deploy import onnx_fp32, onnx_int8

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
    """Names of the modules that own parameters directly, in definition order (of an FP32
    module: a converted int8 module keeps its weights packed, outside ``_parameters``)."""
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


def fp32_names(loaded: LoadedModel) -> list[str]:
    """The parameter layers of the checkpoint's FP32 architecture (the torch RNG untouched)."""
    with torch.random.fork_rng(devices=[]):
        return parameter_layers(loaded.spec.build())


def engine_of(loaded: LoadedModel) -> str:
    return str(loaded.meta.get("engine") or loaded.meta["params"].get("engine", "auto"))


_FUSES = {
    "Gemm": "fuses to QGemm",
    "Conv": "fuses to QLinearConv",
    "MatMul": "fuses to MatMulIntegerToFloat, or QLinearMatMul when no bias follows",
}
STATIC_NOTES = (
    "int8 static: every tensor torch rounds to int8 passes QuantizeLinear -> "
    "DequantizeLinear with torch's own scale and zero point (uint8 activations, saturating "
    "at 0..255 as torch's quint8), int8 weights are torch's codes and scales; ONNX Runtime "
    "fuses them into integer kernels",
    "int8 bias: the bias of a fused Gemm/Conv is stored as int32 at input scale x weight "
    "scale (torch adds it in float): at most half an int32 step apart",
)


def _reduce_range_note(engine: str) -> str:
    if engine in ("x86", "fbgemm"):
        return (
            f"reduce_range: torch's {engine} engine calibrated activations to 7 bits "
            "(codes 0..127), so within the calibration range the u8 x s8 pair sums of ONNX "
            "Runtime's AVX2 integer kernels (no VNNI) cannot overflow int16; codes above 127 "
            "(activations beyond the calibration range) can saturate there, as in torch's "
            f"{engine} engine; session.x64quantprecision=1 avoids that on such CPUs at some "
            "speed cost (U8U8 kernels); VNNI CPUs never saturate"
        )
    return (
        f"reduce_range: torch's {engine} engine uses 8-bit activations (codes 0..255); on "
        "x86 CPUs without VNNI ONNX Runtime's u8 x s8 kernels can saturate int16 pair sums; "
        "set session.x64quantprecision=1 there (U8U8 kernels, exact, slower)"
    )


def export_static(loaded: LoadedModel) -> ModelGraph:
    names = fp32_names(loaded)
    model, done, sims = onnx_int8.static_graph(loaded.module, loaded.spec.n_features)
    per_channel = bool(loaded.meta["params"].get("per_channel", True))
    scheme = "per-channel" if per_channel else "per-tensor"
    layers = []
    for name in names:
        if name in done:
            op, _ = done[name]
            how = f"QDQ int8 {scheme} weights, uint8 activations ({_FUSES[op]})"
            layers.append(LayerExport(name, how, None))
        elif name in sims:
            ops = ", ".join(ops_of(model, name))
            how = f"{ops} fp32 between DequantizeLinear and QuantizeLinear (torch's scales)"
            layers.append(LayerExport(name, how, None))
        else:
            ops = ", ".join(ops_of(model, name)) or "element-wise ops"
            layers.append(LayerExport(name, f"{ops} fp32 (FP32 in the torch model too)", None))
    notes = (*STATIC_NOTES, _reduce_range_note(engine_of(loaded)))
    return ModelGraph(onnx_fp32.finish(model), tuple(layers), onnx_fp32.OPSET, notes)


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
    exporters = {"fp32": export_fp32, "ptq_static": export_static, "qat": export_static}
    if kind not in exporters:
        raise ValueError(
            f"no ONNX export for kind {kind!r} yet; exportable kinds: {', '.join(exporters)}"
        )
    return exporters[kind](loaded)
