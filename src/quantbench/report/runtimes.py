"""(method, runtime) rows: the summary table, the plots and the recommendation over both axes.

The metrics records describe each method in torch and carry its ONNX Runtime figures under
``runtimes.onnxruntime`` (:mod:`quantbench.report.speed`). Here each record becomes one row per
runtime it was timed in. All rows of a model share one speed reference, torch FP32, so that they
can be ranked against each other: an ONNX Runtime row's ``speedup`` is its speed-up over torch
FP32 from the same timing job, and ``speedup_same_runtime`` the one over FP32 in ONNX Runtime.
A row's quality is that of what it runs: a torch row's is its torch model's, an ONNX Runtime
row's its artifact's own (``runtimes.onnxruntime.quality``, see
:mod:`quantbench.report.artifact_quality`), with Δ accuracy paired with FP32 of the same
runtime.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from quantbench.report.metrics import Metrics

TORCH, ORT = "torch", "onnxruntime"
RUNTIME_NAMES = {TORCH: "torch", ORT: "ONNX Runtime"}


def _ort_kernels(ort: dict[str, Any]) -> list[str]:
    """``com.microsoft:MatMulNBits ×3 (accuracy_level 4, bits 4, block_size 32)``, per op."""
    out = []
    for op, n in ort["quantized_ops"].items():
        name = op.rsplit(":", 1)[-1]
        attrs = ", ".join(
            f"{k.split('.', 1)[1]} {'/'.join(map(str, v))}"
            for k, v in ort["kernel_attributes"].items()
            if k.split(".", 1)[0] == name
        )
        out.append(f"{op} ×{n}" + (f" ({attrs})" if attrs else ""))
    return out or ["FP32 kernels only"]


# The fields of a record that describe its torch model's quality on the test rows: an ONNX
# Runtime row takes them from its artifact's quality block instead (layer_error, measured on
# the torch model's layers, it has none of).
QUALITY_FIELDS = ("seeds", "replicates", "accuracy", "macro_f1", "class_names", "per_class",
                  "confusion_matrix", "vs_fp32", "layer_error")  # fmt: skip


def _ort_row(r: Metrics) -> Metrics:
    ort = r["runtimes"][ORT]
    kernels = _ort_kernels(ort)
    quality = ort["quality"]
    return {
        **{k: v for k, v in r.items() if k not in QUALITY_FIELDS},
        **{k: quality[k] for k in QUALITY_FIELDS if k in quality},
        "runtime": ORT,
        "latency_ms": ort["latency_ms"],
        "throughput": ort["throughput"],
        "speedup": ort["speedup_vs_torch_fp32"],
        "speedup_same_runtime": ort["speedup"],
        "kernels": kernels,
        "execution": f"ONNX Runtime {ort['version']}, {'; '.join(kernels)}",
        "engine": None,
        "artifact": ort["artifact"],
        "pareto": None,  # the Pareto front is drawn over torch's rows
        # what torch's loaded module holds says nothing of an ONNX Runtime session, and the
        # workflow does not measure a session's resident bytes (runtime_bench.py --resident)
        "resident_kb": None,
        "resident_weight_bytes": None,
    }


def runtime_rows(records: Sequence[Metrics]) -> list[Metrics]:
    """Torch's rows (the records, FP32 first), then the ONNX Runtime rows of the methods that
    were timed there, FP32 first."""
    rows = [{**r, "runtime": TORCH, "speedup_same_runtime": r["speedup"]} for r in records]
    return rows + [_ort_row(r) for r in records if (r.get("runtimes") or {}).get(ORT)]


def rows_by_model(by_model: dict[str, list[Metrics]]) -> dict[str, list[Metrics]]:
    return {model: runtime_rows(records) for model, records in by_model.items()}


def has_runtimes(rows: dict[str, list[Metrics]]) -> bool:
    """Whether any row is of another runtime than torch."""
    return any(r["runtime"] != TORCH for rs in rows.values() for r in rs)


def row_name(r: Metrics, several: bool = False) -> str:
    """``FP32``/`` `method` ``, with ``in ONNX Runtime`` for that runtime's rows, and ``in
    torch`` for torch's where ``several`` runtimes are named beside each other."""
    name = "FP32" if r["method"] == "fp32" else f"`{r['method']}`"
    runtime = r.get("runtime", TORCH)
    if runtime == TORCH:
        return f"{name} in torch" if several else name
    return f"{name} in {RUNTIME_NAMES[runtime]}"


def runtime_note(records: Sequence[Metrics]) -> str:
    """The reading note on runtimes under the table (empty when only torch was timed)."""
    ort = [r["runtimes"][ORT] for r in records if r.get("runtime") == ORT]
    if not ort:
        return ""
    versions = ", ".join(sorted({o["version"] for o in ort}))
    opts = ort[0]["session_options"]
    return (
        f"Runtimes: torch (eager) and ONNX Runtime {versions} ({', '.join(opts['providers'])}; "
        f"{opts['intra_op_num_threads']} intra-op and {opts['inter_op_num_threads']} inter-op "
        f"thread, {opts['execution_mode']} execution, {opts['graph_optimization_level']}), "
        "timed in the same process and interleaved rounds as torch. Like for like, the ONNX "
        "Runtime sessions run each artifact's model graph on the rows torch is fed (already "
        "scaled and encoded) and return logits; the whole artifact, raw rows through its "
        "in-graph preprocessing to every output, is timed apart (end-to-end figures in the "
        "deployable-artifacts section). On every row, the speed-up "
        "columns read against torch FP32 of the same timing job (one reference for all rows, "
        'the cross-runtime question); "vs FP32 of its runtime" against FP32\'s artifact in '
        "the same job. The kernels column of an ONNX Runtime row lists the integer kernels in "
        "the graph ONNX Runtime ran after its optimizations. Accuracy, macro-F1, Δ accuracy and "
        "the verdicts of an ONNX Runtime row are its artifact's own, from its predicted classes "
        "on the same test rows (the parity check's), with Δ accuracy paired row by row with "
        "FP32's artifact in ONNX Runtime, replicate by replicate; a torch row's are its torch "
        "model's, paired with torch FP32. The parity check holds each artifact's predictions "
        "to its torch model's."
    )
