"""ONNX Runtime sessions in the paired harness and the time step: tiny graphs, real sessions."""

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

from quantbench.data.rawrows import RawRows, save_raw_rows
from quantbench.measure.harness import TimingConfig, paired_rounds, round_order
from quantbench.measure.ort import (
    RotatingSessions,
    RowFeeds,
    model_part,
    open_session,
    optimized_ops,
    quantized_ops,
)
from quantbench.report.facts import load_schema, load_timing
from tests.measure.test_timing import FEATURES, _checkpoints, _run

CLASSES = 3


MEAN = 0.5  # the stand-in preprocessing: features = numeric - MEAN


def _artifact(path, name, model_nodes, inits, features=FEATURES):
    """An artifact's layout: numeric -> Sub (preprocessing) -> features -> the model's nodes ->
    logits -> Softmax (probabilities) and ArgMax (label)."""
    nodes = [
        helper.make_node("Sub", ["numeric", "mean"], ["features"]),
        *model_nodes,
        helper.make_node("Softmax", ["logits"], ["probabilities"], axis=1),
        helper.make_node("ArgMax", ["logits"], ["label"], axis=1, keepdims=0),
    ]
    graph = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info("numeric", TensorProto.FLOAT, ["n", features])],
        [
            helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", CLASSES]),
            helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["n", CLASSES]),
            helper.make_tensor_value_info("label", TensorProto.INT64, ["n"]),
        ],
        [numpy_helper.from_array(np.array(MEAN, np.float32), "mean"), *inits],
    )
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)
    return str(path)


def _fp32_graph(path, features=FEATURES, seed=0):
    """numeric (n, features) -> features -> MatMul -> logits (n, 3), with the head."""
    w = np.random.default_rng(seed).normal(size=(features, CLASSES)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["features", "w"], ["logits"])]
    return _artifact(path, "fp32", nodes, [numpy_helper.from_array(w, "w")], features)


def _qdq_graph(path, features=FEATURES):
    """The same product as QDQ: uint8 activations and int8 weight codes around a MatMul, the
    pattern ONNX Runtime fuses into an integer kernel."""
    codes = np.random.default_rng(1).integers(-127, 128, size=(features, CLASSES)).astype(np.int8)
    inits = [
        numpy_helper.from_array(codes, "wq"),
        numpy_helper.from_array(np.array(0.01, np.float32), "ws"),
        numpy_helper.from_array(np.array(0, np.int8), "wz"),
        numpy_helper.from_array(np.array(0.05, np.float32), "xs"),
        numpy_helper.from_array(np.array(128, np.uint8), "xz"),
    ]
    nodes = [
        helper.make_node("QuantizeLinear", ["features", "xs", "xz"], ["xq"]),
        helper.make_node("DequantizeLinear", ["xq", "xs", "xz"], ["xd"]),
        helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"]),
        helper.make_node("MatMul", ["xd", "wd"], ["logits"]),
    ]
    return _artifact(path, "qdq", nodes, inits, features)


class Recorder(torch.nn.Module):
    def __init__(self, seen):
        super().__init__()
        self.seen = seen

    def forward(self, x):
        self.seen.append(x.clone())
        return x


def test_sessions_run_in_the_same_rounds_on_the_same_rows(tmp_path):
    x = torch.randn(5, FEATURES)
    sessions = RotatingSessions(_fp32_graph(tmp_path / "m.onnx"), 2, ("calls", "passes"))
    seen_torch, seen_ort = [], []
    recorder = Recorder(seen_torch)
    real = sessions.__call__

    def ort_side(block):
        runner = real(block)
        return lambda feeds: (seen_ort.append(feeds.arrays["numeric"].copy()), runner(feeds))[1]

    make = {"reference": lambda _: recorder, "candidate": lambda _: recorder,
            "ort_reference": ort_side, "ort_candidate": ort_side}  # fmt: skip
    inputs = dict.fromkeys(("ort_reference", "ort_candidate"), RowFeeds({"numeric": x.numpy()}))
    cfg = TimingConfig(batch_size=7, warmup=0, rounds=4, latency_samples=8, throughput_repeats=4)
    rounds = paired_rounds(make, x, cfg, round_warmup=0, inputs=inputs)
    sides = tuple(make)
    assert [tuple(r["order"]) for r in rounds] == [round_order(i, sides) for i in range(4)]
    assert [r["order"][0] for r in rounds] == list(sides)  # each side first once in 4 rounds
    for r in rounds:
        for side in sides:
            assert len(r[side]["latency_ms"]) == 2 and len(r[side]["pass_ms"]) == 1
    # row for row, both runtimes got the same rows (torch: 2 torch sides, ort: 2 ort sides)
    torch_rows = np.concatenate([t.numpy() for t in seen_torch])
    ort_rows = np.concatenate(seen_ort)
    np.testing.assert_array_equal(torch_rows, ort_rows)
    assert sessions.count == 4


