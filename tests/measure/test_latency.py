"""The timing harness: paired interleaved rounds, same inputs for both sides, honest figures."""

import json
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from quantbench.data.dataset import save_dataset
from quantbench.machine.kernels import kernels_that_ran
from quantbench.measure import harness as latency
from quantbench.measure.harness import (
    RotatingCopies,
    TimingConfig,
    batch_of,
    measure_latency,
    measure_throughput,
    paired_rounds,
    round_order,
    run_timing,
    split_evenly,
)
from quantbench.models import build_model, resolve
from quantbench.quant.base import CalibrationData
from quantbench.quant.methods import registry as methods
from quantbench.training.checkpoint import CheckpointError, save_checkpoint
from tests.conftest import make_toy_dataset

QUICK = TimingConfig(
    threads=1, batch_size=32, warmup=2, rounds=2, latency_samples=20, throughput_repeats=3
)
PAIRED = TimingConfig(
    threads=1, batch_size=8, warmup=3, rounds=5, latency_samples=23, throughput_repeats=7
)


class Recorder(nn.Module):
    """Logs (side, input) of every call into a log shared by both sides."""

    def __init__(self, side, log, on_call=None):
        super().__init__()
        self.side, self.log, self.on_call = side, log, on_call
        self.lin = nn.Linear(4, 2)

    def forward(self, x):
        self.log.append((self.side, x.clone()))
        if self.on_call is not None:
            self.on_call(self)
        return self.lin(x)


def recorders(log, on_call=None):
    mods = {side: Recorder(side, log, on_call) for side in latency.SIDES}
    return mods, {side: (lambda block, m=m: m) for side, m in mods.items()}


def x_rows(n=9):
    return torch.arange(n * 4, dtype=torch.float32).reshape(n, 4)


def test_batch_of_tiles_and_truncates():
    x = torch.arange(6.0).reshape(3, 2)
    assert batch_of(x, 2).tolist() == [[0, 1], [2, 3]]
    assert batch_of(x, 5)[3:].tolist() == [[0, 1], [2, 3]]


def test_blocks_split_the_totals_evenly():
    for total, parts in ((2000, 20), (23, 5), (7, 7), (200, 30)):
        blocks = split_evenly(total, parts)
        assert len(blocks) == parts and sum(blocks) == total
        assert min(blocks) >= 1 and max(blocks) - min(blocks) <= 1


def test_rounds_alternate_and_run_in_the_order_they_say():
    log = []
    _, make = recorders(log)
    cfg = TimingConfig(**{**PAIRED.settings(), "warmup": 0})
    rounds = paired_rounds(make, x_rows(), cfg, round_warmup=0)
    assert len(rounds) == cfg.rounds
    assert [r["order"] for r in rounds] == [list(round_order(i)) for i in range(cfg.rounds)]
    assert rounds[0]["order"] == ["reference", "candidate"]
    assert rounds[1]["order"] == ["candidate", "reference"]
    # The calls really ran in that order: per round, both batch-1 blocks, then both blocks of
    # passes, each pair in the round's order.
    calls = split_evenly(cfg.latency_samples, cfg.rounds)
    passes = split_evenly(cfg.throughput_repeats, cfg.rounds)
    expected = [
        (side, rows)
        for r, rnd in enumerate(rounds)
        for n, rows in ((calls[r], 1), (passes[r], cfg.batch_size))
        for side in rnd["order"]
        for _ in range(n)
    ]
    assert [(side, x.shape[0]) for side, x in log] == expected


def test_both_sides_see_the_same_rows_and_batch():
    log = []
    _, make = recorders(log)
    x = x_rows()
    cfg = TimingConfig(**{**PAIRED.settings(), "warmup": 0})
    paired_rounds(make, x, cfg, round_warmup=0)
    for side in latency.SIDES:
        ones = [t for s, t in log if s == side and t.shape[0] == 1]
        fulls = [t for s, t in log if s == side and t.shape[0] > 1]
        # Batch-1 calls walk once through batch_of(x, latency_samples), in order.
        assert torch.equal(torch.cat(ones), batch_of(x, cfg.latency_samples))
        assert len(fulls) == cfg.throughput_repeats
        assert all(torch.equal(t, batch_of(x, cfg.batch_size)) for t in fulls)


class FakeClock:
    """A clock that only moves inside a model call: the first ``slow`` calls of each side take
    a second each, every later call one microsecond."""

    def __init__(self, slow):
        self.now, self.slow, self.seen = 0, slow, {}

    def perf_counter_ns(self):
        return self.now

    def on_call(self, module):
        n = self.seen[module.side] = self.seen.get(module.side, 0) + 1
        self.now += 10**9 if n <= self.slow else 1000


def test_warm_up_calls_are_not_timed_and_blocks_sum_to_the_totals(monkeypatch):
    cfg = PAIRED
    clock = FakeClock(slow=2 * cfg.warmup)  # exactly the initial warm-up is slow
    monkeypatch.setattr(latency, "time", SimpleNamespace(perf_counter_ns=clock.perf_counter_ns))
    log = []
    _, make = recorders(log, clock.on_call)
    rounds = paired_rounds(make, x_rows(), cfg, round_warmup=2)
    for side in latency.SIDES:
        lat = [t for r in rounds for t in r[side]["latency_ms"]]
        passes = [t for r in rounds for t in r[side]["pass_ms"]]
        assert len(lat) == cfg.latency_samples and len(passes) == cfg.throughput_repeats
        assert [len(r[side]["latency_ms"]) for r in rounds] == split_evenly(23, 5)
        # Each timed entry spans exactly one call (1 µs): no warm-up call was ever timed.
        assert set(lat) == set(passes) == {0.001}
        warmups = 2 * cfg.warmup + cfg.rounds * 2 * 2
        assert sum(s == side for s, _ in log) == warmups + len(lat) + len(passes)


