"""Deployable artifacts in the summary: parity verdicts, the artifact to deploy, figures files.

The score jobs record parity facts (``results/parity/{model}/{rep}/{method}.json``: agreement of
the predicted class with torch, the largest |logit difference|). Here they are judged against
``report.parity``: an FP32 artifact must agree on every row (``fp32_agreement``) within
``fp32_max_logit_diff``; a quantized one on ``quantized_agreement`` of the rows; every replicate
must pass. A method whose artifact fails is flagged in summary.md and summary.csv and is never
recommended; the recommendation names the artifact to deploy (the first replicate's, the one
that is timed). Each artifact's folder gets a ``figures.json``: its method's metrics record and
its own parity facts and verdict.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from quantbench.core.files import read_json
from quantbench.report.facts import REFERENCE
from quantbench.report.metrics import Metrics
from quantbench.report.stats import from_section
from quantbench.report.wording import fixed

PARITY_FORMAT = "quantbench-parity"
FIGURES_FORMAT = "quantbench-artifact-figures"


@dataclass(frozen=True)
class ParityConfig:
    """The config's ``report.parity`` block."""

    fp32_agreement: float = 1.0
    fp32_max_logit_diff: float = 1e-4
    quantized_agreement: float = 0.995

    def __post_init__(self) -> None:
        for name in ("fp32_agreement", "quantized_agreement"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"report.parity.{name} must lie in [0, 1]")
        if not self.fp32_max_logit_diff > 0:
            raise ValueError("report.parity.fp32_max_logit_diff must be > 0")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ParityConfig:
        return from_section(cls, values, "report.parity")


def load_parity(paths: Sequence[str]) -> list[dict[str, Any]]:
    """Parity records in the order given; a ValueError names a file that is not one."""
    records = []
    for path in paths:
        record = read_json(path)
        if record.get("format") != PARITY_FORMAT:
            raise ValueError(
                f"{path}: not a parity record; rerun the workflow (its score jobs write it)"
            )
        records.append(record)
    return records


def problems(record: dict[str, Any], cfg: ParityConfig) -> list[str]:
    """Why one artifact fails its threshold (empty when it passes)."""
    out = []
    pct = f"{100 * record['agreement']:.2f} %"
    if record.get("nonfinite_logits"):
        out.append(f"{record['nonfinite_logits']} non-finite logits")
    if record["kind"] == REFERENCE:
        if record["agreement"] < cfg.fp32_agreement:
            out.append(f"class agreement {pct} < {100 * cfg.fp32_agreement:g} %")
        if not record["max_abs_logit_diff"] <= cfg.fp32_max_logit_diff:
            out.append(
                f"max |Δlogit| {record['max_abs_logit_diff']:.3g} > {cfg.fp32_max_logit_diff:g}"
            )
    elif record["agreement"] < cfg.quantized_agreement:
        out.append(f"class agreement {pct} < {100 * cfg.quantized_agreement:g} %")
    return out


def judge(records: Sequence[dict[str, Any]], cfg: ParityConfig) -> dict[tuple[str, str], dict]:
    """Per (model, method): pass over every replicate, the problems, the artifact to deploy."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for r in records:
        entry = out.setdefault(
            (r["model"], r["method"]),
            {"ok": True, "problems": [], "artifact": f"{r['artifact']}/model.onnx",
             "replicates": [], "fallbacks": r.get("fallbacks", []),
             "onnx_bytes": r.get("onnx_bytes")},
        )  # fmt: skip
        found = problems(r, cfg)
        entry["ok"] = entry["ok"] and not found
        entry["problems"] += [f"{r['replicate']}: {p}" for p in found]
        entry["replicates"].append(
            {k: r[k] for k in ("replicate", "agreement", "max_abs_logit_diff", "rows",
                               "artifact_accuracy", "torch_accuracy")}
        )  # fmt: skip
    return out


def deployable(
    by_model: dict[str, list[Metrics]], verdicts: dict[tuple[str, str], dict]
) -> tuple[dict[str, list[Metrics]], dict[str, list[dict[str, str]]]]:
    """Records without the methods whose artifact fails parity (FP32 stays), and why each left."""
    kept, left = {}, {}
    for model, records in by_model.items():
        failing = [
            r for r in records[1:] if not verdicts.get((model, r["method"]), {"ok": True})["ok"]
        ]
        kept[model] = [r for r in records if r not in failing]
        left[model] = [
            {
                "method": r["method"],
                "runtime": r.get("runtime", "torch"),
                "reason": "its ONNX artifact fails parity with torch: "
                + "; ".join(verdicts[(model, r["method"])]["problems"]),
            }
            for r in failing
        ]
    return kept, left


def add_artifacts(
    rec: dict[str, Any], verdicts: dict[tuple[str, str], dict], left: dict[str, list[dict]]
) -> dict[str, Any]:
    """The recommendation with each model's artifact path and parity verdict added."""
    for m in rec["models"]:
        verdict = verdicts.get((m["model"], m["choice"]))
        m["ruled_out"] = [*left.get(m["model"], []), *m["ruled_out"]]
        m["artifact"] = verdict["artifact"] if verdict and verdict["ok"] else None
        m["parity"] = verdict
    return rec


