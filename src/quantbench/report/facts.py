"""Reading the facts: quality and timing JSON, checked against their schemas and paired.

A quality file holds one model's predictions on one replicate's test rows; a timing file one
method's interleaved rounds against FP32. Every file is checked against its schema under
``workflow/schemas/`` (the long per-row and per-call arrays are checked element by element with
plain Python, which is faster than the validator and says the same). Then the files are grouped
by model and checked for pairing: every method has one file per replicate, FP32 included; the
files of one model and replicate were scored on the same rows (equal ``test_rows_sha256`` and
labels) and every file of a model has the same class names; each method has one timing file.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

SCHEMA_DIR = Path(__file__).resolve().parents[3] / "workflow" / "schemas"
REFERENCE = "fp32"
ORT_SIDES = ("ort_reference", "ort_candidate")  # a timing job's ONNX Runtime sides
_RESCORE = "delete it and rerun the workflow so that it is scored again"


@dataclass(frozen=True)
class Scored:
    """One quality file: its facts, and the labels and predictions as arrays."""

    path: str
    record: dict[str, Any]
    labels: np.ndarray
    predictions: np.ndarray

    @property
    def method(self) -> str:
        return str(self.record["method"])

    @property
    def replicate(self) -> str:
        return str(self.record["replicate"])

    @property
    def correct(self) -> np.ndarray:
        return self.labels == self.predictions


@dataclass(frozen=True)
class Timed:
    """One timing file."""

    path: str
    record: dict[str, Any]


@dataclass
class ModelFacts:
    """Every file of one model: replicates timed one first, methods FP32 first then by name."""

    model: str
    replicates: list[str] = field(default_factory=list)
    methods: list[str] = field(default_factory=list)
    quality: dict[tuple[str, str], Scored] = field(default_factory=dict)
    timing: dict[str, Timed] = field(default_factory=dict)
    engine: dict[str, Any] | None = None  # the model's int8 engine record, when it has one

    def scored(self, method: str) -> list[Scored]:
        """The method's quality files in replicate order."""
        return [self.quality[(method, rep)] for rep in self.replicates]

    @property
    def class_names(self) -> list[str]:
        return list(self.quality[(REFERENCE, self.replicates[0])].record["class_names"])

    @property
    def timed_replicate(self) -> str | None:
        reps = {t.record["replicate"] for t in self.timing.values()}
        return next(iter(reps)) if reps else None


# ---------------------------------------------------------------------------------------------
# Schema checks


def _reject_constant(name: str) -> float:
    raise ValueError(f"non-finite number {name}")


def read_json_strict(path: str | os.PathLike[str], what: str) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"), parse_constant=_reject_constant)
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"{path}: not a readable {what} JSON ({exc}); {_RESCORE}") from exc


def load_schema(name: str) -> dict[str, Any]:
    return json.loads((SCHEMA_DIR / f"{name}.schema.json").read_text(encoding="utf-8"))


def _field_of(error: Any) -> str:
    """Dotted path of the field a jsonschema error is about (the missing key for 'required')."""
    path = [str(p) for p in error.absolute_path]
    if error.validator == "required" and isinstance(error.instance, dict):
        path += [k for k in error.validator_value if k not in error.instance][:1]
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = error.schema.get("properties", {}) if isinstance(error.schema, dict) else {}
        path += sorted(k for k in error.instance if k not in known)[:1]
    return ".".join(path) or "(top level)"


def validate(record: Any, path: str, schema: dict[str, Any], what: str) -> None:
    """Raise ValueError naming ``path`` and the field when ``record`` breaks ``schema``."""
    import jsonschema

    errors = list(jsonschema.Draft202012Validator(schema).iter_errors(record))
    if errors:
        best = jsonschema.exceptions.best_match(errors)
        raise ValueError(f"{path}: {what} field '{_field_of(best)}': {best.message}")


def _thin(values: Any) -> Any:
    """A long list cut to its first element, for the schema check of its shape."""
    return values[:1] if isinstance(values, list) else values


def _int_array(values: list[Any], path: str, name: str, classes: int) -> np.ndarray:
    for i, v in enumerate(values):
        if type(v) is not int or not 0 <= v < classes:
            raise ValueError(
                f"{path}: quality field '{name}.{i}': {v!r} is not a class index "
                f"0..{classes - 1}; {_RESCORE}"
            )
    return np.asarray(values, dtype=np.int64)


