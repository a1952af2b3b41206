"""The report's plots, every one drawn from the metrics records (PNG and SVG each).

Accuracy carries its confidence interval as an error bar wherever it is drawn, and so does every
speed-up; sizes are exact. A method whose verdict comes from its replicates' own tests (they
overrule the interval of the mean, see ``replicates``) is ringed, with each replicate's figure as
a small point beside its bar; ``accuracy_diff`` shows every replicate's Δ that way. The Pareto
front is the one marked in the records (see ``metrics.add_pareto``): a method is on it when no
other is measurably better on one axis and not measurably worse on the other.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from quantbench.report.detail_plots import plot_confusion_matrices, plot_layer_error
from quantbench.report.metrics import Metrics, throughput_batch
from quantbench.report.plotting import (
    errors,
    freeze_layout,
    kind_legend,
    kind_styles,
    label_points,
    message_figure,
    plain_log_x,
    point_label,
    polyline_boxes,
    pyplot,
    save_figure,
    segment_box,
    use_log,
)
from quantbench.report.wording import INCONSISTENT, NO_CHANGE, from_replicates

# Replicate points sit this many points beside the bar of the mean.
_BESIDE_PT = 7.0
_RING = {"s": 230, "facecolors": "none", "edgecolors": "C3", "linestyles": "--", "lw": 1.1}

PLOT_NAMES = (
    "accuracy_vs_size",
    "accuracy_vs_latency",
    "metrics_bars",
    "confusion_matrices",
    "layer_error",
    "accuracy_diff",
)


def overruled(r: Metrics) -> bool:
    """Whether the record's accuracy verdict comes from its replicates, not the interval."""
    return r["vs_fp32"] is not None and from_replicates(r["vs_fp32"]["accuracy_diff_pt"]["verdict"])


def _beside(ax: Any) -> Any:
    """Data coordinates shifted right by _BESIDE_PT points (any axis scale)."""
    from matplotlib.transforms import offset_copy

    return offset_copy(ax.transData, fig=ax.figure, x=_BESIDE_PT, units="points")


def _mark_overruled(ax: Any, records: Sequence[Metrics], xs: Sequence[float]) -> list:
    """Ring each overruled method and show its replicates' accuracies beside its bar; the
    legend handles for both (none when no method is overruled)."""
    from matplotlib.lines import Line2D

    marked = [(r, x) for r, x in zip(records, xs, strict=True) if overruled(r)]
    for r, x in marked:
        ax.scatter([x], [r["accuracy"]["estimate"]], zorder=2, **_RING)
        reps = [e["accuracy"] for e in r["replicates"]]
        ax.scatter([x] * len(reps), reps, s=14, marker="o", facecolors="none",
                   edgecolors="C3", lw=0.8, zorder=3, transform=_beside(ax))  # fmt: skip
    if not marked:
        return []
    ring = Line2D([], [], ls="", marker="o", mfc="none", mec="C3", markersize=11,
                  label="verdict from the replicates")  # fmt: skip
    dot = Line2D([], [], ls="", marker="o", mfc="none", mec="C3", markersize=4,
                 label="one replicate")  # fmt: skip
    return [ring, dot]


def _scatter(ax: Any, records: Sequence[Metrics], xs: Sequence[float], xerr: Any) -> None:
    """Accuracy (mean, CI error bar) against ``xs`` (with ``xerr`` pairs or None)."""
    styles = kind_styles(records)
    for i, (r, x) in enumerate(zip(records, xs, strict=True)):
        color, marker = styles[r["kind"]]
        below, above = errors(r["accuracy"])
        ax.errorbar(
            [x],
            [r["accuracy"]["estimate"]],
            yerr=[[below], [above]],
            xerr=None if xerr is None else [[xerr[i][0]], [xerr[i][1]]],
            fmt=marker,
            color=color,
            markersize=7,
            markeredgecolor="white",
            markeredgewidth=0.6,
            elinewidth=1.0,
            capsize=3,
            zorder=3,
        )
    if use_log(xs):
        plain_log_x(ax)
    ax.margins(x=0.12, y=0.15)
    ax.set_ylabel("accuracy, mean over replicates (bar: CI)")
    ax.grid(True, which="both", alpha=0.25)


