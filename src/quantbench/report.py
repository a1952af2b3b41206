"""The summarize step: one table (CSV and Markdown) and five plots from every metrics JSON.

Every metrics file is checked against ``workflow/schemas/metrics.schema.json`` first. Rows are
FP32 first, then the other methods sorted by method name. Ratios (compression, speed-up) are
taken against the FP32 row and left blank when there is none; a figure that was not measured is
never filled in. matplotlib is imported only inside the plotting functions.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from quantbench.files import atomic_path, write_text

Metrics = dict[str, Any]

METRICS_SCHEMA = (
    Path(__file__).resolve().parents[2] / "workflow" / "schemas" / "metrics.schema.json"
)
PLOT_NAMES = (
    "accuracy_vs_size",
    "accuracy_vs_latency",
    "metrics_bars",
    "confusion_matrices",
    "layer_error",
)
PLOT_FORMATS = ("png", "svg")
REFERENCE_KIND = "fp32"


# ---------------------------------------------------------------------------------------------
# Reading and checking metrics


def _reject_constant(name: str) -> float:
    raise ValueError(f"non-finite number {name}")


def _field_of(error: Any) -> str:
    """Dotted path of the field a jsonschema error is about (the missing key for 'required')."""
    path = [str(p) for p in error.absolute_path]
    if error.validator == "required" and isinstance(error.instance, dict):
        missing = [k for k in error.validator_value if k not in error.instance]
        path += missing[:1]
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
        path += sorted(k for k in error.instance if k not in known)[:1]
    return ".".join(path) or "(top level)"


def validate_metrics(record: Any, path: str, schema: dict[str, Any]) -> None:
    """Raise ValueError naming ``path`` and the field when ``record`` breaks the schema."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    errors = list(validator.iter_errors(record))
    if errors:
        best = jsonschema.exceptions.best_match(errors)
        raise ValueError(f"{path}: metrics field '{_field_of(best)}': {best.message}")
    names = record["class_names"]
    if sorted(record["per_class"]) != sorted(names):
        raise ValueError(f"{path}: metrics field 'per_class': keys differ from class_names")
    matrix = record["confusion_matrix"]
    if len(matrix) != len(names) or any(len(row) != len(names) for row in matrix):
        raise ValueError(
            f"{path}: metrics field 'confusion_matrix': expected {len(names)}x{len(names)} "
            f"(one row and column per class name)"
        )


def load_metrics(paths: Sequence[str | os.PathLike[str]]) -> list[Metrics]:
    """Read and validate every metrics file; method names must be unique."""
    if not paths:
        raise ValueError("summarize: no metrics files given")
    schema = json.loads(METRICS_SCHEMA.read_text(encoding="utf-8"))
    records: list[Metrics] = []
    for p in paths:
        try:
            record = json.loads(
                Path(p).read_text(encoding="utf-8"), parse_constant=_reject_constant
            )
        except (json.JSONDecodeError, ValueError) as exc:
            raise ValueError(f"{p}: not a readable metrics JSON: {exc}") from exc
        validate_metrics(record, str(p), schema)
        records.append(record)
    seen: dict[str, str] = {}
    for p, r in zip(paths, records, strict=True):
        if r["method"] in seen:
            raise ValueError(
                f"{p}: metrics field 'method': {r['method']!r} also in {seen[r['method']]}"
            )
        seen[r["method"]] = str(p)
    return records


def order_records(records: Sequence[Metrics]) -> list[Metrics]:
    """FP32 first, then the other methods sorted by method name."""
    refs = [r for r in records if r["kind"] == REFERENCE_KIND]
    if len(refs) > 1:
        names = ", ".join(r["method"] for r in refs)
        raise ValueError(f"more than one metrics file of kind fp32: {names}")
    others = sorted((r for r in records if r["kind"] != REFERENCE_KIND), key=lambda r: r["method"])
    return refs + others


def reference(records: Sequence[Metrics]) -> Metrics | None:
    return next((r for r in records if r["kind"] == REFERENCE_KIND), None)


