"""The default dataset: synthetic per-flow traffic features for three classes.

Every flow is drawn from a packet-level story for its class, then summarised the way a flow
meter (CICFlowMeter) does: packet counts and byte totals per direction, packet-length
statistics, inter-arrival-time (IAT) statistics, rates, and active/idle periods.

The common story: a flow is ``n_bursts`` ON periods separated by idle gaps. Packets in a
direction are either "bulk" (data) or "control" (ACKs, handshakes, RTCP), each with its own
size distribution. Gaps between consecutive packets inside a burst are either random
(lognormal around a mean) or periodic (two interleaved constant-rate streams with jitter).

- ``web``: short HTTPS connections; a few request/response exchanges with think times between
  them; heavy-tailed (lognormal) response sizes sent as MTU-sized segments, small requests and
  ACKs upstream.
- ``video``: long adaptive-streaming sessions; one segment download (ON) every few seconds
  followed by an OFF gap; MTU-sized packets down, delayed ACKs (one per two segments) up.
- ``voip``: RTP calls; one small voice frame (60-200 B, fixed by the codec) every 20 ms in
  each direction, low jitter, optional silence suppression that splits the call into spurts.

``difficulty`` in [0, 1] replaces a share of flows by short encrypted flows drawn from one
story for every class, adds timestamp and packet-size measurement noise, and flips a few
labels. Units: durations and IATs in microseconds, sizes in bytes (IP packet length), rates
per second.

For speed, per-packet statistics come from at most ``_CAP`` sampled packets (and gaps) per
flow and direction; counts and totals use the full flow.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from quantbench.core.files import atomic_path

CLASSES = ("web", "video", "voip")
CLASS_SHARES = (0.4, 0.3, 0.3)
FEATURES = (
    "Flow Duration",
    "Total Fwd Packets",
    "Total Backward Packets",
    "Total Length of Fwd Packets",
    "Total Length of Bwd Packets",
    "Fwd Packet Length Max",
    "Fwd Packet Length Min",
    "Fwd Packet Length Mean",
    "Fwd Packet Length Std",
    "Bwd Packet Length Max",
    "Bwd Packet Length Min",
    "Bwd Packet Length Mean",
    "Bwd Packet Length Std",
    "Flow Bytes/s",
    "Flow Packets/s",
    "Flow IAT Mean",
    "Flow IAT Std",
    "Flow IAT Max",
    "Flow IAT Min",
    "Fwd IAT Mean",
    "Bwd IAT Mean",
    "Fwd Packets/s",
    "Bwd Packets/s",
    "Down/Up Ratio",
    "Average Packet Size",
    "Active Mean",
    "Idle Mean",
    "Idle Std",
    "Idle Max",
)
INT_FEATURES = FEATURES[:5]  # duration (µs), packet counts and byte totals
LABEL = "label"

_CAP = 64  # packets (and gaps) sampled per flow and direction for per-packet statistics
_MIN_SIZE, _MAX_SIZE = 40, 1500  # IP packet length bounds (bytes)
_US = 1e6  # microseconds per second
_SIZE_KEYS = ("p_bulk", "bulk_mu", "bulk_sd", "ctrl_mu", "ctrl_sd")  # per direction
_GAP_KEYS = ("gap_mean", "gap_sigma", "period", "phase", "jitter", "idle_median", "idle_sigma")
_PARAMS = (
    "n_fwd",
    "n_bwd",
    "n_bursts",
    *(f"{d}_{k}" for d in ("fwd", "bwd") for k in _SIZE_KEYS),
    *_GAP_KEYS,
)  # every generative parameter a flow story sets (sizes in bytes, times in seconds)
Params = dict[str, np.ndarray]


@dataclass(frozen=True)
class SyntheticConfig:
    """How many flows, how hard the task is (0 = easy, 1 = hardest), and the random seed."""

    n_flows: int = 24000
    difficulty: float = 0.35
    seed: int = 42

    def __post_init__(self) -> None:
        if int(self.n_flows) != self.n_flows or self.n_flows < 300:
            raise ValueError(f"n_flows must be an integer >= 300, got {self.n_flows}")
        if not 0.0 <= self.difficulty <= 1.0:
            raise ValueError(f"difficulty must be in [0, 1], got {self.difficulty}")


def _sizes(
    direction: str,
    p_bulk: ArrayLike,
    bulk_mu: ArrayLike,
    bulk_sd: ArrayLike,
    ctrl_mu: ArrayLike,
    ctrl_sd: ArrayLike,
) -> Params:
    """Size model of one direction: bulk packets with probability ``p_bulk``, else control."""
    values = (p_bulk, bulk_mu, bulk_sd, ctrl_mu, ctrl_sd)
    return {
        f"{direction}_{k}": np.asarray(v, float) for k, v in zip(_SIZE_KEYS, values, strict=True)
    }


def _random_gaps(m: int, gap_mean: np.ndarray, gap_sigma: float) -> Params:
    """Non-periodic in-burst gaps: lognormal around ``gap_mean`` seconds."""
    zeros = np.zeros(m)
    return {
        "gap_mean": gap_mean,
        "gap_sigma": np.full(m, gap_sigma),
        "period": zeros,
        "phase": zeros,
        "jitter": zeros,
    }


def _web(rng: np.random.Generator, m: int) -> Params:
    """HTTPS page loads: request/response exchanges, heavy-tailed responses, think times."""
    exchanges = np.minimum(1 + rng.geometric(0.4, m), 20)
    response = np.clip(rng.lognormal(np.log(15e3), 1.5, m), 400, 3e7)
    n_bwd = 2 + exchanges + np.ceil(response / 1448).astype(np.int64)
    n_fwd = 3 + exchanges + (n_bwd + 1) // 2
    ack = rng.choice([52.0, 64.0], m)
    full = np.clip(1 - (exchanges + 2) / n_bwd, 0.0, 1.0)
    return {
        "n_fwd": n_fwd,
        "n_bwd": n_bwd,
        "n_bursts": exchanges,
        **_sizes("fwd", exchanges / n_fwd, rng.lognormal(np.log(520), 0.35, m), 120, ack, 0),
        **_sizes("bwd", full, 1500, 0, rng.uniform(300, 1000, m), 350),
        **_random_gaps(m, rng.lognormal(np.log(2e-3), 0.7, m), 1.3),
        "idle_median": rng.lognormal(np.log(0.4), 0.8, m),
        "idle_sigma": np.full(m, 1.2),
    }


def _video(rng: np.random.Generator, m: int) -> Params:
    """Adaptive streaming: one segment per ``seg`` seconds, downloaded in an ON burst."""
    duration = np.clip(rng.lognormal(np.log(150), 0.8, m), 20, 3600)
    seg = rng.uniform(2, 8, m)
    segments = np.maximum(2, np.round(duration / seg)).astype(np.int64)
    bitrate = np.clip(rng.lognormal(np.log(2.5e6), 0.7, m), 2e5, 2.5e7)  # bit/s
    link = np.clip(rng.lognormal(np.log(4e7), 0.6, m), 3 * bitrate, None)  # bit/s while ON
    mtu = rng.choice([1500.0, 1452.0, 1392.0], m, p=[0.6, 0.2, 0.2])
    seg_bytes = bitrate * seg / 8
    n_bwd = segments * np.ceil(seg_bytes / (mtu - 60)).astype(np.int64)
    n_fwd = segments + (n_bwd + 1) // 2
    on = seg_bytes * 8 / link
    ack = rng.choice([52.0, 66.0], m)
    return {
        "n_fwd": n_fwd,
        "n_bwd": n_bwd,
        "n_bursts": segments,
        **_sizes("fwd", segments / n_fwd, rng.uniform(350, 700, m), 80, ack, 0),
        **_sizes("bwd", 0.93, mtu, 4, rng.uniform(400, 1000, m), 300),
        **_random_gaps(m, on * segments / (n_fwd + n_bwd - segments), 1.0),
        "idle_median": np.maximum(seg - on, 0.05),
        "idle_sigma": np.full(m, 0.35),
    }


def _voip(rng: np.random.Generator, m: int) -> Params:
    """RTP calls: a voice frame every 20 ms each way; some calls suppress silence."""
    duration = np.clip(rng.lognormal(np.log(120), 0.9, m), 5, 3600)
    ptime = 0.02
    codec = rng.choice(3, m, p=[0.35, 0.25, 0.4])  # G.711, G.729, Opus (variable rate)
    frame = np.select([codec == 0, codec == 1], [200.0, 60.0], rng.uniform(90, 160, m))
    frame_sd = np.where(codec == 2, 12.0, 0.0)
    vad = rng.random(m) < 0.3
    spurts = np.where(vad, np.maximum(1, np.round(duration / 2.5)), 1).astype(np.int64)
    talk = np.where(vad, 0.7, 1.0) * duration
    per_dir = np.maximum(2 * spurts, np.round(talk / ptime)).astype(np.int64)
    sizes = {d: _sizes(d, 0.995, frame, frame_sd, 100, 15) for d in ("fwd", "bwd")}
    return {
        "n_fwd": per_dir,
        "n_bwd": per_dir,
        "n_bursts": spurts,
        **sizes["fwd"],
        **sizes["bwd"],
        "gap_mean": np.full(m, ptime / 2),
        "gap_sigma": np.zeros(m),
        "period": np.full(m, ptime),
        "phase": rng.uniform(0.1, 0.9, m),
        "jitter": rng.lognormal(np.log(8e-4), 0.5, m),
        "idle_median": np.full(m, 0.6),
        "idle_sigma": np.full(m, 0.5),
    }


def _ambiguous(rng: np.random.Generator, m: int) -> Params:
    """Short encrypted flows (a TLS/QUIC handshake and a small exchange), alike in every class."""
    n_fwd = 2 + rng.poisson(4, m)
    n_bwd = 1 + rng.poisson(4, m)
    bursts = np.minimum(1 + rng.binomial(1, 0.3, m), (n_fwd + n_bwd) // 2)
    return {
        "n_fwd": n_fwd,
        "n_bwd": n_bwd,
        "n_bursts": bursts,
        **_sizes("fwd", 0.5, rng.lognormal(np.log(250), 0.5, m), 100, 60, 10),
        **_sizes("bwd", 0.6, rng.lognormal(np.log(700), 0.5, m), 300, 80, 20),
        **_random_gaps(m, rng.lognormal(np.log(0.015), 1.0, m), 1.0),
        "idle_median": rng.lognormal(np.log(0.8), 0.8, m),
        "idle_sigma": np.full(m, 1.0),
    }


def _flow_params(cfg: SyntheticConfig, rng: np.random.Generator) -> tuple[np.ndarray, Params]:
    """Class index per flow and the generative parameters of every flow."""
    n = cfg.n_flows
    y = rng.choice(len(CLASSES), n, p=CLASS_SHARES)
    params: Params = {k: np.zeros(n) for k in _PARAMS}
    ambiguous = rng.random(n) < 0.3 * cfg.difficulty
    stories = (_web, _video, _voip)
    groups = [(stories[c], (y == c) & ~ambiguous) for c in range(len(CLASSES))]
    for story, mask in [*groups, (_ambiguous, ambiguous)]:
        for key, value in story(rng, int(mask.sum())).items():
            params[key][mask] = value
    for key in ("n_fwd", "n_bwd", "n_bursts"):
        params[key] = params[key].astype(np.int64)
    return y, params


def _segments(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat layout of variable-length per-flow samples: owner flow and position in the flow."""
    owner = np.repeat(np.arange(counts.size), counts)
    starts = np.cumsum(counts) - counts
    return owner, np.arange(owner.size) - starts[owner]


