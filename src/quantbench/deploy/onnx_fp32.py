"""FP32 ONNX graph of a torch module, and the editing helpers the quantized graphs share.

The module is exported with ``torch.onnx.export(..., dynamo=True)`` (torch.export, then
onnxscript's translation and optimizer): the TorchScript exporter is deprecated upstream and
warns on every call, while the torch.export path is deterministic (two exports of one module
give the same bytes once the stack traces are stripped) and covers every operator of the
built-in architectures and the example custom model.

The exported graph is normalised so every weight kind can rewrite it:

- one input ``features`` (float32 ``[batch, n_features]``) and one output ``logits``
  (float32 ``[batch, n_classes]``), the batch dimension dynamic and named ``batch``;
- every ``Gemm`` whose ``B`` is an initializer becomes ``MatMul`` (with ``Bᵀ`` stored) plus
  ``Add`` of the bias, so weight-only kinds can replace the ``MatMul`` by ``MatMulNBits``;
- each ``MatMul``/``Conv`` keeps the torch module it came from (the exporter's
  ``pkg.torch.onnx.name_scopes`` metadata), found by :func:`matrix_sites`; the metadata is
  stripped by :func:`finish` (it holds source paths, which would make the bytes depend on
  the checkout).
"""

from __future__ import annotations

import ast
import contextlib
import io
import logging
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnx
import torch
from onnx import helper, numpy_helper
from torch import nn

OPSET = 21  # default ONNX domain; QuantizeLinear/DequantizeLinear of opset 21 take int4 too
MS_DOMAIN = "com.microsoft"
INPUT, OUTPUT, BATCH = "features", "logits", "batch"
_SCOPES = "pkg.torch.onnx.name_scopes"


class ExportError(ValueError):
    """torch.onnx cannot export the module; the message names the model and the reason."""


@contextlib.contextmanager
def _quiet_export() -> Iterator[None]:
    """Silence the exporter's progress lines and known warnings (its output is validated)."""
    loggers = [logging.getLogger(n) for n in ("torch.onnx", "torch.export", "onnxscript")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(io.StringIO()),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def export_fp32(
    module: nn.Module,
    n_features: int,
    matmul: bool = True,
    translations: dict[Callable[..., Any], Callable[..., Any]] | None = None,
) -> onnx.ModelProto:
    """The normalised FP32 graph of ``module`` (eval mode, CPU); metadata kept for mapping.

    ``matmul``: rewrite ``Gemm`` to ``MatMul`` + ``Add``; ``translations``: the exporter's
    ``custom_translation_table`` (custom torch operators -> onnxscript functions).
    """
    example = (torch.zeros(2, n_features),)
    try:
        with _quiet_export(), torch.no_grad():
            program = torch.onnx.export(
                module.cpu().eval(),
                example,
                input_names=[INPUT],
                output_names=[OUTPUT],
                opset_version=OPSET,
                dynamo=True,
                dynamic_shapes=({0: torch.export.Dim(BATCH)},),
                verbose=False,
                custom_translation_table=translations,
            )
    except Exception as exc:  # any exporter failure: the module's forward is not exportable
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ExportError(
            f"torch.onnx cannot export {type(module).__name__} ({type(exc).__name__}: {first}); "
            "the model's forward must be traceable by torch.export"
        ) from None
    model = program.model_proto
    _name_io(model)
    if matmul:
        gemm_to_matmul(model)
    return model


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


def add_initializer(graph: onnx.GraphProto, name: str, array: np.ndarray) -> str:
    """Store ``array`` under ``name`` (replacing an initializer of that name); the name."""
    keep = [t for t in graph.initializer if t.name != name]
    del graph.initializer[:]
    graph.initializer.extend(keep)
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
    """The innermost torch module a node was exported from (its name scopes), or None."""
    for prop in node.metadata_props:
        if prop.key == _SCOPES:
            scopes = ast.literal_eval(prop.value)
            return str(scopes[-2]) if len(scopes) >= 2 else None
    return None


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
