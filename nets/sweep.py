"""Sweeps of training runs: one run per (configuration, seed), skipped when finished, resumed when not.

The main paper's Table 1 (section 4.2) is 3 depths x 7 survival probabilities p x 4 seeds of the
stochastic training (4.2), i.e. X_{k+1} = X_k + F(X_k) * gamma_k / p with gamma_k ~ Bern(p), a weak
approximation of dX = f dt + eps g dW with eps^2 = (1 - p) / (p K) (eq. 3.4). This module expands such a
grid into runs of `python -m nets.train`, names each run's directory readably plus a short hash of its
configuration and partitions the run list for job arrays (`shard`). Running the runs is nets/sweep_run.py:
it skips finished runs (summary.finished in metrics.h5), re-runs interrupted ones (the trainer resumes
from its checkpoint) and runs several training processes at once (`execute`); its public names
(plan, execute, run_sweep, run_status, ...) are importable from this module too. The command line is
`python -m nets.sweep` (nets/sweep_cli.py).

Library use::

    config = SweepConfig(models=("preresnet20",), p=(0.9, 1.0), seeds=4, data="cifar10.h5", out=Path("results/t1"))
    runs = expand(config)                      # 8 RunSpec, in execution order
    mine = shard(runs, index=0, count=2)       # a deterministic half of them
    outcomes = run_sweep(config, parallel=2)   # trains what is not finished; writes out/sweep.json
"""
from __future__ import annotations

import functools
import hashlib
import itertools
import json
import math
import numbers
import re
import sys
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Sequence

from kolmogorov._checks import check_choice
from kolmogorov.noise_level import PARAMETER_OF as _PARAMETER_OF  # noise kind -> "p" / "nu" / "beta"
from kolmogorov.noise_level import STOCHASTIC_DEPTH
from nets.lm_start import check_lm_start, is_lm_model
from nets.stochastic_depth import check_stochastic_depth_mode
from nets.train_config import ADDED_FIELDS, DEVICES, MAX_SEED, finite_float

#: the kind of SWEEP_NOISES that is not a mask: stochastic depth at the p_L of a given rms eps (with eps only)
STOCHASTIC_DEPTH_KIND = STOCHASTIC_DEPTH
SWEEP_NOISES = ("none", "bernoulli", "gaussian", "uniform", STOCHASTIC_DEPTH_KIND)
#: RunSpec fields held as plain float / int whatever number type they were given as (see RunSpec)
_FLOAT_FIELDS = ("p", "nu", "beta", "stochastic_depth", "h", "lr", "momentum", "weight_decay", "gamma", "input_noise")
_INT_FIELDS = ("epochs", "batch_size", "seed", "grad_norm_every")
_MODEL_NAME = re.compile(r"^[a-z][a-z0-9_]*$")
#: Most runs one sweep may hold (checked before the grid is expanded).
MAX_RUNS = 100_000


def _default_trainer() -> tuple[str, ...]:
    return (sys.executable, "-m", "nets.train")


