"""Detail plots: confusion matrices and per-layer output errors, from the metrics records."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from quantbench.report.metrics import Metrics
from quantbench.report.plotting import message_figure, point_label, pyplot, save_figure


def _row_normalised(matrix: list[list[int]]) -> list[list[float]]:
    return [[c / sum(row) if sum(row) else 0.0 for c in row] for row in matrix]


def _draw_confusion(ax: Any, record: Metrics, label: str, left: bool, bottom: bool) -> Any:
    """One matrix; class names only on the left column and the lowest panel of each column."""
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
    ax.set_xticks(range(k), names if bottom else [], rotation=30, ha="right", fontsize=8)
    ax.set_yticks(range(k), names if left else [], fontsize=8)
    if bottom:
        ax.set_xlabel("predicted", fontsize=8)
    if left:
        ax.set_ylabel("true", fontsize=8)
    acc = record["accuracy"]["estimate"]
    ax.set_title(f"{label} (accuracy {acc:.4f})", fontsize=9)
    return image


def plot_confusion_matrices(records: Sequence[Metrics], plot_dir: str, multi: bool) -> None:
    """One row-normalised matrix per method, counts summed over the replicates."""
    plt = pyplot()
    ordered = list(records)
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
    for i, (ax, record) in enumerate(zip(axes.flat, ordered, strict=False)):
        bottom = i + ncols >= len(ordered)  # no panel below this one
        label = point_label(record, multi)
        image = _draw_confusion(ax, record, label, i % ncols == 0, bottom)
    for ax in list(axes.flat)[len(ordered) :]:
        ax.set_visible(False)
    bar = fig.colorbar(image, ax=axes, shrink=0.8, label="share of true-class rows")
    bar.ax.yaxis.set_major_formatter(lambda v, _: f"{100 * v:.0f}%")
    reps = " / ".join(sorted({str(len(r["seeds"])) for r in ordered}))
    fig.suptitle(
        f"Confusion matrices summed over {reps} replicate(s), row-normalised "
        "(cell: % of true class, count)",
        fontsize=10,
    )
    save_figure(fig, plot_dir, "confusion_matrices")


def _layer_records(records: Sequence[Metrics]) -> list[Metrics]:
    """Variants with per-layer errors, by bit width, GPTQ before RTN, then by name."""
    family = {"gptq": 0, "rtn": 1}
    with_error = [r for r in records if r.get("layer_error")]
    return sorted(
        with_error,
        key=lambda r: (r["bits"], family.get(r["kind"], 2), r["model"], r["method"]),
    )


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


def _whiskers(items: Sequence[dict[str, Any]]) -> list[list[float]]:
    """(below, above) of the held-out error range over replicates; none below a zero minimum."""
    below = [e["heldout"] - e["heldout_min"] if e["heldout_min"] > 0 else 0.0 for e in items]
    return [below, [e["heldout_max"] - e["heldout"] for e in items]]


def _draw_layer_bits(ax: Any, variants: Sequence[Metrics], title: str) -> None:
    """One panel: the variants of one model at one bit width, a bar group per layer."""
    layers = _ordered_layers(variants)
    width = 0.8 / len(variants)
    text_kw = {
        "ha": "center",
        "va": "bottom",
        "fontsize": 7,
        "rotation": 90 if len(variants) > 2 else 0,
    }
    for v, (r, color) in enumerate(zip(variants, _variant_colors(variants), strict=False)):
        err = {e["layer"]: e for e in r["layer_error"]}
        xs = [i - 0.4 + width * (v + 0.5) for i, name in enumerate(layers) if name in err]
        items = [err[name] for name in layers if name in err]
        ys = [e["heldout"] for e in items]
        ax.bar(
            xs, [y if y > 0 else float("nan") for y in ys], width, color=color,
            label=r["method"], yerr=_whiskers(items),
            error_kw={"elinewidth": 0.8, "capsize": 2, "ecolor": "0.2"},
        )  # fmt: skip
        for x, y in zip(xs, ys, strict=True):
            ax.text(x, y if y > 0 else 0, f" {y:.2g}", transform=_y_or_floor(ax, y), **text_kw)
    positive = [
        v
        for r in variants
        for e in r["layer_error"]
        for v in (e["heldout_min"], e["heldout_max"])
        if v > 0
    ]
    ax.set_yscale("log")
    if positive:
        ax.set_ylim(min(positive) / 4, max(positive) * 4)
    tilt = {"rotation": 30, "ha": "right"} if len(layers) > 4 else {}
    ax.set_xticks(range(len(layers)), layers, fontsize=8, **tilt)
    ax.set_xlabel("layer", fontsize=9)
    ax.set_title(title, fontsize=9)
    ax.grid(True, axis="y", which="major", alpha=0.25)
    below = -0.3 if tilt else -0.16  # under the tick labels
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(0, below), ncols=2, frameon=False)


def _y_or_floor(ax: Any, y: float) -> Any:
    """Data coordinates for a positive error; the axis floor for an error of exactly zero."""
    return ax.transData if y > 0 else ax.get_xaxis_transform()


def plot_layer_error(records: Sequence[Metrics], plot_dir: str, multi: bool) -> None:
    """Held-out output error per layer: mean over replicates, whiskers their range."""
    plt = pyplot()
    variants = _layer_records(records)
    if not variants:
        message_figure(plot_dir, "layer_error", "no GPTQ/RTN variants in this run")
        return
    # one row of panels per model (layer names belong to a model), one column per bit width
    models = list(dict.fromkeys(r["model"] for r in variants))
    widths = sorted({r["bits"] for r in variants})
    most = max(len(_ordered_layers([r])) for r in variants)
    fig, axes = plt.subplots(
        len(models), len(widths), squeeze=False, layout="constrained",
        figsize=(1.2 + max(4.5, 0.6 * most) * len(widths), 0.6 + 4.4 * len(models)),
    )  # fmt: skip
    for row, model in zip(axes, models, strict=True):
        for ax, bits in zip(row, widths, strict=True):
            shown = [r for r in variants if r["model"] == model and r["bits"] == bits]
            if not shown:
                ax.set_visible(False)
                continue
            title = f"model {model}, {bits}-bit weights" if multi else f"{bits}-bit weights"
            _draw_layer_bits(ax, shown, title)
        row[0].set_ylabel(
            "held-out output error ‖WX − ŴX‖²/n\n(log scale; mean over replicates, whisker: range)",
            fontsize=9,
        )
    fig.suptitle(
        "Per-layer output error on held-out rows, GPTQ vs RTN (lower is better)", fontsize=10
    )
    save_figure(fig, plot_dir, "layer_error")
