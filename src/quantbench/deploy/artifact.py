"""The export: one checkpoint -> ``deploy/{model}/{rep}/{method}/{model.onnx,manifest.json}``.

``model.onnx`` is the preprocessing graph (raw ``numeric``/``categorical`` rows -> ``features``)
merged with the method's model graph (``features`` -> ``logits``) and a head that adds
``probabilities`` (softmax) and ``label`` (argmax, int64). The model graph comes from
:func:`quantbench.deploy.graph.export_graph`, which runs the method's own quantization; this
module only joins, checks and writes. Both files are written together: after an error neither
exists. The workflow's score step exports with :func:`build_artifact` and :func:`serialize`
(:mod:`quantbench.deploy.score_export`); :func:`run_export` exports one checkpoint on its own.
"""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import onnx
from onnx import TensorProto, compose, helper

from quantbench.core.files import atomic_path, read_json
from quantbench.data.encoding import Encoding, read_encoding
from quantbench.deploy.manifest import (
    FORMAT,
    FORMAT_VERSION,
    MODEL_FILE,
    OUTPUTS,
    reader_from_card,
    sha256_file,
    tool_versions,
)
from quantbench.deploy.preprocess_graph import BATCH, preprocess_graph

if TYPE_CHECKING:
    from quantbench.deploy.graph import ModelGraph
    from quantbench.quant.loader import LoadedModel

log = logging.getLogger(__name__)


def _opset(model: onnx.ModelProto) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    raise ValueError("the model graph imports no ai.onnx opset")


def _unique_opsets(model: onnx.ModelProto) -> None:
    """One ``opset_import`` entry per domain. ``onnx.compose.merge_models`` checks that both
    graphs import the same version of a shared domain but keeps both entries, and tools that
    read the opset (ONNX Runtime's quantizer among them) refuse a model that imports a domain
    twice."""
    versions = {entry.domain: entry.version for entry in model.opset_import}
    del model.opset_import[:]
    model.opset_import.extend(helper.make_opsetid(d, v) for d, v in versions.items())


def _check_model_graph(model: onnx.ModelProto, n_features: int) -> None:
    inputs = [i.name for i in model.graph.input if i.name not in {t.name for t in
              model.graph.initializer}]  # fmt: skip
    outputs = [o.name for o in model.graph.output]
    if inputs != ["features"] or "logits" not in outputs:
        raise ValueError(
            f"the model graph has inputs {inputs} and outputs {outputs}; the export needs one "
            "input 'features' and an output 'logits'"
        )
    dims = model.graph.input[0].type.tensor_type.shape.dim
    if len(dims) == 2 and dims[1].HasField("dim_value") and dims[1].dim_value != n_features:
        raise ValueError(
            f"the model graph takes {dims[1].dim_value} features, the preprocessing makes "
            f"{n_features}; re-run the workflow so that model and data match"
        )


def _add_head(model: onnx.ModelProto, n_classes: int) -> onnx.ModelProto:
    """Outputs ``logits``, ``probabilities`` (softmax over classes) and ``label`` (argmax)."""
    graph = model.graph
    graph.node.extend(
        [
            helper.make_node("Softmax", ["logits"], ["probabilities"], name="head_softmax", axis=1),
            helper.make_node("ArgMax", ["logits"], ["label"], name="head_argmax", axis=1,
                             keepdims=0),
        ]
    )  # fmt: skip
    del graph.output[:]
    graph.output.extend(
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, [BATCH, n_classes]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, [BATCH, n_classes]),
            helper.make_tensor_value_info("label", TensorProto.INT64, [BATCH]),
        ]
    )
    return model


def assemble(enc: Encoding, model_graph: onnx.ModelProto, n_classes: int) -> onnx.ModelProto:
    """Preprocessing + model graph + head, as one checked ONNX model."""
    _check_model_graph(model_graph, enc.n_features)
    pre = preprocess_graph(enc, _opset(model_graph), model_graph.ir_version)
    merged = compose.merge_models(pre, model_graph, io_map=[("features", "features")])
    _unique_opsets(merged)
    merged = _add_head(merged, n_classes)
    merged.producer_name = "quantbench"
    onnx.checker.check_model(merged)
    if [o.name for o in merged.graph.output] != list(OUTPUTS):
        raise AssertionError("the assembled graph's outputs are not logits, probabilities, label")
    return merged