@dataclass(frozen=True)
class SweepConfig:
    """A grid of training runs: every combination of the list-valued fields, times `seeds` seeds.

    Attributes:
        models: model names of nets.build_model (e.g. preresnet20, lm_preresnet56).
        data: what `python -m nets.train --data` takes: a path, "synthetic" or "digits".
        out: the sweep's directory; run NAME trains into out/NAME.
        noise: injection kinds among SWEEP_NOISES; empty means inferred from which of p/nu/beta are given
            ("none" when none is). Each kind is crossed with its own parameter list only.
        p: Bernoulli survival probabilities (main paper eq. 3.1; p = 1 is the plain network).
        nu: Gaussian mask standard deviations (eq. 3.13). beta: uniform half-widths (eq. 3.14).
        eps: noise levels eps of the modified equation (3.4), instead of p / nu / beta: every kind of `noise`
            (which must then be given; "none" adds the plain network) is trained at each eps, with the
            parameter that gives it for the model's K blocks (kolmogorov.noise_parameter_for: p = 1/(1 + K
            eps^2), nu = eps sqrt(K), beta = eps sqrt(3K)); so the kinds compare at matched eps (main paper
            section 3.4). K is the built model's num_blocks (imports torch). The runs are named and hashed by
            the parameter (rounded to 12 significant digits: matched_parameter), like runs given p / nu / beta.
            With eps only, noise may also name "stochastic_depth": runs without a mask whose stochastic depth
            has the rms level eps (p_L = kolmogorov.stochastic_depth_survival_for(eps, K), LM-ResNet paper
            section 3.2); stochastic_depth must then stay (None,).
        stochastic_depth: p_L of the linear-decay rule (LM-ResNet paper section 3.2); None = off.
        stochastic_depth_mode: "sample" (default: per-sample drop) or "batch" (the whole block per mini-batch,
            Huang et al. 2016 and the LM-ResNet reference code); one value for the whole sweep, not a grid
            axis. It applies to the runs with stochastic depth (those without keep "sample", their default,
            and their names); "batch" needs at least one stochastic_depth value other than None. It enters a
            run's name (sdbatch) and hash only when not "sample", so existing runs keep their names.
        h: step factors x + h F(x) (robust-ResNet paper eq. 4); None = the trainer's default (1).
        lm_start: the LM-ResNets' starting value u_{-1} (nets.lm_start: "zero" or "rest"), for the LM models
            of the sweep (names starting lm_; the others keep None); one value for the whole sweep, not a grid
            axis. None (the default) = the model's default ("zero"), left out of names and hashes; a value
            enters them as lmzero / lmrest.
        input_noise: standard deviations of the Gaussian noise on the training inputs, in normalized units
            (robust-ResNet paper, section 4.2, Fig. 8; nets.input_noise); 0 = clean training (the default).
            Crossed with the grid like h; a run's name and hash mention it only when it is nonzero, so runs
            without input noise keep the names they had before this option existed.
        grad_norm_every: N > 0 makes every run record per-block gradient and weight norms every N-th
            optimizer step (robust-ResNet paper Fig. 2; nets.grad_norms); one value for the whole sweep, not a
            grid axis. Like input_noise it enters a run's name (gnN) and hash only when nonzero.
        epochs, batch_size: lists crossed with the grid; None = the trainer's default (164, 128).
        seeds, seed_start: seeds seed_start, ..., seed_start + seeds - 1 (at most MAX_SEED = 2**32 - 1, the
            trainer's range); a sweep holds at most MAX_RUNS = 100,000 runs (run_count, checked unexpanded).
        lr, momentum, weight_decay, schedule, gamma: the recipe, the same for every run (None = default);
            numbers of any type (numpy scalars, 1 for 1.0) are canonicalised by RunSpec as the CLI gives them.
        device, compile: passed through; they do not change a run's name or hash.
        trainer: the command prefix that trains one run (default: this Python, -m nets.train).
    """

    models: tuple[str, ...]
    data: str
    out: Path
    noise: tuple[str, ...] = ()
    p: tuple[float, ...] = ()
    nu: tuple[float, ...] = ()
    beta: tuple[float, ...] = ()
    eps: tuple[float, ...] = ()
    stochastic_depth: tuple[float | None, ...] = (None,)
    h: tuple[float | None, ...] = (None,)
    input_noise: tuple[float, ...] = (0.0,)
    grad_norm_every: int = 0
    stochastic_depth_mode: str = "sample"
    lm_start: str | None = None
    epochs: tuple[int | None, ...] = (None,)
    batch_size: tuple[int | None, ...] = (None,)
    seeds: int = 1
    seed_start: int = 0
    lr: float | None = None
    momentum: float | None = None
    weight_decay: float | None = None
    schedule: tuple[int, ...] | None = None
    gamma: float | None = None
    device: str | None = None
    compile: bool = False
    trainer: tuple[str, ...] = field(default_factory=_default_trainer)