def throughput_batch(records: Sequence[Metrics]) -> int:
    """The one throughput batch size of the run (mixed batch sizes are not comparable)."""
    batches = sorted({int(r["throughput"]["batch"]) for r in records})
    if len(batches) != 1:
        raise ValueError(
            f"metrics field 'throughput.batch' differs between files ({batches}); "
            "rerun evaluate so that every model is timed at the same batch"
        )
    return batches[0]


# ---------------------------------------------------------------------------------------------
# Numbers


def pareto_front(points: Sequence[tuple[float, float]]) -> list[int]:
    """Indices of the (latency, accuracy) points no other point beats, by ascending latency.

    A point is dominated when another has latency <= and accuracy >= with one strictly better.
    Identical points are all kept.
    """
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front: list[int] = []
    best_acc = -math.inf
    for i in order:
        lat, acc = points[i]
        if acc > best_acc:
            front.append(i)
            best_acc = acc
        elif front and points[front[-1]] == (lat, acc):
            front.append(i)
    return front


def _ratio(num: float, den: float) -> float | None:
    return num / den if den > 0 else None


def compression(record: Metrics, ref: Metrics | None) -> float | None:
    return _ratio(ref["size_bytes"], record["size_bytes"]) if ref else None


def speedup_batch1(record: Metrics, ref: Metrics | None) -> float | None:
    return _ratio(ref["latency_ms"]["p50"], record["latency_ms"]["p50"]) if ref else None


def speedup_throughput(record: Metrics, ref: Metrics | None) -> float | None:
    if ref is None:
        return None
    return _ratio(record["throughput"]["samples_per_s"], ref["throughput"]["samples_per_s"])


def fixed(value: float | None, decimals: int) -> str:
    """``value`` with ``decimals`` places, more where that would print a non-zero value as 0."""
    if value is None:
        return ""
    places = decimals
    while value != 0 and round(abs(value), places) == 0 and places < 12:
        places += 1
    return f"{value:.{places}f}"


def _ratio_text(value: float) -> str:
    """Two decimals, three where two would round a slower ratio up to 1.00."""
    text = f"{value:.2f}"
    return f"{value:.3f}" if value < 1 and text == "1.00" else text


# ---------------------------------------------------------------------------------------------
# Table


def summary_columns(batch: int) -> list[str]:
    return [
        "method",
        "kind",
        "bits",
        "accuracy",
        "macro-F1",
        "size KB",
        "compression ×",
        "latency p50 ms (batch 1)",
        "latency p95 ms (batch 1)",
        f"throughput samples/s (batch {batch})",
        "speed-up ×",
        "kernels",
        "execution",
    ]


def summary_row(record: Metrics, ref: Metrics | None) -> list[str]:
    return [
        record["method"],
        record["kind"],
        str(record["bits"]),
        fixed(record["accuracy"], 4),
        fixed(record["macro_f1"], 4),
        fixed(record["size_bytes"] / 1024, 1),
        fixed(compression(record, ref), 2),
        fixed(record["latency_ms"]["p50"], 3),
        fixed(record["latency_ms"]["p95"], 3),
        fixed(record["throughput"]["samples_per_s"], 0),
        fixed(speedup_throughput(record, ref), 2),
        ", ".join(record["kernels"]),
        record["execution"],
    ]


def summary_table(records: Sequence[Metrics]) -> tuple[list[str], list[list[str]]]:
    """Column names and formatted rows, in report order."""
    ordered = order_records(records)
    ref = reference(ordered)
    return summary_columns(throughput_batch(ordered)), [summary_row(r, ref) for r in ordered]


def render_csv(columns: list[str], rows: list[list[str]]) -> str:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(rows)
    return buf.getvalue()


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_md_table(columns: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(_md_cell(c) for c in columns) + " |"]
    lines.append("|" + "|".join("---" for _ in columns) + "|")
    lines += ["| " + " | ".join(_md_cell(c) for c in row) + " |" for row in rows]
    return lines


