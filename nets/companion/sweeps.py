"""Repeated trainings over a grid of (variant, depth, h, input noise): test accuracy against h
(Zhang & Wynter Figs. 8-9; robust ResNet Fig. 9 analogue) and against training-input noise
(robust ResNet Fig. 8 analogue).

Trial t draws a new data set or split (data seed t), a new initialization (seed 1000 + t) and a new
batch order (seed t); every grid point sees the same trials, so differences between h are paired.
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field, replace
from itertools import product
from pathlib import Path
from typing import Any

import numpy as np

from kolmogorov._checks import check_choice
from nets.companion.datasets import Dataset, load_dataset, with_input_noise
from nets.companion.experiments import torch_threads
from nets.companion.models import NetSpec, build_net, check_variant
from nets.companion.point_checkpoint import fields_hash, load_points, save_points
from nets.companion.trainer import TrainConfig, train

SWEEP_DATASETS = ("synthetic", "wine", "digits", "moons")


@dataclass(frozen=True)
class GridConfig:
    """The grid and the training recipe. dataset_kwargs go to the dataset loader (e.g. n_train for synthetic)."""

    dataset: str
    h_values: tuple[float, ...]
    variants: tuple[str, ...] = ("residual",)
    depths: tuple[int, ...] = (100,)
    noise_levels: tuple[float, ...] = (0.0,)
    trials: int = 10
    train: TrainConfig = TrainConfig()
    activation: str = "relu"
    width: int | None = None
    dataset_kwargs: tuple[tuple[str, Any], ...] = ()

    def __post_init__(self) -> None:
        check_choice("dataset", self.dataset, SWEEP_DATASETS)
        for variant in self.variants:
            check_variant(variant)
        for name in ("h_values", "variants", "depths", "noise_levels"):
            if not getattr(self, name):
                raise ValueError(f"{name} must not be empty")
        if any(not h > 0 for h in self.h_values):
            raise ValueError(f"h_values must be positive, got {self.h_values!r}")
        if any(s < 0 for s in self.noise_levels):
            raise ValueError(f"noise_levels must be >= 0, got {self.noise_levels!r}")
        if not isinstance(self.trials, int) or self.trials < 1:
            raise ValueError(f"trials must be a positive integer, got {self.trials!r}")

    @property
    def shape(self) -> tuple[int, int, int, int, int]:
        return (len(self.variants), len(self.depths), len(self.h_values), len(self.noise_levels), self.trials)


STD_LABEL = "population std over trials (ddof = 0)"  # what GridResult.summary's std is


@dataclass
class GridResult:
    """Arrays of shape config.shape = (variants, depths, h, noise, trials)."""

    config: GridConfig
    test_accuracy: np.ndarray
    train_accuracy: np.ndarray
    diverged: np.ndarray
    seconds: float = 0.0
    run_seconds: np.ndarray = field(default_factory=lambda: np.zeros(0))

    def summary(self, statistic: str = "mean") -> tuple[np.ndarray, np.ndarray]:
        """(centre, std) of the test accuracy over trials; centre is the mean or the median, std the population
        std over trials (ddof = 0; figures.results uses the sample std, ddof = 1; docs/companion.md quotes these
        numbers, so they stay as they are and the figures label them STD_LABEL)."""
        if statistic not in ("mean", "median"):
            raise ValueError(f"statistic must be 'mean' or 'median', got {statistic!r}")
        centre = np.mean if statistic == "mean" else np.median
        return centre(self.test_accuracy, axis=-1), self.test_accuracy.std(axis=-1)


WORKERS_ENV = "RESNET_SDE_WORKERS"


def default_workers() -> int:
    """Worker processes for sweeps: $RESNET_SDE_WORKERS (a positive integer), else 1."""
    import os

    value = os.environ.get(WORKERS_ENV, "1")
    try:
        workers = int(value)
    except ValueError:
        workers = 0
    if workers < 1:
        raise ValueError(f"{WORKERS_ENV} must be a positive integer, got {value!r}")
    return workers


def _trial_data(config: GridConfig, trial: int) -> Dataset:
    return load_dataset(config.dataset, seed=trial, **dict(config.dataset_kwargs))


def _run_point(config: GridConfig, trial: int, noise: float, variant: str, depth: int, h: float,
               data: Dataset | None = None) -> tuple[float, float, bool, float]:
    """Train the network of one grid point and trial; returns (test acc, train acc, diverged, seconds)."""
    with torch_threads(1):
        data = data if data is not None else _trial_data(config, trial)
        if noise > 0:
            data = with_input_noise(data, noise, seed=trial)
        spec = NetSpec(depth=depth, h=h, variant=variant, activation=config.activation, width=config.width)
        model = build_net(spec, data.in_features, data.num_classes, seed=1000 + trial)
        run = train(model, data, replace(config.train, seed=trial))
    return run.test_accuracy, run.train_accuracy, run.diverged, run.seconds


def config_hash(config: GridConfig) -> str:
    """A short stable hash of every field of `config` (names checkpoint files). The training recipe's lr_scales
    enters only when set, so configurations made before it existed keep their hashes (and checkpoints)."""
    fields = asdict(config)
    if not fields["train"]["lr_scales"]:
        del fields["train"]["lr_scales"]
    return fields_hash(fields)


def run_grid(config: GridConfig, progress: bool = True, workers: int | None = None,
             checkpoint: Path | None = None) -> GridResult:
    """Train one network per grid point and trial; returns test/train accuracy and divergence flags.

    workers > 1 trains grid points in that many processes (one torch thread each); every point is seeded
    on its own, so the result does not depend on `workers`. None reads default_workers().
    checkpoint: a JSON file updated (atomically) after every finished point; a rerun with the same config
    skips the points it holds, so an interrupted sweep resumes. A file of another config is refused.
    """
    from tqdm.auto import tqdm

    workers = default_workers() if workers is None else workers
    if not isinstance(workers, int) or workers < 1:
        raise ValueError(f"workers must be a positive integer, got {workers!r}")
    start = time.perf_counter()
    test = np.full(config.shape, np.nan)
    train_acc = np.full(config.shape, np.nan)
    diverged = np.zeros(config.shape, dtype=bool)
    seconds = np.zeros(config.shape)
    points = list(product(range(config.trials), enumerate(config.noise_levels), enumerate(config.variants),
                          enumerate(config.depths), enumerate(config.h_values)))

    def index_of(point) -> tuple[int, ...]:
        trial, (n, _), (v, _), (d, _), (k, _) = point
        return (v, d, k, n, trial)

    digest = config_hash(config)
    done = (load_points(Path(checkpoint), digest, config.shape, (float, float, bool, float), "companion sweep")
            if checkpoint is not None else {})

    def record(point, outcome) -> None:
        index = index_of(point)
        test[index], train_acc[index], diverged[index], seconds[index] = outcome
        if checkpoint is not None:
            done[index] = [float(outcome[0]), float(outcome[1]), bool(outcome[2]), float(outcome[3])]
            save_points(Path(checkpoint), digest, asdict(config), done)

    for point in points:
        if index_of(point) in done:
            index = index_of(point)
            test[index], train_acc[index], diverged[index], seconds[index] = done[index]
    points = [point for point in points if index_of(point) not in done]

    with tqdm(total=len(points), desc=f"{config.dataset} grid", disable=not progress) as bar:
        if workers == 1:
            cached: dict[int, Dataset] = {}
            for point in points:
                trial, (_, noise), (_, variant), (_, depth), (_, h) = point
                if trial not in cached:
                    cached = {trial: _trial_data(config, trial)}
                record(point, _run_point(config, trial, noise, variant, depth, h, data=cached[trial]))
                bar.update(1)
        else:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor, as_completed

            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
                futures = {pool.submit(_run_point, config, p[0], p[1][1], p[2][1], p[3][1], p[4][1]): p
                           for p in points}
                for future in as_completed(futures):
                    record(futures[future], future.result())
                    bar.update(1)
    return GridResult(config=config, test_accuracy=test, train_accuracy=train_acc, diverged=diverged,
                      seconds=time.perf_counter() - start, run_seconds=seconds)
