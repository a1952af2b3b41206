"""The parity check: an artifact in ONNX Runtime against its torch model, on the same test rows.

The artifact is fed the replicate's test rows as raw features (``data/{rep}/test_raw.npz``), so
its in-graph preprocessing is checked too; the torch model gets the same rows as the workflow
scored them (``dataset.npz``'s ``x_test``). The record holds facts only: how many rows, the
share whose predicted class agrees, the largest |logit difference|, each side's accuracy, the
artifact's predicted class per test row (in the test split's order, with a fingerprint of the
labels it was scored against: the summary's ONNX Runtime rows take their quality from them), the
session settings and versions. Thresholds are applied by the summary (``report.parity``).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np

from quantbench.core.files import write_json
from quantbench.data.dataset import Dataset, load_dataset
from quantbench.data.rawrows import RawRows, load_raw_rows
from quantbench.deploy.manifest import MODEL_FILE, read_manifest, tool_versions
from quantbench.measure.ort import open_session, session_options

PARITY_FORMAT = "quantbench-parity"
PARITY_VERSION = 2  # 2: the artifact's predictions and labels_sha256
BATCH = 4096


def run_artifact(onnx_path: str | Path, rows: RawRows) -> np.ndarray:
    """The artifact's logits for raw rows, in batches."""
    sess = open_session(onnx_path)
    feeds = rows.feeds()
    out = []
    for i in range(0, len(rows), BATCH):
        batch = {k: v[i : i + BATCH] for k, v in feeds.items()}
        out.append(sess.run(["logits"], batch)[0])
    n_classes = sess.get_outputs()[0].shape[1]
    return np.concatenate(out) if out else np.zeros((0, n_classes), np.float32)


def torch_logits(checkpoint_path: str | Path, ds: Dataset) -> np.ndarray:
    """The torch model's logits on the test rows, on the path it is scored on (loading sets its
    engine and refuses a checkpoint trained on other features or classes)."""
    import torch

    from quantbench.quant.loader import load_model

    torch.set_num_threads(1)
    x = ds.x_test
    module = load_model(checkpoint_path, expect=ds).module
    with torch.inference_mode():
        parts = [
            module(torch.from_numpy(x[i : i + BATCH])).float() for i in range(0, len(x), BATCH)
        ]
    return torch.cat(parts).numpy()


def labels_fingerprint(labels: np.ndarray) -> str:
    """sha256 of the labels as int64, in row order: the summary pairs a parity record with the
    quality records of the same rows by it."""
    return hashlib.sha256(np.ascontiguousarray(labels, dtype=np.int64).tobytes()).hexdigest()


def compare(reference: np.ndarray, artifact: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Agreement of the predicted classes, the largest |logit difference|, both accuracies, and
    the artifact's predicted class per row (with the fingerprint of the labels)."""
    if reference.shape != artifact.shape or len(labels) != len(reference):
        raise ValueError(
            f"torch logits {reference.shape} and artifact logits {artifact.shape} differ in "
            "shape; re-export the artifact from this checkpoint"
        )
    ref_pred, art_pred = reference.argmax(1), artifact.argmax(1)
    diff = np.abs(reference.astype(np.float64) - artifact.astype(np.float64))
    n = len(labels)
    return {
        "rows": int(n),
        "agreeing_rows": int(np.count_nonzero(ref_pred == art_pred)),
        "agreement": float(np.mean(ref_pred == art_pred)) if n else 1.0,
        "max_abs_logit_diff": float(diff.max()) if n else 0.0,
        "mean_abs_logit_diff": float(diff.mean()) if n else 0.0,
        "artifact_accuracy": float(np.mean(art_pred == labels)) if n else 0.0,
        "torch_accuracy": float(np.mean(ref_pred == labels)) if n else 0.0,
        "nonfinite_logits": int(np.count_nonzero(~np.isfinite(artifact))),
        "labels_sha256": labels_fingerprint(labels),
        "predictions": art_pred.astype(np.int64).tolist(),
    }


def _rows_fingerprint(rows: RawRows) -> str:
    digest = hashlib.sha256(np.ascontiguousarray(rows.numeric, dtype=np.float32).tobytes())
    digest.update("\x1f".join(rows.categorical.ravel().tolist()).encode())
    return digest.hexdigest()


def check_rows(rows: RawRows, ds: Dataset, manifest: dict[str, Any], raw_test_path: str) -> None:
    """The raw rows must be the dataset's test rows, in the artifact's input columns."""
    if len(rows) != len(ds.y_test):
        raise ValueError(
            f"{raw_test_path}: {len(rows)} rows, the dataset's test split has {len(ds.y_test)}; "
            "rerun the preprocess step"
        )
    inputs = manifest["inputs"]
    if rows.numeric_columns != tuple(inputs["numeric"]) or rows.categorical_columns != tuple(
        inputs["categorical"]
    ):
        raise ValueError(
            f"{raw_test_path}: its columns differ from the artifact's inputs; re-export it"
        )


def parity_record(
    manifest: dict[str, Any],
    onnx_path: str | Path,
    artifact_dir: str,
    reference: np.ndarray,
    labels: np.ndarray,
    rows: RawRows,
) -> dict[str, Any]:
    """The parity record of the artifact ``onnx_path`` (described by ``manifest``, the JSON as
    written, and stored in ``artifact_dir``) against the torch logits ``reference``."""
    artifact = run_artifact(onnx_path, rows)
    _, settings = session_options()
    return {
        "format": PARITY_FORMAT,
        "version": PARITY_VERSION,
        "model": manifest["model"]["name"],
        "replicate": manifest["replicate"],
        "method": manifest["method"]["name"],
        "kind": manifest["method"]["kind"],
        "artifact": str(Path(artifact_dir)),
        "onnx_sha256": manifest["onnx_sha256"],
        "checkpoint_sha256": manifest["checkpoint_sha256"],
        "raw_rows_sha256": _rows_fingerprint(rows),
        "fallbacks": [x for x in manifest["layers"] if x.get("fallback")],
        "onnx_bytes": Path(onnx_path).stat().st_size,
        **compare(reference, artifact, labels),
        "session": settings,
        "versions": tool_versions(),
    }


def run_parity(
    artifact_dir: str, checkpoint_path: str, dataset_path: str, raw_test_path: str, out: str
) -> None:
    """Check one written artifact on its own: score it and its torch model, write the facts
    (the workflow checks in the score step, :mod:`quantbench.deploy.score_export`)."""
    manifest = read_manifest(artifact_dir).raw
    ds, rows = load_dataset(dataset_path), load_raw_rows(raw_test_path)
    check_rows(rows, ds, manifest, raw_test_path)
    reference = torch_logits(checkpoint_path, ds)
    onnx_path = Path(artifact_dir) / MODEL_FILE
    write_json(out, parity_record(manifest, onnx_path, artifact_dir, reference, ds.y_test, rows))