def render_parity(
    verdicts: dict[tuple[str, str], dict], cfg: ParityConfig, rec: dict[str, Any]
) -> list[str]:
    """The Markdown section: the artifact to deploy per model, then one row per method."""
    lines = ["## Deployable ONNX artifacts", ""]
    for m in rec["models"]:
        where = m["artifact"] or "none: the chosen method's artifact fails parity"
        runtime = m.get("runtime", "torch")
        lines.append(
            f"- model `{m['model']}`, method `{m['choice']}` (timed in {runtime}): deploy `{where}`"
        )
    lines += [
        "",
        f"Parity with torch on every replicate's test rows: FP32 artifacts agree on "
        f"≥ {100 * cfg.fp32_agreement:g} % of rows with max |Δlogit| ≤ "
        f"{cfg.fp32_max_logit_diff:g}; quantized ones on ≥ {100 * cfg.quantized_agreement:g} %.",
        "",
        "| model | method | agreement (lowest) | max abs Δlogit | fallbacks | model.onnx KB "
        "| parity | artifact |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for (model, method), v in verdicts.items():
        low = min(x["agreement"] for x in v["replicates"])
        diff = max(x["max_abs_logit_diff"] for x in v["replicates"])
        kb = None if v.get("onnx_bytes") is None else v["onnx_bytes"] / 1024
        status = "ok" if v["ok"] else "**BELOW THRESHOLD**: " + "; ".join(v["problems"])
        lines.append(
            f"| {model} | {method} | {100 * low:.2f} % | {diff:.3g} | {len(v['fallbacks'])} | "
            f"{fixed(kb, 1)} | {status} | `{v['artifact']}` |"
        )
    return lines


def render_end_to_end(rows: dict[str, list[dict[str, Any]]]) -> list[str]:
    """The Markdown lines: each artifact timed whole (raw rows in, every output out)."""
    timed = [
        (model, r) for model, rs in rows.items() for r in rs
        if r.get("runtime") == "onnxruntime" and (r.get("runtimes") or {}).get("onnxruntime")
        and r["runtimes"]["onnxruntime"].get("end_to_end")
    ]  # fmt: skip
    if not timed:
        return []
    lines = [
        "",
        "End to end in ONNX Runtime, as deployed: raw feature rows through the artifact's "
        "preprocessing, logits, probabilities and label fetched (the timed replicate's "
        "artifact, timed on its own after the paired rounds; the table's ONNX Runtime speed "
        "figures time the model graph alone, like for like with torch).",
        "",
        "| model | method | batch 1, median ms | rows per pass | per pass, median ms | rows/s |",
        "|---|---|---|---|---|---|",
    ]
    for model, r in timed:
        e = r["runtimes"]["onnxruntime"]["end_to_end"]
        rate = e["batch_size"] / (e["pass_ms_p50"] / 1000)
        lines.append(
            f"| {model} | {r['method']} | {e['latency_ms_p50']:.4f} | {e['batch_size']} | "
            f"{e['pass_ms_p50']:.3f} | {rate:,.0f} |"
        )
    return lines


def add_csv_columns(text: str, verdicts: dict[tuple[str, str], dict]) -> str:
    """summary.csv with ``parity`` (ok / below threshold) and ``artifact`` columns appended."""
    rows = list(csv.reader(io.StringIO(text)))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow([*rows[0], "parity", "artifact"])
    for row in rows[1:]:
        v = verdicts.get((row[0], row[1]))
        status = "" if v is None else ("ok" if v["ok"] else "below threshold")
        writer.writerow([*row, status, "" if v is None else v["artifact"]])
    return buf.getvalue()


def figures_records(
    paths: Sequence[str],
    by_model: dict[str, list[Metrics]],
    parity: Sequence[dict[str, Any]],
    verdicts: dict[tuple[str, str], dict],
) -> dict[str, dict[str, Any]]:
    """``deploy/{model}/{rep}/{method}/figures.json`` path -> its content."""
    metrics = {(r["model"], r["method"]): r for rs in by_model.values() for r in rs}
    # the parity facts without the per-row predictions (the metrics record holds their figures)
    facts = {
        (r["model"], r["replicate"], r["method"]): {
            k: v for k, v in r.items() if k != "predictions"
        }
        for r in parity
    }
    out = {}
    for path in paths:
        model, rep, method = Path(path).parts[-4:-1]
        verdict = verdicts.get((model, method))
        out[path] = {
            "format": FIGURES_FORMAT,
            "version": 1,
            "model": model,
            "replicate": rep,
            "method": method,
            "metrics": metrics[(model, method)],
            "parity": facts.get((model, rep, method)),
            "parity_ok": None if verdict is None else verdict["ok"],
            "recommendable": verdict is None or verdict["ok"],
        }
    return out