def _times(values: list[Any], path: str, name: str) -> None:
    for i, v in enumerate(values):
        if type(v) not in (int, float) or not (math.isfinite(v) and v > 0):
            raise ValueError(
                f"{path}: timing field '{name}.{i}': {v!r} is not a positive time in ms; "
                "delete the file and rerun the workflow so that it is timed again"
            )


def load_quality(path: str, schema: dict[str, Any]) -> Scored:
    record = read_json_strict(path, "quality")
    long = ("labels", "predictions")
    thin = {k: _thin(v) for k, v in record.items()} if isinstance(record, dict) else record
    validate(thin, path, schema, "quality")
    n, classes = record["test_rows"], len(record["class_names"])
    arrays = {}
    for name in long:
        if len(record[name]) != n:
            raise ValueError(
                f"{path}: quality field '{name}': {len(record[name])} entries, test_rows says "
                f"{n}; {_RESCORE}"
            )
        arrays[name] = _int_array(record[name], path, name, classes)
    facts = {k: v for k, v in record.items() if k not in long}
    return Scored(path, facts, arrays["labels"], arrays["predictions"])


def _thin_rounds(record: dict[str, Any]) -> dict[str, Any]:
    rounds = record.get("rounds")
    if not isinstance(rounds, list):
        return record
    thin_rounds = []
    for r in rounds:
        if isinstance(r, dict):
            r = {
                k: {a: _thin(b) for a, b in v.items()} if isinstance(v, dict) else v
                for k, v in r.items()
            }
        thin_rounds.append(r)
    return {**record, "rounds": thin_rounds}


def load_timing(path: str, schema: dict[str, Any]) -> Timed:
    record = read_json_strict(path, "timing")
    validate(_thin_rounds(record) if isinstance(record, dict) else record, path, schema, "timing")
    ort = "onnxruntime" in record.get("runtimes", [])
    for i, r in enumerate(record["rounds"]):
        if ort != all(s in r for s in ORT_SIDES) or ort != ("onnxruntime" in record):
            raise ValueError(
                f"{path}: timing field 'rounds.{i}': the ONNX Runtime sides and the record's "
                "runtimes disagree; delete the file and rerun the workflow to time it again"
            )
        for side in ("reference", "candidate", *(s for s in ORT_SIDES if s in r)):
            for name in ("latency_ms", "pass_ms"):
                _times(r[side][name], path, f"rounds.{i}.{side}.{name}")
    if (
        record["reference"]["method"] != REFERENCE
        or record["candidate"]["method"] != record["method"]
    ):
        raise ValueError(
            f"{path}: timing field 'reference.method'/'candidate.method': expected fp32 against "
            f"{record['method']!r}; delete the file and rerun the workflow to time it again"
        )
    return Timed(path, record)


# ---------------------------------------------------------------------------------------------
# Grouping and pairing


def _method_order(methods: Sequence[str]) -> list[str]:
    """FP32 first, then the other methods sorted by name."""
    return [m for m in methods if m == REFERENCE] + sorted(m for m in methods if m != REFERENCE)


def group(scored: Sequence[Scored], timed: Sequence[Timed]) -> list[ModelFacts]:
    """Files grouped by model, models in order of first appearance; duplicates refused."""
    models: dict[str, ModelFacts] = {}
    for s in scored:
        facts = models.setdefault(s.record["model"], ModelFacts(s.record["model"]))
        key = (s.method, s.replicate)
        if key in facts.quality:
            raise ValueError(
                f"{s.path}: quality of {facts.model}/{s.replicate}/{s.method} also in "
                f"{facts.quality[key].path}; pass each quality file once"
            )
        facts.quality[key] = s
        if s.replicate not in facts.replicates:
            facts.replicates.append(s.replicate)
    for t in timed:
        model, method = t.record["model"], t.record["method"]
        if model not in models:
            raise ValueError(
                f"{t.path}: timing of model {model!r}, which has no quality files; pass its "
                "quality files too or drop the timing file"
            )
        if method in models[model].timing:
            raise ValueError(
                f"{t.path}: timing of {model}/{method} also in "
                f"{models[model].timing[method].path}; pass each timing file once"
            )
        models[model].timing[method] = t
    for facts in models.values():
        facts.methods = _method_order({m for m, _ in facts.quality})
    return list(models.values())


