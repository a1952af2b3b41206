"""Which kernels a model really runs: the operators one profiled forward pass executed.

Shared by the score and time steps, so that each records the path it measured, and kept apart
from both so that editing one of them does not rerun the other's jobs.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

# torch's CPU kernel for 4-bit weights (bfloat16 activations), run by the int4 execution path.
INT4_OP = "aten::_weight_int4pack_mm_for_cpu"
# Operators that do a layer's matrix work; the profiler reports which of them really ran.
LINEAR_OPS = ("aten::addmm", "aten::mm", "aten::bmm", INT4_OP)
# Dispatchers that only call one of the above; named only when nothing below them shows up.
WRAPPER_OPS = ("aten::linear", "aten::matmul")


def _op_names(module: nn.Module, x: torch.Tensor) -> list[str]:
    """Operator names of one forward pass, in the order they ran.

    The autograd profiler without Kineto costs milliseconds; starting Kineto (torch.profiler)
    costs about a second per process, so it is only the fallback where the former is gone.
    """
    try:
        with torch.autograd.profiler.profile(use_kineto=False) as prof:
            module(x)
        return [e.name for e in prof.function_events]
    except (TypeError, RuntimeError, AttributeError):
        from torch.profiler import ProfilerActivity, profile

        with profile(activities=[ProfilerActivity.CPU]) as prof:
            module(x)
        return [e.name for e in prof.events()]


@torch.inference_mode()
def kernels_that_ran(module: nn.Module, x: torch.Tensor) -> list[str]:
    """Names of the quantized and linear-algebra operators one forward pass really executed."""
    ops = _op_names(module, x[:8])
    names = [n for n in dict.fromkeys(ops) if n.startswith("quantized::") or n in LINEAR_OPS]
    return names or [n for n in dict.fromkeys(ops) if n in WRAPPER_OPS]


def runs_int8(kernels: list[str]) -> bool:
    return any(k.startswith("quantized::") for k in kernels)


def describe_execution(kernels: list[str], info: dict[str, Any]) -> str:
    """How a model runs: its method's own words (info JSON) or what the kernels show."""
    if "execution" in info:
        return str(info["execution"])
    if runs_int8(kernels):
        return "int8 kernels"
    return "fp32"