def _stats(values: np.ndarray, counts: np.ndarray) -> Params:
    """Per-flow mean, std, min, max (and sum, sum of squares) of flat samples; 0 where empty."""
    n = counts.size
    owner = np.repeat(np.arange(n), counts)
    total = np.bincount(owner, weights=values, minlength=n)
    squares = np.bincount(owner, weights=values**2, minlength=n)
    safe = np.maximum(counts, 1)
    mean = total / safe
    std = np.sqrt(np.maximum(squares / safe - mean**2, 0.0))
    lo, hi = np.zeros(n), np.zeros(n)
    has = counts > 0
    if has.any():
        starts = (np.cumsum(counts) - counts)[has]
        lo[has] = np.minimum.reduceat(values, starts)
        hi[has] = np.maximum.reduceat(values, starts)
    return {"sum": total, "sq": squares, "mean": mean, "std": std, "min": lo, "max": hi}


def _packet_sizes(rng: np.random.Generator, p: Params, direction: str, noise: float) -> Params:
    """Sample up to ``_CAP`` packet sizes per flow in one direction; size statistics."""
    counts = np.minimum(p[f"n_{direction}"], _CAP)
    owner, _ = _segments(counts)
    col = {k: p[f"{direction}_{k}"][owner] for k in _SIZE_KEYS}
    bulk = rng.random(owner.size) < col["p_bulk"]
    mu = np.where(bulk, col["bulk_mu"], col["ctrl_mu"])
    sd = np.hypot(np.where(bulk, col["bulk_sd"], col["ctrl_sd"]), noise)  # noise: measurement
    size = np.clip(np.round(mu + sd * rng.standard_normal(owner.size)), _MIN_SIZE, _MAX_SIZE)
    stats = _stats(size, counts)
    n = p[f"n_{direction}"]
    stats["total"] = np.where(n <= _CAP, stats["sum"], np.round(n * stats["mean"]))
    return stats


