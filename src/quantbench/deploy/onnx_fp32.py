"""FP32 ONNX graph of a torch module, and the editing helpers the quantized graphs share.

The module is exported with torch's TorchScript exporter (``torch.onnx.export(...,
dynamo=False)``, opset 20, its highest), then raised to opset :data:`OPSET` by
``onnx.version_converter``. The export runs once in every export job, each a fresh process,
so its start-up is what it costs: measured with torch 2.13 on CPU, a process's first
``dynamo=True`` export took 2.4-3.2 s (importing ``torch._dynamo`` and onnxscript, building
its translation registry) and later ones ~0.56 s, while the TorchScript exporter took ~0.2 s
for the first export and ~0.03 s for later ones, on the MLP, 1-D CNN, transformer and the
example custom model alike (a shared 2-core machine). Raising opset 20 to 21 with
``onnx.version_converter`` took ~20 ms for a process's first graph and ~5 ms later, rewriting
the opset number alone ~0: the converter is kept, being about 1 % of an export job (whose
``import torch`` alone takes ~1 s), and the library that knows which operators changed. The
TorchScript exporter is deprecated upstream and warns on each call; that warning is silenced
around the call only (:func:`_quiet_export`).

The exported graph is normalised so every weight kind can rewrite it:

- one input ``features`` (float32 ``[batch, n_features]``) and one output ``logits``
  (float32 ``[batch, n_classes]``), the batch dimension dynamic and named ``batch``;
- every ``Gemm`` whose ``B`` is an initializer becomes ``MatMul`` (with ``Bᵀ`` stored) plus
  ``Add`` of the bias, so weight-only kinds can replace the ``MatMul`` by ``MatMulNBits``;
- ``Constant`` tensors become initializers (the int8 rewrite reads Q/DQ scales from them),
  and ``Flatten`` becomes ``Reshape`` (:func:`flatten_to_reshape`);
- each node keeps the torch module it came from (:func:`node_module`), read off the
  exporter's scope path in the node name (:func:`scope_module`) and checked against the
  module's ``named_modules()``; the tag is stripped by :func:`finish`.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import re
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper, version_converter
from torch import nn

OPSET = 21  # default ONNX domain; QuantizeLinear/DequantizeLinear of opset 21 take int4 too
EXPORT_OPSET = 20  # the TorchScript exporter's highest opset (torch 2.13)
MS_DOMAIN = "com.microsoft"
INPUT, OUTPUT, BATCH = "features", "logits", "batch"
MODULE_KEY = "quantbench.module"  # node metadata: the torch module a node came from


class ExportError(ValueError):
    """torch.onnx cannot export the module; the message names the model and the reason."""


@contextlib.contextmanager
def _quiet_export() -> Iterator[None]:
    """Silence the TorchScript exporter's own deprecation warnings, and nothing else."""
    with warnings.catch_warnings():
        warnings.filterwarnings(
            "ignore", "You are using the legacy TorchScript-based ONNX export", DeprecationWarning
        )
        warnings.filterwarnings(
            "ignore", "The feature will be removed", DeprecationWarning, r"torch\.onnx\."
        )
        yield


