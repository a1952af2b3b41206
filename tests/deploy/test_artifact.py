"""Artifact assembly: preprocessing + model graph + head, the manifest, the integrity check."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from quantbench.data.encoding import encoding_of
from quantbench.deploy.artifact import assemble
from quantbench.deploy.manifest import FORMAT_VERSION, ArtifactError, read_manifest
from quantbench.deploy.parity import compare, labels_fingerprint, run_artifact
from tests.deploy_helpers import linear_graph, make_artifact


def test_artifact_runs_raw_rows_to_logits_probabilities_and_label(tmp_path: Path) -> None:
    made = make_artifact(tmp_path)
    sess = ort.InferenceSession(str(made.folder / "model.onnx"), providers=["CPUExecutionProvider"])
    assert [i.name for i in sess.get_inputs()] == ["numeric", "categorical"]
    assert [o.name for o in sess.get_outputs()] == ["logits", "probabilities", "label"]
    logits, probs, label = sess.run(None, made.rows.feeds())
    want = made.ds.x_test @ made.weight + made.bias
    np.testing.assert_allclose(logits, want, atol=1e-4, rtol=1e-4)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-6)
    assert label.dtype == np.int64 and (label == want.argmax(1)).all()
    record = compare(want, run_artifact(made.folder / "model.onnx", made.rows), made.ds.y_test)
    assert record["agreement"] == 1.0 and record["max_abs_logit_diff"] < 1e-4
    assert record["rows"] == len(made.ds.y_test)


def test_parity_record_holds_the_artifacts_prediction_per_row(tmp_path: Path) -> None:
    """The summary's ONNX Runtime rows are scored on these: the artifact's own classes, in row
    order, where they differ from torch's too, with the fingerprint of the labels."""
    made = make_artifact(tmp_path)
    artifact = run_artifact(made.folder / "model.onnx", made.rows)
    reference = artifact.copy()
    reference[0] = np.roll(reference[0], 1)  # torch "predicts" another class on row 0
    record = compare(reference, artifact, made.ds.y_test)
    assert record["predictions"] == artifact.argmax(1).tolist()
    assert record["agreeing_rows"] == len(made.ds.y_test) - 1
    hits = np.asarray(record["predictions"]) == made.ds.y_test
    assert record["artifact_accuracy"] == pytest.approx(hits.mean())
    assert record["labels_sha256"] == labels_fingerprint(made.ds.y_test)
    assert record["labels_sha256"] != labels_fingerprint(made.ds.y_test[::-1])


def test_manifest_names_inputs_vocabularies_reader_and_versions(tmp_path: Path) -> None:
    made = make_artifact(tmp_path)
    m = read_manifest(made.folder)
    assert m.numeric == ("Flow Duration", "Total Fwd Packets", "Packet Length Mean")
    assert m.categorical == ("proto", "state")
    assert m.vocabularies == {"proto": ("icmp", "tcp", "udp"), "state": ("CON", "FIN", "INT")}
    assert m.classes == ("video", "voip", "web")
    assert m.reader.label_column == "label" and "Flow ID" in m.reader.exclude_columns
    raw = m.raw
    assert raw["format_version"] == FORMAT_VERSION and raw["opset"] == 18
    assert raw["layers"] == [{"layer": "fc", "executes_as": "MatMul (fp32)", "fallback": None}]
    assert set(raw["versions"]) >= {"onnx", "onnxruntime", "torch", "quantbench"}
    assert raw["checkpoint_sha256"] == "0" * 64 and len(raw["onnx_sha256"]) == 64
    assert not list(made.folder.glob("*.tmp")) and not list(made.folder.glob(".*.tmp"))


def test_artifact_imports_each_opset_domain_once(tmp_path: Path) -> None:
    """Preprocessing and model graph both import ai.onnx; the merged artifact names it once,
    or ONNX Runtime's quantizer and other opset readers refuse the file."""
    made = make_artifact(tmp_path)
    imports = [(o.domain, o.version) for o in onnx.load(made.folder / "model.onnx").opset_import]
    domains = [d for d, _ in imports]
    assert len(domains) == len(set(domains)) and ("", 18) in imports


def test_tampered_onnx_and_other_format_version_are_refused(tmp_path: Path) -> None:
    made = make_artifact(tmp_path)
    path = made.folder / "model.onnx"
    model = onnx.load(path)
    model.graph.initializer[-1].raw_data = bytes(len(model.graph.initializer[-1].raw_data))
    onnx.save(model, path)
    with pytest.raises(ArtifactError, match=r"SHA-256 .* differs from the manifest"):
        read_manifest(made.folder)
    manifest = made.folder / "manifest.json"
    raw = json.loads(manifest.read_text())
    manifest.write_text(json.dumps({**raw, "format_version": FORMAT_VERSION + 1}))
    with pytest.raises(ArtifactError, match="format version 2, this quantbench reads version 1"):
        read_manifest(made.folder, verify=False)


def test_model_graph_with_wrong_width_or_names_is_refused(tmp_path: Path) -> None:
    made = make_artifact(tmp_path)
    enc = encoding_of(made.pre)
    wrong = linear_graph(np.zeros((enc.n_features + 1, 3), np.float32), np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="takes 10 features, the preprocessing makes 9"):
        assemble(enc, wrong.model, 3)
    renamed = linear_graph(np.zeros((enc.n_features, 3), np.float32), np.zeros(3, np.float32))
    renamed.model.graph.output[0].name = "out"
    renamed.model.graph.node[-1].output[0] = "out"
    with pytest.raises(ValueError, match="needs one input 'features' and an output 'logits'"):
        assemble(enc, renamed.model, 3)