def _burst_gaps(
    rng: np.random.Generator, p: Params, scale: np.ndarray
) -> tuple[Params, np.ndarray]:
    """Sample gaps between consecutive packets inside bursts (seconds); their statistics.

    Returns the statistics of the sample and the number of in-burst gaps of the full flow.
    """
    n_gaps = p["n_fwd"] + p["n_bwd"] - p["n_bursts"]
    counts = np.minimum(n_gaps, _CAP)
    owner, pos = _segments(counts)
    period, phase = p["period"][owner], p["phase"][owner]
    periodic = np.where(pos % 2 == 0, phase, 1 - phase) * period
    periodic = periodic + p["jitter"][owner] * rng.standard_normal(owner.size)
    sigma = p["gap_sigma"][owner]
    bursty = p["gap_mean"][owner] * rng.lognormal(-(sigma**2) / 2, sigma)
    gaps = np.maximum(np.where(period > 0, periodic, bursty), 1e-6) * scale[owner]
    return _stats(gaps, counts), n_gaps


def _idle_gaps(rng: np.random.Generator, p: Params, scale: np.ndarray) -> Params:
    """Every idle gap between bursts (seconds): lognormal around ``idle_median``."""
    counts = p["n_bursts"] - 1
    owner, _ = _segments(counts)
    gaps = p["idle_median"][owner] * rng.lognormal(0.0, p["idle_sigma"][owner])
    return _stats(gaps * scale[owner], counts)


