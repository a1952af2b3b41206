"""The timing harness: same inputs for every model, honest figures, real kernel names."""

import time

import pytest
import torch
from torch import nn

from quantbench.latency import (
    TimingConfig,
    batch_of,
    kernels_that_ran,
    measure_latency,
    measure_throughput,
)

QUICK = TimingConfig(threads=1, batch_size=32, warmup=2, latency_samples=20, throughput_repeats=3)


class CountingModule(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(4, 2)
        self.shapes = []

    def forward(self, x):
        self.shapes.append(tuple(x.shape))
        return self.lin(x)


def test_batch_of_tiles_and_truncates():
    x = torch.arange(6.0).reshape(3, 2)
    assert batch_of(x, 2).tolist() == [[0, 1], [2, 3]]
    assert batch_of(x, 5)[3:].tolist() == [[0, 1], [2, 3]]


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


def test_bad_timing_config():
    with pytest.raises(ValueError, match="latency_samples"):
        TimingConfig(latency_samples=0)
