"""Facts about the CPU that decide which kernels run fast: model, architecture, ISA features.

Two machines disagree about a speed-up mostly because of a few instruction-set features: AVX2
and AVX-512 (F/BW/VL) for the fp32 and int8 GEMMs, VNNI (AVX512-VNNI or AVX-VNNI) for int8 dot
products, AMX (TILE/INT8/BF16) for the int8 and bfloat16 tiles of recent Xeons, and on ARM NEON
(ASIMD), dotprod, i8mm, bf16 and SVE. :func:`cpu_facts` reports them under stable names
(``FEATURES``), read from the operating system: the ``flags`` (x86) or ``Features`` (ARM) line of
``/proc/cpuinfo`` on Linux, ``sysctl`` on macOS. Beside them it records what torch itself
dispatches to (``torch.backends.cpu.get_cpu_capability()``: ``DEFAULT``, ``AVX2``, ``AVX512``,
``SVE256`` ...). Nothing here is measured or guessed: a feature the OS does not list is absent.
"""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path
from typing import Any

import torch

# Stable feature name -> the names the OS uses for it (Linux flags/Features, macOS sysctl keys).
FEATURES: dict[str, tuple[str, ...]] = {
    # x86-64
    "avx2": ("avx2", "AVX2"),
    "fma": ("fma", "FMA"),
    "f16c": ("f16c", "F16C"),
    "avx512f": ("avx512f", "AVX512F"),
    "avx512bw": ("avx512bw", "AVX512BW"),
    "avx512vl": ("avx512vl", "AVX512VL"),
    "avx512dq": ("avx512dq", "AVX512DQ"),
    "avx512_vnni": ("avx512_vnni", "AVX512VNNI"),
    "avx512_bf16": ("avx512_bf16", "AVX512BF16"),
    "avx512_fp16": ("avx512_fp16", "AVX512FP16"),
    "avx_vnni": ("avx_vnni", "AVXVNNI"),
    "amx_tile": ("amx_tile",),
    "amx_int8": ("amx_int8",),
    "amx_bf16": ("amx_bf16",),
    "amx_fp16": ("amx_fp16",),
    # ARM (Linux Features names; macOS hw.optional keys)
    "neon": ("asimd", "AdvSIMD", "neon"),
    "fp16": ("asimdhp", "FEAT_FP16"),
    "dotprod": ("asimddp", "FEAT_DotProd"),
    "i8mm": ("i8mm", "FEAT_I8MM"),
    "bf16": ("bf16", "FEAT_BF16"),
    "sve": ("sve",),
    "sve2": ("sve2",),
    "sme": ("sme", "FEAT_SME"),
}

# ``benchmarks/avx2_only.py`` runs a command with CPUID hiding features from it and sets this
# variable to the mask's name; the facts then list what the process's libraries saw.
CPUID_MASK_ENV = "QUANTBENCH_CPUID_MASK"
CPUID_MASKS: dict[str, tuple[str, ...]] = {
    "avx2": (
        "avx512f", "avx512bw", "avx512vl", "avx512dq", "avx512_vnni", "avx512_bf16",
        "avx512_fp16", "avx_vnni", "amx_tile", "amx_int8", "amx_bf16", "amx_fp16",
    ),
}  # fmt: skip

# ARM "CPU implementer" / "CPU part" pairs of common server and board cores (the Linux
# cpuinfo of ARM has no model name line).
_ARM_PARTS: dict[tuple[int, int], str] = {
    (0x41, 0xD08): "ARM Cortex-A72",
    (0x41, 0xD0B): "ARM Cortex-A76",
    (0x41, 0xD0C): "ARM Neoverse-N1",
    (0x41, 0xD40): "ARM Neoverse-V1",
    (0x41, 0xD49): "ARM Neoverse-N2",
    (0x41, 0xD4F): "ARM Neoverse-V2",
}
_ARM_IMPLEMENTERS = {
    0x41: "ARM",
    0x48: "HiSilicon",
    0x51: "Qualcomm",
    0x61: "Apple",
    0xC0: "Ampere",
}
_MODEL_KEYS = ("model name", "cpu model", "hardware", "processor")


def _blocks(text: str) -> list[dict[str, str]]:
    """The ``key: value`` blocks of a cpuinfo text (one per logical CPU), keys lower-cased."""
    blocks: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            if current:
                blocks.append(current)
            current = {}
            continue
        key, sep, value = line.partition(":")
        if sep:
            current.setdefault(key.strip().lower(), value.strip())
    if current:
        blocks.append(current)
    return blocks


def _arm_model(block: dict[str, str]) -> str | None:
    try:
        implementer = int(block["cpu implementer"], 0)
        part = int(block["cpu part"], 0)
    except (KeyError, ValueError):
        return None
    return _ARM_PARTS.get((implementer, part), f"ARM implementer {implementer:#x} part {part:#x}")


def _vendor(block: dict[str, str]) -> str | None:
    if "vendor_id" in block:
        return block["vendor_id"]
    code = block.get("cpu implementer")
    try:
        return _ARM_IMPLEMENTERS.get(int(code, 0), code) if code else None
    except ValueError:
        return code


