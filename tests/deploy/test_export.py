"""Export and parity check on a real checkpoint: raw rows through the artifact match torch; the
score step with deploy.export does both in one process, as the separate steps do, and a failure
leaves none of its four files."""

from __future__ import annotations

import logging
import re
from dataclasses import replace
from pathlib import Path

import onnx
import pytest
import torch

from quantbench.core.files import read_json
from quantbench.data.dataset import load_dataset
from quantbench.data.preprocess import run_preprocess
from quantbench.data.rawrows import load_raw_rows, save_raw_rows
from quantbench.data.settings import DataConfig
from quantbench.deploy.artifact import run_export
from quantbench.deploy.manifest import read_manifest, sha256_file
from quantbench.deploy.parity import run_parity
from quantbench.deploy.score_export import DeployPaths, run_score_export
from quantbench.measure.score import run_scoring
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
    run_preprocess(str(root / "raw.csv"), cfg, 3, *outs, root / "test_raw.npz",
                   root / "encoding.json")  # fmt: skip
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
    pre, card = str(data / "encoding.json"), str(data / "data_card.json")
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
    pre, card = str(data / "encoding.json"), str(data / "data_card.json")
    run_export(str(ckpt), pre, card, "mlp", "seed3", *(str(folder / n) for n in FILES))
    out = tmp_path / "parity.json"
    run_parity(str(folder), str(ckpt), str(data / "dataset.npz"), str(data / "test_raw.npz"),
               str(out))  # fmt: skip
    record = read_json(out)
    assert record["kind"] == kind and problems(record, ParityConfig()) == [], record
    assert read_manifest(folder).raw["method"]["kind"] == kind


# ---------------------------------------------------------------- the score step exporting


def paths(data: Path, out: Path, raw_test: Path | None = None) -> DeployPaths:
    folder = out / "deploy" / "mlp" / "seed3" / "fp32"
    return DeployPaths(
        encoding=str(data / "encoding.json"),
        card=str(data / "data_card.json"),
        raw_test=str(raw_test or data / "test_raw.npz"),
        onnx_out=str(folder / "model.onnx"),
        manifest_out=str(folder / "manifest.json"),
        parity_out=str(out / "parity.json"),
    )


def score_export(data: Path, ckpt: Path, out: Path, deploy: DeployPaths) -> None:
    run_score_export(
        str(ckpt), str(data / "dataset.npz"), None, "mlp", "seed3", str(out / "quality.json"),
        deploy,
    )  # fmt: skip


def test_one_process_writes_what_the_separate_steps_write(data: Path, tmp_path: Path, caplog):
    ckpt = fp32_checkpoint(data, "mlp", tmp_path / "fp32.pt")
    together, apart = tmp_path / "together", tmp_path / "apart"
    deploy = paths(data, together)
    with caplog.at_level(logging.INFO):
        score_export(data, ckpt, together, deploy)
    run_scoring(str(ckpt), str(data / "dataset.npz"), None, "mlp", "seed3",
                str(apart / "quality.json"))  # fmt: skip
    folder = apart / "deploy"
    pre, card = str(data / "encoding.json"), str(data / "data_card.json")
    run_export(str(ckpt), pre, card, "mlp", "seed3", *(str(folder / n) for n in FILES))
    run_parity(str(folder), str(ckpt), str(data / "dataset.npz"), str(data / "test_raw.npz"),
               str(apart / "parity.json"))  # fmt: skip

    assert read_json(together / "quality.json") == read_json(apart / "quality.json")
    manifest = read_manifest(Path(deploy.onnx_out).parent)  # checks the ONNX file's SHA-256
    assert manifest.raw["checkpoint_sha256"] == sha256_file(ckpt)
    expected = {k: v for k, v in read_manifest(folder).raw.items() if k != "onnx_sha256"}
    assert {k: v for k, v in manifest.raw.items() if k != "onnx_sha256"} == expected
    parity, separate = read_json(deploy.parity_out), read_json(apart / "parity.json")
    assert parity["artifact"] == str(Path(deploy.onnx_out).parent)
    assert parity["onnx_sha256"] == manifest.onnx_sha256
    assert parity["rows"] == 120 and parity["agreement"] == 1.0
    same = ("rows", "agreeing_rows", "torch_accuracy", "artifact_accuracy", "raw_rows_sha256")
    assert {k: parity[k] for k in same} == {k: separate[k] for k in same}
    assert parity["max_abs_logit_diff"] == pytest.approx(separate["max_abs_logit_diff"], abs=1e-6)
    line = re.search(r"part seconds: score=\S+ export=\S+ parity=\S+$", caplog.text, re.MULTILINE)
    assert line, caplog.text
    assert not list(tmp_path.rglob("*.tmp"))


def test_the_accuracy_level_reaches_the_matmulnbits_kernels_and_the_manifest(data, tmp_path):
    from quantbench.quant.base import CalibrationData
    from quantbench.quant.methods import registry as methods

    ds = load_dataset(data / "dataset.npz")
    fp32 = fp32_checkpoint(data, "mlp", tmp_path / "fp32.pt")
    t = {k: torch.from_numpy(getattr(ds, k)) for k in ("x_train", "y_train", "x_val", "y_val")}
    calib = CalibrationData(**t, seed=3)
    params = {"bits": 4, "group_size": 32, "execution": "int4"}  # the path MatMulNBits runs
    rtn = methods.get_kind("rtn")
    state = rtn.quantize(load_model(fp32).module, calib, methods.make_params("rtn", params)).state
    ckpt = tmp_path / "rtn.pt"
    meta = {**read_checkpoint_meta(fp32), "method": "rtn", "kind": "rtn",
            "params": {"kind": "rtn", **params}}  # fmt: skip
    save_checkpoint(ckpt, meta, state)
    levels = {}
    for level in (0, 4):
        out = tmp_path / f"level{level}"
        deploy = replace(paths(data, out), accuracy_level=level)
        score_export(data, ckpt, out, deploy)
        graph = onnx.load(deploy.onnx_out).graph
        levels[level] = {
            onnx.helper.get_attribute_value(a)
            for n in graph.node if n.op_type == "MatMulNBits"
            for a in n.attribute if a.name == "accuracy_level"
        }  # fmt: skip
        assert any(
            f"accuracy_level {level}" in note for note in read_json(deploy.manifest_out)["notes"]
        )
    assert levels == {0: {0}, 4: {4}}


def test_a_failed_parity_check_leaves_none_of_the_four_files(data: Path, tmp_path: Path):
    ckpt = fp32_checkpoint(data, "mlp", tmp_path / "fp32.pt")
    rows = load_raw_rows(data / "test_raw.npz")
    short = tmp_path / "short_raw.npz"  # one row fewer than the test split: parity refuses it
    save_raw_rows(short, replace(rows, numeric=rows.numeric[1:], categorical=rows.categorical[1:]))
    deploy = paths(data, tmp_path, raw_test=short)
    outs = [tmp_path / "quality.json", Path(deploy.parity_out), Path(deploy.onnx_out),
            Path(deploy.manifest_out)]  # fmt: skip
    for path in outs:  # an earlier run's files must not survive beside a failure
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("old")
    with pytest.raises(ValueError, match="rows, the dataset's test split has 120"):
        score_export(data, ckpt, tmp_path, deploy)
    assert [p for p in outs if p.exists()] == []
    assert not list(tmp_path.rglob("*.tmp"))