# torch < 2.5 has no ``dynamo`` argument: its export is the TorchScript exporter already
_TORCHSCRIPT = (
    {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
)


def export_fp32(
    module: nn.Module, n_features: int, matmul: bool = True, names: dict[str, str] | None = None
) -> onnx.ModelProto:
    """The normalised FP32 graph of ``module`` (eval mode, CPU); module tags kept for mapping.

    ``matmul``: rewrite ``Gemm`` to ``MatMul`` + ``Add``; ``names``: the layer name to record
    for a module name of ``module`` (a flattened FX graph's, :func:`fx_sim.flat_calls`).
    """
    module = module.cpu().eval()
    buffer = io.BytesIO()
    try:
        with _quiet_export(), torch.no_grad():
            torch.onnx.export(
                module,
                (torch.zeros(2, n_features),),
                buffer,
                input_names=[INPUT],
                output_names=[OUTPUT],
                opset_version=EXPORT_OPSET,
                dynamic_axes={INPUT: {0: BATCH}, OUTPUT: {0: BATCH}},
                do_constant_folding=True,
                verbose=False,
                **_TORCHSCRIPT,
            )
        model = version_converter.convert_version(onnx.load_from_string(buffer.getvalue()), OPSET)
    except Exception as exc:  # any exporter failure: the module's forward is not exportable
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(
            f"torch.onnx cannot export {type(module).__name__} ({type(exc).__name__}: {first}); "
            "the model's forward must be traceable by torch.jit.trace"
        ) from None
    _name_io(model)
    constants_to_initializers(model.graph)
    flatten_to_reshape(model.graph)
    tag_modules(model.graph, module, names or {})
    if matmul:
        gemm_to_matmul(model)
    return model


_REPEAT = re.compile(r"_\d+$")  # the exporter's suffix on a scope entered again


def _unqualified(name: str) -> str:
    """A qualified module name as the exporter's scope shows it: from its last non-numeric
    part on (``layers.fc0`` -> ``fc0``, ``encoder.0`` -> ``encoder.0``)."""
    parts = name.split(".")
    last = max((i for i, p in enumerate(parts) if not p.isnumeric()), default=0)
    return ".".join(parts[last:])


def scope_module(node_name: str, modules: list[str]) -> str | None:
    """The qualified name of the module a TorchScript-exported node was traced in, or None.

    The name is the scope path of the module calls, each module by the tail of its
    qualified name (``/encoder/encoder.0/attn/qkv/MatMul``; ``_1`` appended when a scope is
    entered again), then the operator. Each step is resolved to the one module below the
    previous step whose name ends that way; a step matching no module, or several, gives
    None (as does a node outside every module: ``/Flatten``, ``Constant_12``).
    """
    if not node_name.startswith("/"):
        return None
    steps = node_name.split("/")[1:-1]
    current = ""
    for step in steps:
        below = [m for m in modules if m.startswith(f"{current}." if current else "")]
        tails = {step, _REPEAT.sub("", step)}
        found = [m for m in below if _unqualified(m) in tails]
        if len(found) != 1:
            return None
        current = found[0]
    return current or None


def tag_modules(graph: onnx.GraphProto, module: nn.Module, names: dict[str, str]) -> None:
    """Record in each node's metadata the torch module it was exported from (if any), by its
    name in ``names`` where it has one there."""
    modules = [name for name, _ in module.named_modules() if name]
    cache: dict[str, str | None] = {}
    for node in graph.node:
        scope = node.name.rpartition("/")[0]
        if scope not in cache:
            found = scope_module(node.name, modules)
            cache[scope] = None if found is None else names.get(found, found)
        if cache[scope] is not None:
            node.metadata_props.add(key=MODULE_KEY, value=cache[scope])


def constants_to_initializers(graph: onnx.GraphProto) -> None:
    """Each ``Constant`` node holding a tensor becomes an initializer of its output's name."""
    keep = []
    for node in graph.node:
        attrs = {a.name: a for a in node.attribute}
        if node.op_type == "Constant" and not node.domain and set(attrs) == {"value"}:
            tensor = onnx.TensorProto()
            tensor.CopyFrom(attrs["value"].t)
            tensor.name = node.output[0]
            graph.initializer.append(tensor)
        else:
            keep.append(node)
    del graph.node[:]
    graph.node.extend(keep)


def flatten_to_reshape(graph: onnx.GraphProto) -> None:
    """Each ``Flatten`` with ``axis`` 1 becomes the equal ``Reshape`` to ``[0, -1]``: ONNX
    Runtime moves a ``DequantizeLinear`` across ``Reshape`` (so the int8 layer after it fuses
    to ``QGemm``), not across ``Flatten``."""
    for i, node in enumerate(graph.node):
        if node.op_type != "Flatten" or node.domain or _attrs(node).get("axis", 1) != 1:
            continue
        shape = add_initializer(graph, f"{node.output[0]}.shape", np.array([0, -1], np.int64))
        reshape = helper.make_node("Reshape", [node.input[0], shape], list(node.output), node.name)
        graph.node[i].CopyFrom(reshape)


def _name_io(model: onnx.ModelProto) -> None:
    """Exactly one input ``features`` and one output ``logits``, batch dimension ``batch``."""
    graph = model.graph
    if len(graph.input) != 1 or len(graph.output) != 1:
        raise ExportError(
            f"the exported graph has {len(graph.input)} inputs and {len(graph.output)} outputs; "
            "a model must map one float32 row batch to one logits tensor"
        )
    for value, name in ((graph.input[0], INPUT), (graph.output[0], OUTPUT)):
        if value.name != name:
            rename_value(graph, value.name, name)
        dims = value.type.tensor_type.shape.dim
        dims[0].Clear()
        dims[0].dim_param = BATCH
        del value.metadata_props[:]


def rename_value(graph: onnx.GraphProto, old: str, new: str) -> None:
    """Rename a tensor everywhere it is produced or consumed."""
    for node in graph.node:
        node.input[:] = [new if n == old else n for n in node.input]
        node.output[:] = [new if n == old else n for n in node.output]
    for value in (*graph.input, *graph.output, *graph.value_info):
        if value.name == old:
            value.name = new


def initializers(graph: onnx.GraphProto) -> dict[str, onnx.TensorProto]:
    return {t.name: t for t in graph.initializer}


def remove_initializer(graph: onnx.GraphProto, name: str) -> None:
    """Drop the initializer called ``name``, if there is one."""
    keep = [t for t in graph.initializer if t.name != name]
    del graph.initializer[:]
    graph.initializer.extend(keep)


def add_initializer(graph: onnx.GraphProto, name: str, array: np.ndarray) -> str:
    """Store ``array`` under ``name`` (replacing an initializer of that name); the name."""
    remove_initializer(graph, name)
    graph.initializer.append(numpy_helper.from_array(np.array(array, order="C"), name))
    return name


def _attrs(node: onnx.NodeProto) -> dict[str, object]:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def gemm_to_matmul(model: onnx.ModelProto) -> None:
    """Each ``Gemm`` (alpha = beta = 1, ``transA`` = 0, ``B`` an initializer) becomes
    ``MatMul`` with ``Bᵀ`` stored, then ``Add`` of ``C``; the metadata stays with both."""
    graph = model.graph
    inits = initializers(graph)
    nodes: list[onnx.NodeProto] = []
    for node in graph.node:
        a = _attrs(node)
        plain = a.get("alpha", 1.0) == 1.0 and a.get("beta", 1.0) == 1.0 and not a.get("transA")
        if node.op_type != "Gemm" or node.input[1] not in inits or not plain:
            nodes.append(node)
            continue
        weight = numpy_helper.to_array(inits[node.input[1]])
        if a.get("transB"):
            weight = weight.T
        w_name = add_initializer(graph, f"{node.input[1]}.matmul", weight)
        has_bias = len(node.input) > 2 and node.input[2]
        product = f"{node.output[0]}.matmul" if has_bias else node.output[0]
        matmul = helper.make_node("MatMul", [node.input[0], w_name], [product], node.name)
        matmul.metadata_props.extend(node.metadata_props)
        nodes.append(matmul)
        if has_bias:
            add = helper.make_node("Add", [product, node.input[2]], [node.output[0]])
            add.metadata_props.extend(node.metadata_props)
            nodes.append(add)
    del graph.node[:]
    graph.node.extend(nodes)
    prune_initializers(graph)


def prune_initializers(graph: onnx.GraphProto) -> None:
    """Drop initializers no node reads."""
    used = {name for node in graph.node for name in node.input}
    used |= {o.name for o in graph.output}
    keep = [t for t in graph.initializer if t.name in used]
    del graph.initializer[:]
    graph.initializer.extend(keep)


def node_module(node: onnx.NodeProto) -> str | None:
    """The innermost torch module a node was exported from (see :func:`tag_modules`), or None."""
    return next((p.value for p in node.metadata_props if p.key == MODULE_KEY), None)


@dataclass(frozen=True)
class Site:
    """Where a torch layer's weight product sits in the graph."""

    index: int  # position of the node in graph.node
    node: onnx.NodeProto  # the MatMul or Gemm (Linear) or Conv (Conv1d)


def matrix_sites(model: onnx.ModelProto, names: list[str]) -> dict[str, Site]:
    """The ``MatMul``/``Gemm``/``Conv`` node of each torch layer in ``names`` whose weight is
    an initializer; a layer whose product is found zero or several times is left out."""
    inits = initializers(model.graph)
    found: dict[str, list[Site]] = {}
    for i, node in enumerate(model.graph.node):
        if node.op_type not in ("MatMul", "Gemm", "Conv") or node.input[1] not in inits:
            continue
        name = node_module(node)
        if name in names:
            found.setdefault(name, []).append(Site(i, node))
    return {name: sites[0] for name, sites in found.items() if len(sites) == 1}


def consumers(graph: onnx.GraphProto, value: str) -> list[onnx.NodeProto]:
    return [n for n in graph.node if value in n.input]


def finish(model: onnx.ModelProto) -> onnx.ModelProto:
    """Strip exporter metadata, prune, sort topologically, check; the model itself."""
    graph = model.graph
    for node in graph.node:
        del node.metadata_props[:]
    for value in (*graph.input, *graph.output, *graph.value_info):
        del value.metadata_props[:]
    del model.metadata_props[:]
    del graph.value_info[:]
    prune_initializers(graph)
    _toposort(graph)
    ms_used = any(n.domain == MS_DOMAIN for n in graph.node)
    if ms_used and not any(op.domain == MS_DOMAIN for op in model.opset_import):
        model.opset_import.append(helper.make_opsetid(MS_DOMAIN, 1))
    onnx.checker.check_model(model, full_check=False)
    return model


def _toposort(graph: onnx.GraphProto) -> None:
    """Order nodes so each runs after the producers of its inputs (stable otherwise)."""
    ready = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending = list(graph.node)
    ordered: list[onnx.NodeProto] = []
    while pending:
        rest = []
        for node in pending:
            if all(name in ready for name in node.input):
                ordered.append(node)
                ready.update(node.output)
            else:
                rest.append(node)
        if len(rest) == len(pending):
            raise ExportError("the rewritten graph has a cycle or a dangling input")
        pending = rest
    del graph.node[:]
    graph.node.extend(ordered)
