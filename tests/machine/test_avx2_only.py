"""benchmarks/avx2_only.py: a command and its children see the CPUID of an AVX2-only CPU."""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from quantbench.machine import cpu
from tests.machine.test_cpu import EPYC, XEON

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "avx2_only.py"
SPEC = importlib.util.spec_from_file_location("avx2_only", SCRIPT)
avx2_only = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(avx2_only)

# Run under the mask: CPUID leaf 7's EBX as this process and a process it starts see it, and
# this process's CPU facts.
CHILD = """
import ctypes, json, os, subprocess, sys
leaf7 = lambda: ctypes.CDLL(os.environ["LD_PRELOAD"].split(":")[0]).cpuid_mask_leaf7_ebx()
if sys.argv[1:] == ["child"]:
    print(leaf7())
    raise SystemExit
from quantbench.machine.cpu import cpu_facts
grand = subprocess.run([sys.executable, __file__, "child"], capture_output=True, text=True,
                       check=True)
print(json.dumps({"ebx": leaf7(), "child_ebx": int(grand.stdout), "facts": cpu_facts()}))
"""


def not_here(stderr: str) -> bool:
    """The two stops the flags of /proc/cpuinfo cannot foresee, each one line: no gcc to build
    the mask, or Linux refusing to make CPUID fault (a sandbox that filters arch_prctl)."""
    line = stderr.strip()
    gcc = shutil.which("gcc") is None and line.startswith("avx2_only: gcc not found;")
    refused = line.startswith("avx2_only: cpuid_mask: Linux refused to make CPUID fault")
    return "\n" not in line and (gcc or refused)


def test_the_mask_needs_linux_on_x86_and_cpuid_faulting() -> None:
    assert avx2_only.unsupported(XEON, "Linux", "x86_64") is None  # lists cpuid_fault
    assert "cpuid_fault" in avx2_only.unsupported(EPYC, "Linux", "x86_64")
    assert "Linux on x86-64" in avx2_only.unsupported(XEON, "Darwin", "arm64")
    assert "Linux on x86-64" in avx2_only.unsupported(XEON, "Linux", "aarch64")


def test_the_masked_env_preloads_the_mask_first_and_drops_faulthandler(tmp_path) -> None:
    env = avx2_only.masked_env(
        tmp_path / "m.so", {"LD_PRELOAD": "/x.so", "PYTHONFAULTHANDLER": "1"}
    )
    assert env["LD_PRELOAD"] == f"{tmp_path / 'm.so'}:/x.so"
    assert env[cpu.CPUID_MASK_ENV] == "avx2" and "PYTHONFAULTHANDLER" not in env
    assert avx2_only.masked_env(tmp_path / "m.so", {})["LD_PRELOAD"] == str(tmp_path / "m.so")


def test_a_command_and_its_children_see_no_avx512_or_the_wrapper_says_why(tmp_path) -> None:
    """Where the machine can make CPUID fault, the command's libraries see leaf 7 without
    AVX-512 (bit 16 of EBX) and with AVX2 (bit 5) as the OS lists it, torch dispatches below
    AVX-512, and so does a process it starts. Elsewhere the wrapper stops with one line."""
    problem = avx2_only.problem_here()
    child = tmp_path / "child.py"
    child.write_text(CHILD)
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "TMPDIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, str(SCRIPT), sys.executable, str(child)],
                          capture_output=True, text=True, env=env)  # fmt: skip
    if problem:
        assert proc.returncode != 0 and proc.stderr.strip() == f"avx2_only: {problem}"
        return
    if proc.returncode and not_here(proc.stderr):  # no gcc, or a sandbox refuses the prctl
        return
    assert proc.returncode == 0, proc.stderr
    seen = json.loads(proc.stdout)
    text = Path("/proc/cpuinfo").read_text(errors="replace")
    has_avx2 = bool(re.search(r"^flags\s*:.*\bavx2\b", text, re.MULTILINE))
    for ebx in (seen["ebx"], seen["child_ebx"]):
        assert not ebx & (1 << 16) and bool(ebx & (1 << 5)) == has_avx2
    facts = seen["facts"]
    assert facts["cpuid_mask"] == "avx2" and facts["torch_capability"] != "AVX512"
    assert not [f for f in facts["features"] if f.startswith(("avx512", "amx"))]
    assert list(tmp_path.glob("quantbench-cpuid-mask-*.so"))  # built where asked, once


def test_without_a_command_it_prints_its_usage() -> None:
    proc = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True)
    assert proc.returncode == 2 and "Usage: python benchmarks/avx2_only.py" in proc.stdout


def test_a_command_that_does_not_exist_is_one_line(tmp_path) -> None:
    missing = "no-such-command-here"
    problem = avx2_only.problem_here()
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    proc = subprocess.run([sys.executable, str(SCRIPT), missing], capture_output=True,
                          text=True, env=env)  # fmt: skip
    assert proc.returncode != 0
    if not problem and not_here(proc.stderr):
        return
    want = f"avx2_only: {problem}" if problem else f"avx2_only: cannot run {missing}:"
    assert proc.stderr.strip().splitlines()[-1].startswith(want)
