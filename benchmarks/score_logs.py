"""The parts of each score job, read from its log (``logs/score/{model}/{rep}/{method}.log``).

A score job logs one ``part seconds:`` line (:class:`quantbench.measure.score.PartTimer`): the
wall seconds of torch scoring (``score``: data and checkpoint loads included) and, with
``deploy.export``, of the export (``export``: importing the exporter included) and of the parity
check (``parity``). The Python start, the Snakemake script preamble and ``import torch`` come
before the first part; the job's whole wall time is in its benchmark TSV.
"""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

_PARTS = re.compile(r"part seconds: (.*)$", re.MULTILINE)
PARTS = ("score", "export", "parity")


def part_seconds(logs: Path) -> dict[str, dict[str, float]]:
    """Per score job (``model/rep/method``): part -> wall seconds, from its last ``part seconds``
    line. Jobs whose log has no such line (a failed job) are left out."""
    out = {}
    for log in sorted((logs / "score").rglob("*.log")):
        found = _PARTS.findall(log.read_text(encoding="utf-8"))
        if found:
            pairs = (item.split("=", 1) for item in found[-1].split())
            job = log.relative_to(logs / "score").with_suffix("").as_posix()
            out[job] = {name: float(value) for name, value in pairs}
    return out


def per_method(parts: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    """Method (the job's last path part) -> part -> seconds summed over models and replicates."""
    out: dict[str, dict[str, float]] = defaultdict(lambda: dict.fromkeys(PARTS, 0.0))
    for job, seconds in parts.items():
        method = out[job.rsplit("/", 1)[-1]]
        for name, value in seconds.items():
            method[name] = method.get(name, 0.0) + value
    return dict(out)


def totals(parts: dict[str, dict[str, float]]) -> dict[str, float]:
    """Part -> seconds summed over every score job."""
    out = dict.fromkeys(PARTS, 0.0)
    for seconds in parts.values():
        for name, value in seconds.items():
            out[name] = out.get(name, 0.0) + value
    return out
