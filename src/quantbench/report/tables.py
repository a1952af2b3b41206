"""The summary table (CSV and Markdown) and the run facts, from the metrics records only.

Rows are grouped by model, each compared with its own FP32; within a model FP32 comes first,
then the methods by name. Every
figure printed is a field of a metrics record (see metrics.schema.json), rounded for display;
a figure that was not measured is left blank, never filled in.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from typing import Any

from quantbench.report.metrics import Metrics, throughput_batch
from quantbench.report.runtimes import runtime_note
from quantbench.report.stats import Interval
from quantbench.report.wording import REFERENCE, fixed, interval_text, ratio_text

Row = list[str]


def as_interval(block: dict[str, Any] | None) -> Interval | None:
    """An ``{estimate, ci, method}`` block of a record as an Interval (None stays None)."""
    if block is None:
        return None
    return Interval(block["estimate"], block["ci"][0], block["ci"][1], block["method"])


def columns(batch: int | None, models: int, runtimes: bool = False) -> list[str]:
    """The table's columns; with ``runtimes`` (rows of several runtimes) a runtime column and
    the speed-ups over FP32 in the row's own runtime (the main speed-up columns then read
    against torch FP32 for every row; the quality columns are each row's own, paired with FP32
    of its runtime)."""
    n = "N" if batch is None else str(batch)
    head = ["model"] if models > 1 else []
    extra = [
        "speed-up × vs FP32 of its runtime (batch 1) [CI]",
        f"speed-up × vs FP32 of its runtime (batch {n}) [CI]",
    ]
    return [
        *head,
        "method",
        *(["runtime"] if runtimes else []),
        "kind",
        "bits",
        "accuracy [CI]",
        "macro-F1 [CI]",
        f"Δ accuracy vs FP32{' of its runtime' if runtimes else ''}, pt [CI]",
        "Δ per replicate, pt (min … max)",
        "accuracy verdict",
        "size KB",
        "resident KB",
        "peak RSS MB",
        "compression ×",
        "weights quantized %",
        "latency p50 ms (batch 1)",
        "latency p95 ms (batch 1)",
        f"throughput samples/s (batch {n})",
        "speed-up × (batch 1) [CI]",
        "speed verdict (batch 1)",
        f"speed-up × (batch {n}) [CI]",
        f"speed verdict (batch {n})",
        "kernels",
        "execution",
        *(extra if runtimes else []),
    ]


def _accuracy_cells(r: Metrics) -> Row:
    vs = r["vs_fp32"]
    diff = as_interval(vs["accuracy_diff_pt"]) if vs else None
    return [
        interval_text(as_interval(r["accuracy"]), 4),
        interval_text(as_interval(r["macro_f1"]), 4),
        interval_text(diff, 2, null=0.0) if diff else "",
        replicate_range(vs),
        vs["accuracy_diff_pt"]["verdict"] if vs else REFERENCE,
    ]


def replicate_range(vs: dict[str, Any] | None) -> str:
    """``-20.50 … -0.30``: the smallest and largest per-replicate Δ; one value for one replicate,
    blank for FP32."""
    if vs is None:
        return ""
    lo, hi = vs["replicates"]["diff_pt_range"]
    if vs["replicates"]["of"] == 1:
        return fixed(lo, 2)
    return f"{fixed(lo, 2)} … {fixed(hi, 2)}"


def _speed_cells(r: Metrics) -> Row:
    lat, tput, speed = r["latency_ms"], r["throughput"], r["speedup"]
    cells = [
        fixed(lat["p50"], 3) if lat else "",
        fixed(lat["p95"], 3) if lat else "",
        fixed(tput["samples_per_s"], 0) if tput else "",
    ]
    for key in ("batch_1", "batch_n"):
        s = speed[key] if speed else None
        cells += [ratio_text(as_interval(s)), s["verdict"]] if s else ["", ""]
    return cells


def _coverage_cell(r: Metrics) -> str:
    """Share of the model's parameters stored quantized; blank for FP32 or when not recorded."""
    pct = r.get("weights_quantized_pct")
    return "" if pct is None else fixed(pct, 1)


