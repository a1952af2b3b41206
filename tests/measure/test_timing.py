"""The time step: two checkpoints timed against each other, the timing record out."""

import json

import pytest
import torch

from quantbench.data.dataset import save_dataset
from quantbench.measure.timing import run_timing
from quantbench.models import resolve
from quantbench.quant.base import CalibrationData
from quantbench.quant.methods import registry as methods
from quantbench.training.checkpoint import CheckpointError, save_checkpoint
from tests.conftest import make_toy_dataset

FEATURES = 32


def _checkpoints(tmp_path):
    """FP32 and rtn_w4 (dequantized, group size 16) checkpoints of a small MLP on toy data."""
    ds = make_toy_dataset(n=400, features=FEATURES)
    save_dataset(tmp_path / "dataset.npz", ds)
    torch.manual_seed(0)
    spec = resolve({"arch": "mlp", "hidden": [32], "dropout": 0.0}, FEATURES, 3)
    fp32 = spec.build().eval()
    meta = {
        "model": spec.to_dict(),
        "feature_names": list(ds.feature_names),
        "class_names": list(ds.class_names),
        "seed": 0,
    }
    save_checkpoint(
        tmp_path / "fp32.pt", {**meta, "method": "fp32", "kind": "fp32", "params": {}},
        fp32.state_dict(),
    )  # fmt: skip
    variant = {"kind": "rtn", "bits": 4, "group_size": 16}
    calib = CalibrationData(
        *(torch.from_numpy(a) for a in (ds.x_train, ds.y_train, ds.x_val, ds.y_val)), seed=0
    )
    q = methods.get_kind("rtn").quantize(fp32, calib, methods.make_params("rtn", variant))
    save_checkpoint(
        tmp_path / "rtn_w4.pt", {**meta, "method": "rtn_w4", "kind": "rtn", "params": variant},
        q.state,
    )  # fmt: skip
    (tmp_path / "rtn_w4.info.json").write_text(json.dumps(q.info))
    return ds


TINY = {"threads": 1, "batch_size": 16, "warmup": 2, "rounds": 4, "latency_samples": 8,
        "throughput_repeats": 4}  # fmt: skip


def _run(tmp_path, reference="fp32.pt", candidate="rtn_w4.pt", method="rtn_w4", data=None):
    out = tmp_path / "timing" / "mlp" / f"{method}.json"
    run_timing(
        reference_path=str(tmp_path / reference),
        candidate_path=str(tmp_path / candidate),
        dataset_path=str(data or tmp_path / "dataset.npz"),
        info_path=str(tmp_path / "rtn_w4.info.json") if method == "rtn_w4" else None,
        model="mlp",
        method=method,
        replicate="seed42",
        timing=TINY,
        timing_out=str(out),
    )
    return json.loads(out.read_text())


def test_timing_json_has_the_fields_of_the_spec(tmp_path):
    _checkpoints(tmp_path)
    doc = _run(tmp_path)
    assert set(doc) == {
        "format", "version", "model", "method", "kind", "replicate", "settings", "reference",
        "candidate", "rounds", "threads", "device", "torch_version", "cpu", "cpu_facts",
        "memory",
    }  # fmt: skip
    assert (doc["format"], doc["version"]) == ("quantbench-timing", 1)
    assert (doc["model"], doc["method"], doc["kind"], doc["replicate"]) == (
        "mlp", "rtn_w4", "rtn", "seed42",
    )  # fmt: skip
    assert doc["settings"] == TINY and doc["threads"] == 1 and doc["device"] == "cpu"
    side_keys = {"method", "kind", "kernels", "execution", "engine"}
    assert set(doc["reference"]) == set(doc["candidate"]) == side_keys
    assert doc["reference"] | {"kernels": None} == {
        "method": "fp32", "kind": "fp32", "kernels": None, "execution": "fp32", "engine": None,
    }  # fmt: skip
    assert "aten::addmm" in doc["reference"]["kernels"]
    assert doc["candidate"]["execution"].startswith("dequantized to fp32")
    assert len(doc["rounds"]) == TINY["rounds"]
    assert [r["order"][0] for r in doc["rounds"]] == ["reference", "candidate"] * 2
    for r in doc["rounds"]:
        for side in ("reference", "candidate"):
            assert set(r[side]) == {"latency_ms", "pass_ms"}
            assert len(r[side]["latency_ms"]) == 2 and len(r[side]["pass_ms"]) == 1
            assert all(t > 0 for t in r[side]["latency_ms"] + r[side]["pass_ms"])


def test_fp32_against_a_second_copy_of_itself(tmp_path):
    _checkpoints(tmp_path)
    doc = _run(tmp_path, candidate="fp32.pt", method="fp32")
    assert doc["candidate"]["method"] == doc["reference"]["method"] == "fp32"


def test_refuses_a_checkpoint_of_other_data_in_one_line(tmp_path):
    _checkpoints(tmp_path)
    other = tmp_path / "other.npz"
    save_dataset(other, make_toy_dataset(n=400, features=FEATURES - 1))
    with pytest.raises(CheckpointError, match="features differ") as err:
        _run(tmp_path, data=other)
    assert "\n" not in str(err.value) and "fp32.pt" in str(err.value)
    assert not (tmp_path / "timing").exists()


def test_refuses_a_reference_that_is_not_fp32_and_a_mislabelled_candidate(tmp_path):
    _checkpoints(tmp_path)
    with pytest.raises(CheckpointError, match="reference must be an fp32"):
        _run(tmp_path, reference="rtn_w4.pt")
    with pytest.raises(CheckpointError, match="not 'gptq_w4'"):
        _run(tmp_path, method="gptq_w4")
