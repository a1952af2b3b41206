"""Plots: drawn from the records, with something to say when there is nothing to draw."""

from __future__ import annotations

import json
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from quantbench.report import build_metrics
from quantbench.report.plots import PLOT_NAMES, write_plots
from quantbench.report.plotting import PLOT_FORMATS, label_points, pyplot
from quantbench.report.stats import ReportConfig
from tests.report_facts import DEFAULT_METHODS, write_run

CFG = ReportConfig(bootstrap_resamples=999)


def plot_files(plot_dir: Path) -> list[str]:
    return sorted(p.name for p in plot_dir.iterdir())


def test_fp32_alone_still_writes_every_plot(tmp_path: Path) -> None:
    facts = write_run(tmp_path / "facts", [], seeds=(42, 43), rows=300)
    by_model = build_metrics(facts.quality, [], CFG)
    write_plots(by_model, str(tmp_path / "plots"))
    expected = sorted(f"{n}.{e}" for n in PLOT_NAMES for e in PLOT_FORMATS)
    assert plot_files(tmp_path / "plots") == expected
    svg = (tmp_path / "plots" / "accuracy_diff.svg").read_text(encoding="utf-8")
    assert "<svg" in svg


def test_several_models_share_the_plots(tmp_path: Path) -> None:
    methods = [m for m in DEFAULT_METHODS if m.name in ("ptq_static", "rtn_w4")]
    a = write_run(tmp_path / "a", methods, rows=300, rounds=4, model="mlp")
    b = write_run(tmp_path / "b", methods[:1], rows=300, rounds=4, model="wide")
    by_model = build_metrics(a.quality + b.quality, a.timing + b.timing, CFG)
    write_plots(by_model, str(tmp_path / "plots"))
    assert len(plot_files(tmp_path / "plots")) == len(PLOT_NAMES) * len(PLOT_FORMATS)


@pytest.fixture
def axes() -> Any:
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 10)
    fig.canvas.draw()
    yield ax
    plt.close(fig)


def test_labels_of_clustered_points_do_not_overlap(axes: Any) -> None:
    xs, ys = [5.0, 5.1, 5.0, 5.2], [5.0, 5.0, 5.1, 5.1]
    label_points(axes, xs, ys, ["ptq_static", "ptq_dynamic", "qat", "rtn_w4"])
    renderer = axes.figure.canvas.get_renderer()
    boxes = [t.get_window_extent(renderer) for t in axes.texts]
    assert len(boxes) == 4
    for i, a in enumerate(boxes):
        for b in boxes[i + 1 :]:
            assert not a.overlaps(b)


def nearest(box: Any, centres: Any) -> int:
    """Index of the display point nearest to a text's box (0 distance inside it)."""
    gaps = [
        math.hypot(max(box.x0 - x, 0, x - box.x1), max(box.y0 - y, 0, y - box.y1))
        for x, y in centres
    ]
    return gaps.index(min(gaps))


def drawn_figure(monkeypatch: pytest.MonkeyPatch, name: str, draw: Any) -> Any:
    """The figure a plot function draws, kept open instead of saved."""
    from quantbench.report import plots

    kept: dict[str, Any] = {}
    monkeypatch.setattr(plots, "save_figure", lambda fig, _dir, n: kept.setdefault(n, fig))
    draw()
    return kept[name]