def _as_float(name: str, value: Any) -> float | None:
    """value as a plain float (None stays None); ValueError for bools, non-numbers and non-finite values."""
    return None if value is None else finite_float(name, value)


def _as_int(name: str, value: Any) -> int | None:
    """value as a plain int (None stays None); ValueError for bools, non-numbers and non-integral values."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not float(value).is_integer():
        raise ValueError(f"{name} must be an integer, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class RunSpec:
    """One training run: a configuration and a seed. `name` is its directory under the sweep's out.

    Numbers are canonicalised on construction: the float fields (p, nu, beta, stochastic_depth, h, lr,
    momentum, weight_decay, gamma, input_noise) become plain floats, epochs, batch_size, seed,
    grad_norm_every and the schedule plain ints (10.0 -> 10; 10.5, bools and non-finite values are a
    ValueError), so numpy scalars or 1 for 1.0 give the same name, hash and command as the CLI.

    input_noise (robust-ResNet Fig. 8) and grad_norm_every (Fig. 2) enter the name and the hash only when
    nonzero, stochastic_depth_mode only when not "sample", lm_start only when given (not None): a run without
    them is named as before the fields existed.
    """

    model: str
    noise: str | None
    p: float | None
    nu: float | None
    beta: float | None
    stochastic_depth: float | None
    h: float | None
    epochs: int | None
    batch_size: int | None
    seed: int
    data: str
    lr: float | None = None
    momentum: float | None = None
    weight_decay: float | None = None
    schedule: tuple[int, ...] | None = None
    gamma: float | None = None
    input_noise: float = 0.0
    grad_norm_every: int = 0
    stochastic_depth_mode: str = "sample"
    lm_start: str | None = None

    def __post_init__(self) -> None:
        """Hold every number as a plain float or int (numpy scalars, 1 for 1.0, 10.0 for 10), as the CLI
        gives them, so that a library-built run has the CLI's name, hash and trainer arguments."""
        for name in _FLOAT_FIELDS:
            object.__setattr__(self, name, _as_float(name, getattr(self, name)))
        for name in _INT_FIELDS:
            object.__setattr__(self, name, _as_int(name, getattr(self, name)))
        if self.schedule is not None:
            object.__setattr__(self, "schedule", tuple(_as_int("schedule", m) for m in self.schedule))

    def configuration(self) -> dict:
        """The fields that change what is trained, without the seed; None (trainer default) left out,
        and input_noise and grad_norm_every left out when 0, stochastic_depth_mode when "sample" (the trainer's
        defaults).

        The data enters by its file name only, so that moving the data (or the sweep) to another
        machine keeps every run's hash; what the data is, is checked by its fingerprint instead (the
        trainer records Dataset.fingerprint(); nets.sweep_run.check_fingerprints compares it).
        """
        out = {}
        for key, value in asdict(self).items():
            if key == "seed" or value is None or (key in ADDED_FIELDS and value == ADDED_FIELDS[key]):
                continue
            if key == "data":
                value = Path(value).name if value not in ("synthetic", "digits") else value
            if key == "schedule":
                value = list(value)
            out[key] = value
        return out

    @property
    def config_hash(self) -> str:
        """First 8 hex digits of the SHA-256 of the configuration's canonical JSON (seed excluded)."""
        text = json.dumps(self.configuration(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()[:8]

    @property
    def name(self) -> str:
        """Readable directory name, e.g. preresnet20-bernoulli-p0.9-s0-1a2b3c4d."""
        parts = [self.model]
        if self.noise is None:
            parts.append("plain")
        else:
            parameter = _PARAMETER_OF[self.noise]
            parts.append(f"{self.noise}-{parameter}{getattr(self, parameter):g}")
        if self.stochastic_depth is not None:
            parts.append(f"sd{self.stochastic_depth:g}")
        if self.stochastic_depth_mode != "sample":
            parts.append(f"sd{self.stochastic_depth_mode}")
        if self.lm_start is not None:
            parts.append(f"lm{self.lm_start}")
        if self.h is not None:
            parts.append(f"h{self.h:g}")
        if self.input_noise:
            parts.append(f"inoise{self.input_noise:g}")
        if self.grad_norm_every:
            parts.append(f"gn{self.grad_norm_every}")
        if self.epochs is not None:
            parts.append(f"e{self.epochs}")
        if self.batch_size is not None:
            parts.append(f"b{self.batch_size}")
        parts.append(f"s{self.seed}")
        parts.append(self.config_hash)
        return "-".join(parts)

    def train_args(self, run_dir: Path) -> list[str]:
        """Arguments of `python -m nets.train` for this run, writing into run_dir."""
        args = ["--model", self.model]
        if self.noise is not None:
            parameter = _PARAMETER_OF[self.noise]
            args += ["--noise", self.noise, f"--{parameter}", repr(float(getattr(self, parameter)))]
        optional = (("--stochastic-depth", self.stochastic_depth), ("--h", self.h), ("--epochs", self.epochs),
                    ("--batch-size", self.batch_size), ("--lr", self.lr), ("--momentum", self.momentum),
                    ("--weight-decay", self.weight_decay), ("--gamma", self.gamma))
        for flag, value in optional:
            if value is not None:
                args += [flag, repr(value)]  # plain float or int (__post_init__): '0.05', '10'
        if self.input_noise:
            args += ["--input-noise", repr(float(self.input_noise))]
        if self.grad_norm_every:
            args += ["--grad-norm-every", str(int(self.grad_norm_every))]
        if self.stochastic_depth_mode != "sample":
            args += ["--stochastic-depth-mode", self.stochastic_depth_mode]
        if self.lm_start is not None:
            args += ["--lm-start", self.lm_start]
        if self.schedule is not None:
            args += ["--schedule", *[str(m) for m in self.schedule]]
        args += ["--data", self.data, "--out", str(run_dir), "--seed", str(self.seed)]
        return args


def _check_positive_ints(name: str, values: Sequence[int | None]) -> None:
    for value in values:
        if value is not None and (isinstance(value, bool) or int(value) != value or value < 1):
            raise ValueError(f"{name} must be positive integers, got {value!r}")


def _check_unit_interval(name: str, values: Sequence[float | None], allow_none: bool) -> None:
    for value in values:
        if value is None and allow_none:
            continue
        if value is None or not math.isfinite(float(value)) or not 0.0 < float(value) <= 1.0:
            raise ValueError(f"{name} values must be in (0, 1]{' or none' if allow_none else ''}, got {value!r}")


def _resolve_noises(config: SweepConfig) -> tuple[str, ...]:
    given = {kind: tuple(getattr(config, parameter)) for kind, parameter in _PARAMETER_OF.items()}
    if config.eps:
        named = [parameter for kind, parameter in _PARAMETER_OF.items() if given[kind]]
        if named:
            raise ValueError(f"eps sets the noise parameters; do not give {', '.join(named)} with it")
        if not [kind for kind in config.noise if kind != "none"]:
            raise ValueError(f"eps needs noise to name the kinds trained at each eps, among "
                             f"{', '.join(SWEEP_NOISES[1:])}; got noise {list(config.noise)}")
        if STOCHASTIC_DEPTH_KIND in config.noise and any(sd is not None for sd in config.stochastic_depth):
            raise ValueError(f"noise {STOCHASTIC_DEPTH_KIND} with eps sets p_L; do not give stochastic_depth values "
                             f"(--stochastic-depth) with it; got {list(config.stochastic_depth)}")
        given = {kind: tuple(config.eps) if kind in config.noise else () for kind in given}
    elif STOCHASTIC_DEPTH_KIND in config.noise:
        raise ValueError(f"noise {STOCHASTIC_DEPTH_KIND} needs eps (--eps: its p_L is matched to each eps); without "
                         "eps give p_L as a stochastic_depth value (--stochastic-depth) and leave it out of noise")
    if not config.noise:
        kinds = tuple(kind for kind in _PARAMETER_OF if given[kind])
        return kinds or ("none",)
    for kind in config.noise:
        if kind not in SWEEP_NOISES:
            raise ValueError(f"noise must be among {', '.join(SWEEP_NOISES)}; got {kind!r}")
    if len(set(config.noise)) != len(config.noise):
        raise ValueError(f"noise lists a kind twice: {list(config.noise)}")
    for kind, parameter in _PARAMETER_OF.items():
        if kind in config.noise and not given[kind]:
            raise ValueError(f"noise {kind} needs values for {parameter}")
        if given[kind] and kind not in config.noise:
            raise ValueError(f"{parameter} is given but noise does not include {kind}; noise: {list(config.noise)}")
    return tuple(config.noise)


def validate(config: SweepConfig) -> None:
    """Raise ValueError naming the field and the allowed values when config is not a valid sweep."""
    from kolmogorov.noise_level import check_noise_parameter
    from nets.grad_norms import check_every
    from nets.input_noise import check_input_noise

    if not config.models:
        raise ValueError("models must name at least one model")
    for model in config.models:
        if not isinstance(model, str) or not _MODEL_NAME.match(model):
            raise ValueError(f"models must be model names such as preresnet20 or lm_preresnet56; got {model!r}")
    if not config.data:
        raise ValueError("data must be a path, 'synthetic' or 'digits'")
    for kind, parameter in _PARAMETER_OF.items():
        values = getattr(config, parameter)
        for value in values:
            check_noise_parameter(kind, value)
        if len(set(values)) != len(values):
            raise ValueError(f"{parameter} lists a value twice: {list(values)}")
    for value in config.eps:
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not (math.isfinite(value) and value > 0):
            raise ValueError(f"eps values must be finite and > 0 (add noise 'none' for the plain network); got {value!r}")
    if len(set(config.eps)) != len(config.eps):
        raise ValueError(f"eps lists a value twice: {list(config.eps)}")
    _resolve_noises(config)
    _check_unit_interval("stochastic_depth", config.stochastic_depth, allow_none=True)
    check_stochastic_depth_mode(config.stochastic_depth_mode)
    if (config.stochastic_depth_mode != "sample" and all(sd is None for sd in config.stochastic_depth)
            and STOCHASTIC_DEPTH_KIND not in config.noise):
        raise ValueError(f"stochastic_depth_mode {config.stochastic_depth_mode} needs stochastic_depth values other "
                         f"than none; got {list(config.stochastic_depth)}")
    if config.lm_start is not None:
        check_lm_start(config.lm_start)
        if not any(is_lm_model(model) for model in config.models):
            raise ValueError(f"lm_start {config.lm_start} needs an LM model (lm_preresnet...) among models; got "
                             f"{', '.join(config.models)}")
    for value in config.h:
        if value is not None and not (math.isfinite(float(value)) and float(value) > 0.0):
            raise ValueError(f"h values must be finite and > 0, got {value!r}")
    for value in config.input_noise:
        check_input_noise(value)
    check_every(config.grad_norm_every)
    for name in ("stochastic_depth", "h", "input_noise", "epochs", "batch_size", "models"):
        values = getattr(config, name)
        if not values:
            raise ValueError(f"{name} must hold at least one value (None for the trainer's default)")
        if len(set(values)) != len(values):
            raise ValueError(f"{name} lists a value twice: {list(values)}")
    _check_positive_ints("epochs", config.epochs)
    _check_positive_ints("batch_size", config.batch_size)
    _check_positive_ints("seeds", [config.seeds])
    if isinstance(config.seed_start, bool) or int(config.seed_start) != config.seed_start or config.seed_start < 0:
        raise ValueError(f"seed_start must be an integer >= 0, got {config.seed_start!r}")
    if config.seed_start + config.seeds - 1 > MAX_SEED:
        raise ValueError(f"seeds: seed_start + seeds - 1 = {config.seed_start + config.seeds - 1} exceeds the largest "
                         f"seed, 2**32 - 1 = {MAX_SEED} (seeds {config.seeds}, seed_start {config.seed_start})")
    count = run_count(config)
    if count > MAX_RUNS:
        raise ValueError(f"seeds: the sweep would hold {count} runs ({config.seeds} seeds x {count // config.seeds} "
                         f"configurations); at most {MAX_RUNS} runs in one sweep")
    if config.schedule is not None:
        _check_positive_ints("schedule", config.schedule)
    for name in ("lr", "momentum", "weight_decay", "gamma"):
        value = getattr(config, name)
        if value is not None and not (math.isfinite(float(value)) and float(value) >= 0.0):
            raise ValueError(f"{name} must be finite and >= 0, got {value!r}")
    if config.device is not None:
        check_choice("device", config.device, DEVICES)
    if not config.trainer:
        raise ValueError("trainer must be a non-empty command")


def run_count(config: SweepConfig) -> int:
    """How many runs expand(config) gives (computed, not expanded)."""
    per_seed = len(config.models) * sum(1 if kind == "none" else len(config.eps or getattr(config, _PARAMETER_OF[kind]))
                                        for kind in _resolve_noises(config))
    for name in ("stochastic_depth", "h", "input_noise", "epochs", "batch_size"):
        per_seed *= len(getattr(config, name))
    return per_seed * int(config.seeds)


def check_models_exist(models: Sequence[str]) -> None:
    """ValueError unless every name is one of nets.list_models() (imports torch: used by the CLI only)."""
    from nets.models import list_models

    known = list_models()
    unknown = [model for model in models if model not in known]
    if unknown:
        raise ValueError(f"unknown model(s) {', '.join(unknown)}; models must be among {', '.join(known)}")


def check_image_models(models: Sequence[str]) -> None:
    """ValueError unless every name is a model nets.train can train on images: known (check_models_exist) and
    taking images (nets.trainer.check_image_model). Imports torch."""
    from nets.trainer import check_image_model

    check_models_exist(models)
    for model in models:
        check_image_model(model)


def data_fingerprints(data: str) -> tuple[str, str]:
    """Load `data` as nets.train would and return (Dataset.fingerprint(), Dataset.layout_fingerprint()).

    Raises DataError (a ValueError, one line naming the file) when the trainer could not load it.
    """
    from nets.data import load_dataset

    return load_dataset(data).fingerprints()


def check_trainer_accepts(config: SweepConfig, runs: Sequence[RunSpec]) -> tuple[str, str]:
    """Fail before training anything when nets.train would refuse a run (imports torch); return the
    data's (fingerprint, layout fingerprint) (data_fingerprints).

    Checks the model names, loads --data with the trainer's parser (data_fingerprints) and builds
    nets.trainer.TrainConfig for every distinct configuration, and the model's config from its options, so
    that their checks (lr > 0, momentum in [0, 1), gamma in (0, 1], increasing milestones, an option the
    model does not take, ...) reject a bad sweep at once, not once per run.
    """
    from nets.models import build_config
    from nets.train_config import TrainConfig

    check_image_models(config.models)
    fingerprint = data_fingerprints(config.data)
    seen = set()
    for run in runs:
        if run.config_hash in seen:
            continue
        seen.add(run.config_hash)
        fields = {key: value for key, value in asdict(run).items() if value is not None}
        if "schedule" in fields:
            fields["milestones"] = tuple(fields.pop("schedule"))
        train_config = TrainConfig(**fields)
        build_config(train_config.model, **train_config.model_options())
    return fingerprint


@functools.lru_cache(maxsize=None)
def model_blocks(model: str) -> int:
    """K, the number of residual blocks of `model` as built by nets.build_model (imports torch)."""
    from nets.models import build_model

    return int(build_model(model).num_blocks)


def matched_parameter(kind: str, model: str, blocks: int, eps: float) -> float:
    """The parameter (p, nu or beta) of noise `kind` that gives noise level eps with K = blocks blocks, rounded to 12
    significant digits (so eps 0.15 at K = 9 is nu 0.45, the run `--nu 0.45` names, not 0.44999999999999996);
    ValueError naming eps and the model when there is none: uniform beta must stay below 1 (eps < 1/sqrt(3K)),
    and the rounded parameter must give eps to 1e-6 relative (a Bernoulli p = 1/(1 + K eps^2) rounds towards 1,
    i.e. no noise, for eps below about 3e-6)."""
    from kolmogorov.noise_level import epsilon, noise_parameter_for

    bound = 1.0 / math.sqrt(3.0 * blocks)
    if kind == "uniform" and eps >= bound:  # beta = eps sqrt(3K) must stay below 1
        raise ValueError(f"eps {eps:g} is out of reach of uniform noise in {model} (K = {blocks} blocks): eps must be "
                         f"below 1/sqrt(3K) = {bound:.6g} (beta < 1)")
    value = float(f"{noise_parameter_for(kind, blocks, eps):.12g}")
    name = _PARAMETER_OF[kind]
    if kind == "uniform" and value >= 1.0:
        raise ValueError(f"eps {eps!r} is out of reach of uniform noise in {model} (K = {blocks} blocks): beta rounds "
                         f"to {value!r} (12 digits); eps must be below 1/sqrt(3K) = {bound:.6g} by more")
    reached = epsilon(kind, blocks, **{name: value})
    if not math.isclose(reached, eps, rel_tol=1e-6):  # p = 1/(1 + K eps^2) rounds towards 1 for a small eps
        raise ValueError(f"eps {eps!r} is too small for {kind} noise in {model} (K = {blocks} blocks): {name} rounds to "
                         f"{value!r} (12 digits), which gives eps {reached:.9g}, off by more than 1e-6 relative; use a "
                         "larger eps")
    return value


def matched_stochastic_depth(model: str, blocks: int, eps: float) -> float:
    """The p_L whose stochastic depth has rms noise level eps in K = blocks blocks
    (kolmogorov.stochastic_depth_survival_for), rounded to 12 significant digits like matched_parameter;
    ValueError naming eps and the model when the rounded p_L misses eps by more than 1e-6 relative (p_L rounds
    to 1, no stochastic depth, for eps below about 1e-6)."""
    from kolmogorov.noise_level import stochastic_depth_epsilon, stochastic_depth_survival_for

    try:
        value = float(f"{stochastic_depth_survival_for(eps, blocks):.12g}")
    except ValueError as error:  # beyond what a float64 p_L reaches: "eps must be 0 or at least ..."
        raise ValueError(f"eps {eps!r} is out of reach for stochastic depth in {model} (K = {blocks} blocks): "
                         f"{error}") from None
    reached = stochastic_depth_epsilon(value, blocks)
    if not math.isclose(reached, eps, rel_tol=1e-6):
        raise ValueError(f"eps {eps!r} is too small for stochastic depth in {model} (K = {blocks} blocks): p_L "
                         f"rounds to {value!r} (12 digits), which gives eps {reached:.9g}, off by more than 1e-6 relative; use a "
                         "larger eps")
    return value


def _noise_settings(config: SweepConfig, kind: str, model: str, blocks: int | None) -> list[dict]:
    """The noise keyword arguments of RunSpec for one kind of one model: its parameter list, or the parameters
    matching config.eps for the model's K = blocks (for stochastic depth: no mask, and the matched p_L)."""
    if kind == "none":
        return [dict(noise=None)]
    if kind == STOCHASTIC_DEPTH_KIND:
        return [dict(noise=None, stochastic_depth=matched_stochastic_depth(model, blocks, float(e))) for e in config.eps]
    parameter = _PARAMETER_OF[kind]
    if config.eps:
        return [{"noise": kind, parameter: matched_parameter(kind, model, blocks, float(e))} for e in config.eps]
    return [{"noise": kind, parameter: float(v)} for v in getattr(config, parameter)]


def expand(config: SweepConfig) -> list[RunSpec]:
    """All runs of the sweep in execution order: models outermost, seeds innermost."""
    validate(config)
    runs: list[RunSpec] = []
    recipe = dict(lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay,
                  schedule=tuple(config.schedule) if config.schedule is not None else None, gamma=config.gamma)
    if config.eps:  # model_blocks builds each model: refuse unknown and non-image models with the sweep's messages
        check_image_models(config.models)
    for model in config.models:
        blocks = model_blocks(model) if config.eps else None
        for kind in _resolve_noises(config):
            noise_settings = _noise_settings(config, kind, model, blocks)
            for noise_setting in noise_settings:
                noise_setting = dict(noise_setting)
                depth_values = ((noise_setting.pop("stochastic_depth"),) if "stochastic_depth" in noise_setting
                                else config.stochastic_depth)
                for sd in depth_values:
                    for h, sigma in itertools.product(config.h, config.input_noise):
                        for epochs in config.epochs:
                            for batch_size in config.batch_size:
                                for seed in range(config.seed_start, config.seed_start + config.seeds):
                                    settings = {"p": None, "nu": None, "beta": None, **noise_setting}
                                    runs.append(RunSpec(
                                        model=model, stochastic_depth=None if sd is None else float(sd),
                                        h=None if h is None else float(h), epochs=epochs, batch_size=batch_size,
                                        seed=seed, data=config.data, input_noise=float(sigma),
                                        grad_norm_every=int(config.grad_norm_every),
                                        stochastic_depth_mode="sample" if sd is None else config.stochastic_depth_mode,
                                        lm_start=config.lm_start if is_lm_model(model) else None,
                                        **settings, **recipe))
    return runs


def shard(runs: Sequence[RunSpec], index: int, count: int) -> list[RunSpec]:
    """The runs of shard `index` (0-based) of `count`: round-robin over the runs sorted by name.

    Sorting by name makes the partition independent of the order of the command-line lists, so every
    job of an array computes the same partition; the shards are disjoint and together hold every run.
    """
    if isinstance(count, bool) or int(count) != count or count < 1:
        raise ValueError(f"shard count must be a positive integer, got {count!r}")
    if isinstance(index, bool) or int(index) != index or not 0 <= index < count:
        raise ValueError(f"shard index must be in 0..{count - 1}, got {index!r}")
    order = sorted(range(len(runs)), key=lambda i: runs[i].name)
    mine = {i for position, i in enumerate(order) if position % count == index}
    return [run for i, run in enumerate(runs) if i in mine]


def parse_shard(text: str) -> tuple[int, int]:
    """'I/N' -> (I, N) with 0 <= I < N; ValueError otherwise."""
    match = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", text)
    if not match:
        raise ValueError(f"shard must be I/N with 0 <= I < N (e.g. 0/4), got {text!r}")
    index, count = int(match.group(1)), int(match.group(2))
    if count < 1 or index >= count:
        raise ValueError(f"shard must be I/N with 0 <= I < N (e.g. 0/4), got {text!r}")
    return index, count


def command(config: SweepConfig, run: RunSpec) -> list[str]:
    """The full command line that trains `run` into config.out / run.name."""
    cmd = [*config.trainer, *run.train_args(Path(config.out) / run.name)]
    if config.device is not None:
        cmd += ["--device", config.device]
    if config.compile:
        cmd.append("--compile")
    return cmd


def with_trainer(config: SweepConfig, trainer: Sequence[str]) -> SweepConfig:
    """A copy of config that trains with another command prefix (e.g. torchrun ... -m nets.train)."""
    return replace(config, trainer=tuple(trainer))


#: nets.sweep_run's public names, importable from here (loaded on first use: sweep_run imports this module).
_RUN_NAMES = ("RUN_STATUSES", "RunOutcome", "SweepPlan", "check_fingerprints", "dry_run_lines", "execute", "plan",
              "run_status", "run_sweep", "write_json_atomic")


def __getattr__(name: str) -> Any:
    if name in _RUN_NAMES:
        from nets import sweep_run

        return getattr(sweep_run, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


if __name__ == "__main__":
    from nets.sweep_cli import main

    sys.exit(main())
