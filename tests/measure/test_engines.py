"""The int8 engine probe: selection on a fake timing table, failures, ties, explicit engines."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from quantbench.measure import engines
from quantbench.models import build_model
from quantbench.quant.ao import backend

ALL = ["x86", "fbgemm", "onednn", "qnnpack"]
QUICK = engines.ProbeConfig(rounds=4, calls=5, warmup=2, batch_size=64)


class Tagged(nn.Module):
    """A stand-in model that knows which engine it was built for."""

    def __init__(self, engine: str, fail: bool = False, nan: bool = False):
        super().__init__()
        self.engine, self.fail, self.nan = engine, fail, nan

    def forward(self, x):
        if self.fail:
            raise RuntimeError("no kernel for this op\nsecond line")
        return torch.full((x.shape[0], 3), float("nan") if self.nan else 1.0)


class FakeTimer:
    """Seconds per call = fixed[engine] + per_row[engine] * rows; records every block."""

    def __init__(self, fixed: dict[str, float], per_row: dict[str, float] | None = None):
        self.fixed, self.per_row = fixed, per_row or {}
        self.blocks: list[tuple[str, int, int]] = []  # (engine, rows, calls)

    def __call__(self, engine, module, x, calls):
        assert module.engine == engine  # each engine times its own model
        self.blocks.append((engine, x.shape[0], calls))
        return [self.fixed[engine] + self.per_row.get(engine, 0.0) * x.shape[0]] * calls


@pytest.fixture(autouse=True)
def fake_machine(monkeypatch):
    """Every engine name is offered and settable; ``auto`` would be x86."""
    current = {"engine": "x86"}
    monkeypatch.setattr(engines, "_use", lambda e: current.__setitem__("engine", e))
    monkeypatch.setattr(engines, "_current", lambda: current["engine"])
    monkeypatch.setattr(backend, "supported_engines", lambda: list(ALL))
    monkeypatch.setattr(backend, "select_engine", lambda requested="auto": _select(requested))
    return current


def _select(requested: str) -> str:
    if requested == "auto":
        return "x86"
    if requested not in ALL:
        raise ValueError(f"quantization engine {requested!r} is not supported")
    return requested


def build_all(fail=(), nan=(), build_errors=()):
    def build(engine):
        if engine in build_errors:
            raise ValueError(f"{engine} cannot pack these weights")
        return Tagged(engine, fail=engine in fail, nan=engine in nan)

    return build


X = torch.randn(10, 4)


def test_fastest_engine_is_picked_with_its_margin():
    timer = FakeTimer({"x86": 1.0e-3, "fbgemm": 1.2e-3, "onednn": 0.7e-3, "qnnpack": 5e-3})
    rec = engines.probe_engines(build_all(), X, QUICK, timer=timer)
    assert rec["engine"] == "onednn" and rec["fastest"] == "onednn"
    assert rec["reason"] == "fastest at throughput: 1.43x faster than x86"
    entry = rec["engines"]["onednn"]
    assert entry["samples_per_s"] == pytest.approx(64 / 0.7e-3)
    assert entry["round_ms"] == pytest.approx([0.7] * QUICK.rounds)
    assert rec["engines"]["qnnpack"]["time_vs_fastest"] == pytest.approx(5 / 0.7)
    assert rec["default"] == "x86" and rec["tied"] == ["onednn"]
    json.dumps(rec)


def test_the_objective_decides():
    # onednn has the cheapest rows but the dearest call: best at batch 64, worst at batch 1
    fixed = {"x86": 10e-6, "fbgemm": 11e-6, "onednn": 40e-6, "qnnpack": 12e-6}
    per_row = {"x86": 1e-6, "fbgemm": 1e-6, "onednn": 0.4e-6, "qnnpack": 3e-6}
    big = engines.probe_engines(build_all(), X, QUICK, timer=FakeTimer(fixed, per_row))
    cfg = engines.ProbeConfig(objective="latency", rounds=4, calls=5, warmup=2)
    timer = FakeTimer(fixed, per_row)
    one = engines.probe_engines(build_all(), X, cfg, timer=timer)
    assert big["engine"] == "onednn" and one["engine"] == "x86"
    assert {rows for _, rows, _ in timer.blocks} == {1}
    assert "samples_per_s" not in one["engines"]["x86"]


def test_ties_go_to_the_default_order():
    timer = FakeTimer({"x86": 1.00e-3, "fbgemm": 0.99e-3, "onednn": 1.5e-3, "qnnpack": 5e-3})
    rec = engines.probe_engines(build_all(), X, QUICK, timer=timer)
    assert rec["fastest"] == "fbgemm" and rec["engine"] == "x86"
    assert rec["tied"] == ["x86", "fbgemm"] and "default order" in rec["reason"]
    strict = engines.ProbeConfig(rounds=4, calls=5, warmup=2, batch_size=64, tie_margin=0.0)
    assert engines.probe_engines(build_all(), X, strict, timer=timer)["engine"] == "fbgemm"


def test_failed_engines_are_recorded_and_left_out():
    timer = FakeTimer({"x86": 2e-3, "fbgemm": 2e-3, "onednn": 1e-3, "qnnpack": 3e-3})
    build = build_all(fail={"onednn"}, nan={"fbgemm"}, build_errors={"qnnpack"})
    rec = engines.probe_engines(build, X, QUICK, timer=timer)
    assert rec["engine"] == "x86"
    assert rec["reason"] == "the only engine that ran (throughput measured)"
    assert rec["engines"]["onednn"] == {
        "status": "failed",
        "stage": "run",
        "error": "RuntimeError: no kernel for this op",
    }
    assert rec["engines"]["fbgemm"]["error"] == "RuntimeError: output is not finite"
    assert rec["engines"]["qnnpack"]["stage"] == "build"
    assert {e for e, _, _ in timer.blocks} == {"x86"}


def test_no_engine_ran_is_one_line():
    with pytest.raises(RuntimeError) as exc:
        engines.probe_engines(build_all(build_errors=set(ALL)), X, QUICK, timer=FakeTimer({}))
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith("no int8 engine ran this model here: x86 (build")


def test_explicit_engine_wins_but_the_measurement_is_kept():
    timer = FakeTimer({"x86": 1e-3, "fbgemm": 1e-3, "onednn": 0.5e-3, "qnnpack": 4e-3})
    rec = engines.probe_engines(build_all(), X, QUICK, requested="qnnpack", timer=timer)
    assert rec["engine"] == "qnnpack" and rec["fastest"] == "onednn"
    assert rec["reason"] == "qnnpack set explicitly (fastest measured: onednn)"
    assert rec["engines"]["qnnpack"]["status"] == "ok"


def test_explicit_engine_that_fails_stops():
    timer = FakeTimer({"x86": 1e-3, "fbgemm": 1e-3, "onednn": 0.5e-3, "qnnpack": 4e-3})
    with pytest.raises(RuntimeError, match=r"quantization.engine onednn failed here \(run"):
        engines.probe_engines(build_all(fail={"onednn"}), X, QUICK, "onednn", timer=timer)


@pytest.mark.parametrize("requested", ["turbo", "neon"])
def test_unknown_or_unsupported_engine_stops_before_any_build(requested, monkeypatch):
    monkeypatch.setattr(backend, "supported_engines", lambda: ["x86"])

    def build(engine):
        raise AssertionError("built before the check")

    with pytest.raises(ValueError):
        engines.probe_engines(build, X, QUICK, requested=requested, timer=FakeTimer({}))


def test_rounds_interleave_with_rotating_order_and_restore_the_engine(fake_machine):
    fake_machine["engine"] = "qnnpack"
    timer = FakeTimer({"x86": 1e-3, "fbgemm": 1e-3, "onednn": 1e-3, "qnnpack": 1e-3})
    rec = engines.probe_engines(build_all(), X, QUICK, timer=timer)
    timed = [e for e, _, calls in timer.blocks[len(ALL) :]]  # after one warm-up block each
    assert len(timed) == QUICK.rounds * len(ALL)
    rounds = [timed[i : i + len(ALL)] for i in range(0, len(timed), len(ALL))]
    assert all(sorted(r) == sorted(ALL) for r in rounds)
    assert [r[0] for r in rounds] == ALL[: QUICK.rounds]
    assert rec["round_orders"] == rounds
    assert fake_machine["engine"] == "qnnpack"


def test_slow_engines_get_short_blocks():
    cfg = engines.ProbeConfig(rounds=2, calls=20, min_calls=3, block_seconds=0.01, warmup=2)
    timer = FakeTimer({"x86": 1e-4, "fbgemm": 2e-3, "onednn": 1e-1, "qnnpack": 1e-4})
    rec = engines.probe_engines(build_all(), X, cfg, timer=timer)
    calls = {e: rec["engines"][e]["calls_per_round"] for e in ALL}
    assert calls == {"x86": 20, "fbgemm": 5, "onednn": 3, "qnnpack": 20}


@pytest.mark.parametrize(
    "kw",
    [
        {"objective": "speed"},
        {"rounds": 0},
        {"calls": 1.5},
        {"warmup": -1},
        {"tie_margin": 1.0},
        {"block_seconds": 0},
    ],
)
def test_bad_settings_name_the_value(kw):
    with pytest.raises(ValueError, match=next(iter(kw))):
        engines.ProbeConfig(**kw)


# ---------------------------------------------------------------- the real engines


@pytest.mark.skipif(not backend.available(), reason="torch.ao.quantization is gone")
def test_real_engines_on_a_small_static_model(monkeypatch):
    monkeypatch.undo()  # this torch's own engines, for real
    torch.manual_seed(0)
    model = build_model({"arch": "mlp", "hidden": [16], "dropout": 0.0}, 6, 3).eval()
    rows = torch.randn(32, 6, generator=torch.Generator().manual_seed(1))
    cfg = engines.ProbeConfig(rounds=2, calls=3, warmup=1, batch_size=16)
    before = torch.backends.quantized.engine
    with backend.quiet():
        rec = engines.probe_engines(engines.static_builder(model, rows), rows, cfg)
    assert set(rec["engines"]) == set(backend.supported_engines())
    assert rec["engines"][rec["engine"]]["status"] == "ok"
    assert torch.backends.quantized.engine == before
    assert rec["cpu"]["architecture"] and rec["torch_version"] == str(torch.__version__)