def test_model_part_is_the_model_graph_alone_and_computes_what_the_artifact_does(tmp_path):
    path = _fp32_graph(tmp_path / "fp32.onnx")
    part = open_session(model_part(path))
    assert [i.name for i in part.get_inputs()] == ["features"]
    assert [o.name for o in part.get_outputs()] == ["logits"]
    assert {n.op_type for n in onnx.load_from_string(model_part(path)).graph.node} == {"MatMul"}
    raw = np.random.default_rng(3).normal(size=(6, FEATURES)).astype(np.float32)
    whole = open_session(path).run(["logits"], {"numeric": raw})[0]
    alone = part.run(None, {"features": raw - np.float32(MEAN)})[0]
    np.testing.assert_allclose(alone, whole, rtol=1e-6, atol=1e-6)


def test_optimized_graph_shows_the_fused_integer_kernel(tmp_path):
    fp32 = optimized_ops(_fp32_graph(tmp_path / "fp32.onnx"))
    qdq = optimized_ops(_qdq_graph(tmp_path / "qdq.onnx"))
    assert fp32["MatMul"] == 1 and quantized_ops(fp32) == {}
    fused = quantized_ops(qdq)
    assert "MatMul" not in qdq and "DequantizeLinear" not in qdq
    assert set(fused) & {"QLinearMatMul", "com.microsoft:QGemm", "MatMulIntegerToFloat",
                         "com.microsoft:MatMulIntegerToFloat"}, qdq  # fmt: skip


def _raw_test(tmp_path, ds):
    path = tmp_path / "test_raw.npz"
    names = tuple(f"f{i}" for i in range(FEATURES))
    save_raw_rows(path, RawRows(ds.x_test.copy(), np.empty((len(ds.x_test), 0), str), names, ()))
    return str(path)


def test_time_step_times_both_artifacts_and_the_record_passes_its_schema(tmp_path):
    ds = _checkpoints(tmp_path)
    artifacts = {
        "ort_reference": _fp32_graph(tmp_path / "fp32.onnx"),
        "ort_candidate": _qdq_graph(tmp_path / "cand.onnx"),
    }
    doc = _run(tmp_path, artifacts=artifacts, raw_test_path=_raw_test(tmp_path, ds))
    assert doc["runtimes"] == ["torch", "onnxruntime"]
    ort = doc["onnxruntime"]
    assert ort["session_options"]["intra_op_num_threads"] == 1
    assert ort["session_options"]["graph_optimization_level"] == "ORT_ENABLE_ALL"
    assert ort["reference"]["quantized_ops"] == {} and ort["candidate"]["quantized_ops"]
    assert "model graph" in ort["input"]
    for r in doc["rounds"]:
        assert len(r["order"]) == 4
        assert len(r["ort_candidate"]["latency_ms"]) == 2 and len(r["ort_reference"]["pass_ms"])
    whole = ort["end_to_end"]
    for side in ("reference", "candidate"):
        assert whole[side]["latency_ms_p50"] > 0 and whole[side]["pass_ms_p50"] > 0
        assert whole[side]["batch_size"] == doc["settings"]["batch_size"]
    path = tmp_path / "timing" / "mlp" / "rtn_w4.json"
    assert load_timing(str(path), load_schema("timing")).record["onnxruntime"] == ort


def test_time_step_refuses_raw_rows_of_another_split_in_one_line(tmp_path):
    ds = _checkpoints(tmp_path)
    raw = tmp_path / "short.npz"
    names = tuple(f"f{i}" for i in range(FEATURES))
    save_raw_rows(raw, RawRows(ds.x_test[:3].copy(), np.empty((3, 0), str), names, ()))
    artifacts = dict.fromkeys(("ort_reference", "ort_candidate"), _fp32_graph(tmp_path / "a.onnx"))
    with pytest.raises(ValueError, match="rerun the preprocess step") as err:
        _run(tmp_path, artifacts=artifacts, raw_test_path=str(raw))
    assert "\n" not in str(err.value)
    assert not (tmp_path / "timing").exists()


def test_round_orders_balance_places_and_predecessors():
    sides = ("reference", "candidate", "ort_reference", "ort_candidate")
    rows = [round_order(r, sides) for r in range(4)]
    assert all(sorted(row) == sorted(sides) for row in rows)
    for place in range(4):  # every side once in every place
        assert sorted(row[place] for row in rows) == sorted(sides)
    follows = [(row[i - 1], row[i]) for row in rows for i in range(1, 4)]
    assert sorted(follows) == sorted((a, b) for a in sides for b in sides if a != b)
    two = [round_order(r) for r in range(4)]  # two sides: plain alternation, as always
    assert two == [("reference", "candidate"), ("candidate", "reference")] * 2