def _distinct(records: Sequence[Metrics], key: str) -> str:
    values = sorted({str(r[key]) for r in records if r[key] is not None})
    return " / ".join(values)


def run_facts(records: Sequence[Metrics]) -> str:
    """One line: CPU, torch version, threads, int8 engine, batch sizes."""
    engine = _distinct(records, "engine") or "none (no int8 kernels ran)"
    line = (
        f"Measured on {_distinct(records, 'cpu')} ({_distinct(records, 'device')}), "
        f"torch {_distinct(records, 'torch_version')}, {_distinct(records, 'threads')} thread(s), "
        f"int8 engine {engine}; latency at batch 1, "
        f"throughput at batch {throughput_batch(records)}."
    )
    mixed = [k for k in ("cpu", "torch_version", "threads") if len({r[k] for r in records}) > 1]
    if mixed:
        line += f" Note: {', '.join(mixed)} differ between methods, so ratios compare unlike runs."
    return line


def not_faster_sentences(records: Sequence[Metrics]) -> list[str]:
    """One sentence per method that is not faster than FP32 at batch 1 or at the batch size."""
    ref = reference(records)
    if ref is None:
        return []
    batch = throughput_batch(records)
    out = []
    for r in order_records(records):
        if r is ref:
            continue
        parts = []
        s1, sb = speedup_batch1(r, ref), speedup_throughput(r, ref)
        if s1 is not None and s1 <= 1:
            parts.append(f"at batch 1 ({_ratio_text(s1)}×)")
        if sb is not None and sb <= 1:
            parts.append(f"at batch {batch} ({_ratio_text(sb)}×)")
        if parts:
            out.append(f"`{r['method']}` is not faster than FP32 on this CPU {' or '.join(parts)}.")
    return out


def render_markdown(records: Sequence[Metrics]) -> str:
    columns, rows = summary_table(records)
    batch = throughput_batch(records)
    lines = ["# quantbench summary", "", run_facts(records), ""]
    lines += render_md_table(columns, rows)
    lines.append("")
    if reference(records) is None:
        lines.append("No fp32 metrics in this run: compression and speed-up are left blank.")
    else:
        lines.append(
            "Compression × = FP32 checkpoint size / checkpoint size; speed-up × = throughput / "
            f"FP32 throughput at batch {batch}. FP32 first, then methods sorted by name."
        )
        sentences = not_faster_sentences(records)
        if sentences:
            lines += ["", *[f"- {s}" for s in sentences]]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------
# Plots: shared pieces

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


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, plot_dir: str | os.PathLike[str], name: str) -> None:
    """Write ``name``.png and ``name``.svg atomically, with stable bytes for the same content."""
    plt = _pyplot()
    for ext in PLOT_FORMATS:
        meta = {"Date": None} if ext == "svg" else {}
        with (
            plt.rc_context({"svg.hashsalt": "quantbench"}),
            atomic_path(Path(plot_dir) / f"{name}.{ext}") as tmp,
        ):
            fig.savefig(tmp, format=ext, dpi=150, metadata=meta)
    plt.close(fig)


def _use_log(values: Sequence[float]) -> bool:
    positive = [v for v in values if v > 0]
    return len(positive) == len(values) and max(positive) / min(positive) > 8


# Candidate label offsets in points (dx, dy), tried in order.
_OFFSETS = [(7, 5), (7, -5), (-7, 5), (-7, -5), (0, 10), (0, -10), (12, 0), (-12, 0)]
_OFFSETS += [(10, 16), (-10, 16), (10, -16), (-10, -16), (0, 24), (0, -24), (24, 12), (-24, -12)]
_OFFSETS += [(30, 22), (-30, 22), (30, -22), (-30, -22), (0, 36), (0, -36), (40, 0), (-40, 0)]


def _overlap(a: Any, b: Any) -> float:
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return w * h if w > 0 and h > 0 else 0.0