def _bar_boxes(ax: Any, records: Sequence[Metrics], xs: Sequence[float], xerr: Any) -> list:
    """Display boxes along every error bar, ring and replicate point, for labels to keep clear
    of."""
    boxes = []
    shift = _BESIDE_PT * ax.figure.dpi / 72
    for i, (r, x) in enumerate(zip(records, xs, strict=True)):
        lo, hi = r["accuracy"]["ci"]
        boxes.append(segment_box(ax, (x, lo), (x, hi)))
        if overruled(r):
            y = r["accuracy"]["estimate"]
            boxes.append(segment_box(ax, (x, y), (x, y), pad_pt=8))
            reps = [e["accuracy"] for e in r["replicates"]]
            box = segment_box(ax, (x, min(reps)), (x, max(reps)), pad_pt=3)
            boxes.append(box.translated(shift, 0))
        if xerr is not None:
            y = r["accuracy"]["estimate"]
            boxes.append(segment_box(ax, (x - xerr[i][0], y), (x + xerr[i][1], y)))
    return boxes


def plot_accuracy_vs_size(
    records: Sequence[Metrics], plot_dir: str, multi: bool, note: str = ""
) -> None:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.8), layout="constrained")
    xs = [r["size_kb"] for r in records]
    _scatter(ax, records, xs, None)
    marks = _mark_overruled(ax, records, xs)
    ax.set_xlabel("checkpoint size on disk (KB" + (", log scale)" if use_log(xs) else ")"))
    ax.set_title("Accuracy vs checkpoint size (upper left is better)" + note, fontsize=10)
    kind_legend(ax, kind_styles(records), marks)
    freeze_layout(fig)
    ys = [r["accuracy"]["estimate"] for r in records]
    avoid = _bar_boxes(ax, records, xs, None)
    label_points(ax, xs, ys, [point_label(r, multi) for r in records], avoid=avoid)
    save_figure(fig, plot_dir, "accuracy_vs_size")


def _front_line(ax: Any, records: Sequence[Metrics]) -> list:
    """Dashed line through each model's Pareto front, by speed-up; returns its display boxes."""
    boxes = []
    for model in dict.fromkeys(r["model"] for r in records):
        front = [r for r in records if r["model"] == model and (r["pareto"] or {}).get("on_front")]
        front.sort(key=lambda r: r["speedup"]["batch_1"]["estimate"])
        fx = [r["speedup"]["batch_1"]["estimate"] for r in front]
        fy = [r["accuracy"]["estimate"] for r in front]
        ax.plot(fx, fy, color="0.3", lw=1.2, ls="--", zorder=2)
        ax.scatter(fx, fy, s=160, facecolors="none", edgecolors="0.3", lw=1.0, zorder=2)
        boxes.append((fx, fy))
    return boxes


def plot_accuracy_vs_latency(records: Sequence[Metrics], plot_dir: str, multi: bool) -> None:
    from matplotlib.lines import Line2D

    timed = [r for r in records if r["speedup"] is not None]
    if not timed:
        message_figure(plot_dir, "accuracy_vs_latency", "nothing was timed in this run")
        return
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.8), layout="constrained")
    xs = [r["speedup"]["batch_1"]["estimate"] for r in timed]
    xerr = [errors(r["speedup"]["batch_1"]) for r in timed]
    _scatter(ax, timed, xs, xerr)
    marks = _mark_overruled(ax, timed, xs)
    ax.axvline(1.0, color="0.6", lw=0.8, zorder=1)
    lines = _front_line(ax, timed)
    ax.set_xlabel(
        "batch-1 speed-up over torch FP32, × (bar: CI; torch FP32 = 1"
        + (", log scale)" if use_log(xs) else ")")
    )
    ax.set_title("Accuracy vs batch-1 speed-up (upper right is better)")
    front = Line2D(
        [], [], color="0.3", ls="--", marker="o", mfc="none", markersize=10, label="Pareto front"
    )
    kind_legend(ax, kind_styles(timed), [front, *marks])
    freeze_layout(fig)
    avoid = _bar_boxes(ax, timed, xs, xerr)
    for fx, fy in lines:
        avoid += polyline_boxes(ax, fx, fy) if len(fx) > 1 else []
    ys = [r["accuracy"]["estimate"] for r in timed]
    labels = [point_label(r, multi) for r in timed]
    label_points(ax, xs, ys, labels, mark_pt=7.0, avoid=avoid)
    save_figure(fig, plot_dir, "accuracy_vs_latency")


# ---------------------------------------------------------------------------------------------
# Paired accuracy difference


_DIRECTION_COLORS = {-1: "C3", 0: "0.45", 1: "C2"}


