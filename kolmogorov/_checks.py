"""Argument checks shared by every package: one message for one kind of mistake."""
from __future__ import annotations

import numbers
from typing import Iterable


def check_choice(name: str, value: object, allowed: Iterable[str]) -> str:
    """value when it is one of the strings `allowed`, else ValueError naming the argument and the allowed values:
    "<name> must be one of a, b, c; got 'value'"."""
    allowed = tuple(allowed)
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
    return value


def check_int(name: str, value: object, minimum: int) -> int:
    """value as an int when it is an integer (a Python or numpy integer, not a bool or a float such as 3.0) >= minimum,
    else ValueError: "<name> must be an integer >= <minimum>, got value"."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def check_blocks(n_blocks: object) -> int:
    """n_blocks (K, the number of residual blocks) as an int when it is an integer >= 1, else ValueError."""
    return check_int("n_blocks", n_blocks, 1)
