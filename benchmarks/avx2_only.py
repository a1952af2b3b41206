"""Run a command as on an AVX2-only x86 CPU: CPUID hides AVX-512, AVX-VNNI, AVX10 and AMX.

Usage: python benchmarks/avx2_only.py COMMAND [ARG ...]
  e.g. python benchmarks/avx2_only.py python benchmarks/runtime_bench.py RESULTS

Targets and users name AVX2-only CPUs (AMD Zen 2 and 3, older Xeons) beside AVX-512 ones, and
the kernels each library picks differ between them: fbgemm's and MLAS's int8 GEMMs multiply
with ``vpmaddubsw`` where VNNI is absent, and their FP32 GEMMs use 256-bit registers. On a
machine with AVX-512 this runs COMMAND (and every process it starts) with those features
hidden from CPUID, so torch, ONNX Runtime and numpy load their AVX2 code paths: the kernel
choice of an AVX2-only CPU, timed on this machine's cores. It is not a Zen 3: clock, caches and
execution units stay this machine's, and so do the C library's string functions.

How: ``cpuid_mask.c`` (next to this file), compiled once with ``gcc`` into the temporary
folder, is preloaded (``LD_PRELOAD``); it asks Linux to make CPUID fault and answers each
fault with the real CPUID less those features. That needs Linux on x86-64 and a CPU (or
hypervisor) with CPUID faulting: ``cpuid_fault`` among the flags of ``/proc/cpuinfo``. The
command gets ``QUANTBENCH_CPUID_MASK=avx2``, which ``quantbench.machine.cpu.cpu_facts``
records (``cpuid_mask``), leaving the hidden features out of ``features``. Python's
``faulthandler`` must stay off in it (a CPUID fault would reach it first), so
``PYTHONFAULTHANDLER`` is dropped.
"""

from __future__ import annotations

import hashlib
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

SOURCE = Path(__file__).with_name("cpuid_mask.c")
MASK_ENV = "QUANTBENCH_CPUID_MASK"  # quantbench.machine.cpu.CPUID_MASK_ENV


def unsupported(cpuinfo: str, system: str, machine: str) -> str | None:
    """Why CPUID cannot be masked here, or None."""
    if system != "Linux" or machine not in ("x86_64", "AMD64"):
        return f"CPUID masking needs Linux on x86-64, this is {system} on {machine}"
    if not re.search(r"^flags\s*:.*\bcpuid_fault\b", cpuinfo, re.MULTILINE):
        return (
            "this CPU (or its hypervisor) cannot make CPUID fault (no cpuid_fault among the "
            "flags of /proc/cpuinfo); time on an AVX2-only machine instead"
        )
    return None


def problem_here() -> str | None:
    """Why CPUID cannot be masked on this machine, or None (:func:`unsupported` of its facts)."""
    cpuinfo = Path("/proc/cpuinfo")
    text = cpuinfo.read_text(errors="replace") if cpuinfo.is_file() else ""
    return unsupported(text, platform.system(), platform.machine())


def build(folder: Path) -> Path:
    """The compiled mask in ``folder``, named by its source's hash (built once, atomically)."""
    source = SOURCE.read_bytes()
    lib = folder / f"quantbench-cpuid-mask-{hashlib.sha256(source).hexdigest()[:12]}.so"
    if lib.is_file():
        return lib
    gcc = shutil.which("gcc")
    if gcc is None:
        sys.exit("avx2_only: gcc not found; install it (apt-get install gcc) to build the mask")
    partial = lib.with_suffix(f".{os.getpid()}.tmp")
    cmd = [gcc, "-O2", "-shared", "-fPIC", "-o", str(partial), str(SOURCE)]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode:
        partial.unlink(missing_ok=True)
        sys.exit(f"avx2_only: {' '.join(cmd)} failed: {proc.stderr.strip()}")
    os.replace(partial, lib)
    return lib


def masked_env(lib: Path, env: dict[str, str]) -> dict[str, str]:
    """``env`` with the mask preloaded first and recorded; faulthandler off."""
    out = dict(env)
    out["LD_PRELOAD"] = ":".join(p for p in (str(lib), env.get("LD_PRELOAD", "")) if p)
    out[MASK_ENV] = "avx2"
    out.pop("PYTHONFAULTHANDLER", None)
    return out


def main(argv: list[str]) -> None:
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        sys.exit(0 if argv else 2)
    problem = problem_here()
    if problem:
        sys.exit(f"avx2_only: {problem}")
    env = masked_env(build(Path(tempfile.gettempdir())), dict(os.environ))
    probe = subprocess.run([sys.executable, "-c", "pass"], env=env, capture_output=True, text=True)
    if probe.returncode:
        sys.exit(f"avx2_only: {probe.stderr.strip() or f'exit status {probe.returncode}'}")
    print(f"avx2_only: CPUID hides AVX-512, AVX-VNNI, AVX10 and AMX from {argv[0]} and the "
          "processes it starts", file=sys.stderr)  # fmt: skip
    try:
        os.execvpe(argv[0], argv, env)
    except OSError as exc:
        sys.exit(f"avx2_only: cannot run {argv[0]}: {exc.strerror}")


if __name__ == "__main__":
    main(sys.argv[1:])