def _timing(rng: np.random.Generator, p: Params, noise: float) -> Params:
    """Flow duration and IAT/active/idle features (µs) from in-burst and idle gaps."""
    scale = rng.lognormal(0.0, noise, p["n_fwd"].size)  # per-flow clock/queueing distortion
    busy, n_busy = _burst_gaps(rng, p, scale)
    idle = _idle_gaps(rng, p, scale)
    exact = n_busy <= _CAP
    busy_sum = np.where(exact, busy["sum"], n_busy * busy["mean"])
    busy_sq = np.where(exact, busy["sq"], n_busy * (busy["std"] ** 2 + busy["mean"] ** 2))
    duration = busy_sum + idle["sum"]
    n_iat = np.maximum(n_busy + p["n_bursts"] - 1, 1)
    mean = duration / n_iat
    std = np.sqrt(np.maximum((busy_sq + idle["sq"]) / n_iat - mean**2, 0.0))
    idle_max = idle["max"]
    idle_min = np.where(p["n_bursts"] > 1, idle["min"], np.inf)  # no idle gap in one burst
    return {
        "Flow Duration": np.round(duration * _US).astype(np.int64),
        "Flow IAT Mean": mean * _US,
        "Flow IAT Std": std * _US,
        "Flow IAT Max": np.maximum(busy["max"], idle_max) * _US,
        "Flow IAT Min": np.minimum(busy["min"], idle_min) * _US,
        "Active Mean": busy_sum / p["n_bursts"] * _US,
        "Idle Mean": idle["mean"] * _US,
        "Idle Std": idle["std"] * _US,
        "Idle Max": idle_max * _US,
    }


