"""runs/NAME/checkpoint.pt: everything a training run needs to continue bit for bit.

The file holds plain tensors, numbers, strings, lists, tuples and dicts only, so it loads with
`torch.load(weights_only=True)` (no arbitrary unpickling), on torch 2.0 and later: the scheduler's
milestones Counter is stored as a dict (plain_scheduler_state). It is written to a temporary file in the
same directory and moved into place with os.replace, so a run killed while saving keeps its previous
checkpoint.
"""
from __future__ import annotations

import os
import random
import warnings
from collections import Counter
from typing import Any

import numpy as np
import torch

from kolmogorov._atomic import atomic_output

CHECKPOINT_VERSION = 1


def capture_rng_states(augment_state: torch.Tensor, device: torch.device) -> dict[str, Any]:
    """Every random number generator a run draws from: torch CPU, CUDA, numpy, python, augmentation."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "torch": torch.get_rng_state(),
        # the run's own device only (one per process, DDP included), so a run resumes on any number of GPUs
        "cuda": [torch.cuda.get_rng_state(device)] if device.type == "cuda" else [],
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)), "pos": int(pos),
                  "has_gauss": int(has_gauss), "cached_gaussian": float(cached)},
        "python": random.getstate(),
        "augment": augment_state.clone(),
    }


def restore_rng_states(states: dict[str, Any], device: torch.device) -> torch.Tensor:
    """Restore what capture_rng_states saved; returns the augmentation generator's state."""
    torch.set_rng_state(states["torch"])
    if device.type == "cuda" and states["cuda"]:
        saved = states["cuda"]  # one state (this format), or one per visible GPU (checkpoints before it)
        index = 0 if len(saved) == 1 else (device.index or 0)
        if index < len(saved):
            torch.cuda.set_rng_state(saved[index], device)
        else:
            warnings.warn(f"checkpoint holds CUDA RNG states for {len(saved)} GPUs, none for {device}; "
                          "its CUDA generator starts afresh (noise masks differ from an uninterrupted run)",
                          stacklevel=2)
    n = states["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached_gaussian"]))
    version, internal, gauss = states["python"]
    random.setstate((version, tuple(internal), gauss))
    return states["augment"]


def plain_scheduler_state(state: dict[str, Any]) -> dict[str, Any]:
    """A learning-rate scheduler's state_dict with its collections.Counter values (MultiStepLR's milestones) as
    plain dicts: torch.load(weights_only=True) accepts Counter only from torch 2.4 (pytorch#123775), so a
    checkpoint holding one could not be resumed on an older torch."""
    return {key: dict(value) if isinstance(value, Counter) else value for key, value in state.items()}


def scheduler_state_from_plain(state: dict[str, Any]) -> dict[str, Any]:
    """Undo plain_scheduler_state: MultiStepLR's milestones are a Counter again (it reads a missing epoch as 0).
    A state saved with the Counter itself (checkpoints before plain_scheduler_state) passes unchanged."""
    milestones = state.get("milestones")
    if isinstance(milestones, dict) and not isinstance(milestones, Counter):
        return {**state, "milestones": Counter({int(epoch): int(count) for epoch, count in milestones.items()})}
    return state


def save_checkpoint(path: str | os.PathLike, payload: dict[str, Any]) -> None:
    """torch.save `payload` (plus a version tag) atomically: temporary file, fsync, os.replace (atomic_output)."""
    with atomic_output(path, prefix=".checkpoint-", suffix=".pt.tmp") as tmp:
        torch.save({"checkpoint_version": CHECKPOINT_VERSION, **payload}, tmp)


def load_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """torch.load(weights_only=True) a checkpoint written by save_checkpoint, onto the CPU.

    Raises:
        ValueError naming the file when it cannot be read or is not one of our checkpoints.
    """
    path = os.fspath(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several kinds on a truncated or foreign file
        raise ValueError(f"{path}: cannot load checkpoint ({type(exc).__name__}); delete it to start the run "
                         "over") from None
    if not isinstance(payload, dict) or payload.get("checkpoint_version") != CHECKPOINT_VERSION:
        raise ValueError(f"{path}: not a resnet-sde checkpoint (version {CHECKPOINT_VERSION})")
    return payload