def _outside(box: Any, frame: Any) -> float:
    return box.width * box.height - _overlap(box, frame)


def _label_candidate(ax: Any, xy: tuple[float, float], text: str, offset: tuple[int, int]) -> Any:
    dx, dy = offset
    ha = "left" if dx > 0 else "right" if dx < 0 else "center"
    va = "bottom" if dy > 0 else "top" if dy < 0 else "center"
    far = math.hypot(dx, dy) > 15
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
) -> None:
    """Label each point at the first offset whose text covers no point, label, line or edge.

    ``mark_pt`` is the half-width kept clear around each point; ``avoid`` holds further display
    boxes (e.g. from ``polyline_boxes``) that labels should not cover.
    """
    fig = ax.figure
    renderer = fig.canvas.get_renderer()
    frame = ax.get_window_extent(renderer)
    centres = ax.transData.transform(list(zip(xs, ys, strict=True)))
    pad = mark_pt * fig.dpi / 72
    marks = [_box(cx - pad, cy - pad, cx + pad, cy + pad) for cx, cy in centres] + list(avoid)
    placed: list[Any] = []
    for x, y, text in zip(xs, ys, texts, strict=True):
        best, best_cost = None, math.inf
        for offset in _OFFSETS:
            ann = _label_candidate(ax, (x, y), text, offset)
            box = ann.get_window_extent(renderer).padded(2)
            cost = sum(_overlap(box, o) for o in marks + placed) + 4 * _outside(box, frame)
            if cost < best_cost:
                if best is not None:
                    best[0].remove()
                best, best_cost = (ann, box), cost
            else:
                ann.remove()
            if cost == 0:
                break
        placed.append(best[1])


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


def step_vertices(xs: Sequence[float], ys: Sequence[float]) -> tuple[list[float], list[float]]:
    """Vertices of the ``where="post"`` step line through the points."""
    vx, vy = [xs[0]], [ys[0]]
    for x, y in zip(xs[1:], ys[1:], strict=True):
        vx += [x, x]
        vy += [vy[-1], y]
    return vx, vy


def _box(x0: float, y0: float, x1: float, y1: float) -> Any:
    from matplotlib.transforms import Bbox

    return Bbox([[x0, y0], [x1, y1]])


def _freeze_layout(fig: Any) -> None:
    """Settle the layout once, then fix it so label positions measured now stay valid."""
    fig.canvas.draw()
    fig.set_layout_engine("none")


def _kind_legend(ax: Any, styles: dict[str, tuple[str, str]], extra: Sequence[Any] = ()) -> None:
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


# ---------------------------------------------------------------------------------------------
# Plots


def _scatter(ax: Any, records: Sequence[Metrics], xs: Sequence[float]) -> None:
    styles = kind_styles(records)
    for r, x in zip(records, xs, strict=True):
        color, marker = styles[r["kind"]]
        ax.scatter(
            [x],
            [r["accuracy"]],
            color=color,
            marker=marker,
            s=50,
            zorder=3,
            edgecolors="white",
            linewidths=0.6,
        )
    if _use_log(xs):
        _plain_log_x(ax)
    ax.margins(x=0.12, y=0.15)
    ax.set_ylabel("accuracy (test split)")
    ax.grid(True, which="both", alpha=0.25)


def _plain_log_x(ax: Any) -> None:
    """Log x axis with plain tick numbers (30, 40, 100) instead of powers of ten."""
    from matplotlib.ticker import LogFormatter

    ax.set_xscale("log")
    ax.xaxis.set_major_formatter(LogFormatter(labelOnlyBase=False))
    ax.xaxis.set_minor_formatter(LogFormatter(labelOnlyBase=False, minor_thresholds=(2, 0.5)))


