"""The metrics record of one model and method: every figure the report prints, with its interval.

Built from the facts (quality and timing JSON) only; written to ``{metrics_dir}/{model}/
{method}.json`` and checked against ``workflow/schemas/metrics.schema.json``, which documents
every field. Quality figures come from scikit-learn on labels and predictions; intervals,
paired differences and McNemar tests from ``quality``, ``replicates`` and ``stats``, speed-ups
from ``order``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from quantbench.report.facts import REFERENCE, ModelFacts, Scored, Timed, load_schema, validate
from quantbench.report.pareto import add_pareto
from quantbench.report.quality import (
    accuracy_difference,
    accuracy_interval,
    macro_f1_difference,
    macro_f1_interval,
)
from quantbench.report.replicates import replicate_evidence
from quantbench.report.speed import (
    median_of,
    reference_speedups,
    runtimes_block,
    side_figures,
    speedups,
)
from quantbench.report.stats import ReportConfig, mcnemar
from quantbench.report.wording import accuracy_verdict

Metrics = dict[str, Any]
FORMAT, VERSION = "quantbench-metrics", 5
_INFO_KEYS = ("layer_error", "calibration_rows", "quantize_seconds", "history")


def classification(y: np.ndarray, p: np.ndarray, class_names: Sequence[str]) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1/support and confusion matrix."""
    from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

    labels = list(range(len(class_names)))
    prec, rec, f1, support = precision_recall_fscore_support(y, p, labels=labels, zero_division=0)
    return {
        "accuracy": float(accuracy_score(y, p)),
        "macro_f1": float(np.mean(f1)),
        "per_class": {
            c: {
                "precision": float(prec[i]),
                "recall": float(rec[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, c in enumerate(class_names)
        },
        "confusion_matrix": confusion_matrix(y, p, labels=labels).tolist(),
    }


Figures = dict[tuple[str, str], dict[str, Any]]


def all_classification(facts: ModelFacts) -> Figures:
    """scikit-learn's figures of every (method, replicate) of the model, computed once."""
    names = facts.class_names
    return {key: classification(s.labels, s.predictions, names) for key, s in facts.quality.items()}


def replicate_entry(s: Scored, figs: Figures) -> dict[str, Any]:
    """One replicate's figures, and its paired comparison with FP32 of the same replicate."""
    r, fig = s.record, figs[(s.method, s.replicate)]
    entry = {
        "replicate": s.replicate,
        "seed": r["seed"],
        "test_rows": r["test_rows"],
        "test_rows_sha256": r["test_rows_sha256"],
        **fig,
        "size_bytes": r["size_bytes"],
        "payload_bytes": r["payload_bytes"],
        "vs_fp32": None,
    }
    if s.method != REFERENCE:
        ref = figs[(REFERENCE, s.replicate)]
        entry["vs_fp32"] = {
            "accuracy_diff_pt": 100 * (fig["accuracy"] - ref["accuracy"]),
            "macro_f1_diff_pt": 100 * (fig["macro_f1"] - ref["macro_f1"]),
        }
    entry |= {k: r["info"][k] for k in _INFO_KEYS if k in r["info"]}
    return entry


def vs_reference(
    facts: ModelFacts, method: str, reps: Sequence[Metrics], cfg: ReportConfig
) -> Metrics:
    """Paired differences to FP32 over the replicates, with intervals, tests and the verdict."""
    runs, refs = facts.scored(method), facts.scored(REFERENCE)
    ref_ok, run_ok = [r.correct for r in refs], [s.correct for s in runs]
    tests = [mcnemar([r], [s]) for r, s in zip(ref_ok, run_ok, strict=True)]
    acc = accuracy_difference(ref_ok, run_ok, cfg.confidence)
    evidence = replicate_evidence(
        tests, [e["vs_fp32"]["accuracy_diff_pt"] for e in reps], cfg.confidence
    )
    for entry, test, p, sign in zip(reps, tests, evidence.p_holm, evidence.signs, strict=True):
        entry["vs_fp32"]["mcnemar"] = {**test.to_json(), "p_holm": p, "direction": sign}
    f1 = macro_f1_difference(
        [e["vs_fp32"]["macro_f1_diff_pt"] for e in reps],
        [s.labels for s in runs],
        [r.predictions for r in refs],
        [s.predictions for s in runs],
        len(facts.class_names),
        cfg,
    )
    return {
        "accuracy_diff_pt": {
            **acc.to_json(),
            "verdict": accuracy_verdict(acc, evidence=evidence),
        },
        "replicates": evidence.to_json(),
        "accuracy_drop_upper_pt": -acc.lo,
        "macro_f1_diff_pt": f1.to_json(),
        "mcnemar": mcnemar(ref_ok, run_ok).to_json(),
    }


def quality_block(facts: ModelFacts, method: str, cfg: ReportConfig, figs: Figures) -> Metrics:
    """Means with intervals over replicates, pooled per-class figures, the paired comparison."""
    runs, names = facts.scored(method), facts.class_names
    reps = [replicate_entry(s, figs) for s in runs]
    labels, preds = [s.labels for s in runs], [s.predictions for s in runs]
    acc = accuracy_interval([s.correct for s in runs], cfg.confidence)
    f1 = macro_f1_interval([e["macro_f1"] for e in reps], labels, preds, len(names), cfg)
    pooled = classification(np.concatenate(labels), np.concatenate(preds), names)
    vs = None if method == REFERENCE else vs_reference(facts, method, reps, cfg)
    block = {
        "seeds": [e["seed"] for e in reps],
        "replicates": reps,
        "accuracy": acc.to_json(),
        "macro_f1": f1.to_json(),
        "class_names": names,
        "per_class": pooled["per_class"],
        "confusion_matrix": pooled["confusion_matrix"],
        "vs_fp32": vs,
    }
    layers = mean_layer_error(reps)
    if layers:
        block["layer_error"] = layers
    return block


def mean_layer_error(reps: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per-layer output error, mean over replicates, with the held-out range over replicates."""
    per_layer: dict[str, list[dict[str, Any]]] = {}
    for e in reps:
        for item in e.get("layer_error", []):
            per_layer.setdefault(item["layer"], []).append(item)
    return [
        {
            "layer": layer,
            "calib": float(np.mean([i["calib"] for i in items])),
            "heldout": float(np.mean([i["heldout"] for i in items])),
            "heldout_min": float(min(i["heldout"] for i in items)),
            "heldout_max": float(max(i["heldout"] for i in items)),
            "replicates": len(items),
        }
        for layer, items in per_layer.items()
    ]


# ---------------------------------------------------------------------------------------------
# Timing


def timing_block(facts: ModelFacts, method: str, cfg: ReportConfig) -> dict[str, Any]:
    """Absolute figures, speed-ups and timing facts; FP32's from every job of the model."""
    jobs = [facts.timing[m] for m in sorted(facts.timing)]
    if method != REFERENCE:
        jobs = [facts.timing[method]]
    if not jobs:
        keys = ("latency_ms", "throughput", "speedup", "threads", "cpu", "cpu_facts")
        return dict.fromkeys((*keys, "peak_rss_bytes", "peak_rss_mb", "timing"))
    side = "reference" if method == REFERENCE else "candidate"
    figures = [side_figures(t, side) for t in jobs]
    first = jobs[0].record
    batch = int(first["settings"]["batch_size"])
    peak = None if method == REFERENCE else first["memory"]["peak_rss_bytes"]
    return {
        "latency_ms": median_of([f[0] for f in figures]),
        "throughput": median_of([f[1] for f in figures]),
        "speedup": reference_speedups(batch) if method == REFERENCE else speedups(jobs[0], cfg),
        "threads": first["threads"],
        "cpu": first["cpu"],
        "cpu_facts": first["cpu_facts"],
        "peak_rss_bytes": peak,
        "peak_rss_mb": None if peak is None else peak / 2**20,
        "timing": {
            "replicate": first["replicate"],
            "rounds": len(first["rounds"]),
            "settings": dict(first["settings"]),
            "jobs": len(jobs),
            "reference": None if method == REFERENCE else _reference_side(jobs[0]),
        },
    }


def _reference_side(t: Timed) -> dict[str, Any]:
    """FP32's absolute figures in this method's timing job (the other side of its ratios)."""
    latency, throughput = side_figures(t, "reference")
    return {"latency_ms": latency, "throughput": throughput}


# ---------------------------------------------------------------------------------------------
# The record


def engine_probe(record: dict[str, Any] | None) -> dict[str, Any] | None:
    """The model's engine record in short (every engine's figures, the pick and why)."""
    if record is None:
        return None
    keep = ("status", "median_ms", "samples_per_s", "time_vs_fastest", "stage", "error")
    settings = record["settings"] or {}
    objective = settings.get("objective", "throughput")
    rows = settings.get("batch_size", 1) if objective == "throughput" else 1
    return {
        "engine": record["engine"],
        "requested": record["requested"],
        "probed": bool(record["probed"]),
        "reason": record["reason"],
        "objective": objective,
        "rows": int(rows),
        "probe_seconds": float(record.get("probe_seconds", 0.0)),
        "engines": {
            name: {k: v for k, v in entry.items() if k in keep}
            for name, entry in record["engines"].items()
        },
    }


def method_record(facts: ModelFacts, method: str, cfg: ReportConfig, figs: Figures) -> Metrics:
    """The metrics record of one method (FP32 included) of one model."""
    first = facts.scored(method)[0].record  # the timed replicate: its checkpoint is reported
    ref_size = facts.scored(REFERENCE)[0].record["size_bytes"]
    cov = first["info"].get("coverage")  # the structure is the same in every replicate
    return {
        "format": FORMAT,
        "version": VERSION,
        "model": facts.model,
        "method": method,
        "kind": first["kind"],
        "params": first["params"],
        "bits": first["bits"],
        "confidence": cfg.confidence,
        **quality_block(facts, method, cfg, figs),
        "size_bytes": first["size_bytes"],
        "payload_bytes": first["payload_bytes"],
        "resident_weight_bytes": first["resident_weight_bytes"],
        "resident_kb": first["resident_weight_bytes"] / 1024,
        "size_kb": first["size_bytes"] / 1024,
        "compression": ref_size / first["size_bytes"],
        "kernels": list(first["kernels"]),
        "execution": first["execution"],
        "engine": first["engine"],
        "engine_probe": engine_probe(facts.engine),
        "device": first["device"],
        "torch_version": first["torch_version"],
        "coverage": cov,
        "weights_quantized_pct": None if cov is None else 100 * cov["weights_quantized"],
        **timing_block(facts, method, cfg),
        "runtimes": runtimes_block(facts, method, cfg),
        "pareto": None,
    }


def build_records(facts: ModelFacts, cfg: ReportConfig) -> list[Metrics]:
    """Every method's record of one model, FP32 first, then methods by name."""
    figs = all_classification(facts)
    records = [method_record(facts, m, cfg, figs) for m in facts.methods]
    add_pareto(facts, records, cfg)
    return records


def validate_records(records: Sequence[Metrics]) -> None:
    """Check every record against metrics.schema.json (the schema documents each field)."""
    schema = load_schema("metrics")
    for r in records:
        validate(r, f"metrics of {r['model']}/{r['method']}", schema, "metrics")


def throughput_batch(records: Sequence[Metrics]) -> int | None:
    """The one throughput batch size of the run (mixed batch sizes are not comparable)."""
    batches = {r["throughput"]["batch"] for r in records if r["throughput"]}
    if len(batches) > 1:
        seen = ", ".join(
            f"{r['model']}/{r['method']}: {r['throughput']['batch']}"
            for r in records
            if r["throughput"] and r["method"] != REFERENCE
        )
        raise ValueError(
            f"timing field 'settings.batch_size' differs between timing files ({seen}); "
            "rerun the time jobs so that every method is timed at the same batch"
        )
    return next(iter(batches)) if batches else None