class Repeated(nn.Module):
    """The same layers run ``times`` times: truly ``times`` times the work per call."""

    def __init__(self, module, times):
        super().__init__()
        self.module, self.times = module, times

    def forward(self, x):
        for _ in range(self.times):
            out = self.module(x)
        return out


def _ratios(rounds, key):
    return np.array(
        [np.median(r["reference"][key]) / np.median(r["candidate"][key]) for r in rounds]
    )


def test_a_truly_slower_candidate_loses_the_rounds():
    # Short calls (well under a scheduler time slice), so a busy machine rarely interrupts
    # enough of a block to move its median.
    torch.manual_seed(0)
    ref = build_model({"arch": "mlp", "hidden": [128, 128], "dropout": 0.0}, 64, 3).eval()
    make = {"reference": RotatingCopies(ref), "candidate": RotatingCopies(Repeated(ref, 3))}
    cfg = TimingConfig(
        threads=1, batch_size=32, warmup=5, rounds=8, latency_samples=240, throughput_repeats=72
    )
    rounds = paired_rounds(make, torch.randn(300, 64), cfg)
    for key in ("latency_ms", "pass_ms"):
        ratios = _ratios(rounds, key)  # about 1/3: the candidate does three times the work
        assert (ratios < 1).sum() >= cfg.rounds - 1, (key, ratios)
        assert np.exp(np.log(ratios).mean()) < 0.7, (key, ratios)


def test_rotating_copies_are_distinct_tensors_that_compute_the_same():
    ref = build_model({"arch": "mlp", "hidden": [8], "dropout": 0.0}, 4, 3).eval()
    make = RotatingCopies(ref, copies=3)
    handed = {block: [make(block) for _ in range(7)] for block in latency.BLOCKS}
    for mods in handed.values():
        assert [id(m) for m in mods[3:6]] == [id(m) for m in mods[:3]]  # in turn
    assert make.count == 6
    every = [m for mods in handed.values() for m in mods]
    ptrs = {m.layers.fc0.weight.data_ptr() for m in every} | {ref.layers.fc0.weight.data_ptr()}
    assert len(ptrs) == 7  # three copies per block kind, none shared, none the original
    x = torch.randn(5, 4)
    with torch.inference_mode():
        assert all(torch.equal(m(x), ref(x)) for m in every)
    with pytest.raises(KeyError, match="no copies for block kind 'other'"):
        make("other")


def test_each_copy_runs_one_batch_size_only():
    # A kernel that sets itself up for the first shape it sees (onednn's quantized Linear) must
    # never be timed on a shape it was not set up for: batch-1 copies see only single rows,
    # full-batch copies only full batches, from the warm-up on.
    cfg = PAIRED
    make = {side: RotatingCopies(CountingModule(), copies=3, seed=i)
            for i, side in enumerate(latency.SIDES)}  # fmt: skip
    paired_rounds(make, x_rows(), cfg, round_warmup=1)
    for side in latency.SIDES:
        pools = make[side].pools
        assert all(m.shapes and set(m.shapes) == {(1, 4)} for m in pools["calls"])
        assert all(m.shapes and set(m.shapes) == {(cfg.batch_size, 4)} for m in pools["passes"])


# ---------------------------------------------------------------- the time step

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


def test_bad_timing_config():
    with pytest.raises(ValueError, match="latency_samples"):
        TimingConfig(latency_samples=0)
    with pytest.raises(ValueError, match="rounds must be >= 2"):
        TimingConfig(rounds=1)
    with pytest.raises(ValueError, match=r"throughput_repeats \(10\) is below evaluate.rounds"):
        TimingConfig(rounds=20, throughput_repeats=10)


# ---------------------------------------------------------------- single-model figures


class CountingModule(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 2)
        self.shapes = []

    def forward(self, x):
        self.shapes.append(tuple(x.shape))
        return self.lin(x)


def test_latency_is_timed_one_row_at_a_time_after_warmup():
    m = CountingModule()
    out = measure_latency(m, torch.randn(10, 4), QUICK)
    assert m.shapes == [(1, 4)] * (QUICK.warmup + QUICK.latency_samples)
    assert out["samples"] == 20 and out["batch"] == 1
    assert 0 < out["p50"] <= out["p95"]


def test_throughput_runs_full_batches():
    m = CountingModule()
    out = measure_throughput(m, torch.randn(10, 4), QUICK)
    assert set(m.shapes) == {(32, 4)}
    assert out["samples_per_s"] > 0 and out["batch"] == 32


class SleepingModule(nn.Module):
    """Takes at least ``seconds`` per call, so the figures have a known floor."""

    def __init__(self, seconds):
        super().__init__()
        self.seconds = seconds

    def forward(self, x):
        time.sleep(self.seconds)
        return x


def test_figures_reflect_the_time_a_call_takes():
    m = SleepingModule(0.004)
    lat = measure_latency(m, torch.randn(10, 4), QUICK)
    thr = measure_throughput(m, torch.randn(10, 4), QUICK)
    assert 4.0 <= lat["p50"] < 400
    assert 32 / 0.4 < thr["samples_per_s"] <= 32 / 0.004


def test_kernels_name_the_operator_that_ran():
    assert "aten::addmm" in kernels_that_ran(nn.Linear(4, 2), torch.randn(3, 4))
