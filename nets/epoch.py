"""One epoch of training and one evaluation pass: the loop inside nets.trainer.train (main paper section 4.2.1).

train_epoch minimizes J_eps of (4.2), the cross-entropy of the noisy network (3.1), over one shuffled,
augmented pass (nets.augment); evaluate measures the deterministic network (p = 1), as in the paper.
Both keep running sums on the device and, under DistributedDataParallel, reduce them over the ranks.
Both are importable from nets.trainer too.
"""
from __future__ import annotations

import time

#: Seconds of wall time between two updates of the batch bar's postfix (loss, accuracy, images/s). Each update
#: reads the running sums (.item()), a host-device sync on CUDA, so a fast GPU loop syncs about once a second.
POSTFIX_EVERY_S = 1.0
#: The host clock the postfix interval is measured on (tests replace it).
_clock = time.perf_counter


def training_batches(n: int, batch_size: int, world_size: int = 1) -> list[tuple[int, int]]:
    """(start, stop) of the batch of each optimizer step of one epoch over n examples: batches of batch_size in
    order, the last one smaller, but a last batch smaller than world_size (which would leave a DistributedDataParallel
    process without an example) is skipped."""
    bounds = ((start, min(start + batch_size, n)) for start in range(0, n, batch_size))
    return [(start, stop) for start, stop in bounds if stop - start >= world_size]


def optimizer_steps_per_epoch(n_train: int, batch_size: int, world_size: int = 1) -> int:
    """How many optimizer steps train_epoch takes in one epoch over n_train examples (training_batches)."""
    from kolmogorov._checks import check_int

    check_int("n_train", n_train, 1)
    check_int("batch_size", batch_size, 1)
    check_int("world_size", world_size, 1)
    return len(training_batches(n_train, batch_size, world_size))


def train_epoch(model, optimizer, augmenter, images, labels, batch_size: int, amp_dtype=None,
                memory_format=None, progress: bool = False, desc: str = "", rank: int = 0,
                world_size: int = 1, grad_norms=None) -> tuple[float, float]:
    """One pass over the shuffled training set; returns (mean cross-entropy, accuracy) under the noise.

    The loss is J_eps of (4.2): cross-entropy of the noisy network (3.1). The epoch's order, crops and
    flips are drawn at its start from the augmenter's generator (Augmenter.plan_epoch); the last batch
    may be smaller. Running sums stay
    on the device so the loop never waits for the host. With world_size > 1 (DistributedDataParallel)
    every rank draws the same batch and augmentation and trains on its shard batch[rank::world_size]; a
    last batch smaller than world_size is skipped; the returned figures are over all ranks.
    grad_norms: a nets.grad_norms.GradNormRecorder called between backward and the optimizer step
    (robust-ResNet Fig. 2), or None (nothing extra is done).
    progress: a tqdm bar over the batches whose postfix (running loss, accuracy, images/s) is updated at
    most once per POSTFIX_EVERY_S seconds of wall time and at the last batch (each update syncs on CUDA).
    """
    import torch
    import torch.nn.functional as F
    from tqdm import tqdm

    model.train()
    n = labels.shape[0]
    plan = augmenter.plan_epoch(n, images.device)
    loss_sum = torch.zeros((), device=images.device, dtype=torch.float64)
    correct = torch.zeros((), device=images.device, dtype=torch.int64)
    used = 0
    t0 = last_postfix = _clock()
    with tqdm(training_batches(n, batch_size, world_size), desc=desc, unit="batch", leave=False,
              disable=not progress, dynamic_ncols=True) as bar:
        for start, stop in bar:
            x = augmenter.apply(images, plan, start, stop)
            y = labels[plan.order[start:stop]]
            if world_size > 1:
                x, y = x[rank::world_size], y[rank::world_size]
            if memory_format is not None:
                x = x.contiguous(memory_format=memory_format)
            used += y.shape[0]
            with torch.autocast(images.device.type, dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None):
                logits = model(x)
                loss = F.cross_entropy(logits, y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            if grad_norms is not None:
                grad_norms.after_backward()
            optimizer.step()
            loss_sum += loss.detach().double() * y.shape[0]
            correct += (logits.detach().argmax(1) == y).sum()
            if progress:  # the clock is read on the host; the sums only when the postfix is due
                now = _clock()
                if now - last_postfix >= POSTFIX_EVERY_S or start + batch_size >= n:
                    last_postfix = now
                    bar.set_postfix(loss=f"{loss_sum.item() / used:.3f}", acc=f"{correct.item() / used:.3f}",
                                    img_s=f"{used * world_size / max(now - t0, 1e-9):.0f}")
    return _reduced_means(loss_sum, correct, used, world_size)


def _reduced_means(loss_sum, correct, count: int, world_size: int) -> tuple[float, float]:
    """(loss_sum / count, correct / count), summed over all ranks when world_size > 1."""
    import torch

    totals = torch.stack([loss_sum, correct.double(), torch.tensor(float(count), dtype=torch.float64,
                                                                    device=loss_sum.device)])
    if world_size > 1:
        import torch.distributed as dist
        dist.all_reduce(totals)
    loss, right, total = totals.tolist()
    return loss / total, right / total


def evaluate(model, normalizer, images, labels, batch_size: int, amp_dtype=None, memory_format=None,
             rank: int = 0, world_size: int = 1) -> tuple[float, float]:
    """(mean cross-entropy, accuracy) of the deterministic network (eval mode, no noise, p = 1).

    With world_size > 1 each rank evaluates images[rank::world_size] and the sums are reduced.
    """
    import torch
    import torch.nn.functional as F

    model.eval()
    loss_sum = torch.zeros((), device=images.device, dtype=torch.float64)
    correct = torch.zeros((), device=images.device, dtype=torch.int64)
    if world_size > 1:
        images, labels = images[rank::world_size], labels[rank::world_size]
    with torch.no_grad():
        for start in range(0, labels.shape[0], batch_size):
            x = normalizer(images[start:start + batch_size])
            if memory_format is not None:
                x = x.contiguous(memory_format=memory_format)
            y = labels[start:start + batch_size]
            with torch.autocast(images.device.type, dtype=amp_dtype or torch.bfloat16, enabled=amp_dtype is not None):
                logits = model(x)
            loss_sum += F.cross_entropy(logits.float(), y, reduction="sum").double()
            correct += (logits.argmax(1) == y).sum()
    return _reduced_means(loss_sum, correct, labels.shape[0], world_size)
