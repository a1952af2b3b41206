"""The parameters the weight-only kinds (``rtn`` and ``gptq``) share, and their checks.

The package ``quant.weightonly`` holds the machinery of both kinds: ``params`` (here: bits, group
size, symmetry, the ``execution`` path and :func:`check_fits`), ``layers`` (the matrix layers in
call order and their layer-by-layer quantization), ``state`` (the packed checkpoint state),
``execution`` (the runnable module built from it, so ``quantize()`` and the checkpoint loader
build the same module) and ``result`` (the kinds' ``QuantizedModel`` and coverage), over
``grid`` (the code grid), ``packing`` (bit packing) and ``int4`` (torch's int4 kernel).

Execution paths (the ``execution`` parameter of both kinds; the disk format is the same for all):

- ``dequantized``: the codes are read back to float32 weights at load (any bits, any groups);
- ``int8``: per-channel codes (``group_size: -1``) of Linear layers run on torch's int8 dynamic
  kernels (``quantized::linear_dynamic``), bit for bit the same weights, on the run's int8
  engine (the ``engine`` parameter: the probed or named engine, set before the layers are
  built, as for the int8 kinds);
- ``int4``: codes of up to 4 bits with ``group_size`` -1 or a multiple of 32 run on torch's CPU
  int4 kernel (:class:`quantbench.quant.weightonly.int4.Int4Linear`, bfloat16 activations),
  packed at load; act-order groups become a column permutation of the inputs;
- ``auto`` (the default): ``int8`` for ``group_size: -1``, else ``dequantized``.

Convolutions always run dequantized (the kernels above are matrix products of Linear layers).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from quantbench.core.config import resolved_execution
from quantbench.quant.weightonly import int4
from quantbench.quant.weightonly.grid import (
    BITS,
    check_group_size,
)

EXEC_INT8 = "int8 dynamic kernels (per-channel codes)"


EXEC_FP32 = "dequantized to fp32 at load (group-wise codes)"


EXEC_INT4 = f"int4 kernel ({int4.KERNEL_OP}, bfloat16 activations)"


EXECUTIONS = ("auto", "dequantized", "int4", "int8")


def check_int(name: str, value: Any, allowed: str, ok: Callable[[int], bool]) -> None:
    """ValueError naming ``name``, the bad ``value`` and the ``allowed`` values."""
    if not isinstance(value, int) or isinstance(value, bool) or not ok(value):
        raise ValueError(f"{name} must be {allowed}, got {value!r}")


def check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false, got {value!r}")


def check_grid_params(bits: Any, group_size: Any, symmetric: Any) -> None:
    """The parameters every weight-only kind shares."""
    check_int("bits", bits, f"one of {list(BITS)}", lambda b: b in BITS)
    check_group_size(group_size)
    check_bool("symmetric", symmetric)


def check_execution(execution: Any, bits: int, group_size: int) -> None:
    """ValueError (one line, naming the alternatives) for an execution path these codes cannot
    take; whether this torch and CPU have the int4 kernel is checked at quantize start."""
    if execution not in EXECUTIONS:
        raise ValueError(f"execution must be one of {', '.join(EXECUTIONS)}, got {execution!r}")
    if execution == "int8" and group_size != -1:
        raise ValueError(
            f"execution int8 needs group_size -1 (one scale per output channel), got "
            f"{group_size}; use group_size: -1, or execution: dequantized (or int4)"
        )
    if execution == "int4":
        problem = int4.code_problem(group_size, bits)
        if problem:
            raise ValueError(f"execution int4: {problem}; {int4.ALTERNATIVES}")


def layer_path(execution: str, group_size: int, shape: list[int]) -> str:
    """How one packed layer runs: ``int8``, ``int4`` or ``dequantized`` (convolutions)."""
    path = resolved_execution(execution, group_size)
    return path if len(shape) == 2 else "dequantized"


def check_fits(group_size: int, in_widths: list[int], names: list[str] | None = None) -> None:
    """Check that ``group_size`` fits layers of these input widths, given in execution order.

    Rule: groups are consecutive runs of ``group_size`` input columns and the last group of a
    row may be shorter (ragged). A group may not be wider than a layer, except in the first
    layer, which reads the model's input (its width is set by the data, or by a kernel over it):
    there a wider group is one group per row. Raises ValueError naming the layer otherwise, or
    for a width below 1.
    """
    check_group_size(group_size)
    names = names or [f"layer {i}" for i in range(len(in_widths))]
    for i, (name, width) in enumerate(zip(names, in_widths, strict=True)):
        if not isinstance(width, int) or isinstance(width, bool) or width < 1:
            raise ValueError(f"{name}: input width must be a positive int, got {width!r}")
        if i > 0 and group_size > width:
            narrowest = min(in_widths[1:])
            raise ValueError(
                f"group_size {group_size} is wider than layer {name} ({width} input columns); "
                f"use a group_size of at most {narrowest} or -1 (one group per output channel)"
            )


EXEC_TEXT = {"int8": EXEC_INT8, "int4": EXEC_INT4, "dequantized": EXEC_FP32}


def execution_text(
    group_size: int, shapes: list[list[int]] | None = None, execution: str = "auto"
) -> str:
    """How the packed codes run (the info JSON's ``execution``), from the resolved path."""
    path = resolved_execution(execution, group_size)
    if path == "dequantized":
        return EXEC_FP32
    if shapes and any(len(s) != 2 for s in shapes):
        return f"{EXEC_TEXT[path]} for Linear layers; convolutions {EXEC_FP32.split(' (')[0]}"
    return EXEC_TEXT[path]
