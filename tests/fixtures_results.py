"""FIXTURES, not results: small metrics.h5 files that tests write into tmp_path, and a fake trainer.

Every number here is invented for testing the table and figure code; nothing written by this module may
be shown as a result. The files follow the trainer's metrics.h5 contract (nets/train.py): 1-D per-epoch
datasets epoch, train_loss, train_acc, test_loss, test_acc, lr, epoch_time; `lm_k` (epochs x blocks) for
LM models; root attributes = the run's configuration (None stored as "None"); group `summary`; with
`grad_norms`, the per-block norm datasets grad_norm_step / grad_norm / weight_norm (nets/metrics.py).

Run as a script it is a FAKE TRAINER taking `python -m nets.train`'s flags: it writes a finished
metrics.h5 into --out without training anything, for testing nets.sweep's execution. Environment:
FAKE_TRAIN_SLEEP (seconds to sleep), FAKE_TRAIN_FAIL (exit 3 when --out contains this text),
FAKE_TRAIN_LOG (append "start|end <name> <time> <pid>" lines).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np


def write_metrics(run_dir: Path, *, model: str, seed: int, test_acc, train_loss, train_acc=None, test_loss=None,
                  noise: str | None = "bernoulli", p: float | None = 1.0, nu: float | None = None,
                  beta: float | None = None, stochastic_depth: float | None = None, h: float | None = None,
                  data: str = "cifar10-jpeg.h5", dataset: str = "cifar10-jpeg", batch_size: int = 128,
                  lr: float = 0.1, lm_k=None, finished: bool = True, epochs: int | None = None,
                  input_noise: float | None = None, grad_norms: dict | None = None,
                  stochastic_depth_mode: str | None = None, provenance: list[dict] | None = None,
                  lm_start: str | None = None, milestones: tuple[int, ...] | None = None,
                  num_parameters: int = 272474, stem_init_scale: float | None = None) -> Path:
    """Write run_dir/metrics.h5 from the given per-epoch arrays (FIXTURE data); returns its path.

    input_noise None: not written at all, as by a trainer older than that field (which means clean training);
    stochastic_depth_mode None likewise (per-sample drops), and lm_start None (an LM run started from zero).
    grad_norms: FIXTURE records {"step": (R,), "grad_norm": (R, B), "weight_norm": (R, B), "block_names": B names,
    "every": N}, written with the trainer's writer layout (grad_norm_every = N in the configuration); None: absent.
    milestones: the learning-rate milestones of the recipe; None: not written. stem_init_scale None: not written
    (an older trainer, which means 1).
    provenance: FIXTURE nets.provenance segments, written as provenance_json; None: absent (an older trainer).
    """
    import h5py

    test_acc = np.asarray(test_acc, dtype=float)
    n = len(test_acc)
    train_loss = np.asarray(train_loss, dtype=float)
    train_acc = np.asarray(train_acc if train_acc is not None else np.linspace(0.3, 0.99, n), dtype=float)
    test_loss = np.asarray(test_loss if test_loss is not None else np.linspace(2.0, 0.4, n), dtype=float)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    config = dict(model=model, noise=noise, p=p, nu=nu, beta=beta, stochastic_depth=stochastic_depth, h=h,
                  data=data, epochs=epochs if epochs is not None else n, batch_size=batch_size, lr=lr, seed=seed)
    if input_noise is not None:
        config["input_noise"] = input_noise
    if stochastic_depth_mode is not None:
        config["stochastic_depth_mode"] = stochastic_depth_mode
    if lm_start is not None:
        config["lm_start"] = lm_start
    if stem_init_scale is not None:
        config["stem_init_scale"] = stem_init_scale
    if milestones is not None:
        config["milestones"] = list(milestones)
    if grad_norms is not None:
        config["grad_norm_every"] = int(grad_norms["every"])
    with h5py.File(run_dir / "metrics.h5", "w") as h5:
        h5.create_dataset("epoch", data=np.arange(1, n + 1))
        h5.create_dataset("train_loss", data=train_loss)
        h5.create_dataset("train_acc", data=train_acc)
        h5.create_dataset("test_loss", data=test_loss)
        h5.create_dataset("test_acc", data=test_acc)
        h5.create_dataset("lr", data=np.full(n, lr))
        h5.create_dataset("epoch_time", data=np.full(n, 1.5))
        if lm_k is not None:
            h5.create_dataset("lm_k", data=np.asarray(lm_k, dtype=float))
        if grad_norms is not None:
            step = h5.create_dataset("grad_norm_step", data=np.asarray(grad_norms["step"], dtype=np.int64))
            step.attrs["every"] = int(grad_norms["every"])
            for key in ("grad_norm", "weight_norm"):
                norms = h5.create_dataset(key, data=np.asarray(grad_norms[key], dtype=np.float32))
                norms.attrs.create("block_names", list(grad_norms["block_names"]), dtype=h5py.string_dtype())
        for key, value in config.items():
            h5.attrs[key] = "None" if value is None else value
        h5.attrs["config_json"] = json.dumps(config)
        h5.attrs["epsilon"] = 0.0
        h5.attrs["num_parameters"] = num_parameters
        h5.attrs["dataset"] = dataset
        if provenance is not None:
            h5.attrs["provenance_json"] = json.dumps(provenance)
        summary = h5.create_group("summary")
        summary.attrs["finished"] = finished
        summary.attrs["epochs_completed"] = n
        summary.attrs["final_test_acc"] = float(test_acc[-1])
        summary.attrs["final_test_error"] = float(1.0 - test_acc[-1])
        summary.attrs["best_test_acc"] = float(test_acc.max())
        summary.attrs["final_train_loss"] = float(train_loss[-1])
        summary.attrs["total_train_time_s"] = 1.5 * n
        summary.attrs["device_name"] = "fixture"
        summary.attrs["torch_version"] = "fixture"
    return run_dir / "metrics.h5"


def curves(rng: np.random.Generator, epochs: int, final_error: float, final_loss: float) -> tuple[np.ndarray, np.ndarray]:
    """Invented decreasing (test_acc, train_loss) curves ending exactly at 1 - final_error and final_loss."""
    t = np.linspace(0.0, 1.0, epochs)
    error = final_error + (0.6 - final_error) * np.exp(-5 * t) + 0.01 * rng.standard_normal(epochs)
    loss = final_loss + (2.0 - final_loss) * np.exp(-5 * t) + 0.01 * rng.standard_normal(epochs)
    error[-1], loss[-1] = final_error, final_loss
    return 1.0 - error, loss


def grid(root: Path, models, ps, seeds: int, epochs: int = 6, seed: int = 0, noise_for_p1: str | None = "bernoulli",
         dataset: str = "cifar10-jpeg", **extra) -> dict[tuple[str, float, int], dict]:
    """A Table-1-like grid of FIXTURE runs under root; returns (model, p, seed) -> what was written."""
    rng = np.random.default_rng(seed)
    written = {}
    for model in models:
        for p in ps:
            for s in range(seeds):
                final_error = float(rng.uniform(0.05, 0.12))
                final_loss = float(rng.uniform(0.01, 0.2))
                test_acc, train_loss = curves(rng, epochs, final_error, final_loss)
                noise = noise_for_p1 if p == 1.0 else "bernoulli"
                run_dir = Path(root) / f"{model}-p{p:g}-s{s}"
                write_metrics(run_dir, model=model, seed=s, noise=noise, p=p if noise else None, test_acc=test_acc,
                              train_loss=train_loss, dataset=dataset, **extra)
                written[(model, p, s)] = dict(test_acc=test_acc, train_loss=train_loss, dir=run_dir)
    return written


def fake_grad_norms(every: int, steps: int, blocks: int, seed: int = 0) -> dict | None:
    """Invented per-block norm records (FIXTURE) for `steps` optimizer steps, every `every`-th; None for 0."""
    if not every:
        return None
    rng = np.random.default_rng(seed)
    step = np.arange(0, steps, every)
    return {"step": step, "grad_norm": rng.uniform(0.1, 5.0, (len(step), blocks)),
            "weight_norm": rng.uniform(1.0, 20.0, (len(step), blocks)),
            "block_names": ["stem"] + [f"blocks.{i}" for i in range(blocks - 1)], "every": every}


def _fake_train(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="fake-train")
    for flag in ("--model", "--noise", "--data", "--device", "--stochastic-depth-mode", "--lm-start"):
        parser.add_argument(flag)
    for flag in ("--p", "--nu", "--beta", "--stochastic-depth", "--h", "--lr", "--momentum", "--weight-decay", "--gamma",
                 "--input-noise"):
        parser.add_argument(flag, type=float)
    parser.add_argument("--grad-norm-every", type=int, default=0)
    parser.add_argument("--schedule", nargs="+", type=int)
    parser.add_argument("--out", required=True, type=Path)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--no-progress", action="store_true")
    args = parser.parse_args(argv)
    log = os.environ.get("FAKE_TRAIN_LOG")
    if log:
        with open(log, "a") as handle:
            handle.write(f"start {args.out.name} {time.time()} {os.getpid()}\n")
    time.sleep(float(os.environ.get("FAKE_TRAIN_SLEEP", "0")))
    fail = os.environ.get("FAKE_TRAIN_FAIL")
    if fail and fail in str(args.out):
        print("fake trainer: failing on purpose", file=sys.stderr)
        return 3
    n = args.epochs
    write_metrics(args.out, model=args.model, seed=args.seed, noise=args.noise, p=args.p, nu=args.nu, beta=args.beta,
                  stochastic_depth=args.stochastic_depth, h=args.h, data=args.data, batch_size=args.batch_size,
                  input_noise=args.input_noise, grad_norms=fake_grad_norms(args.grad_norm_every, 10 * n, 4),
                  stochastic_depth_mode=args.stochastic_depth_mode, lm_start=args.lm_start,
                  test_acc=np.linspace(0.2, 0.5, n), train_loss=np.linspace(2.0, 1.0, n))
    if log:
        with open(log, "a") as handle:
            handle.write(f"end {args.out.name} {time.time()} {os.getpid()}\n")
    return 0


if __name__ == "__main__":
    sys.exit(_fake_train(sys.argv[1:]))
