"""Shared plotting pieces: kind styles, atomic figure files with stable bytes, label placement.

matplotlib is imported only inside these functions, so importing the report costs nothing when
no plot is drawn.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from quantbench.core.files import atomic_path
from quantbench.report.metrics import Metrics

PLOT_FORMATS = ("png", "svg")

_KIND_MARKERS = {
    "fp32": "o",
    "ptq_dynamic": "s",
    "ptq_static": "D",
    "qat": "^",
    "rtn": "v",
    "gptq": "P",
}
_SPARE_MARKERS = ("X", "*", "h", "<", ">", "p")
_KIND_ORDER = ("fp32", "ptq_dynamic", "ptq_static", "qat", "rtn", "gptq")


def kind_styles(records: Sequence[Metrics]) -> dict[str, tuple[str, str]]:
    """kind -> (colour, marker), stable for the known kinds."""
    kinds = sorted({r["kind"] for r in records}, key=_kind_rank)
    styles = {}
    spare = iter(_SPARE_MARKERS * 4)
    for kind in kinds:
        rank = _kind_rank(kind)
        marker = _KIND_MARKERS.get(kind) or next(spare)
        styles[kind] = (f"C{rank % 10}", marker)
    return styles


def _kind_rank(kind: str) -> int:
    return (
        _KIND_ORDER.index(kind) if kind in _KIND_ORDER else len(_KIND_ORDER) + sum(map(ord, kind))
    )


def pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, plot_dir: str | os.PathLike[str], name: str) -> None:
    """Write ``name``.png and ``name``.svg atomically, with stable bytes for the same content.

    The layout is settled once and then fixed, so the second format does not lay it out again.
    """
    plt = pyplot()
    if fig.get_layout_engine() is not None:
        freeze_layout(fig)
    for ext in PLOT_FORMATS:
        meta = {"Date": None} if ext == "svg" else {}
        with (
            plt.rc_context({"svg.hashsalt": "quantbench"}),
            atomic_path(Path(plot_dir) / f"{name}.{ext}") as tmp,
        ):
            fig.savefig(tmp, format=ext, dpi=150, metadata=meta)
    plt.close(fig)


def use_log(values: Sequence[float]) -> bool:
    positive = [v for v in values if v > 0]
    return len(positive) == len(values) and max(positive) / min(positive) > 8


# Candidate label offsets in points (dx, dy), tried in order: near first, then further out.
_OFFSETS = [(7, 5), (7, -5), (-7, 5), (-7, -5), (0, 10), (0, -10), (12, 0), (-12, 0)]
_OFFSETS += [(10, 16), (-10, 16), (10, -16), (-10, -16), (0, 24), (0, -24), (24, 12), (-24, -12)]
_OFFSETS += [(30, 22), (-30, 22), (30, -22), (-30, -22), (0, 36), (0, -36), (40, 0), (-40, 0)]
_OFFSETS += [
    (round(r * math.cos(a)), round(r * math.sin(a)))
    for r in (20, 30, 45, 60)
    for a in (math.pi * k / 8 for k in range(16))
]
# A label placed where another point is about as near to it as its own costs more than any
# overlap, and the more the nearer that point is.
_MISPAIRED = 1e9


def _overlap(a: Any, b: Any) -> float:
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return w * h if w > 0 and h > 0 else 0.0


def _outside(box: Any, frame: Any) -> float:
    return box.width * box.height - _overlap(box, frame)


def box_distance(box: Any, x: float, y: float) -> float:
    """Display distance from (x, y) to the nearest point of ``box`` (0 inside it)."""
    dx = max(box.x0 - x, 0.0, x - box.x1)
    dy = max(box.y0 - y, 0.0, y - box.y1)
    return math.hypot(dx, dy)


def nearest_point(box: Any, centres: Any) -> int:
    """Index of the point (display coordinates) nearest to a label's box."""
    distances = [box_distance(box, float(x), float(y)) for x, y in centres]
    return min(range(len(distances)), key=distances.__getitem__)


def _pairing_gap(box: Any, centres: Any, own: int, margin: float) -> float:
    """How far (display units) another point is from being clearly farther from the label than
    its own point (at least 1.5 times as far and ``margin`` more); <= 0 when the label is clearly
    its own point's. Points at the same spot as its own do not count (no place tells them
    apart)."""
    mine = box_distance(box, *map(float, centres[own]))
    need = max(1.5 * mine, mine + margin)
    gaps = [
        need - box_distance(box, float(x), float(y))
        for i, (x, y) in enumerate(centres)
        if i != own and math.dist((x, y), centres[own]) > 1
    ]
    return max(gaps, default=-math.inf)


def _label_candidate(
    ax: Any, xy: tuple[float, float], text: str, offset: tuple[int, int], leader: bool = False
) -> Any:
    dx, dy = offset
    ha = "left" if dx > 0 else "right" if dx < 0 else "center"
    va = "bottom" if dy > 0 else "top" if dy < 0 else "center"
    far = leader or math.hypot(dx, dy) > 15
    arrow = {"arrowstyle": "-", "color": "0.5", "lw": 0.6, "shrinkB": 4} if far else None
    return ax.annotate(
        text,
        xy,
        xytext=(dx, dy),
        textcoords="offset points",
        ha=ha,
        va=va,
        fontsize=8,
        arrowprops=arrow,
        zorder=4,
    )


