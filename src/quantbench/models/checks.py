"""Validation of architecture parameters: each check names the parameter, the value and the fix."""

from __future__ import annotations

from typing import Any


def positive_int(name: str, value: Any, low: int = 1) -> int:
    """``value`` as an int ``>= low``; a ValueError naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    return value


def size_list(name: str, value: Any) -> tuple[int, ...]:
    """A non-empty list of positive ints, as a tuple."""
    if isinstance(value, (str, bytes)) or not hasattr(value, "__iter__"):
        raise ValueError(f"{name} must be a non-empty list of positive sizes, got {value!r}")
    sizes = tuple(value)
    if not sizes or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in sizes):
        raise ValueError(f"{name} must be a non-empty list of positive sizes, got {list(sizes)}")
    return sizes


def dropout(value: Any) -> float:
    """A dropout probability in [0, 1)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
        raise ValueError(f"dropout must be a number in [0, 1), got {value!r}")
    return float(value)