def _model_name(blocks: list[dict[str, str]]) -> str | None:
    for block in blocks:
        for key in _MODEL_KEYS:
            value = block.get(key, "")
            # "processor" is the CPU's index on x86 and on most ARM kernels: not a name
            if value and not value.isdigit():
                return value
    return next((m for m in map(_arm_model, blocks) if m), None)


def parse_cpuinfo(text: str) -> dict[str, Any]:
    """Model name, vendor, logical CPU count and the raw OS flags of a ``/proc/cpuinfo`` text."""
    blocks = _blocks(text)
    first = blocks[0] if blocks else {}
    flags = first.get("flags") or first.get("features") or ""
    return {
        "model": _model_name(blocks),
        "vendor": _vendor(first),
        "logical_cpus": sum(1 for b in blocks if "processor" in b) or None,
        "flags": sorted(set(flags.split())),
    }


def parse_sysctl(text: str) -> dict[str, Any]:
    """Model name and the present features of ``sysctl`` output (``key: value`` lines; macOS).

    A ``hw.optional.<name>: 1`` line names a present feature (its last dotted part, so
    ``hw.optional.arm.FEAT_DotProd`` gives ``FEAT_DotProd``); ``machdep.cpu.features`` and
    ``machdep.cpu.leaf7_features`` (Intel Macs) list features separated by spaces.
    """
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            values[key.strip()] = value.strip()
    optional = (k for k, v in values.items() if k.startswith("hw.optional.") and v == "1")
    flags = {k.rsplit(".", 1)[1] for k in optional}
    for key in ("machdep.cpu.features", "machdep.cpu.leaf7_features"):
        flags.update(values.get(key, "").replace(".", "_").split())
    return {
        "model": values.get("machdep.cpu.brand_string"),
        "vendor": values.get("machdep.cpu.vendor"),
        "logical_cpus": int(values["hw.logicalcpu"]) if "hw.logicalcpu" in values else None,
        "flags": sorted(flags),
    }


def features(flags: list[str] | set[str]) -> list[str]:
    """The stable names of ``FEATURES`` whose OS names appear among ``flags``, in that order."""
    present = set(flags)
    return [name for name, aliases in FEATURES.items() if present.intersection(aliases)]


def torch_capability() -> str | None:
    """The CPU code path torch dispatches to (``AVX512``, ``AVX2``, ``DEFAULT``, ...)."""
    get = getattr(getattr(torch.backends, "cpu", None), "get_cpu_capability", None)
    return str(get()) if get is not None else None


def usable_cpus() -> int | None:
    """Logical CPUs this process may run on (its affinity mask where the OS has one)."""
    affinity = getattr(os, "sched_getaffinity", None)
    return len(affinity(0)) if affinity is not None else os.cpu_count()


def _read_os(cpuinfo: Path) -> tuple[dict[str, Any], str]:
    """Parsed facts and their source: Linux cpuinfo, else macOS sysctl, else nothing."""
    if cpuinfo.is_file():
        return parse_cpuinfo(cpuinfo.read_text(errors="replace")), str(cpuinfo)
    if platform.system() == "Darwin":
        try:
            cmd = ["sysctl", "machdep.cpu", "hw.optional", "hw.logicalcpu"]
            run = subprocess.run(cmd, capture_output=True, text=True, timeout=5, check=False)
            out = run.stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        if out:
            return parse_sysctl(out), "sysctl"
    return {"model": None, "vendor": None, "logical_cpus": None, "flags": []}, "none"


def cpu_facts(cpuinfo: str | os.PathLike[str] = "/proc/cpuinfo") -> dict[str, Any]:
    """The CPU facts for the metrics JSON (plain JSON types).

    ``model`` (the OS's name, else ``platform.processor()``), ``architecture``
    (``platform.machine()``), ``vendor``, ``logical_cpus`` (the machine's), ``usable_cpus``
    (those this process may run on), ``features`` (stable names present, see ``FEATURES``),
    ``torch_capability`` and ``source`` (where the features were read). Under
    ``benchmarks/avx2_only.py`` (``CPUID_MASK_ENV`` set), ``cpuid_mask`` names the mask and
    ``features`` leaves out what it hid from the process's libraries.
    """
    facts, source = _read_os(Path(cpuinfo))
    mask = os.environ.get(CPUID_MASK_ENV)
    hidden = set(CPUID_MASKS.get(mask or "", ()))
    return {
        "model": facts["model"] or platform.processor() or platform.machine() or "unknown",
        "architecture": platform.machine(),
        "vendor": facts["vendor"],
        "logical_cpus": facts["logical_cpus"] or os.cpu_count(),
        "usable_cpus": usable_cpus(),
        "features": [f for f in features(facts["flags"]) if f not in hidden],
        "torch_capability": torch_capability(),
        "source": source,
        **({"cpuid_mask": mask} if mask else {}),
    }


def describe(facts: dict[str, Any]) -> str:
    """One line for logs: ``AMD EPYC 9654 (x86_64; avx2 avx512f ...; torch AVX512)``."""
    feats = " ".join(facts.get("features") or []) or "no listed SIMD features"
    cap = facts.get("torch_capability") or "unknown"
    mask = f"; CPUID masked to {facts['cpuid_mask']}" if facts.get("cpuid_mask") else ""
    return f"{facts.get('model')} ({facts.get('architecture')}; {feats}; torch {cap}{mask})"
