"""Per-block gradient and weight norms during training (robust-ResNet paper, section 4.1, Fig. 2; Appendix 6.1).

Zhang et al. follow, over training iterations, the gradient norm and the weight norm of layer #2 of ResNets
x_{n+1} = x_n + h F(x_n) (their eq. 4) with h = 1.0 and h = 0.1 ("Analysis 1": large, bumpy gradients at
h = 1; "Analysis 2": large weights at h = 1), and the gradients of deep layers later in training (their
Figs. 10-11). Their eq. (9) / Proposition 1 bound the back-propagated gradient by 1 - h + h (1 + W)^D, so
a large h lets shallow-layer gradients grow with the depth D.

`GradNormRecorder` records, every `every`-th optimizer step of a run (step indices 0, every, 2 every, ...,
counted from the run's first step and across epochs), per block of the model the L2 norm of the gradient
of the block's parameters (after backward, before the optimizer step; a parameter without a gradient, such
as a block dropped by stochastic depth, counts as 0) and the L2 norm of those parameters. Blocks, in
forward order: the stem convolution ("stem", block #0) when the model has one, then every residual block
of ``model.blocks`` ("blocks.0" = block #1, ...). The norms are computed on the device with
torch._foreach_norm (one kernel for all gradients, one for all weights, then a segment sum), appended to a
device buffer and moved to the host once per epoch (`flush`): no host synchronisation per step.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is imported where it is used: check_every serves torch-free callers (nets.sweep)
    import torch
    from torch import nn


def check_every(value: object, option: str = "grad_norm_every") -> int:
    """Validate the recording interval: an integer >= 0 (0 = off)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"{option} must be an integer >= 0 (0 = off, N = every N-th optimizer step); got {value!r}")
    return int(value)


def argument_type(text: str) -> int:
    """argparse `type` of --grad-norm-every: an integer >= 0, else argparse's one-line error naming the flag."""
    from kolmogorov._cli import checked_type

    return checked_type(int, check_every, "an integer >= 0 (0 = off, N = every N-th optimizer step)")(text)


def norm_blocks(model: nn.Module) -> tuple[list[str], list[list[nn.Parameter]]]:
    """The blocks whose norms are recorded: (names, parameters of each), in forward order.

    "stem" (when ``model.stem`` has parameters), then "blocks.0", ..., "blocks.{K-1}" of ``model.blocks``.

    Raises:
        ValueError when the model has no ``blocks`` module list.
    """
    from torch import nn

    blocks = getattr(model, "blocks", None)
    if not isinstance(blocks, (nn.ModuleList, nn.Sequential)) or len(blocks) == 0:
        raise ValueError(f"grad_norm_every needs a model with residual blocks (model.blocks); "
                         f"{type(model).__name__} has none")
    names: list[str] = []
    groups: list[list[nn.Parameter]] = []
    stem = getattr(model, "stem", None)
    if isinstance(stem, nn.Module) and any(True for _ in stem.parameters()):
        names.append("stem")
        groups.append([p for p in stem.parameters() if p.requires_grad])
    for i, block in enumerate(blocks):
        names.append(f"blocks.{i}")
        groups.append([p for p in block.parameters() if p.requires_grad])
    return names, groups


@dataclass(frozen=True)
class GradNormRecords:
    """Recorded norms of a run: R records of B blocks.

    Attributes:
        step: (R,) int64, the optimizer step of each record (0 = the run's first step).
        grad_norm: (R, B) float32, L2 norm of the gradient of each block's parameters.
        weight_norm: (R, B) float32, L2 norm of each block's parameters at that step (before the update).
        block_names: B names ("stem", "blocks.0", ...); column b is block #b.
        every: the recording interval N.
    """

    step: np.ndarray
    grad_norm: np.ndarray
    weight_norm: np.ndarray
    block_names: tuple[str, ...]
    every: int


