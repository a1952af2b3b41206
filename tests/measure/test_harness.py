"""The timing harness: paired interleaved rounds, same inputs for both sides, honest figures."""

import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

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
    split_evenly,
)
from quantbench.models import build_model

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