def label_points(
    ax: Any,
    xs: Sequence[float],
    ys: Sequence[float],
    texts: Sequence[str],
    mark_pt: float = 5.0,
    avoid: Sequence[Any] = (),
) -> list[Any]:
    """Label each point by itself: at the first offset whose text covers no point, label, line
    or edge, and never where another point is about as near to the text as its own.

    ``mark_pt`` is the half-width kept clear around each point; ``avoid`` holds further display
    boxes (e.g. from ``polyline_boxes``) that labels should not cover. Where every offset lies
    about as near another point (points closer together than a label is wide), the offset
    farthest from the other points gets a leader line to its own point. Returns the labels, in
    the order of the points.
    """
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    centres = ax.transData.transform(list(zip(xs, ys, strict=True)))
    pad = mark_pt * fig.dpi / 72
    marks = [_box(cx - pad, cy - pad, cx + pad, cy + pad) for cx, cy in centres] + list(avoid)
    placed: list[Any] = []
    labels: list[Any] = []
    for i, (x, y, text) in enumerate(zip(xs, ys, texts, strict=True)):
        best, best_cost, best_offset = None, math.inf, _OFFSETS[0]
        for offset in _OFFSETS:
            ann = _label_candidate(ax, (x, y), text, offset)
            tight = ann.get_window_extent(renderer)
            box = tight.padded(2)
            cost = sum(_overlap(box, o) for o in marks + placed) + 4 * _outside(box, frame)
            gap = _pairing_gap(tight, centres, i, pad)
            cost += _MISPAIRED + 1e3 * gap if gap > 0 else 0.0
            if cost < best_cost:
                if best is not None:
                    best[0].remove()
                best, best_cost, best_offset = (ann, box), cost, offset
            else:
                ann.remove()
            if cost == 0:
                break
        if best_cost >= _MISPAIRED:  # no place by its own point alone: a leader line pairs it
            best[0].remove()
            ann = _label_candidate(ax, (x, y), text, best_offset, leader=True)
            best = (ann, ann.get_window_extent(renderer).padded(2))
        placed.append(best[1])
        labels.append(best[0])
    return labels


def polyline_boxes(ax: Any, xs: Sequence[float], ys: Sequence[float], pad_pt: float = 2) -> list:
    """Small display boxes every few pixels along a data-space polyline."""
    pts = ax.transData.transform(list(zip(xs, ys, strict=True)))
    pad = pad_pt * ax.figure.dpi / 72
    boxes = []
    for (x0, y0), (x1, y1) in itertools.pairwise(pts):
        steps = max(1, int(math.hypot(x1 - x0, y1 - y0) / pad))
        for t in (i / steps for i in range(steps + 1)):
            cx, cy = x0 + t * (x1 - x0), y0 + t * (y1 - y0)
            boxes.append(_box(cx - pad, cy - pad, cx + pad, cy + pad))
    return boxes


def segment_box(
    ax: Any, start: tuple[float, float], end: tuple[float, float], pad_pt: float = 2
) -> Any:
    """One padded display box around an axis-aligned data-space segment (an error bar)."""
    (x0, y0), (x1, y1) = ax.transData.transform([start, end])
    pad = pad_pt * ax.figure.dpi / 72
    return _box(min(x0, x1) - pad, min(y0, y1) - pad, max(x0, x1) + pad, max(y0, y1) + pad)


def _box(x0: float, y0: float, x1: float, y1: float) -> Any:
    from matplotlib.transforms import Bbox

    return Bbox([[x0, y0], [x1, y1]])


def freeze_layout(fig: Any) -> None:
    """Settle the layout once, then fix it so label positions measured now stay valid.

    The layout engine runs on its own (no full draw); every later draw keeps its positions.
    """
    from matplotlib.layout_engine import ConstrainedLayoutEngine

    engine = fig.get_layout_engine()
    if engine is not None:
        if isinstance(engine, ConstrainedLayoutEngine):
            engine.set(w_pad=6 / 72, h_pad=6 / 72)  # inches: room for glyphs at the edge
        engine.execute(fig)
        fig.set_layout_engine("none")


def kind_legend(ax: Any, styles: dict[str, tuple[str, str]], extra: Sequence[Any] = ()) -> None:
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], ls="", marker=m, color=c, markersize=7, label=k)
        for k, (c, m) in styles.items()
    ]
    ax.legend(
        handles=[*handles, *extra],
        title="kind",
        loc="upper left",
        bbox_to_anchor=(1.02, 1),
        borderaxespad=0,
        fontsize=8,
        title_fontsize=8,
        frameon=False,
    )


def point_label(r: Metrics, multi: bool) -> str:
    """A record's name in a plot: the method, prefixed with the model when there are several."""
    return f"{r['model']}/{r['method']}" if multi else r["method"]


def errors(block: dict[str, Any]) -> tuple[float, float]:
    """(below, above) distances of an ``{estimate, ci}`` block, for matplotlib's xerr/yerr."""
    return block["estimate"] - block["ci"][0], block["ci"][1] - block["estimate"]


def plain_log_x(ax: Any) -> None:
    """Log x axis with plain tick numbers (30, 40, 100) instead of powers of ten."""
    from matplotlib.ticker import LogFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(LogFormatter(labelOnlyBase=False))
    ax.xaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))


def message_figure(plot_dir: str, name: str, text: str) -> None:
    """A plot file that says in words why there is nothing to draw."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6, 3))
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=12)
    ax.set_axis_off()
    save_figure(fig, plot_dir, name)
