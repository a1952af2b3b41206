"""Reading quality and timing facts: schema checks, grouping and the pairing rules."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from quantbench.report.facts import load_facts
from tests.report_facts import Method, write_run

METHODS = [
    Method("ptq_static", "ptq_static", broken=4, fixed=2, speed_n=2.0),
    Method("rtn_w4", "rtn", bits=4, broken=3, fixed=3, layer_error=True),
]


@pytest.fixture
def run(tmp_path: Path) -> Any:
    return write_run(tmp_path, METHODS, seeds=(42, 43), rows=300, rounds=4)


def edit(path: str, change: Callable[[dict[str, Any]], Any]) -> None:
    record = json.loads(Path(path).read_text(encoding="utf-8"))
    change(record)
    Path(path).write_text(json.dumps(record), encoding="utf-8")


def quality_path(run: Any, rep: str, method: str) -> str:
    return next(p for p in run.quality if p.endswith(f"{rep}/{method}.json"))


def test_groups_by_model_with_fp32_first_and_the_timed_replicate_first(tmp_path: Path) -> None:
    run = write_run(tmp_path, METHODS, seeds=(42, 43), rows=300, rounds=4)
    other = write_run(tmp_path / "b", METHODS[:1], seeds=(42,), rows=300, rounds=4, model="wide")
    for p in run.timing:  # time the second replicate: it must come first
        edit(p, lambda r: r.update(replicate="seed43"))
    models = load_facts(run.quality + other.quality, run.timing + other.timing)
    assert [m.model for m in models] == ["mlp", "wide"]
    mlp = models[0]
    assert mlp.methods == ["fp32", "ptq_static", "rtn_w4"]
    assert mlp.replicates == ["seed43", "seed42"]
    assert mlp.timed_replicate == "seed43"
    assert [s.replicate for s in mlp.scored("rtn_w4")] == ["seed43", "seed42"]
    assert mlp.class_names == ["video", "voip", "web"]
    assert models[1].methods == ["fp32", "ptq_static"]


def test_long_arrays_are_checked_element_by_element(run: Any) -> None:
    path = quality_path(run, "seed43", "ptq_static")
    edit(path, lambda r: r["predictions"].__setitem__(250, 3))
    with pytest.raises(ValueError, match=r"ptq_static\.json: quality field 'predictions\.250'"):
        load_facts(run.quality, run.timing)
    edit(path, lambda r: r["predictions"].__setitem__(250, 1.0))
    with pytest.raises(ValueError, match=r"'predictions\.250': 1\.0 is not a class index"):
        load_facts(run.quality, run.timing)


def test_timing_arrays_are_checked_element_by_element(run: Any) -> None:
    edit(run.timing[0], lambda r: r["rounds"][2]["candidate"]["pass_ms"].__setitem__(1, -1.0))
    with pytest.raises(ValueError, match=r"timing field 'rounds\.2\.candidate\.pass_ms\.1'"):
        load_facts(run.quality, run.timing)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda r: r.pop("test_rows_sha256"), "test_rows_sha256"),
        (lambda r: r.update(surprise=1), "surprise"),
        (lambda r: r.update(format="other"), "format"),
        (lambda r: r.update(labels=r["labels"][:-1]), "labels"),
        (lambda r: r["info"].update(layer_error=[{"layer": "net.0"}]), "info.layer_error.0.calib"),
    ],
)
def test_quality_schema_names_the_field(run: Any, change: Any, field: str) -> None:
    path = quality_path(run, "seed42", "rtn_w4")
    edit(path, change)
    with pytest.raises(ValueError, match=rf"rtn_w4\.json: quality field '{field}'"):
        load_facts(run.quality, run.timing)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda r: r["settings"].pop("rounds"), "settings.rounds"),
        (lambda r: r["rounds"][0].update(order=["reference"]), "rounds.0.order"),
        (lambda r: r["rounds"].pop(), "rounds"),  # 3 rounds where settings say 4
    ],
)
def test_timing_schema_names_the_field(run: Any, change: Any, field: str) -> None:
    edit(run.timing[0], change)
    with pytest.raises(ValueError, match=rf"ptq_static\.json: timing field '{field}'"):
        load_facts(run.quality, run.timing)


def test_unreadable_file_names_the_file(run: Any) -> None:
    Path(run.quality[0]).write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match=r"fp32\.json: not a readable quality JSON"):
        load_facts(run.quality, run.timing)


def test_different_test_rows_are_refused(run: Any) -> None:
    edit(quality_path(run, "seed43", "rtn_w4"), lambda r: r.update(test_rows_sha256="0" * 64))
    with pytest.raises(ValueError, match=r"seed43/rtn_w4\.json: .*'test_rows_sha256' differs"):
        load_facts(run.quality, run.timing)


def test_different_labels_are_refused_even_with_the_same_digest(run: Any) -> None:
    def swap(r: dict[str, Any]) -> None:
        r["labels"][0], r["labels"][1] = (r["labels"][0] + 1) % 3, r["labels"][1]

    edit(quality_path(run, "seed42", "ptq_static"), swap)
    with pytest.raises(ValueError, match="scored on different test rows"):
        load_facts(run.quality, run.timing)


def test_different_class_names_are_refused(run: Any) -> None:
    edit(quality_path(run, "seed43", "fp32"), lambda r: r.update(class_names=["a", "b", "c"]))
    with pytest.raises(ValueError, match=r"seed43/fp32\.json: quality field 'class_names'"):
        load_facts(run.quality, run.timing)


def test_missing_fp32_of_a_replicate_is_refused(run: Any) -> None:
    files = [p for p in run.quality if not p.endswith("seed43/fp32.json")]
    with pytest.raises(ValueError, match=r"no fp32 quality file for mlp/seed43"):
        load_facts(files, run.timing)


def test_missing_replicate_of_a_method_is_refused(run: Any) -> None:
    files = [p for p in run.quality if not p.endswith("seed43/rtn_w4.json")]
    with pytest.raises(ValueError, match=r"no quality file for mlp/seed43/rtn_w4"):
        load_facts(files, run.timing)


def test_duplicates_are_refused(run: Any) -> None:
    with pytest.raises(ValueError, match=r"quality of mlp/seed42/fp32 also in"):
        load_facts([*run.quality, run.quality[0]], run.timing)
    with pytest.raises(ValueError, match=r"timing of mlp/ptq_static also in"):
        load_facts(run.quality, [*run.timing, run.timing[0]])


def test_every_method_needs_its_timing(run: Any) -> None:
    with pytest.raises(ValueError, match=r"no timing file for mlp/rtn_w4"):
        load_facts(run.quality, run.timing[:1])


def test_timing_without_quality_is_refused(run: Any) -> None:
    files = [p for p in run.quality if "rtn_w4" not in p]
    with pytest.raises(ValueError, match=r"timing of mlp/rtn_w4, which has no quality files"):
        load_facts(files, run.timing)


def test_timing_of_an_unscored_replicate_is_refused(run: Any) -> None:
    edit(run.timing[1], lambda r: r.update(replicate="seed99"))
    with pytest.raises(ValueError, match=r"timing field 'replicate': 'seed99' is not a scored"):
        load_facts(run.quality, run.timing)


def test_methods_timed_on_different_replicates_are_refused(run: Any) -> None:
    edit(run.timing[1], lambda r: r.update(replicate="seed43"))
    with pytest.raises(ValueError, match=r"timed different replicates \(seed42, seed43\)"):
        load_facts(run.quality, run.timing)


def test_no_quality_files() -> None:
    with pytest.raises(ValueError, match="no quality files given"):
        load_facts([], [])