def plot_accuracy_vs_size(records: Sequence[Metrics], plot_dir: str) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.8), layout="constrained")
    xs = [r["size_bytes"] / 1024 for r in records]
    _scatter(ax, records, xs)
    ax.set_xlabel("checkpoint size on disk (KB" + (", log scale)" if _use_log(xs) else ")"))
    ax.set_title("Accuracy vs checkpoint size (upper left is better)")
    _kind_legend(ax, kind_styles(records))
    _freeze_layout(fig)
    label_points(ax, xs, [r["accuracy"] for r in records], [r["method"] for r in records])
    save_figure(fig, plot_dir, "accuracy_vs_size")


def plot_accuracy_vs_latency(records: Sequence[Metrics], plot_dir: str) -> None:
    from matplotlib.lines import Line2D

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7.5, 4.8), layout="constrained")
    xs = [r["latency_ms"]["p50"] for r in records]
    ys = [r["accuracy"] for r in records]
    _scatter(ax, records, xs)
    front = pareto_front(list(zip(xs, ys, strict=True)))
    fx, fy = [xs[i] for i in front], [ys[i] for i in front]
    ax.step(fx, fy, where="post", color="0.3", lw=1.2, ls="--", zorder=2)
    ax.scatter(fx, fy, s=140, facecolors="none", edgecolors="0.3", lw=1.0, zorder=2)
    ax.set_xlabel("latency p50 at batch 1 (ms" + (", log scale)" if _use_log(xs) else ")"))
    ax.set_title("Accuracy vs batch-1 latency (upper left is better)")
    front_handle = Line2D(
        [], [], color="0.3", ls="--", marker="o", mfc="none", markersize=10, label="Pareto front"
    )
    _kind_legend(ax, kind_styles(records), [front_handle])
    _freeze_layout(fig)
    line = polyline_boxes(ax, *step_vertices(fx, fy))
    label_points(ax, xs, ys, [r["method"] for r in records], mark_pt=7.0, avoid=line)
    save_figure(fig, plot_dir, "accuracy_vs_latency")


def _bar_metrics(batch: int) -> list[tuple[str, Any]]:
    return [
        ("accuracy", lambda r: r["accuracy"]),
        ("macro-F1", lambda r: r["macro_f1"]),
        ("size (KB)", lambda r: r["size_bytes"] / 1024),
        ("latency p50 (ms, batch 1)", lambda r: r["latency_ms"]["p50"]),
        (f"throughput (samples/s, batch {batch})", lambda r: r["throughput"]["samples_per_s"]),
    ]


def _value_text(value: float) -> str:
    if value >= 1000:
        return f"{value:,.0f}"
    return f"{value:.4f}" if value < 1 else f"{value:.1f}" if value >= 10 else f"{value:.3f}"


def _draw_bars(ax: Any, values: list[float], colors: list[str], title: str) -> None:
    from matplotlib.ticker import MaxNLocator, StrMethodFormatter

    ypos = list(range(len(values)))
    ax.barh(ypos, values, color=colors, height=0.7)
    for y, v in zip(ypos, values, strict=True):
        ax.text(v, y, " " + _value_text(v), va="center", ha="left", fontsize=7)
    top = max(values) if max(values) > 0 else 1.0
    ax.set_xlim(0, top * 1.4)
    ax.xaxis.set_major_locator(MaxNLocator(4))
    if top >= 1000:
        ax.xaxis.set_major_formatter(StrMethodFormatter("{x:,.0f}"))
    if title in ("accuracy", "macro-F1"):
        ax.set_xticks([0, 0.25, 0.5, 0.75, 1.0])
    ax.set_title(title, fontsize=9)
    ax.tick_params(axis="x", labelsize=7)
    ax.grid(True, axis="x", alpha=0.25)


