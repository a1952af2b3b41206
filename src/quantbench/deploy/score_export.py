"""The score step with ``deploy.export``: score a variant, export its artifact, check its parity.

One process does the three with what it loaded once (the checkpoint's module, the dataset, the
test logits): the torch scoring of :mod:`quantbench.measure.score`, the export of
:mod:`quantbench.deploy.artifact` and the parity check of :mod:`quantbench.deploy.parity`, which
compares the artifact with the very logits the quality record's predictions came from. The four
files are written to temporary paths and renamed into place only once all three parts succeeded,
the quality record last; a failure leaves none of them, so the variant is redone whole. The log
says what was written and each part's wall seconds (the ``part seconds:`` line).
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path

from quantbench.core.files import atomic_path, json_text
from quantbench.measure.score import PartTimer, load_and_score, quality_record

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class DeployPaths:
    """What the export and parity parts read and write beside the score step's own files."""

    encoding: str  # the replicate's fitted preprocessing as numbers (data/{rep}/encoding.json)
    card: str  # its data card (the reader rules the manifest carries)
    raw_test: str  # the test rows as read (data/{rep}/test_raw.npz)
    onnx_out: str
    manifest_out: str
    parity_out: str
    accuracy_level: int | None = None  # MatMulNBits' (rtn, gptq: int4); None: the default

    def __post_init__(self) -> None:
        if Path(self.onnx_out).parent != Path(self.manifest_out).parent:
            raise ValueError("model.onnx and manifest.json must share one artifact folder")


def run_score_export(
    checkpoint_path: str,
    dataset_path: str,
    info_path: str | None,
    model: str,
    replicate: str,
    quality_out: str,
    deploy: DeployPaths,
) -> None:
    """Score with torch, export, check parity; then rename the artifact, the parity record and
    the quality record into place, in that order."""
    outs = [Path(p) for p in (quality_out, deploy.parity_out, deploy.onnx_out, deploy.manifest_out)]
    for path in outs:  # no earlier file may outlive a failure beside new ones
        path.unlink(missing_ok=True)
    timer = PartTimer()
    with timer("score"):
        loaded, ds, facts, logits = load_and_score(checkpoint_path, dataset_path, info_path)
    identity = {"model": model, "replicate": replicate}
    with contextlib.ExitStack() as stack:
        # renamed in reverse order on success: manifest, model.onnx, parity, quality record
        tmp_quality, tmp_parity, tmp_onnx, tmp_manifest = (
            stack.enter_context(atomic_path(p)) for p in outs
        )
        with timer("export"):  # importing the exporter (torch.onnx, onnx) is part of its cost
            from quantbench.deploy.artifact import build_artifact, serialize

            onnx_model, manifest = build_artifact(
                loaded, checkpoint_path, deploy.encoding, deploy.card, identity,
                accuracy_level=deploy.accuracy_level,
            )  # fmt: skip
            manifest = serialize(onnx_model, manifest, tmp_onnx, tmp_manifest)
        with timer("parity"):
            from quantbench.data.rawrows import load_raw_rows
            from quantbench.deploy.parity import check_rows, parity_record

            rows = load_raw_rows(deploy.raw_test)
            check_rows(rows, ds, manifest, deploy.raw_test)
            folder = str(Path(deploy.onnx_out).parent)
            parity = parity_record(manifest, tmp_onnx, folder, logits, ds.y_test, rows)
            tmp_parity.write_text(json_text(parity), encoding="utf-8")
        tmp_quality.write_text(json_text(quality_record(model, replicate, facts)), "utf-8")
    log.info("scored with torch: %s", quality_out)
    log.info("exported: %s, %s", deploy.onnx_out, deploy.manifest_out)
    log.info(
        "parity: %s (%d of %d rows agree, largest |logit difference| %.3g)",
        deploy.parity_out, parity["agreeing_rows"], parity["rows"], parity["max_abs_logit_diff"],
    )  # fmt: skip
    log.info(timer.line())
