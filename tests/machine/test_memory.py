"""Resident weight bytes of FP32, int8 and int4 models, counted from shapes; RSS helpers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

from quantbench.machine import memory
from quantbench.models import build_model
from quantbench.quant.ao import backend, dynamic, fx, qconfigs
from quantbench.quant.weightonly import int4
from quantbench.quant.weightonly.grid import Grid, quantize_weight


def mlp() -> nn.Module:
    return build_model({"arch": "mlp", "hidden": [32, 16], "dropout": 0.0}, 12, 3)


SHAPES = [(32, 12), (16, 32), (3, 16)]  # (out, in) of the Linear layers
needs_ao = pytest.mark.skipif(not backend.available(), reason="torch.ao.quantization is gone")


def test_fp32_model_is_its_parameters():
    model = mlp()
    want = sum(4 * (o * i + o) for o, i in SHAPES)
    assert memory.resident_weight_bytes(model) == want


def test_tied_and_non_persistent_tensors():
    class Tied(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.Linear(8, 8, bias=False)
            self.b = nn.Linear(8, 8, bias=False)
            self.b.weight = self.a.weight  # one storage, two names
            self.register_buffer("table", torch.zeros(10, dtype=torch.float64), persistent=False)

    assert memory.resident_weight_bytes(Tied()) == 8 * 8 * 4 + 10 * 8


@needs_ao
@pytest.mark.parametrize("per_channel", [True, False])
def test_dynamic_int8_counts_the_unpacked_weights(per_channel):
    model = dynamic.quantize_dynamic(mlp().eval(), per_channel=per_channel)
    qparams = (lambda o: 16 * o) if per_channel else (lambda o: 16)
    want = sum(o * i + qparams(o) + 4 * o for o, i in SHAPES)
    assert memory.resident_weight_bytes(model) == want


@needs_ao
def test_static_int8_adds_the_input_stub():
    engine = backend.select_engine("auto")
    prepared = fx.prepare_static(mlp().eval(), qconfigs.static_qconfig(engine, "minmax", True), 12)
    fx.observe(prepared, torch.randn(64, 12, generator=torch.Generator().manual_seed(0)))
    model = fx.convert(prepared)
    stub = 4 + 8  # the input quantizer's float32 scale and int64 zero point buffers
    want = sum(o * i + 16 * o + 4 * o for o, i in SHAPES) + stub
    assert memory.resident_weight_bytes(model) == want


def test_quantized_buffer_counts_codes_and_parameters():
    module = nn.Module()
    q = torch.quantize_per_tensor(torch.randn(100), 0.1, 3, torch.qint8)
    module.register_buffer("q", q)
    assert memory.resident_weight_bytes(module) == 100 + 16
    qc = torch.quantize_per_channel(
        torch.randn(4, 5), torch.rand(4) + 0.1, torch.zeros(4, dtype=torch.long), 0, torch.qint8
    )
    module.register_buffer("qc", qc)
    assert memory.resident_weight_bytes(module) == 100 + 16 + 20 + 4 * 16


@needs_ao
def test_packed_parameters_that_cannot_be_unpacked_stop_the_count():
    qweight = torch.quantize_per_tensor(torch.randn(4, 4), 0.1, 0, torch.qint8)
    with backend.quiet():
        packed = torch.ops.quantized.linear_prepack(qweight, None)

    class Opaque(nn.Module):
        def __init__(self):
            super().__init__()
            self._packed_params = packed

    with pytest.raises(ValueError, match="cannot count them"):
        memory.resident_weight_bytes(Opaque())


@pytest.mark.skipif(not int4._ops_present(), reason="torch has no CPU int4 kernel")
@pytest.mark.parametrize(("out", "width", "reorder"), [(3, 29, False), (64, 256, True)])
def test_int4_layer_is_its_packed_buffers(out, width, reorder):
    qw = quantize_weight(torch.randn(out, width), Grid(4), 32)
    if reorder:  # act-order: groups shuffled over the columns
        qw.g_idx = qw.g_idx[torch.randperm(width, generator=torch.Generator().manual_seed(0))]
    layer = int4.Int4Linear.from_quantized(qw, torch.zeros(out))
    Np, Kp = layer.padded_out, layer.padded_in
    want = Np * Kp // 2 + (Kp // layer.kernel_group) * Np * 2 * 2 + 4 * out
    want += 8 * Kp if reorder else 0  # the input reordering index
    assert memory.resident_weight_bytes(layer) == want
    assert want < 0.3 * 4 * (out * width + out) or width < 64


def test_peak_rss_is_at_least_the_current_rss():
    peak = memory.peak_rss_bytes()
    current = memory.current_rss_bytes()
    if peak is None:
        pytest.skip("no resource module")
    assert peak > 0
    if current is not None:
        assert peak >= current


PEAK_RSS_PROBE = """
import sys
import torch
from quantbench.machine import memory
if not memory.reset_peak_rss():
    sys.exit(3)
base = memory.current_rss_bytes()
block = torch.ones(64 * 2**20 // 4)  # 64 MiB, written so it is resident
grown = memory.peak_rss_bytes()
assert grown >= base + 60 * 2**20, (base, grown)
del block
assert memory.reset_peak_rss()
after = memory.peak_rss_bytes()
assert after < grown - 32 * 2**20, (grown, after)
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="clear_refs is Linux only")
def test_peak_rss_follows_a_touched_allocation_and_resets():
    """In a fresh process: whether freed memory goes back to the system depends on the heap's
    history, which a long test session (torch, ONNX Runtime, many models) makes unpredictable."""
    src = Path(memory.__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(src)}
    proc = subprocess.run(
        [sys.executable, "-c", PEAK_RSS_PROBE], env=env, capture_output=True, text=True
    )
    if proc.returncode == 3:
        pytest.skip("/proc/self/clear_refs is not writable here")
    assert proc.returncode == 0, proc.stderr[-2000:]
