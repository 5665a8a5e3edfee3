"""Argument checks shared by every package: one message for one kind of mistake."""
from __future__ import annotations

from typing import Iterable


def check_choice(name: str, value: object, allowed: Iterable[str]) -> str:
    """value when it is one of the strings `allowed`, else ValueError naming the argument and the allowed values:
    "<name> must be one of a, b, c; got 'value'"."""
    allowed = tuple(allowed)
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
    return value