class GradNormRecorder:
    """Records per-block gradient and weight norms every `every`-th optimizer step (see the module docstring).

    Call `after_backward()` once per optimizer step, between loss.backward() and optimizer.step(), and
    `flush()` once per epoch. `state_dict()` / `load_state_dict()` carry the records and the step counter
    through a checkpoint, so a resumed run ends with the records of an uninterrupted one.
    """

    def __init__(self, model: nn.Module, every: int) -> None:
        import torch

        every = check_every(every)
        if every < 1:
            raise ValueError(f"grad_norm_every must be >= 1 for a recorder; got {every!r}")
        self.every = every
        self.block_names, groups = norm_blocks(model)
        self._params = [p for group in groups for p in group]
        device = self._params[0].device
        self._index = torch.tensor([b for b, group in enumerate(groups) for _ in group], dtype=torch.long,
                                   device=device)
        self._zero = torch.zeros((), dtype=self._params[0].dtype, device=device)
        self.steps = 0  # optimizer steps seen so far in the run
        self._pending: list[torch.Tensor] = []
        self._pending_steps: list[int] = []
        self._host_steps: list[np.ndarray] = []
        self._host_norms: list[np.ndarray] = []

    @property
    def num_blocks(self) -> int:
        return len(self.block_names)

    def after_backward(self) -> None:
        """Record the norms when this optimizer step is due; count the step either way."""
        import torch

        if self.steps % self.every == 0:
            grads = [self._zero if p.grad is None else p.grad for p in self._params]
            with torch.no_grad():
                per_tensor = torch.stack([torch.stack(torch._foreach_norm(grads)),
                                          torch.stack(torch._foreach_norm(self._params))]).float()
                squares = torch.zeros(2, self.num_blocks, dtype=torch.float32, device=per_tensor.device)
                squares.index_add_(1, self._index, per_tensor.square())
                self._pending.append(squares.sqrt_())
            self._pending_steps.append(self.steps)
        self.steps += 1

    def flush(self) -> None:
        """Move the records made since the last flush to the host (one transfer; call once per epoch)."""
        import torch

        if self._pending:
            self._host_norms.append(torch.stack(self._pending).cpu().numpy())
            self._host_steps.append(np.asarray(self._pending_steps, dtype=np.int64))
        self._pending, self._pending_steps = [], []

    def records(self) -> GradNormRecords:
        """Every flushed record as arrays."""
        b = self.num_blocks
        norms = np.concatenate(self._host_norms) if self._host_norms else np.zeros((0, 2, b), np.float32)
        steps = np.concatenate(self._host_steps) if self._host_steps else np.zeros(0, np.int64)
        return GradNormRecords(step=steps, grad_norm=np.ascontiguousarray(norms[:, 0]),
                               weight_norm=np.ascontiguousarray(norms[:, 1]), block_names=tuple(self.block_names),
                               every=self.every)

    def state_dict(self) -> dict:
        """The flushed records and the step counter as plain tensors (loadable with weights_only=True)."""
        import torch

        self.flush()
        r = self.records()
        return {"every": self.every, "steps": self.steps, "block_names": list(r.block_names),
                "step": torch.from_numpy(r.step), "grad_norm": torch.from_numpy(r.grad_norm),
                "weight_norm": torch.from_numpy(r.weight_norm)}

    def load_state_dict(self, state: dict) -> None:
        """Continue from `state_dict()` output; ValueError when it was made with another interval or blocks."""
        if int(state["every"]) != self.every or list(state["block_names"]) != list(self.block_names):
            raise ValueError(f"grad_norm records in the checkpoint (every {state['every']}, "
                             f"{len(state['block_names'])} blocks) do not match this run (every {self.every}, "
                             f"{self.num_blocks} blocks)")
        self.steps = int(state["steps"])
        self._pending, self._pending_steps = [], []
        records = records_from_state(state)
        self._host_norms = [np.stack([records.grad_norm, records.weight_norm], axis=1)]
        self._host_steps = [records.step]


def records_from_state(state: dict | None) -> GradNormRecords | None:
    """GradNormRecords from a checkpoint's `grad_norms` entry (None -> None)."""
    if state is None:
        return None
    return GradNormRecords(step=state["step"].numpy().astype(np.int64),
                           grad_norm=state["grad_norm"].numpy().astype(np.float32),
                           weight_norm=state["weight_norm"].numpy().astype(np.float32),
                           block_names=tuple(state["block_names"]), every=int(state["every"]))