def test_every_label_of_a_crowded_size_plot_sits_by_its_own_point(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The default methods crowd: three int8 kinds near 75 KB and two 4-bit kinds near 40 KB at
    accuracies within a point of each other, on an axis stretched by a 2-bit collapse."""
    from quantbench.report.plots import plot_accuracy_vs_size

    facts = write_run(tmp_path / "facts", DEFAULT_METHODS, rows=1200, rounds=4)
    records = build_metrics(facts.quality, facts.timing, CFG)["mlp"]
    fig = drawn_figure(
        monkeypatch, "accuracy_vs_size", lambda: plot_accuracy_vs_size(records, "unused", False)
    )
    ax = fig.axes[0]
    names = [r["method"] for r in records]
    labels = [t for t in ax.texts if t.get_text() in names]
    assert sorted(t.get_text() for t in labels) == sorted(names)
    points = [(r["size_kb"], r["accuracy"]["estimate"]) for r in records]
    centres = ax.transData.transform(points)
    renderer = fig.canvas.get_renderer()
    for label in labels:
        own = names.index(label.get_text())
        if label.arrow_patch is None:  # a label without a leader line sits by its own point
            assert nearest(label.get_window_extent(renderer), centres) == own, label.get_text()
        else:  # a leader line ends on its own point
            assert label.xy == points[own], label.get_text()
    assert sum(t.arrow_patch is None for t in labels) >= 3  # fp32, rtn_w2 and more stand free
    pyplot().close(fig)


def test_labels_of_a_tight_cluster_pair_with_their_own_points(axes: Any) -> None:
    """Points closer together than a label is wide: each label sits by its own point, or, where
    no place is nearer its own point than any other, a leader line ends on its own point."""
    xs = [5.0, 5.4, 5.0, 5.4, 4.6, 5.2, 4.8]
    ys = [5.0, 5.0, 5.3, 5.3, 5.15, 5.6, 4.7]
    names = ["gptq_w4", "rtn_w4", "ptq_dynamic", "ptq_static", "qat", "rtn_w2", "fp32"]
    labels = label_points(axes, xs, ys, names)
    renderer = axes.figure.canvas.get_renderer()
    centres = axes.transData.transform(list(zip(xs, ys, strict=True)))
    assert [t.get_text() for t in labels] == names
    led = 0
    for i, label in enumerate(labels):
        if nearest(label.get_window_extent(renderer), centres) != i:
            assert label.arrow_patch is not None, names[i]
            assert label.xy == (xs[i], ys[i]), names[i]
            led += 1
    assert 0 < led < len(names)  # the cluster needs some leader lines, not one per label


def test_torch_only_plots_say_so_and_the_latency_plot_draws_each_artifacts_accuracy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from quantbench.report import plots
    from quantbench.report.runtimes import rows_by_model

    # ptq_static's artifact is 30 rows worse than its torch model in every replicate
    methods = [replace(m, ort_broken=(30, 30)) for m in DEFAULT_METHODS if m.name == "ptq_static"]
    facts = write_run(tmp_path / "facts", methods, seeds=(42, 43), rows=300, rounds=4,
                      onnxruntime=True)  # fmt: skip
    pairs = [(p, json.loads(Path(p).read_text())) for p in facts.parity]
    rows = rows_by_model(build_metrics(facts.quality, facts.timing, CFG, parity=pairs))
    kept: dict[str, Any] = {}
    monkeypatch.setattr(plots, "save_figure", lambda fig, _dir, n: kept.setdefault(n, fig))
    write_plots(rows, str(tmp_path / "plots"))
    for name in ("accuracy_vs_size", "accuracy_diff"):
        assert "torch rows only" in kept[name].axes[0].get_title(), name
    ax = kept["accuracy_vs_latency"].axes[0]
    ort = next(r for r in rows["mlp"] if r["runtime"] == "onnxruntime" and r["method"] != "fp32")
    torch = next(r for r in rows["mlp"] if r["runtime"] == "torch" and r["method"] != "fp32")
    assert ort["accuracy"]["estimate"] == pytest.approx(torch["accuracy"]["estimate"] - 0.1)
    drawn = {round(float(y), 9) for line in ax.lines for y in line.get_ydata()}
    assert round(ort["accuracy"]["estimate"], 9) in drawn
    assert "ptq_static (ONNX Runtime)" in {t.get_text() for t in ax.texts}
    for fig in kept.values():
        pyplot().close(fig)
    # rows of torch alone: the titles carry no such note
    kept.clear()
    write_plots({"mlp": [r for r in rows["mlp"] if r["runtime"] == "torch"]}, str(tmp_path / "b"))
    assert "torch rows only" not in kept["accuracy_diff"].axes[0].get_title()
    for fig in kept.values():
        pyplot().close(fig)
