"""The fitted preprocessing as an ONNX graph: raw feature rows in, the model's features out.

Inputs: ``numeric`` float32 ``[batch, n_numeric]`` (raw values, in the preprocessor's numeric
column order) and, only when the data had categorical columns, ``categorical`` string
``[batch, n_categorical]``. Output: ``features`` float32 ``[batch, n_features]``, equal to
``Preprocessor.transform`` of the same rows. Built with plain ONNX and ``ai.onnx.ml`` ops that
ONNX Runtime runs: Sub/Div for the scaler, IsNaN/IsInf/Where for the median imputer, a
LabelEncoder (string -> index) with an Equal against the category indices for one-hot, and a
LabelEncoder (string -> index as float) with Sub/Div for ordinal codes.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from quantbench.data.encoding import Encoding, Vocabulary

BATCH = "batch"
ML_DOMAIN = "ai.onnx.ml"
ML_OPSET = 3  # LabelEncoder-2 (string keys, int64 or float values)
PREFIX = "pre_"  # every node and initializer name of this graph, so a merge never collides


class _Builder:
    """Collects nodes and initializers with prefixed, unique names."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self._n = 0

    def name(self, stem: str) -> str:
        self._n += 1
        return f"{PREFIX}{stem}_{self._n}"

    def const(self, stem: str, value: np.ndarray) -> str:
        name = self.name(stem)
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def op(self, op: str, inputs: list[str], stem: str, domain: str = "", **attrs: Any) -> str:
        out = self.name(stem)
        self.nodes.append(
            helper.make_node(op, inputs, [out], name=self.name(op), domain=domain, **attrs)
        )
        return out


def _numeric(b: _Builder, enc: Encoding) -> str:
    x = "numeric"
    if enc.median is not None:  # non-finite values were NaN for the imputer (Preprocessor)
        missing = b.op("Or", [b.op("IsNaN", [x], "isnan"), b.op("IsInf", [x], "isinf")], "miss")
        fill = b.const("median", enc.median.reshape(1, -1))
        x = b.op("Where", [missing, fill, x], "imputed")
    centred = b.op("Sub", [x, b.const("mean", enc.mean.reshape(1, -1))], "centred")
    return b.op("Div", [centred, b.const("scale", enc.scale.reshape(1, -1))], "scaled")


def _column(b: _Builder, j: int) -> str:
    return b.op("Gather", ["categorical", b.const("col", np.array([j], np.int64))], "col", axis=1)


def _onehot(b: _Builder, j: int, vocab: Vocabulary) -> str:
    """[batch, K] float: 1 where the category matches; all zeros for an unknown one."""
    k = len(vocab.categories)
    index = b.op(
        "LabelEncoder", [_column(b, j)], "index", domain=ML_DOMAIN,
        keys_strings=list(vocab.categories), values_int64s=list(range(k)), default_int64=-1,
    )  # fmt: skip
    hit = b.op("Equal", [index, b.const("codes", np.arange(k, dtype=np.int64))], "hit")
    return b.op("Cast", [hit], "onehot", to=TensorProto.FLOAT)


def _ordinal(b: _Builder, j: int, vocab: Vocabulary) -> str:
    """[batch, 1] float: the category's index (-1 when unknown), as the OrdinalEncoder gives."""
    return b.op(
        "LabelEncoder", [_column(b, j)], "ordinal", domain=ML_DOMAIN,
        keys_strings=list(vocab.categories),
        values_floats=[float(i) for i in range(len(vocab.categories))], default_float=-1.0,
    )  # fmt: skip


def _categorical(b: _Builder, enc: Encoding) -> list[str]:
    if enc.categorical_mode == "onehot":
        return [_onehot(b, j, v) for j, v in enumerate(enc.vocabularies)]
    codes = [_ordinal(b, j, v) for j, v in enumerate(enc.vocabularies)]
    joined = codes[0] if len(codes) == 1 else b.op("Concat", codes, "codes", axis=1)
    assert enc.ordinal_mean is not None and enc.ordinal_scale is not None
    centred = b.op("Sub", [joined, b.const("omean", enc.ordinal_mean.reshape(1, -1))], "oc")
    return [b.op("Div", [centred, b.const("oscale", enc.ordinal_scale.reshape(1, -1))], "os")]


def preprocess_graph(enc: Encoding, opset: int, ir_version: int | None = None) -> onnx.ModelProto:
    """The preprocessing model for ``enc`` at ``opset`` (the model graph's, so the two merge)."""
    b = _Builder()
    inputs = []
    blocks = []
    if enc.numeric:
        inputs.append(
            helper.make_tensor_value_info("numeric", TensorProto.FLOAT, [BATCH, len(enc.numeric)])
        )
        blocks.append(_numeric(b, enc))
    if enc.categorical:
        shape = [BATCH, len(enc.categorical)]
        inputs.append(helper.make_tensor_value_info("categorical", TensorProto.STRING, shape))
        blocks.extend(_categorical(b, enc))
    last = blocks[0] if len(blocks) == 1 else b.op("Concat", blocks, "joined", axis=1)
    b.nodes.append(helper.make_node("Identity", [last], ["features"], name=b.name("Identity")))
    output = helper.make_tensor_value_info("features", TensorProto.FLOAT, [BATCH, enc.n_features])
    graph = helper.make_graph(b.nodes, "preprocess", inputs, [output], initializer=b.inits)
    opsets = [helper.make_opsetid("", opset)]
    if enc.categorical:
        opsets.append(helper.make_opsetid(ML_DOMAIN, ML_OPSET))
    model = helper.make_model(graph, opset_imports=opsets, producer_name="quantbench")
    if ir_version is not None:
        model.ir_version = ir_version
    onnx.checker.check_model(model, full_check=True)
    return model
