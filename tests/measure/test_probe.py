"""The probe_engine step and the engine it hands on: the record, the checkpoint, the load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from quantbench.data.dataset import save_dataset
from quantbench.measure import engines, probe
from quantbench.models import resolve
from quantbench.quant.ao import backend
from quantbench.quant.loader import load_model
from quantbench.quant.quantize import run_quantization
from quantbench.training.checkpoint import read_checkpoint, save_checkpoint
from tests.conftest import make_toy_dataset

FEATURES = 12
QUICK = {"rounds": 3, "calls": 3, "warmup": 1}


def _fp32(tmp_path: Path) -> tuple[Path, Path]:
    """An FP32 checkpoint of a small MLP and its dataset."""
    ds = make_toy_dataset(n=300, features=FEATURES)
    save_dataset(tmp_path / "dataset.npz", ds)
    torch.manual_seed(0)
    spec = resolve({"arch": "mlp", "hidden": [32, 32], "dropout": 0.0}, FEATURES, 3)
    meta = {
        "method": "fp32", "kind": "fp32", "params": {}, "model": spec.to_dict(),
        "feature_names": list(ds.feature_names), "class_names": list(ds.class_names), "seed": 0,
    }  # fmt: skip
    save_checkpoint(tmp_path / "fp32.pt", meta, spec.build().eval().state_dict())
    return tmp_path / "fp32.pt", tmp_path / "dataset.npz"


class TableTimer:
    """Fake timing table: seconds per call of each engine, whatever it runs."""

    def __init__(self, seconds: dict[str, float]):
        self.seconds, self.calls = seconds, 0

    def __call__(self, engine, module, x, calls):
        self.calls += calls
        return [self.seconds[engine]] * calls


def _patch_timer(monkeypatch, timer: TableTimer) -> None:
    real = engines.probe_engines

    def probe_with_table(build, x, cfg, **kw):
        return real(build, x, engines.ProbeConfig(**{**vars(cfg), **QUICK}), timer=timer, **kw)

    monkeypatch.setattr(engines, "probe_engines", probe_with_table)


def _not_default() -> str:
    """An engine this torch offers that is not the one ``auto`` would take by default."""
    default = backend.select_engine("auto")
    return next((e for e in backend.supported_engines() if e != default), default)


def _probe(tmp_path: Path, requested: str) -> dict:
    fp32, data = _fp32(tmp_path)
    out = tmp_path / "engine" / "mlp.json"
    probe.run_probe(str(fp32), str(data), "mlp", requested, "throughput", 64, 1, str(out))
    return json.loads(out.read_text())


def test_auto_keeps_the_fastest_engine_of_the_table(tmp_path, monkeypatch):
    target = _not_default()
    table = {e: (1e-4 if e == target else 2e-4) for e in backend.supported_engines()}
    timer = TableTimer(table)
    _patch_timer(monkeypatch, timer)
    record = _probe(tmp_path, "auto")
    assert record["probed"] is True and timer.calls > 0
    assert (record["model"], record["engine"], record["fastest"]) == ("mlp", target, target)
    assert record["settings"]["objective"] == "throughput"
    assert record["settings"]["batch_size"] == 64
    assert set(record["engines"]) == set(backend.supported_engines())
    assert record["engines"][target]["time_vs_fastest"] == 1.0


def test_an_explicit_engine_wins_without_a_probe(tmp_path, monkeypatch):
    timer = TableTimer({})
    _patch_timer(monkeypatch, timer)
    engine = _not_default()
    record = _probe(tmp_path, engine)
    assert (record["engine"], record["requested"], record["probed"]) == (engine, engine, False)
    assert record["engines"] == {} and timer.calls == 0
    assert "no probe ran" in record["reason"]


def test_an_engine_this_torch_lacks_stops_with_one_line(tmp_path, monkeypatch):
    monkeypatch.setattr(backend, "supported_engines", lambda: ["x86"])
    with pytest.raises(
        ValueError, match="not supported by this torch build; choose auto or one of x86"
    ):
        _probe(tmp_path, "qnnpack")


@pytest.mark.parametrize("kind", ["ptq_dynamic", "ptq_static"])
def test_the_checkpoint_records_the_probed_engine_and_loads_with_it(tmp_path, monkeypatch, kind):
    engine = _not_default()
    table = {e: (1e-4 if e == engine else 3e-4) for e in backend.supported_engines()}
    _patch_timer(monkeypatch, TableTimer(table))
    record = _probe(tmp_path, "auto")
    assert record["engine"] == engine
    variant = {"kind": kind, "engine": "auto"}
    if kind == "ptq_static":
        variant["calibration_samples"] = 64
    ckpt, info = tmp_path / f"{kind}.pt", tmp_path / f"{kind}.info.json"
    run_quantization(
        kind, variant, str(tmp_path / "fp32.pt"), str(tmp_path / "dataset.npz"), seed=0,
        device="cpu", threads=1, checkpoint_out=str(ckpt), info_out=str(info),
        engine_path=str(tmp_path / "engine" / "mlp.json"),
    )  # fmt: skip
    with backend.quiet():
        stored = read_checkpoint(ckpt)
    assert stored["engine"] == engine and stored["params"]["engine"] == engine
    assert json.loads(info.read_text())["engine"] == engine
    torch.backends.quantized.engine = backend.select_engine("auto")  # another engine is current
    previous = str(torch.backends.quantized.engine)
    try:
        loaded = load_model(ckpt)
        assert torch.backends.quantized.engine == engine
        with torch.inference_mode():
            assert loaded.module(torch.randn(4, FEATURES)).shape == (4, 3)
    finally:
        torch.backends.quantized.engine = previous


def test_a_record_made_for_another_request_is_refused(tmp_path, monkeypatch):
    _patch_timer(monkeypatch, TableTimer(dict.fromkeys(backend.supported_engines(), 1e-4)))
    _probe(tmp_path, "auto")
    with pytest.raises(ValueError, match=r"engine record for quantization\.engine 'auto'"):
        run_quantization(
            "ptq_dynamic", {"kind": "ptq_dynamic", "engine": "x86"}, str(tmp_path / "fp32.pt"),
            str(tmp_path / "dataset.npz"), seed=0, device="cpu", threads=1,
            checkpoint_out=str(tmp_path / "q.pt"), info_out=str(tmp_path / "q.json"),
            engine_path=str(tmp_path / "engine" / "mlp.json"),
        )  # fmt: skip
    assert not (tmp_path / "q.pt").exists()