def _runtime_cells(r: Metrics) -> Row:
    same = r.get("speedup_same_runtime") or {}
    return [
        *(ratio_text(as_interval(same[k])) if same.get(k) else "" for k in ("batch_1", "batch_n")),
    ]


def row(r: Metrics, with_model: bool, runtimes: bool = False) -> Row:
    """One record (or (method, runtime) row) as table cells, in ``columns`` order."""
    return [
        *([r["model"]] if with_model else []),
        r["method"],
        *([r["runtime"]] if runtimes else []),
        r["kind"],
        str(r["bits"]),
        *_accuracy_cells(r),
        fixed(r["size_kb"], 1),
        fixed(r["resident_kb"], 1),
        fixed(r["peak_rss_mb"], 1) if r["peak_rss_mb"] is not None else "",
        fixed(r["compression"], 2),
        _coverage_cell(r),
        *_speed_cells(r),
        ", ".join(r["kernels"]),
        r["execution"],
        *(_runtime_cells(r) if runtimes else []),
    ]


def _several_runtimes(records: Sequence[Metrics]) -> bool:
    return any(r.get("runtime", "torch") != "torch" for r in records)


def summary_table(by_model: dict[str, list[Metrics]]) -> tuple[list[str], list[Row]]:
    """Column names and rows of every model (a model column when there are several)."""
    records = [r for rs in by_model.values() for r in rs]
    multi, rt = len(by_model) > 1, _several_runtimes(records)
    head = columns(throughput_batch(records), len(by_model), rt)
    return head, [row(r, multi, rt) for r in records]


def render_csv(by_model: dict[str, list[Metrics]]) -> str:
    """The table as CSV, always with the model column."""
    records = [r for rs in by_model.values() for r in rs]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    rt = _several_runtimes(records)
    writer.writerow(columns(throughput_batch(records), 2, rt))
    writer.writerows(row(r, True, rt) for r in records)
    return buf.getvalue()


def _md_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_md_table(head: list[str], rows: Sequence[Row]) -> list[str]:
    lines = ["| " + " | ".join(_md_cell(c) for c in head) + " |"]
    lines.append("|" + "|".join("---" for _ in head) + "|")
    lines += ["| " + " | ".join(_md_cell(c) for c in r) + " |" for r in rows]
    return lines


def _distinct(values: Sequence[Any]) -> str:
    return " / ".join(sorted({str(v) for v in values if v is not None}))


def _features(timed: Sequence[Metrics]) -> str:
    """The ISA features of the timing machine(s), as cpu_facts names them."""
    found = {" ".join(r["cpu_facts"]["features"]) or "none listed" for r in timed if r["cpu_facts"]}
    return " / ".join(sorted(found))


def probe_text(probe: dict[str, Any] | None) -> str:
    """How the engine was chosen: the probe's figures for every engine, or that none ran."""
    if probe is None:
        return ""
    if not probe["probed"]:
        return f" (set in quantization.engine, no probe: {probe['reason']})"
    figures = []
    fastest_first = sorted(
        probe["engines"].items(),
        key=lambda item: (item[1]["status"] != "ok", item[1].get("time_vs_fastest", 0), item[0]),
    )
    for name, e in fastest_first:
        if e["status"] != "ok":
            figures.append(f"{name} failed")
        elif "samples_per_s" in e:
            figures.append(f"{name} {fixed(e['samples_per_s'], 0)}/s")
        else:
            figures.append(f"{name} {fixed(e['median_ms'], 4)} ms")
    return (
        f" (probed, {probe['objective']} at {probe['rows']} row(s) per call: "
        f"{', '.join(figures)}; {probe['reason']})"
    )


