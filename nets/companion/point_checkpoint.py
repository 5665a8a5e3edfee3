"""Resumable JSON checkpoints of grid experiments: the finished points, keyed by their grid index.

A grid experiment (nets.companion.sweeps' run_grid, nets.companion.step_factor_parts' run_parts) trains one
small network per point of a rectangular grid and rewrites its checkpoint after every finished point, so an
interrupted run resumes where it stopped. The file is JSON (never a pickle) of the form

    {"config_hash": "...", "config": {...}, "points": {"[i, j, ...]": [value, ...], ...}}

where config_hash guards against resuming a different configuration, config is there for a reader, and each
key is a point's index in the grid. Every value has the experiment's fixed layout of numbers and flags.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from kolmogorov._atomic import atomic_output

Index = tuple[int, ...]


def fields_hash(fields: dict[str, Any]) -> str:
    """A short stable hash of a configuration's fields (dataclasses.asdict), as checkpoints record it."""
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _fits(value: Any, layout: tuple[type, ...]) -> bool:
    """Whether `value` is a list of len(layout) entries, a bool where layout says bool, else a number."""
    if not isinstance(value, list) or len(value) != len(layout):
        return False
    return all(isinstance(v, bool) if kind is bool else isinstance(v, (int, float)) and not isinstance(v, bool)
               for v, kind in zip(value, layout))


def load_points(path: Path, config_hash: str, shape: Index, layout: tuple[type, ...],
                kind: str) -> dict[Index, list]:
    """The finished points of the checkpoint at `path` ({} when there is none).

    shape: the grid's shape (every key must index into it); layout: each value's entries, bool for a flag and
    float for a number; kind: what the file is, for messages ("companion sweep"). ValueError naming the file
    when it is not such a checkpoint (not JSON, no config_hash and points, a key or value that does not fit)
    or when it belongs to another configuration (its config_hash is not `config_hash`).
    """
    path = Path(path)
    if not path.exists():
        return {}
    damaged = f"checkpoint {path} is not a {kind} checkpoint"
    try:
        content = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise ValueError(f"{damaged} (not JSON: {error}); remove it to start again") from None
    if not isinstance(content, dict) or "config_hash" not in content or not isinstance(content.get("points"), dict):
        raise ValueError(f"{damaged} (no config_hash and points); remove it to start again")
    if content["config_hash"] != config_hash:
        raise ValueError(f"checkpoint {path} belongs to another configuration; remove it or choose another path")
    points = {}
    for key, value in content["points"].items():
        try:
            index = json.loads(key)
        except ValueError:
            index = None
        if (not isinstance(index, list) or len(index) != len(shape)
                or any(type(i) is not int or not 0 <= i < n for i, n in zip(index, shape))
                or not _fits(value, layout)):
            raise ValueError(f"{damaged} (point {key} = {value!r}); remove it to start again")
        points[tuple(index)] = value
    return points


def save_points(path: Path, config_hash: str, config_fields: dict[str, Any], points: dict[Index, list]) -> None:
    """Write `points` (index -> value) with the configuration's hash and fields to `path`, atomically."""
    content = {"config_hash": config_hash, "config": config_fields,
               "points": {json.dumps(list(index)): value for index, value in points.items()}}
    with atomic_output(Path(path)) as tmp, open(tmp, "w") as handle:
        json.dump(content, handle, default=str)
