"""Plots: drawn from the records, with something to say when there is nothing to draw."""

from __future__ import annotations

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