def _verdict_color(verdict: str) -> str:
    if verdict == NO_CHANGE:
        return "0.45"
    if verdict.startswith(INCONSISTENT):
        return "C1"
    return "C3" if verdict.startswith("worse") else "C2"


def _replicate_points(ax: Any, y: float, r: Metrics) -> None:
    """Each replicate's Δ just below the row's bar: filled where the replicate is significantly
    worse (red) or better (green) on its own, hollow grey where it is not."""
    for e in r["replicates"]:
        vs = e["vs_fp32"]
        sign = vs["mcnemar"]["direction"]
        color = _DIRECTION_COLORS[sign]
        ax.scatter([vs["accuracy_diff_pt"]], [y + 0.3], s=16, marker="o", edgecolors=color,
                   facecolors=color if sign else "none", lw=0.8, zorder=3)  # fmt: skip


def _diff_legend(fig: Any, any_overruled: bool) -> None:
    from matplotlib.lines import Line2D

    def dot(face: str, edge: str, size: float, label: str) -> Any:
        return Line2D([], [], ls="", marker="o", mfc=face, mec=edge, markersize=size, label=label)

    handles = [
        dot("C3", "C3", 4, "replicate significantly worse on its own (exact McNemar, Holm)"),
        dot("C2", "C2", 4, "replicate significantly better"),
        dot("none", "0.45", 4, "replicate not significant"),
    ]
    if any_overruled:
        handles.append(dot("white", "C3", 6, "mean whose interval the replicates overrule"))
    fig.legend(handles=handles, loc="outside lower center", ncols=2, fontsize=7, frameon=False)


def plot_accuracy_diff(
    records: Sequence[Metrics], plot_dir: str, multi: bool, note: str = ""
) -> None:
    """Paired accuracy difference to FP32 per method, with its interval, each replicate's own
    difference beside it and a zero line; ``note`` is appended to the title."""
    rows = [r for r in records if r["vs_fp32"] is not None]
    if not rows:
        message_figure(plot_dir, "accuracy_diff", "no quantized method in this run")
        return
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(8.5, 2.2 + 0.5 * len(rows)), layout="constrained")
    ax.axvline(0.0, color="0.3", lw=1.0, zorder=1)
    verdicts = []
    for y, r in enumerate(rows):
        d = r["vs_fp32"]["accuracy_diff_pt"]
        below, above = errors(d)
        color = _verdict_color(d["verdict"])
        ax.errorbar(
            [d["estimate"]], [y], xerr=[[below], [above]], fmt="o", color=color,
            mfc="white" if overruled(r) else color, markersize=6, elinewidth=1.4, capsize=4,
            zorder=3,
        )  # fmt: skip
        _replicate_points(ax, y, r)
        verdicts.append(d["verdict"])
    ax.set_yticks(range(len(rows)), [point_label(r, multi) for r in rows], fontsize=8)
    right = ax.secondary_yaxis("right")  # the verdicts, as tick labels beside each row
    right.set_yticks(range(len(rows)), verdicts, fontsize=8)
    right.tick_params(length=0)
    for label, verdict in zip(right.get_yticklabels(), verdicts, strict=True):
        label.set_color(_verdict_color(verdict))
    ax.invert_yaxis()
    ax.margins(x=0.15, y=0.5 / len(rows))
    ax.set_xlabel(
        "accuracy − FP32 accuracy, percentage points (bar: CI of the mean; dots: replicates)"
    )
    ax.set_title(
        "Paired accuracy difference to FP32 (left of zero: fewer rows right)" + note, fontsize=10
    )
    ax.grid(True, axis="x", alpha=0.25)
    _diff_legend(fig, any(overruled(r) for r in rows))
    save_figure(fig, plot_dir, "accuracy_diff")


# ---------------------------------------------------------------------------------------------
# One panel per metric


def _bar_metrics(batch: int | None) -> list[tuple[str, Any]]:
    def speed(key: str) -> Any:
        return lambda r: r["speedup"][key] if r["speedup"] else None

    n = "N" if batch is None else str(batch)
    return [
        ("accuracy (mean, CI)", lambda r: r["accuracy"]),
        ("macro-F1 (mean, CI)", lambda r: r["macro_f1"]),
        ("size (KB)", lambda r: {"estimate": r["size_kb"]}),
        ("speed-up × at batch 1 (CI)", speed("batch_1")),
        (f"speed-up × at batch {n} (CI)", speed("batch_n")),
    ]


