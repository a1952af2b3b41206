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
- ``rtn``, ``gptq``: the method's ``execution`` path, as torch runs it.
  ``dequantized`` (the default for grouped codes): the checkpoint's packed codes, scales and
  zero points, read back to float32 weights by a constant subgraph that ONNX Runtime folds when
  the session opens (:mod:`quantbench.deploy.onnx_codes`). ``int4``:
  ``com.microsoft.MatMulNBits`` holding the codes, scales and zero points
  (:mod:`quantbench.deploy.onnx_nbits`). ``int8`` (per-channel codes): as ``ptq_dynamic``.

A layer the graph cannot run on the method's codes keeps FP32 initializers (the dequantized
weights), and its :class:`LayerExport` says why: nothing falls back silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import onnx
import torch
from torch import nn

from quantbench.core.config import resolved_execution
from quantbench.deploy import onnx_codes, onnx_dynamic, onnx_fp32, onnx_int8, onnx_nbits
from quantbench.quant.weightonly.execution import build_module
from quantbench.quant.weightonly.grid import Grid
from quantbench.quant.weightonly.state import unpack_layer

if TYPE_CHECKING:
    from quantbench.quant.loader import LoadedModel


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


UNTRACED = "operators not traced to it"  # no exported node's scope names the layer


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
    """The int8 engine the module was built for (loading set it as the process's engine)."""
    engine = loaded.meta.get("engine") or loaded.meta["params"].get("engine", "auto")
    return str(torch.backends.quantized.engine) if engine == "auto" else str(engine)


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


ACCURACY_LEVEL = 4  # MatMulNBits: int8 activations (see NBITS_NOTE)
NBITS_NOTE = (
    "MatMulNBits accuracy_level {level}: "
    "4 quantizes each block of activations to int8 and accumulates in int32 (the only level "
    "faster than FP32 on x86 CPUs; it adds an activation rounding torch's weight-only model "
    "does not have, which the parity check measures); 0 or 1 computes in fp32 (exact "
    "dequantized weights, slower than the FP32 graph)"
)


def _nbits_layer(model, sites, name, entry, grid, group_size, level) -> LayerExport:
    qw = unpack_layer(entry, grid, group_size)
    if len(entry["shape"]) != 2:
        why = "Conv1d: MatMulNBits is a matrix product and ONNX has no n-bit convolution"
    elif name not in sites or sites[name].node.op_type != "MatMul":
        why = "its product was not found as one MatMul with an initializer weight"
    else:
        p = onnx_nbits.plan(qw)
        refused = None if isinstance(p, str) else onnx_nbits.ort_accepts(p.bits, p.block, level)
        why = p if isinstance(p, str) else refused
        if why is None:
            onnx_nbits.replace_matmul(model.graph, sites[name], name, qw, p, level)
            return LayerExport(name, onnx_nbits.describe(qw, p, level), None)
    ops = ", ".join(ops_of(model, name)) or UNTRACED
    return LayerExport(name, f"{ops} fp32 on the dequantized codes", why)


DEQUANTIZED_NOTE = (
    "dequantized: each layer's codes, zero points and scales are stored packed as in the "
    "checkpoint and read back to float32 weights by a constant subgraph (BitShift, BitwiseAnd, "
    "Cast, Sub, Mul), which ONNX Runtime folds once when a session opens (any optimization "
    "level but ORT_DISABLE_ALL); the products then run in FP32, as torch's dequantized "
    "execution: a small file, FP32 weights in memory"
)


def execution_of(loaded: LoadedModel) -> str:
    """A weight-only checkpoint's resolved ``execution`` path (dequantized, int4, int8)."""
    params = loaded.meta["params"]
    return resolved_execution(params.get("execution", "auto"), int(loaded.state["group_size"]))


def _dequantized_layer(model, sites, name, entry, grid, group_size) -> LayerExport:
    qw = unpack_layer(entry, grid, group_size)
    site = sites.get(name)
    if site is not None and site.node.op_type in ("MatMul", "Conv"):
        onnx_codes.replace_weight(model.graph, site, name, qw)
        return LayerExport(name, onnx_codes.describe(qw, site.node.op_type), None)
    why = "its product was not found as one MatMul or Conv with an initializer weight"
    ops = ", ".join(ops_of(model, name)) or UNTRACED
    return LayerExport(name, f"{ops} fp32 on the dequantized codes", why)


def _weight_only_graph(loaded: LoadedModel, layer_export, notes: tuple[str, ...]) -> ModelGraph:
    """The checkpoint's dequantized FP32 module exported, then ``layer_export(model, sites,
    name, entry, grid, group_size)`` for each quantized layer."""
    state, params = loaded.state, loaded.meta["params"]
    grid = Grid(int(state["bits"]), bool(params.get("symmetric", False)))
    group_size = int(state["group_size"])
    with torch.random.fork_rng(devices=[]):
        skeleton = loaded.spec.build()
    names = parameter_layers(skeleton)
    fp32 = build_module(skeleton, state, grid, "dequantized")
    model = onnx_fp32.export_fp32(fp32, loaded.spec.n_features)
    sites = onnx_fp32.matrix_sites(model, list(state["layers"]))
    layers = []
    for name in names:
        if name in state["layers"]:
            entry = state["layers"][name]
            layers.append(layer_export(model, sites, name, entry, grid, group_size))
        else:
            ops = ", ".join(ops_of(model, name)) or "element-wise ops"
            layers.append(LayerExport(name, f"{ops} fp32 (FP32 in the torch model too)", None))
    return ModelGraph(onnx_fp32.finish(model), tuple(layers), onnx_fp32.OPSET, notes)