def manifest_record(
    enc: Encoding,
    graph: ModelGraph,
    *,
    classes: tuple[str, ...],
    card: dict[str, Any],
    meta: dict[str, Any],
    identity: dict[str, str],
    checkpoint_sha256: str,
    onnx_sha256: str,
) -> dict[str, Any]:
    """The manifest's JSON (see :mod:`quantbench.deploy.manifest`)."""
    return {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "model_file": MODEL_FILE,
        "onnx_sha256": onnx_sha256,
        "inputs": {"numeric": list(enc.numeric), "categorical": list(enc.categorical)},
        "categorical_encoding": enc.categorical_mode or None,
        "vocabularies": {v.column: list(v.categories) for v in enc.vocabularies},
        "imputes_nonfinite": enc.median is not None,
        "n_features": enc.n_features,
        "classes": list(classes),
        "outputs": list(OUTPUTS),
        "reader": reader_from_card(card),
        "model": {"name": identity["model"], "spec": meta.get("model", {})},
        "replicate": identity["replicate"],
        "method": {"name": meta["method"], "kind": meta["kind"], "params": meta.get("params", {})},
        "checkpoint_sha256": checkpoint_sha256,
        "opset": int(graph.opset),
        "layers": [
            {"layer": x.layer, "executes_as": x.executes_as, "fallback": x.fallback}
            for x in graph.layers
        ],
        "notes": list(graph.notes),
        "versions": tool_versions(),
    }


def serialize(
    model: onnx.ModelProto, manifest: dict[str, Any], onnx_path: Path, manifest_path: Path
) -> dict[str, Any]:
    """Write both files as they are (no rename); the manifest gets the ONNX file's SHA-256.
    Returns the manifest as written."""
    onnx_path.write_bytes(model.SerializeToString())
    manifest = {**manifest, "onnx_sha256": sha256_file(onnx_path)}
    text = json.dumps(manifest, indent=2, sort_keys=True, allow_nan=False)
    manifest_path.write_text(text + "\n", encoding="utf-8")
    return manifest


def write_artifact(
    model: onnx.ModelProto, manifest: dict[str, Any], onnx_out: Path, manifest_out: Path
) -> None:
    """``model.onnx`` and ``manifest.json`` (with the ONNX file's SHA-256) written together."""
    for p in (onnx_out, manifest_out):
        p.unlink(missing_ok=True)
    with contextlib.ExitStack() as stack:
        tmp_onnx = stack.enter_context(atomic_path(onnx_out))
        tmp_manifest = stack.enter_context(atomic_path(manifest_out))
        serialize(model, manifest, tmp_onnx, tmp_manifest)


def build_artifact(
    loaded: LoadedModel,
    checkpoint_path: str,
    encoding_path: str,
    card_path: str,
    identity: dict[str, str],
    accuracy_level: int | None = None,
) -> tuple[onnx.ModelProto, dict[str, Any]]:
    """A loaded checkpoint's artifact in memory: the checked ONNX model and its manifest (its
    ``onnx_sha256`` is set when the file is written). ``identity``: ``model``, ``replicate``;
    ``accuracy_level``: MatMulNBits' for rtn/gptq on the int4 path (None:
    :data:`graph.ACCURACY_LEVEL`);
    ``encoding_path``: the preprocess step's ``encoding.json`` (:mod:`quantbench.data.encoding`).
    """
    from quantbench.deploy.graph import ACCURACY_LEVEL, export_graph

    encoded = read_encoding(encoding_path)
    enc = encoded.encoding
    if tuple(loaded.meta.get("feature_names", encoded.feature_names)) != encoded.feature_names:
        raise ValueError(
            f"{checkpoint_path}: its feature names differ from {encoding_path}'s; rerun the "
            "workflow so that both come from the same data"
        )
    level = ACCURACY_LEVEL if accuracy_level is None else accuracy_level
    graph = export_graph(loaded, accuracy_level=level)
    merged = assemble(enc, graph.model, len(encoded.class_names))
    record = manifest_record(
        enc, graph, classes=encoded.class_names, card=read_json(card_path), meta=loaded.meta,
        identity=identity, checkpoint_sha256=sha256_file(checkpoint_path), onnx_sha256="",
    )  # fmt: skip
    for note in graph.notes:
        log.info("export note: %s", note)
    return merged, record


def run_export(
    checkpoint_path: str,
    encoding_path: str,
    card_path: str,
    model: str,
    replicate: str,
    onnx_out: str,
    manifest_out: str,
) -> None:
    """Export one checkpoint on its own: rebuild it, export its graph, join, check and write
    (the workflow exports in the score step, :mod:`quantbench.deploy.score_export`)."""
    from quantbench.quant.loader import load_model

    loaded = load_model(checkpoint_path)
    merged, record = build_artifact(
        loaded, checkpoint_path, encoding_path, card_path,
        {"model": model, "replicate": replicate},
    )  # fmt: skip
    write_artifact(merged, record, Path(onnx_out), Path(manifest_out))
    log.info("artifact written: %s, %s", onnx_out, manifest_out)