def plot_metrics_bars(records: Sequence[Metrics], plot_dir: str) -> None:
    from matplotlib.patches import Patch

    plt = _pyplot()
    ordered = order_records(records)
    metrics = _bar_metrics(throughput_batch(ordered))
    styles = kind_styles(ordered)
    height = 1.9 + 0.32 * len(ordered)
    fig, axes = plt.subplots(
        1, len(metrics), figsize=(15, height), sharey=True, layout="constrained"
    )
    colors = [styles[r["kind"]][0] for r in ordered]
    for ax, (title, get) in zip(axes, metrics, strict=True):
        _draw_bars(ax, [float(get(r)) for r in ordered], colors, title)
    axes[0].set_yticks(range(len(ordered)), [r["method"] for r in ordered], fontsize=8)
    axes[0].invert_yaxis()
    handles = [Patch(color=c, label=k) for k, (c, _) in styles.items()]
    fig.legend(
        handles=handles,
        title="kind",
        loc="outside lower center",
        ncols=len(handles),
        fontsize=8,
        title_fontsize=8,
        frameon=False,
    )
    fig.suptitle("Per-method metrics (one panel per metric; bar colour = kind)", fontsize=10)
    save_figure(fig, plot_dir, "metrics_bars")


def _row_normalised(matrix: list[list[int]]) -> list[list[float]]:
    return [[c / sum(row) if sum(row) else 0.0 for c in row] for row in matrix]


def _draw_confusion(ax: Any, record: Metrics) -> Any:
    names = record["class_names"]
    counts = record["confusion_matrix"]
    share = _row_normalised(counts)
    image = ax.imshow(share, vmin=0, vmax=1, cmap="Blues")
    k = len(names)
    size = 8 if k <= 4 else 6 if k <= 8 else 0
    for i in range(k if size else 0):
        for j in range(k):
            color = "white" if share[i][j] > 0.55 else "black"
            text = f"{100 * share[i][j]:.1f}%\n{counts[i][j]}"
            ax.text(j, i, text, ha="center", va="center", fontsize=size, color=color)
    ax.set_xticks(range(k), names, rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(k), names, fontsize=8)
    ax.set_xlabel("predicted", fontsize=8)
    ax.set_ylabel("true", fontsize=8)
    ax.set_title(f"{record['method']} (accuracy {record['accuracy']:.4f})", fontsize=9)
    return image


def plot_confusion_matrices(records: Sequence[Metrics], plot_dir: str) -> None:
    plt = _pyplot()
    ordered = order_records(records)
    ncols = min(3, len(ordered))
    nrows = -(-len(ordered) // ncols)
    k = max(len(r["class_names"]) for r in ordered)
    cell = 2.2 + 0.45 * k
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(cell * ncols + 1.2, cell * nrows + 0.6),
        layout="constrained",
        squeeze=False,
    )
    image = None
    for ax, record in zip(axes.flat, ordered, strict=False):
        image = _draw_confusion(ax, record)
    for ax in list(axes.flat)[len(ordered) :]:
        ax.set_visible(False)
    bar = fig.colorbar(image, ax=axes, shrink=0.8, label="share of true-class rows")
    bar.ax.yaxis.set_major_formatter(lambda v, _: f"{100 * v:.0f}%")
    fig.suptitle("Confusion matrices, row-normalised (cell: % of true class, count)", fontsize=10)
    save_figure(fig, plot_dir, "confusion_matrices")


def _layer_records(records: Sequence[Metrics]) -> list[Metrics]:
    """Variants with per-layer errors, by bit width, GPTQ before RTN, then by name."""
    family = {"gptq": 0, "rtn": 1}
    with_error = [r for r in records if r.get("layer_error")]
    return sorted(with_error, key=lambda r: (r["bits"], family.get(r["kind"], 2), r["method"]))


def _ordered_layers(records: Sequence[Metrics]) -> list[str]:
    layers: list[str] = []
    for r in records:
        layers += [e["layer"] for e in r["layer_error"] if e["layer"] not in layers]
    return layers


def _variant_colors(variants: Sequence[Metrics]) -> Iterator[str]:
    """Blues for gptq variants, oranges for rtn, greys otherwise; one shade per variant."""
    import matplotlib

    seen: dict[str, int] = {}
    for r in variants:
        n = seen[r["kind"]] = seen.get(r["kind"], -1) + 1
        cmap = {"gptq": "Blues", "rtn": "Oranges"}.get(r["kind"], "Greys")
        yield matplotlib.colormaps[cmap](0.75 - 0.2 * (n % 3))