def run_facts(records: Sequence[Metrics]) -> str:
    """One line: CPU and its features, torch, threads, engine and how it was chosen, batch,
    replicates, confidence, timing rounds."""
    timed = [r for r in records if r["timing"]]
    engine = _distinct([r["engine"] for r in records]) or "none (no int8 kernels ran)"
    probes = {}
    for r in records:
        if r["engine_probe"] is not None:
            probes.setdefault(r["model"], r["engine_probe"])
    probe = "".join(
        (f" [{m}]" if len(probes) > 1 else "") + probe_text(p) for m, p in probes.items()
    )
    seeds = _distinct([", ".join(map(str, r["seeds"])) for r in records])
    reps = _distinct([len(r["seeds"]) for r in records])
    features = _features(timed)
    line = (
        f"Measured on {_distinct([r['cpu'] for r in timed]) or 'no timed model'} "
        f"({_distinct([r['device'] for r in records])}"
        f"{'; ISA features ' + features if features else ''}), "
        f"torch {_distinct([r['torch_version'] for r in records])}, "
        f"{_distinct([r['threads'] for r in timed]) or 'no'} thread(s), "
        f"int8 engine {engine}{probe}; "
        f"latency at batch 1, throughput at batch {throughput_batch(records) or 'N (not timed)'}; "
        f"{reps} replicate(s) (seeds {seeds}), confidence level "
        f"{_distinct([r['confidence'] for r in records])}, "
        f"{_distinct([r['timing']['rounds'] for r in timed]) or 'no'} interleaved timing rounds."
    )
    mixed = [k for k in ("cpu", "torch_version", "threads") if len({r[k] for r in timed}) > 1]
    if mixed:
        line += f" Note: {', '.join(mixed)} differ between methods, so ratios compare unlike runs."
    return line


def how_to_read(noise: float) -> str:
    """The reading note under the table; ``noise`` is the speed band ``report.speed_noise``."""
    band = (
        "; a speed ratio reads faster or slower only when its whole interval also clears the "
        f"timing-noise band of report.speed_noise = {noise:g}, from 1/(1 + {noise:g}) to "
        f"1 + {noise:g}"
        if noise > 0
        else ""
    )
    return (
        "How to read it: accuracy and macro-F1 are means over the replicates with confidence "
        "intervals (Student's t over replicates; with a single replicate, exact Clopper-Pearson "
        "or a bootstrap over the test rows). Δ accuracy is paired with FP32 of the same "
        "replicate on the same test rows, in percentage points; next to its interval, the "
        "range of the replicates' own differences. Each replicate is also tested on its own "
        "(exact McNemar, Holm-corrected over the replicates): where some are significantly "
        'worse or better although the interval contains zero, the verdict counts them ("worse '
        'in k of R replicates"), and where they disagree in direction it reads "inconsistent '
        'across replicates". Speed-ups are FP32 time / method time from interleaved rounds in '
        "one process on one replicate's checkpoints only (geometric mean of the "
        "per-round ratios, bootstrap interval over rounds), each batch size on model copies "
        "that only ever run that size; latency and throughput are absolute figures of the same "
        "runs. A difference whose interval contains zero (one for a speed ratio) "
        'reads "no measurable change" or "no measurable difference", never better, worse, '
        f"faster or slower{band}; where as many of its timing rounds lie beyond that on the "
        'other side, a speed ratio reads "inconsistent across timing rounds". Resident KB: the '
        "bytes the loaded model's weights occupy, "
        "ready to run (torch rows only: what an ONNX Runtime session holds is measured by "
        "`benchmarks/runtime_bench.py --resident`); size KB: the method's checkpoint (the "
        "artifact's `model.onnx` size is in the deployable-artifacts section); peak RSS MB: "
        "the high-water mark of the method's timing process "
        "(torch, the data, FP32 and the method with their rotating copies), so it has no "
        "FP32 row of its own. "
        f"Every figure is a field of `metrics/{{model}}/{{method}}.json`."
    )


def render_results(by_model: dict[str, list[Metrics]]) -> list[str]:
    """The results part of summary.md: run facts, the table(s), how to read them."""
    records = [r for rs in by_model.values() for r in rs]
    batch, rt = throughput_batch(records), _several_runtimes(records)
    lines = ["## Results", "", run_facts(records), ""]
    for model, rs in by_model.items():
        if len(by_model) > 1:
            lines += [f"### Model `{model}`", ""]
        lines += [*render_md_table(columns(batch, 1, rt), [row(r, False, rt) for r in rs]), ""]
    noises = {
        s["noise"] for r in records for s in (r.get("speedup") or {}).values() if s and "noise" in s
    }
    note = runtime_note(records)
    return [*lines, how_to_read(max(noises, default=0.0)), *(["", note] if note else [])]
