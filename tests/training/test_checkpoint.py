"""Checkpoints: self-describing, weights-only loading, refusal of foreign or crafted files."""

import dataclasses
import os

import pytest
import torch

from quantbench.models import resolve
from quantbench.quant.loader import load_model
from quantbench.training.checkpoint import (
    CheckpointError,
    check_matches,
    read_checkpoint,
    save_checkpoint,
    tensor_bytes,
)
from tests.conftest import make_toy_dataset

SPEC = resolve({"arch": "mlp", "hidden": [8, 4], "dropout": 0.0}, 6, 3)


def meta(**over):
    base = {
        "method": "fp32",
        "kind": "fp32",
        "params": {},
        "model": SPEC.to_dict(),
        "feature_names": [f"f{i}" for i in range(6)],
        "class_names": ["a", "b", "c"],
        "seed": 1,
    }
    return base | over


def saved_fp32(tmp_path):
    torch.manual_seed(0)
    model = SPEC.build().eval()
    path = tmp_path / "fp32.pt"
    save_checkpoint(path, meta(), model.state_dict())
    return model, path


def test_fp32_round_trip_rebuilds_the_same_function(tmp_path):
    model, path = saved_fp32(tmp_path)
    loaded = load_model(path)
    x = torch.randn(5, 6)
    assert torch.equal(loaded.module(x), model(x))
    assert loaded.meta["torch_version"] == str(torch.__version__)
    assert loaded.meta["class_names"] == ["a", "b", "c"]
    assert loaded.spec == SPEC


def test_checkpoints_of_the_former_mlp_layout_still_load(tmp_path):
    """Checkpoints written before model variants existed carry the MLP's shape only."""
    model, _ = saved_fp32(tmp_path)
    legacy = {"in_features": 6, "hidden": [8, 4], "n_classes": 3, "dropout": 0.0}
    save_checkpoint(tmp_path / "old.pt", meta(model=legacy), model.state_dict())
    loaded = load_model(tmp_path / "old.pt")
    assert loaded.spec == SPEC
    x = torch.randn(5, 6)
    assert torch.equal(loaded.module(x), model(x))


def test_same_content_gives_same_bytes(tmp_path):
    torch.manual_seed(0)
    state = SPEC.build().state_dict()
    save_checkpoint(tmp_path / "a.pt", meta(), state)
    save_checkpoint(tmp_path / "b.pt", meta(), state)
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()


class _RunsCode:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ['QB_MARKER']}",))


def test_checkpoint_crafted_to_run_code_is_refused(tmp_path, monkeypatch):
    marker = tmp_path / "code-ran"
    monkeypatch.setenv("QB_MARKER", str(marker))
    path = tmp_path / "evil.pt"
    torch.save({"format": "quantbench-checkpoint", "state": _RunsCode()}, path)
    with pytest.raises(CheckpointError, match="refused to load"):
        load_model(path)
    assert not marker.exists()


def test_foreign_and_missing_files_are_refused(tmp_path):
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a quantbench checkpoint"):
        read_checkpoint(tmp_path / "other.pt")
    (tmp_path / "text.pt").write_text("hello")
    with pytest.raises(CheckpointError, match="refused to load"):
        read_checkpoint(tmp_path / "text.pt")
    with pytest.raises(CheckpointError, match="not found"):
        read_checkpoint(tmp_path / "missing.pt")


def test_loading_against_a_dataset_refuses_other_data_before_rebuilding(tmp_path):
    model, path = saved_fp32(tmp_path)
    ds = dataclasses.replace(make_toy_dataset(n=60, features=6), class_names=("a", "b", "c"))
    loaded = load_model(path, expect=ds)  # the checkpoint's own features and classes
    assert torch.equal(loaded.module(torch.ones(1, 6)), model(torch.ones(1, 6)))
    other = dataclasses.replace(ds, class_names=("a", "b", "x"))
    with pytest.raises(CheckpointError, match="classes") as err:
        load_model(path, expect=other)
    assert "\n" not in str(err.value) and str(path) in str(err.value)


def test_checkpoint_for_other_features_or_classes_is_refused(tmp_path):
    _, path = saved_fp32(tmp_path)
    m = load_model(path).meta
    check_matches(m, [f"f{i}" for i in range(6)], ["a", "b", "c"], path)
    with pytest.raises(CheckpointError, match="features differ"):
        check_matches(m, [f"g{i}" for i in range(6)], ["a", "b", "c"], path)
    with pytest.raises(CheckpointError, match="classes"):
        check_matches(m, [f"f{i}" for i in range(6)], ["a", "b"], path)


def test_save_refuses_incomplete_meta_and_leaves_no_file(tmp_path):
    with pytest.raises(ValueError, match="lacks"):
        save_checkpoint(tmp_path / "x.pt", {"method": "fp32"}, {})
    assert list(tmp_path.iterdir()) == []


def test_tensor_bytes_counts_nested_tensors():
    state = {"a": torch.zeros(4, dtype=torch.uint8), "b": [torch.zeros(2, dtype=torch.float16)]}
    assert tensor_bytes(state) == 4 + 4