def check_model(facts: ModelFacts) -> None:
    """Refuse unpaired files with one line naming the file and the fix."""
    for rep in facts.replicates:
        if (REFERENCE, rep) not in facts.quality:
            raise ValueError(
                f"no fp32 quality file for {facts.model}/{rep}: every replicate needs FP32 "
                f"scored (results/quality/{facts.model}/{rep}/fp32.json) to pair the methods with"
            )
    for method in facts.methods:
        for rep in facts.replicates:
            if (method, rep) not in facts.quality:
                raise ValueError(
                    f"no quality file for {facts.model}/{rep}/{method}: every method needs one "
                    f"per replicate (results/quality/{facts.model}/{rep}/{method}.json)"
                )
            _check_pair(facts.quality[(REFERENCE, rep)], facts.quality[(method, rep)])
    _check_class_names(facts)
    _check_timing(facts)


def _check_pair(ref: Scored, other: Scored) -> None:
    if other.record["test_rows_sha256"] != ref.record["test_rows_sha256"] or not np.array_equal(
        other.labels, ref.labels
    ):
        raise ValueError(
            f"{other.path}: quality field 'test_rows_sha256' differs from {ref.path}, so the two "
            "were scored on different test rows; delete both and rerun the workflow"
        )


def _check_class_names(facts: ModelFacts) -> None:
    names = facts.class_names
    for s in facts.quality.values():
        if list(s.record["class_names"]) != names:
            first = facts.quality[(REFERENCE, facts.replicates[0])].path
            raise ValueError(
                f"{s.path}: quality field 'class_names' {s.record['class_names']} differs from "
                f"{names} in {first}; delete both and rerun the workflow"
            )


def _check_timing(facts: ModelFacts) -> None:
    for method in facts.methods[1:]:
        if method not in facts.timing:
            raise ValueError(
                f"no timing file for {facts.model}/{method}: every method is timed against FP32 "
                f"(results/timing/{facts.model}/{method}.json)"
            )
    for method, t in facts.timing.items():
        if method not in facts.methods[1:]:
            raise ValueError(
                f"{t.path}: timing of {facts.model}/{method}, which has no quality files; pass "
                "its quality files too or drop the timing file"
            )
        rep, rounds = t.record["replicate"], t.record["rounds"]
        if rep not in facts.replicates:
            raise ValueError(
                f"{t.path}: timing field 'replicate': {rep!r} is not a scored replicate of "
                f"{facts.model} ({', '.join(facts.replicates)}); rerun the workflow"
            )
        if len(rounds) != t.record["settings"]["rounds"]:
            raise ValueError(
                f"{t.path}: timing field 'rounds': {len(rounds)} rounds, settings.rounds says "
                f"{t.record['settings']['rounds']}; delete it and rerun the workflow"
            )
    reps = sorted({t.record["replicate"] for t in facts.timing.values()})
    if len(reps) > 1:
        raise ValueError(
            f"timing files of {facts.model} timed different replicates ({', '.join(reps)}); "
            "time every method on the same (first) replicate"
        )
    if reps:  # the timed replicate first: its checkpoint sizes are the ones reported
        facts.replicates = [reps[0], *(r for r in facts.replicates if r != reps[0])]


ENGINE_FORMAT = "quantbench-engine"


def load_engine(path: str) -> dict[str, Any]:
    """An engine record (the probe_engine step's ``engine.json``), checked for what is used."""
    record = read_json_strict(path, "engine")
    keys = ("model", "engine", "requested", "probed", "reason", "settings", "engines")
    if not isinstance(record, dict) or record.get("format") != ENGINE_FORMAT:
        raise ValueError(f"{path}: not a quantbench engine record; delete it and rerun")
    missing = [k for k in keys if k not in record]
    if missing:
        raise ValueError(f"{path}: engine record lacks {', '.join(missing)}; delete it and rerun")
    return record


def load_facts(
    quality_paths: Sequence[str],
    timing_paths: Sequence[str],
    engine_paths: Sequence[str] = (),
) -> list[ModelFacts]:
    """Read, validate, group and pair every quality and timing file (and engine records)."""
    if not quality_paths:
        raise ValueError("summarize: no quality files given; the score step writes them")
    q_schema, t_schema = load_schema("quality"), load_schema("timing")
    scored = [load_quality(str(p), q_schema) for p in quality_paths]
    timed = [load_timing(str(p), t_schema) for p in timing_paths]
    models = group(scored, timed)
    for facts in models:
        check_model(facts)
    by_name = {f.model: f for f in models}
    for p in engine_paths:
        record = load_engine(str(p))
        if record["model"] not in by_name:
            raise ValueError(
                f"{p}: engine record of model {record['model']!r}, which has no quality files; "
                "drop it or pass that model's files too"
            )
        by_name[record["model"]].engine = record
    return models