def _per_second(amount: np.ndarray, duration_us: np.ndarray) -> np.ndarray:
    """``amount`` per second of flow; 0 for a zero-duration flow (no rate is defined)."""
    seconds = duration_us / _US
    return np.divide(amount, seconds, out=np.zeros(amount.size), where=seconds > 0)


def _features(p: Params, fwd: Params, bwd: Params, timing: Params) -> pd.DataFrame:
    """Assemble the flow-meter columns from counts, size statistics and timing."""
    n_fwd, n_bwd = p["n_fwd"], p["n_bwd"]
    duration = timing["Flow Duration"]
    fwd_bytes, bwd_bytes = fwd["total"].astype(np.int64), bwd["total"].astype(np.int64)
    cols: dict[str, np.ndarray] = {
        "Flow Duration": duration,
        "Total Fwd Packets": n_fwd,
        "Total Backward Packets": n_bwd,
        "Total Length of Fwd Packets": fwd_bytes,
        "Total Length of Bwd Packets": bwd_bytes,
    }
    for name, s in (("Fwd", fwd), ("Bwd", bwd)):
        for stat in ("max", "min", "mean", "std"):
            cols[f"{name} Packet Length {stat.capitalize()}"] = s[stat]
    cols["Flow Bytes/s"] = _per_second((fwd_bytes + bwd_bytes).astype(float), duration)
    cols["Flow Packets/s"] = _per_second((n_fwd + n_bwd).astype(float), duration)
    cols |= {k: v for k, v in timing.items() if k.startswith("Flow IAT")}
    for name, n in (("Fwd", n_fwd), ("Bwd", n_bwd)):
        cols[f"{name} IAT Mean"] = np.divide(
            duration.astype(float), n - 1, out=np.zeros(n.size), where=n > 1
        )
    cols["Fwd Packets/s"] = _per_second(n_fwd.astype(float), duration)
    cols["Bwd Packets/s"] = _per_second(n_bwd.astype(float), duration)
    cols["Down/Up Ratio"] = n_bwd / np.maximum(n_fwd, 1)
    cols["Average Packet Size"] = (fwd_bytes + bwd_bytes) / (n_fwd + n_bwd)
    cols |= {k: timing[k] for k in ("Active Mean", "Idle Mean", "Idle Std", "Idle Max")}
    return pd.DataFrame({k: cols[k] for k in FEATURES})


def generate_flows(cfg: SyntheticConfig) -> pd.DataFrame:
    """One row per flow: the ``FEATURES`` columns and ``label`` (``web``/``video``/``voip``)."""
    rng = np.random.default_rng(cfg.seed)
    y, params = _flow_params(cfg, rng)
    size_noise, time_noise = 40.0 * cfg.difficulty, 0.6 * cfg.difficulty
    fwd = _packet_sizes(rng, params, "fwd", size_noise)
    bwd = _packet_sizes(rng, params, "bwd", size_noise)
    df = _features(params, fwd, bwd, _timing(rng, params, time_noise))
    flip = rng.random(y.size) < 0.04 * cfg.difficulty
    y = np.where(flip, (y + rng.integers(1, len(CLASSES), y.size)) % len(CLASSES), y)
    df[LABEL] = np.asarray(CLASSES, dtype=object)[y]
    return df


def write_flows_csv(cfg: SyntheticConfig, path: str | os.PathLike[str]) -> None:
    """Generate the flows and write them as CSV, atomically; same config -> same bytes."""
    df = generate_flows(cfg)
    with atomic_path(path) as tmp:
        df.to_csv(tmp, index=False, float_format="%.6g", lineterminator="\n")