def export_nbits(loaded: LoadedModel, level: int = ACCURACY_LEVEL) -> ModelGraph:
    """The ``int4`` execution path: MatMulNBits on the codes (whatever the checkpoint's
    ``execution``, so that any grid's translation can be checked)."""

    def layer(model, sites, name, entry, grid, group_size):
        return _nbits_layer(model, sites, name, entry, grid, group_size, level)

    return _weight_only_graph(loaded, layer, (NBITS_NOTE.format(level=level),))


def export_dequantized(loaded: LoadedModel) -> ModelGraph:
    """The ``dequantized`` execution path: FP32 products on weights read back from the codes."""
    return _weight_only_graph(loaded, _dequantized_layer, (DEQUANTIZED_NOTE,))


def export_weight_only(loaded: LoadedModel, level: int = ACCURACY_LEVEL) -> ModelGraph:
    """rtn, gptq: the graph of the checkpoint's own execution path (see the module docstring)."""
    execution = execution_of(loaded)
    if execution == "int8":
        return export_dynamic(loaded)  # torch runs these codes on its dynamic int8 kernels
    if execution == "int4":
        return export_nbits(loaded, level)
    return export_dequantized(loaded)


def _dynamic_note(engine: str, qmax: int) -> str:
    return (
        f"int8 dynamic: activations quantized per call to uint8 0..{qmax} from the batch's "
        f"own range, as torch's {engine} engine does (so a row's logits depend slightly on "
        "the rows batched with it), multiplied by torch's int8 codes with MatMulInteger"
        + (
            "; the 7-bit activations cannot saturate the u8 x s8 int16 pair sums of CPUs "
            "without VNNI, so session.x64quantprecision is not needed"
            if qmax == 127
            else "; on x86 CPUs without VNNI set session.x64quantprecision=1 (exact U8U8)"
        )
    )


def export_dynamic(loaded: LoadedModel) -> ModelGraph:
    with torch.random.fork_rng(devices=[]):
        skeleton = loaded.spec.build()
    names = parameter_layers(skeleton)
    twin, dynamic = onnx_dynamic.fp32_twin(skeleton, loaded.module)
    model = onnx_fp32.export_fp32(twin, loaded.spec.n_features)
    sites = onnx_fp32.matrix_sites(model, list(dynamic))
    engine = engine_of(loaded)
    qmax = onnx_dynamic.activation_qmax(dynamic)
    layers = []
    for name in names:
        ops = ", ".join(ops_of(model, name)) or "element-wise ops"
        site = sites.get(name)
        if name in dynamic and site is not None and site.node.op_type == "MatMul":
            q = dynamic[name].weight()
            per_tensor = (torch.per_tensor_affine, torch.per_tensor_symmetric)
            scheme = "per-tensor" if q.qscheme() in per_tensor else "per-channel"
            onnx_dynamic.replace_matmul(model.graph, site, name, q, qmax)
            how = f"int8 dynamic: uint8 activations 0..{qmax}, int8 {scheme} weights, MatMulInteger"
            layers.append(LayerExport(name, how, None))
        elif name in dynamic and site is not None and site.node.op_type == "Conv":
            q = dynamic[name].weight()
            onnx_dynamic.replace_conv(model.graph, site, name, q, qmax)
            how = (
                f"int8 dynamic: uint8 activations 0..{qmax}, Conv fp32 on DequantizeLinear of "
                "the int8 codes, output rounded to the input's grid (as torch)"
            )
            layers.append(LayerExport(name, how, None))
        elif name in dynamic:
            why = "its product was not found as one MatMul or Conv with an initializer weight"
            ops = ", ".join(ops_of(model, name)) or UNTRACED
            layers.append(LayerExport(name, f"{ops} fp32 on the dequantized int8 codes", why))
        else:
            layers.append(LayerExport(name, f"{ops} fp32 (FP32 in the torch model too)", None))
    notes = (_dynamic_note(engine, qmax),)
    return ModelGraph(onnx_fp32.finish(model), tuple(layers), onnx_fp32.OPSET, notes)


def export_fp32(loaded: LoadedModel) -> ModelGraph:
    module = loaded.module
    model = onnx_fp32.export_fp32(module, loaded.spec.n_features)
    layers = fp32_layers(model, parameter_layers(module))
    notes = (
        "fp32: the torch module exported with torch.onnx (TorchScript), Gemm rewritten to MatMul",
    )
    return ModelGraph(onnx_fp32.finish(model), tuple(layers), onnx_fp32.OPSET, notes)


def export_graph(loaded: LoadedModel, accuracy_level: int = ACCURACY_LEVEL) -> ModelGraph:
    """The ONNX graph of a loaded checkpoint (see the module docstring).

    ``accuracy_level``: MatMulNBits's (rtn, gptq on the int4 execution path; ignored by the
    other kinds and paths): 4 (default, int8 activations, fast) or 0 (FP32 products on exactly
    the dequantized codes, slower).
    ValueError (one line) for a kind without an ONNX translation.
    """
    kind = loaded.meta["kind"]
    if kind in ("rtn", "gptq"):
        if accuracy_level not in (0, 1, 4):
            raise ValueError(f"accuracy_level must be 0, 1 or 4, got {accuracy_level!r}")
        return export_weight_only(loaded, accuracy_level)
    exporters = {
        "fp32": export_fp32,
        "ptq_dynamic": export_dynamic,
        "ptq_static": export_static,
        "qat": export_static,
    }
    if kind not in exporters:
        known = ", ".join([*exporters, "rtn", "gptq"])
        raise ValueError(f"no ONNX export for kind {kind!r}; exportable kinds: {known}")
    return exporters[kind](loaded)
