"""The export and parity steps on a real checkpoint: raw rows through the artifact match torch."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from quantbench.core.files import read_json
from quantbench.data.dataset import load_dataset
from quantbench.data.preprocess import run_preprocess
from quantbench.data.settings import DataConfig
from quantbench.deploy.artifact import run_export
from quantbench.deploy.manifest import read_manifest, sha256_file
from quantbench.deploy.parity import run_parity
from quantbench.models import resolve
from quantbench.quant.loader import load_model
from quantbench.training.checkpoint import save_checkpoint
from tests.deploy_helpers import flows

FILES = ("model.onnx", "manifest.json")
SPECS = {
    "mlp": {"arch": "mlp", "hidden": [32, 32], "dropout": 0.0},
    "cnn1d": {"arch": "cnn1d", "channels": [4, 8], "kernel_size": 3, "pool": 2, "hidden": 16},
}


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    flows(800).to_csv(root / "raw.csv", index=False)
    cfg = DataConfig(categorical_columns=("proto", "state"))
    outs = [root / n for n in ("dataset.npz", "preprocessor.joblib", "data_card.json")]
    run_preprocess(str(root / "raw.csv"), cfg, 3, *outs, root / "test_raw.npz")
    return root


def read_checkpoint_meta(path: Path) -> dict:
    return {k: v for k, v in load_model(path).meta.items() if k not in ("format", "format_version")}


def fp32_checkpoint(data: Path, arch: str, out: Path) -> Path:
    ds = load_dataset(data / "dataset.npz")
    spec = resolve(SPECS[arch], ds.n_features, ds.n_classes)
    torch.manual_seed(0)
    model = spec.build().eval()
    meta = {
        "method": "fp32", "kind": "fp32", "params": {}, "model": spec.to_dict(),
        "feature_names": list(ds.feature_names), "class_names": list(ds.class_names), "seed": 3,
    }  # fmt: skip
    save_checkpoint(out, meta, model.state_dict())
    return out


@pytest.mark.parametrize("arch", list(SPECS))
def test_fp32_artifact_matches_torch_on_raw_test_rows(data: Path, tmp_path: Path, arch: str):
    ckpt = fp32_checkpoint(data, arch, tmp_path / "fp32.pt")
    folder = tmp_path / "deploy" / arch / "seed3" / "fp32"
    pre, card = str(data / "preprocessor.joblib"), str(data / "data_card.json")
    run_export(str(ckpt), pre, card, arch, "seed3", *(str(folder / n) for n in FILES))
    manifest = read_manifest(folder)
    assert manifest.raw["checkpoint_sha256"] == sha256_file(ckpt)
    assert manifest.raw["method"] == {"name": "fp32", "kind": "fp32", "params": {}}
    assert manifest.raw["layers"] and all(x["fallback"] is None for x in manifest.raw["layers"])
    out = tmp_path / "parity.json"
    run_parity(str(folder), str(ckpt), str(data / "dataset.npz"), str(data / "test_raw.npz"),
               str(out))  # fmt: skip
    record = read_json(out)
    assert record["rows"] == 120 and record["agreement"] == 1.0
    assert record["max_abs_logit_diff"] <= 1e-4
    assert record["session"]["intra_op_num_threads"] == 1
    assert record["artifact_accuracy"] == record["torch_accuracy"]


@pytest.mark.parametrize("kind", ["ptq_static"])
def test_quantized_artifact_passes_its_parity_threshold(data: Path, tmp_path: Path, kind: str):
    from quantbench.quant.base import CalibrationData
    from quantbench.quant.methods import registry as methods
    from quantbench.report.deploy import ParityConfig, problems

    ds = load_dataset(data / "dataset.npz")
    fp32 = fp32_checkpoint(data, "mlp", tmp_path / "fp32.pt")
    meta = read_checkpoint_meta(fp32)
    x, y = torch.from_numpy(ds.x_train), torch.from_numpy(ds.y_train)
    calib = CalibrationData(x_train=x, y_train=y, x_val=torch.from_numpy(ds.x_val),
                            y_val=torch.from_numpy(ds.y_val), seed=3)  # fmt: skip
    params = {"calibration_samples": 256}
    module = load_model(fp32).module
    state = methods.get_kind(kind).quantize(module, calib, methods.make_params(kind, params)).state
    ckpt = tmp_path / f"{kind}.pt"
    meta = {**meta, "method": kind, "kind": kind, "params": {"kind": kind, **params}}
    save_checkpoint(ckpt, meta, state)
    folder = tmp_path / "deploy" / kind
    pre, card = str(data / "preprocessor.joblib"), str(data / "data_card.json")
    run_export(str(ckpt), pre, card, "mlp", "seed3", *(str(folder / n) for n in FILES))
    out = tmp_path / "parity.json"
    run_parity(str(folder), str(ckpt), str(data / "dataset.npz"), str(data / "test_raw.npz"),
               str(out))  # fmt: skip
    record = read_json(out)
    assert record["kind"] == kind and problems(record, ParityConfig()) == [], record
    assert read_manifest(folder).raw["method"]["kind"] == kind