def _draw_layer_bits(ax: Any, variants: Sequence[Metrics], bits: int) -> None:
    layers = _ordered_layers(variants)
    width = 0.8 / len(variants)
    text_kw = {
        "ha": "center",
        "va": "bottom",
        "fontsize": 7,
        "rotation": 90 if len(variants) > 2 else 0,
    }
    for v, (r, color) in enumerate(zip(variants, _variant_colors(variants), strict=False)):
        err = {e["layer"]: e["heldout"] for e in r["layer_error"]}
        xs = [i - 0.4 + width * (v + 0.5) for i, name in enumerate(layers) if name in err]
        ys = [err[name] for name in layers if name in err]
        ax.bar(
            xs, [y if y > 0 else float("nan") for y in ys], width, color=color, label=r["method"]
        )
        for x, y in zip(xs, ys, strict=True):
            ax.text(x, y if y > 0 else 0, f" {y:.2g}", transform=_y_or_floor(ax, y), **text_kw)
    positive = [e["heldout"] for r in variants for e in r["layer_error"] if e["heldout"] > 0]
    ax.set_yscale("log")
    if positive:
        ax.set_ylim(min(positive) / 4, max(positive) * 4)
    ax.set_xticks(range(len(layers)), layers, fontsize=8)
    ax.set_xlabel("layer", fontsize=9)
    ax.set_title(f"{bits}-bit weights", fontsize=9)
    ax.grid(True, axis="y", which="major", alpha=0.25)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(0, -0.16), ncols=2, frameon=False)


def _y_or_floor(ax: Any, y: float) -> Any:
    """Data coordinates for a positive error; the axis floor for an error of exactly zero."""
    return ax.transData if y > 0 else ax.get_xaxis_transform()


def plot_layer_error(records: Sequence[Metrics], plot_dir: str) -> None:
    plt = _pyplot()
    variants = _layer_records(records)
    if not variants:
        fig, ax = plt.subplots(figsize=(6, 3))
        ax.text(0.5, 0.5, "no GPTQ/RTN variants in this run", ha="center", va="center", fontsize=12)
        ax.set_axis_off()
        save_figure(fig, plot_dir, "layer_error")
        return
    widths = sorted({r["bits"] for r in variants})
    fig, axes = plt.subplots(
        1, len(widths), figsize=(1.2 + 4.5 * len(widths), 4.6), layout="constrained", squeeze=False
    )
    for ax, bits in zip(axes[0], widths, strict=True):
        _draw_layer_bits(ax, [r for r in variants if r["bits"] == bits], bits)
    axes[0][0].set_ylabel("held-out output error ‖WX − ŴX‖²/n (log scale)", fontsize=9)
    fig.suptitle(
        "Per-layer output error on held-out rows, GPTQ vs RTN (lower is better)", fontsize=10
    )
    save_figure(fig, plot_dir, "layer_error")


# ---------------------------------------------------------------------------------------------
# The step


def write_plots(records: Sequence[Metrics], plot_dir: str) -> None:
    Path(plot_dir).mkdir(parents=True, exist_ok=True)
    ordered = order_records(records)
    plot_accuracy_vs_size(ordered, plot_dir)
    plot_accuracy_vs_latency(ordered, plot_dir)
    plot_metrics_bars(ordered, plot_dir)
    plot_confusion_matrices(ordered, plot_dir)
    plot_layer_error(ordered, plot_dir)


def summarize(metrics_paths: list[str], out_csv: str, out_md: str, plot_dir: str) -> None:
    """Summary CSV, Markdown and plots (PNG and SVG) from the metrics files; all writes atomic."""
    records = load_metrics(metrics_paths)
    columns, rows = summary_table(records)
    write_text(out_csv, render_csv(columns, rows))
    write_text(out_md, render_markdown(records))
    write_plots(records, plot_dir)
