"""ONNX Runtime sessions as every step opens them, and what a session really runs.

One intra-op thread, one inter-op thread, sequential execution, every graph optimization
(``ORT_ENABLE_ALL``), the CPU provider: the parity check scores artifacts with these settings and
the time step times them with the same, so that what is checked is what is timed.

ONNX Runtime rewrites a graph when a session opens (constant folding, fusing a
``DequantizeLinear -> MatMul -> QuantizeLinear`` pattern into ``QGemm`` and so on); which
kernels it then runs is visible only in that optimized graph. :func:`optimized_ops` opens a
session that writes it (``SessionOptions.optimized_model_filepath``) into a temporary folder and
counts its operators; :data:`QUANTIZED_OPS` names the fused integer kernels worth reporting.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

PROVIDERS = ("CPUExecutionProvider",)

# Operators of an optimized graph that run integer arithmetic (int8 GEMMs, 4-bit weights).
QUANTIZED_OPS = (
    "QGemm",
    "QLinearMatMul",
    "QLinearConv",
    "MatMulInteger",
    "ConvInteger",
    "MatMulIntegerToFloat",
    "DynamicQuantizeMatMul",
    "DynamicQuantizeLinear",
    "MatMulNBits",
    "QuantizeLinear",
    "DequantizeLinear",
)


def session_options(optimized_path: str | None = None) -> tuple[Any, dict[str, Any]]:
    """(SessionOptions, the same settings as JSON-ready facts)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if optimized_path is not None:
        opts.optimized_model_filepath = optimized_path
    settings = {
        "intra_op_num_threads": 1,
        "inter_op_num_threads": 1,
        "execution_mode": "sequential",
        "graph_optimization_level": "ORT_ENABLE_ALL",
        "providers": list(PROVIDERS),
    }
    return opts, settings


def open_session(onnx_path: str | Path | bytes) -> Any:
    """An InferenceSession of ``onnx_path`` (or a serialized model) with
    :func:`session_options`."""
    import onnxruntime as ort

    opts, _ = session_options()
    source = onnx_path if isinstance(onnx_path, bytes) else str(onnx_path)
    return ort.InferenceSession(source, opts, providers=list(PROVIDERS))


MODEL_INPUT, MODEL_OUTPUT = "features", "logits"


def model_part(onnx_path: str | Path) -> bytes:
    """The model graph inside an artifact, serialized: input ``features`` (rows as the
    workflow's preprocessing made them, what the torch model takes), output ``logits``, without
    the in-graph preprocessing and the softmax/argmax head (``onnx.utils.Extractor``)."""
    import onnx
    from onnx.utils import Extractor

    model = onnx.shape_inference.infer_shapes(onnx.load(str(onnx_path)))  # types of features
    return Extractor(model).extract_model([MODEL_INPUT], [MODEL_OUTPUT]).SerializeToString()


def runtime_facts() -> dict[str, Any]:
    """ONNX Runtime's version, the providers this build offers, the session settings used."""
    import onnxruntime as ort

    _, settings = session_options()
    return {
        "version": str(ort.__version__),
        "available_providers": list(ort.get_available_providers()),
        "session_options": settings,
    }


# Attributes of the integer kernels that decide how they compute (recorded with the counts).
KERNEL_ATTRIBUTES = {"MatMulNBits": ("bits", "block_size", "accuracy_level")}


def _optimized_graph(onnx_path: str | Path) -> Any:
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        out = str(Path(tmp) / "optimized.onnx")
        opts, _ = session_options(optimized_path=out)
        opts.log_severity_level = 3  # not the warning that the saved graph fits this CPU only
        ort.InferenceSession(str(onnx_path), opts, providers=list(PROVIDERS))
        return onnx.load(out, load_external_data=False).graph


def _op_name(node: Any) -> str:
    return node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}:{node.op_type}"


def optimized_facts(onnx_path: str | Path) -> tuple[dict[str, int], dict[str, list[int]]]:
    """(operator counts ``"domain:op"``, plain ``op`` in the default domain; the values of
    :data:`KERNEL_ATTRIBUTES` as ``"op.attribute"`` -> sorted distinct values) of the graph ONNX
    Runtime runs after optimizing ``onnx_path`` with :func:`session_options`."""
    from onnx import helper

    graph = _optimized_graph(onnx_path)
    counts = Counter(_op_name(n) for n in graph.node)
    attrs: dict[str, set[int]] = {}
    for n in graph.node:
        for a in n.attribute:
            if a.name in KERNEL_ATTRIBUTES.get(n.op_type, ()):
                attrs.setdefault(f"{n.op_type}.{a.name}", set()).add(helper.get_attribute_value(a))
    return dict(sorted(counts.items())), {k: sorted(v) for k, v in sorted(attrs.items())}


def optimized_ops(onnx_path: str | Path) -> dict[str, int]:
    """Operator counts of the optimized graph (:func:`optimized_facts`)."""
    return optimized_facts(onnx_path)[0]


def quantized_ops(ops: dict[str, int]) -> dict[str, int]:
    """The integer kernels among an optimized graph's operator counts."""
    return {k: v for k, v in ops.items() if k.rsplit(":", 1)[-1] in QUANTIZED_OPS}


class SessionRunner:
    """A session called like a module: ``runner(feeds)`` runs it and returns ``output`` (with
    ``output=None``: every output is computed and fetched, the first returned)."""

    def __init__(self, session: Any, output: str | None = "logits") -> None:
        self.session = session
        self.outputs = None if output is None else [output]

    def __call__(self, feeds: RowFeeds) -> Any:
        return self.session.run(self.outputs, feeds.arrays)[0]


class RowFeeds:
    """An artifact's inputs (name -> rows), indexed like a tensor's rows: ``feeds[i:j]`` (views),
    ``feeds[index_array]`` (contiguous copies), ``len(feeds)``."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.arrays = arrays
        self.shape = (len(next(iter(arrays.values()))),)

    def __getitem__(self, index: Any) -> RowFeeds:
        if isinstance(index, slice):
            return RowFeeds({k: v[index] for k, v in self.arrays.items()})
        return RowFeeds({k: np.ascontiguousarray(v[index]) for k, v in self.arrays.items()})

    def __len__(self) -> int:
        return self.shape[0]


class RotatingSessions:
    """Like :class:`quantbench.measure.harness.RotatingCopies` for an ONNX model: per block
    kind, ``copies`` sessions of their own (each holds its own prepacked weights at its own
    addresses), handed out in turn, so that a session only ever runs one batch size."""

    def __init__(self, onnx_path: str | Path | bytes, copies: int, blocks: tuple[str, ...]) -> None:
        self.pools = {
            b: [SessionRunner(open_session(onnx_path)) for _ in range(copies)] for b in blocks
        }
        self._turns = dict.fromkeys(blocks, 0)

    def __call__(self, block: str) -> SessionRunner:
        pool = self.pools[block]
        turn = self._turns[block]
        self._turns[block] = turn + 1
        return pool[turn % len(pool)]

    @property
    def count(self) -> int:
        return sum(len(pool) for pool in self.pools.values())