def _value_text(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4f}" if value < 1 else f"{value:.1f}" if value >= 10 else f"{value:.3f}"


def _draw_bars(ax: Any, blocks: list[Any], colors: list[str], title: str) -> None:
    from matplotlib.ticker import MaxNLocator

    nan = float("nan")
    values = [b["estimate"] if b else nan for b in blocks]
    with_ci = [b for b in blocks if b and "ci" in b]
    xerr = None
    if with_ci:
        xerr = [[errors(b)[0] if b and "ci" in b else 0 for b in blocks],
                [errors(b)[1] if b and "ci" in b else 0 for b in blocks]]  # fmt: skip
    ax.barh(range(len(blocks)), values, xerr=xerr, color=colors, height=0.7,
            error_kw={"elinewidth": 1.0, "capsize": 2, "ecolor": "0.15"})  # fmt: skip
    for y, b in enumerate(blocks):
        right = b["ci"][1] if b and "ci" in b else b["estimate"] if b else 0
        text = " " + _value_text(b["estimate"]) if b else " not timed"
        ax.text(right, y, text, va="center", ha="left", fontsize=7)
    tops = [b["ci"][1] if "ci" in b else b["estimate"] for b in blocks if b]
    ax.set_xlim(0, (max(tops) if tops and max(tops) > 0 else 1.0) * 1.45)
    ax.xaxis.set_major_locator(MaxNLocator(4))
    if title.startswith(("accuracy", "macro")):
        ax.set_xticks([0, 0.25, 0.5, 0.75, 1.0])
    if title.startswith("speed-up"):
        ax.axvline(1.0, color="0.3", lw=0.8, ls=":")
    ax.set_title(title, fontsize=9)
    ax.tick_params(axis="x", labelsize=7)
    ax.grid(True, axis="x", alpha=0.25)


def plot_metrics_bars(
    records: Sequence[Metrics], plot_dir: str, multi: bool, batch: int | None
) -> None:
    from matplotlib.patches import Patch

    plt = pyplot()
    metrics = _bar_metrics(batch)
    styles = kind_styles(records)
    fig, axes = plt.subplots(
        1, len(metrics), figsize=(15, 1.9 + 0.32 * len(records)), sharey=True,
        layout="constrained",
    )  # fmt: skip
    colors = [styles[r["kind"]][0] for r in records]
    for ax, (title, get) in zip(axes, metrics, strict=True):
        _draw_bars(ax, [get(r) for r in records], colors, title)
    axes[0].set_yticks(range(len(records)), [point_label(r, multi) for r in records], fontsize=8)
    axes[0].invert_yaxis()
    handles = [Patch(color=c, label=k) for k, (c, _) in styles.items()]
    fig.legend(handles=handles, title="kind", loc="outside lower center", ncols=len(handles),
               fontsize=8, title_fontsize=8, frameon=False)  # fmt: skip
    fig.suptitle(
        "Per-method metrics (one panel per metric; bar colour = kind; whisker = CI)", fontsize=10
    )
    save_figure(fig, plot_dir, "metrics_bars")


def write_plots(by_model: dict[str, list[Metrics]], plot_dir: str) -> None:
    """Every plot of PLOT_NAMES as PNG and SVG under ``plot_dir``; ``by_model`` holds the
    metrics records or their (method, runtime) rows (:mod:`quantbench.report.runtimes`)."""
    Path(plot_dir).mkdir(parents=True, exist_ok=True)
    rows = [r for rs in by_model.values() for r in rs]
    # the speed plots draw every (method, runtime) row, each with its own accuracy; the size,
    # Δ accuracy and per-model detail plots draw torch's rows only, and say so when the run has
    # others (an ONNX Runtime row's Δ, against FP32's artifact, is in the summary table)
    records = [r for r in rows if r.get("runtime", "torch") == "torch"]
    multi = len(by_model) > 1
    note = "\ntorch rows only; ONNX Runtime rows: summary table" if len(records) < len(rows) else ""
    plot_accuracy_vs_size(records, plot_dir, multi, note)
    plot_accuracy_vs_latency(rows, plot_dir, multi)
    plot_metrics_bars(rows, plot_dir, multi, throughput_batch(rows))
    plot_confusion_matrices(records, plot_dir, multi)
    plot_layer_error(records, plot_dir, multi)
    plot_accuracy_diff(records, plot_dir, multi, note)
