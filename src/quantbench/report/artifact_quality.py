"""Each artifact's own quality in ONNX Runtime, from the parity records' predicted classes.

The parity check scores every artifact on its replicate's test rows and records its predicted
class per row (``predictions``, in the test split's order, with ``labels_sha256``). Here those
become a model's facts of their own: the replicates and labels of torch's quality records, the
artifacts' predictions in place of the torch models'. An ONNX Runtime row's quality block
(``runtimes.onnxruntime.quality`` in the metrics) is then computed exactly like torch's, by
:func:`quantbench.report.metrics.quality_block`: accuracy and macro-F1 with intervals over the
replicates, and Δ accuracy paired row by row with **FP32's artifact in ONNX Runtime** (same
runtime, same replicate, same rows), with each replicate's McNemar test (Holm) and the verdict.

A parity record is refused, in one line, when such a row needs it and it holds no predictions
(a record older than version 2) or was scored on other rows than the quality records.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import numpy as np

from quantbench.report.facts import REFERENCE, ModelFacts, Scored
from quantbench.report.metrics import Metrics, all_classification, quality_block
from quantbench.report.speed import RUNTIME
from quantbench.report.stats import ReportConfig

PREDICTIONS_VERSION = 2  # the first parity record version that holds the predictions
Parity = tuple[str, dict[str, Any]]  # a parity record and the path it was read from
_RERUN = "rerun the workflow so that the artifacts are checked again"


def labels_fingerprint(labels: np.ndarray) -> str:
    """sha256 of the labels as int64 in row order, as the parity check records it."""
    return hashlib.sha256(np.ascontiguousarray(labels, dtype=np.int64).tobytes()).hexdigest()


def _index(parity: Sequence[Parity], model: str) -> dict[tuple[str, str], Parity]:
    """The model's parity records by (method, replicate); a record passed twice is refused."""
    out: dict[tuple[str, str], Parity] = {}
    for path, record in parity:
        if record.get("model") != model:
            continue
        key = (str(record["method"]), str(record["replicate"]))
        if key in out:
            raise ValueError(
                f"{path}: parity record of {model}/{key[1]}/{key[0]} also in {out[key][0]}; "
                "pass each parity record once"
            )
        out[key] = (path, record)
    return out


def artifact_predictions(path: str, record: dict[str, Any], torch: Scored, k: int) -> np.ndarray:
    """The artifact's predicted classes, checked against the quality record ``torch`` of the
    same model, replicate and method (same rows, same labels)."""
    version = record.get("version")
    if not isinstance(version, int) or version < PREDICTIONS_VERSION or "predictions" not in record:
        raise ValueError(
            f"{path}: parity record (version {version}) without the artifact's predictions, "
            f"which its ONNX Runtime row is scored on (version {PREDICTIONS_VERSION} or later); "
            f"{_RERUN}"
        )
    values, n = record["predictions"], int(torch.labels.size)
    if not isinstance(values, list) or len(values) != n or record.get("rows") != n:
        size = len(values) if isinstance(values, list) else "no list of"
        raise ValueError(
            f"{path}: parity record of {size} predictions and {record.get('rows')} rows, the "
            f"quality record {torch.path} of {n} test rows; {_RERUN}"
        )
    if record.get("labels_sha256") != labels_fingerprint(torch.labels):
        raise ValueError(
            f"{path}: parity field 'labels_sha256' differs from the labels of {torch.path}, so "
            f"the two were scored on different test rows; {_RERUN}"
        )
    preds = np.asarray(values)
    if preds.dtype.kind not in "iu" or (n and not (preds.min() >= 0 and preds.max() < k)):
        raise ValueError(
            f"{path}: parity field 'predictions' holds a value that is not a class index "
            f"0..{k - 1}; {_RERUN}"
        )
    return preds.astype(np.int64)


def artifact_facts(
    facts: ModelFacts, methods: Sequence[str], parity: Sequence[Parity]
) -> ModelFacts:
    """The model's facts for ``methods`` (FP32 first) with each artifact's predictions in place
    of its torch model's; every (method, replicate) needs its parity record."""
    found = _index(parity, facts.model)
    out = ModelFacts(facts.model, list(facts.replicates), list(methods))
    k = len(facts.class_names)
    for method in methods:
        for rep in facts.replicates:
            if (method, rep) not in found:
                raise ValueError(
                    f"no parity record for {facts.model}/{rep}/{method}: its ONNX Runtime row "
                    "is scored on the artifact's own predictions from the parity check "
                    f"(results/parity/{facts.model}/{rep}/{method}.json); rerun the workflow"
                )
            path, record = found[(method, rep)]
            torch = facts.quality[(method, rep)]
            preds = artifact_predictions(path, record, torch, k)
            # torch's facts of the replicate (seed, rows), none of its model's own (layer error)
            out.quality[(method, rep)] = Scored(
                path, {**torch.record, "info": {}}, torch.labels, preds
            )
    return out


def _artifact_block(art: ModelFacts, method: str, cfg: ReportConfig, figs: Any) -> Metrics:
    """The quality block of one artifact; its replicates name their parity record instead of
    the checkpoint's sizes."""
    block = quality_block(art, method, cfg, figs)
    for entry, s in zip(block["replicates"], art.scored(method), strict=True):
        del entry["size_bytes"], entry["payload_bytes"]
        entry["parity_record"] = s.path
    return block


def add_artifact_quality(
    records: Sequence[Metrics], facts: ModelFacts, parity: Sequence[Parity], cfg: ReportConfig
) -> None:
    """``runtimes.onnxruntime.quality`` of every record of the model timed in ONNX Runtime."""
    timed = [r for r in records if r["runtimes"][RUNTIME] is not None]
    if not timed:
        return
    methods = [REFERENCE, *(r["method"] for r in timed if r["method"] != REFERENCE)]
    art = artifact_facts(facts, methods, parity)
    figs = all_classification(art)
    for r in timed:
        r["runtimes"][RUNTIME]["quality"] = _artifact_block(art, r["method"], cfg, figs)
