"""Fast, resumable training with the main paper's recipe (section 4.2.1): the library behind `python -m nets.train`.

Recipe defaults: SGD with momentum 0.9 and weight decay 1e-4, learning rate 0.1 divided by 10 at epochs
81 and 122, 164 epochs, batch 128, standard augmentation (4-pixel zero-padded random crop, horizontal
flip). The noisy network is trained on the loss J_eps of (4.2) (noise in the residual branches, (3.1));
evaluation uses the deterministic network (p = 1), as in the paper. With input_noise > 0 the network
trains on a fixed Gaussian-corrupted copy of the training images (robust-ResNet paper, Fig. 8;
nets.input_noise) and is tested on the clean test set.

Speed without a second code path: the whole data set sits on the device as uint8, augmentation is
batched tensor work (nets.augment), no DataLoader workers; on CUDA bf16 autocast and channels_last are
switched on and torch.compile is optional. The same code runs on CPU, where it is deterministic:
a run resumed from its checkpoint ends bit-identical to one never interrupted.
"""
from __future__ import annotations

import json
import math
import numbers
import os
import platform
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kolmogorov._atomic import atomic_output, check_writable
from kolmogorov._checks import check_choice

from . import provenance
from .device import resolve_device  # noqa: F401 (also imported from here: benchmarks/bench_train.py)
from .epoch import evaluate, train_epoch
from .locks import RunLockedError, busy_message, locked_by, run_lock
from .stochastic_depth import STOCHASTIC_DEPTH_MODES  # noqa: F401 (nets.train)

from .train_config import (ADDED_FIELDS, DEVICES, EXECUTION_FIELDS, FINGERPRINT_KEY, LAYOUT_KEY,  # noqa: F401
                           MAX_LR, MAX_SEED, MAX_WEIGHT_DECAY, MODEL_OPTIONS, NOISE_KINDS, TrainConfig, finite_float)


@dataclass(frozen=True)
class TrainResult:
    """What train() did: where the run lives and how it ended."""

    out_dir: str
    metrics_path: str
    checkpoint_path: str
    epochs_completed: int
    finished: bool
    already_finished: bool
    resumed_from_epoch: int
    final_test_acc: float
    best_test_acc: float
    history: dict[str, list] = field(repr=False, default_factory=dict)
    grad_norms: Any = field(repr=False, default=None)  # nets.grad_norms.GradNormRecords when grad_norm_every > 0


class RunConflictError(ValueError):
    """The output directory holds a run with a different configuration."""


class TrainingDiverged(RuntimeError):
    """An epoch's training or test loss was not finite (NaN or inf); that epoch was not saved.

    A RuntimeError, not a ValueError: the configuration was valid, the optimization blew up (too large a
    learning rate, noise or step factor). `epoch` is the diverged epoch, `saved_epoch` the last one kept in
    checkpoint.pt and metrics.h5 (0: nothing was saved; the config.json train() wrote was removed, and one that
    was there before it started is left as it was).
    """

    def __init__(self, message: str, epoch: int, train_loss: float, test_loss: float, saved_epoch: int):
        super().__init__(message)
        self.epoch, self.train_loss, self.test_loss, self.saved_epoch = epoch, train_loss, test_loss, saved_epoch


def _what_to_lower(config: TrainConfig) -> str:
    """The flags whose values drive a divergence, with their values: --lr, then the config's noise settings."""
    advice = [f"lower --lr (now {config.lr:g})"]
    if config.noise == "bernoulli" and config.p is not None:
        advice.append(f"raise --p towards 1 (now {config.p:g})")
    for name, flag in (("nu", "--nu"), ("beta", "--beta"), ("h", "--h")):
        value = getattr(config, name)
        if value is not None and (name == "h" or config.noise is not None):
            advice.append(f"lower {flag} (now {value:g})")
    if config.input_noise > 0:
        advice.append(f"lower --input-noise (now {config.input_noise:g})")
    return ", ".join(advice[:-1]) + (" or " if len(advice) > 1 else "") + advice[-1]


def divergence_error(config: TrainConfig, epoch: int, train_loss: float, test_loss: float,
                     saved_epoch: int) -> TrainingDiverged:
    """The one-line TrainingDiverged of a run whose epoch `epoch` gave a non-finite loss."""
    which = (f"training loss {train_loss:g}" if not math.isfinite(train_loss)
             else f"test loss {test_loss:g} (training loss {train_loss:g})")
    kept = (f"checkpoint.pt and metrics.h5 keep epoch {saved_epoch}" if saved_epoch
            else "no epoch was saved")
    return TrainingDiverged(f"training diverged at epoch {epoch}: {which} is not finite; {_what_to_lower(config)}; "
                            f"epoch {epoch} was not saved, {kept}", epoch, train_loss, test_loss, saved_epoch)


def device_name(device) -> str:
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def _check_existing(out: Path, config: TrainConfig) -> dict[str, Any] | None:
    """Refuse a run directory made by another configuration; return its checkpoint if there is one.

    Fields in EXECUTION_FIELDS (device, compile, amp, ..., the data path) may differ: a run may resume
    elsewhere. The data itself is compared by fingerprint once it is loaded (_check_fingerprint); a run
    recorded without a fingerprint (before they existed) keeps the exact comparison of the data string.
    A recorded configuration written before a field of ADDED_FIELDS existed lacks it and is read with that
    field's value then (input_noise 0.0: clean training), so old runs still resume and count as finished.
    """
    ckpt, recorded = _read_recorded(out)
    if recorded is None:
        return None
    fingerprint = _recorded_fingerprint(ckpt, recorded)
    recorded = {**ADDED_FIELDS, **recorded}
    recorded.pop(FINGERPRINT_KEY, None)
    recorded.pop(LAYOUT_KEY, None)
    wanted = config.to_dict()
    free = set(EXECUTION_FIELDS) - ({"data"} if fingerprint is None else set())
    diffs = [f"{k}: {recorded.get(k)!r} -> {wanted.get(k)!r}" for k in sorted(set(recorded) | set(wanted))
             if k not in free and recorded.get(k) != wanted.get(k)]
    if diffs:
        hint = "" if ckpt is not None else (" (config.json only: no epoch was saved; delete it to start this "
                                            "configuration there)")
        raise RunConflictError(f"out: {out} holds a run with a different configuration ({'; '.join(diffs)}){hint}; "
                               "use another --out")
    return ckpt


def _read_recorded(out: Path) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(checkpoint or None, recorded configuration or None): the checkpoint's, else config.json's."""
    from .checkpoint import load_checkpoint

    if (out / "checkpoint.pt").exists():
        ckpt = load_checkpoint(out / "checkpoint.pt")
        return ckpt, dict(ckpt["config"])
    if (out / "config.json").exists():
        try:
            recorded = json.loads((out / "config.json").read_text())
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{out / 'config.json'}: unreadable ({type(exc).__name__})") from None
        if not isinstance(recorded, dict):
            raise ValueError(f"{out / 'config.json'}: not a JSON object (got a {type(recorded).__name__}); it is "
                             "not a run's configuration: use another --out")
        return None, recorded
    return None, None


def _recorded_fingerprint(ckpt: dict[str, Any] | None, recorded: dict[str, Any] | None,
                          key: str = FINGERPRINT_KEY) -> str | None:
    """The data fingerprint (or, key=LAYOUT_KEY, layout fingerprint) a run recorded (its checkpoint's, else
    config.json's); None before they existed."""
    if ckpt is not None:
        return ckpt.get(key)
    return None if recorded is None else recorded.get(key)


def pixels_differ_warning(where: str, data: str, what: str = "the run") -> str:
    """The one line said when a run resumes on data whose pixels alone differ from those it started on."""
    return (f"warning: {where}: the pixel values of {data} differ from those {what} started on (same classes, "
            "shapes and labels; e.g. another image decoder or a re-encoding); training continues on the new pixels")


def fingerprints_agree(recorded: tuple[str | None, str | None], current: tuple[str, str]) -> bool | None:
    """Compare a run's recorded (fingerprint, layout fingerprint) with the data's: True when the data is
    the same (or the run recorded no fingerprint), None when only the pixel values differ (same layout
    fingerprint), False when it is other data (a run that recorded no layout fingerprint and differs too)."""
    if recorded[0] is None or recorded[0] == current[0]:
        return True
    return None if recorded[1] is not None and recorded[1] == current[1] else False


def _check_fingerprint(out: Path, recorded: tuple[str | None, str | None], current: tuple[str, str], data: str,
                       warn: bool = False) -> None:
    """RunConflictError when the run in `out` was trained on other data than `data` (fingerprints `current`);
    pixels alone differing is accepted, with one warning line on stderr when `warn`."""
    agree = fingerprints_agree(recorded, current)
    if agree is False:
        raise RunConflictError(f"out: {out} was trained on other data (data fingerprint {recorded[0]}; {data} has "
                               f"{current[0]}); use another --out")
    if agree is None and warn:
        print(pixels_differ_warning(f"out {out}", data), file=sys.stderr, flush=True)


def _metrics_current(out: Path, ckpt: dict[str, Any]) -> bool:
    """Whether out/metrics.h5 holds the checkpoint's epochs and finished flag (read only)."""
    from .metrics import read_metrics

    try:
        current = read_metrics(out / "metrics.h5")
    except ValueError:
        return False
    return current.epochs_completed == ckpt["epoch"] and current.finished == ckpt["finished"]


def _sync_metrics(out: Path, ckpt: dict[str, Any]) -> None:
    """Rewrite metrics.h5 from the checkpoint when a kill between the two writes left it behind."""
    from .grad_norms import records_from_state
    from .metrics import summarize, write_metrics

    history = ckpt["history"]
    if _metrics_current(out, ckpt):
        return
    write_metrics(out / "metrics.h5", history, ckpt["config"], ckpt["metrics_attrs"],
                  summarize(history, ckpt["finished"], ckpt["device_name"]),
                  grad_norms=records_from_state(ckpt.get("grad_norms")))


def _remove_stale_temporaries(out: Path) -> None:
    """Delete temporary files a killed run left behind (they are never read: the os.replace did not happen)."""
    for pattern in (".checkpoint-*.pt.tmp", ".metrics-*.h5.tmp", ".config.json-*.tmp"):
        for path in out.glob(pattern):
            path.unlink(missing_ok=True)


def _write_json_atomic(path: Path, payload: dict) -> None:
    with atomic_output(path, prefix=f".{path.name}-", suffix=".tmp") as tmp:
        Path(tmp).write_text(json.dumps(payload, indent=1, sort_keys=True))


def check_out_dir(out: str | os.PathLike, name: str = "out") -> Path:
    """`out` as a Path when a run directory can live there; creates nothing.

    ValueError naming `name` (e.g. "--out") when `out` is empty (it would mean the current directory),
    exists and is not a directory, lies under a regular file, or lies where no file can be created (e.g.
    /proc/x; kolmogorov._atomic.check_writable). An existing directory is accepted as it is: reporting a
    finished run or a sweep's --dry-run writes nothing, and a write that fails later is one line too.
    """
    text = os.fspath(out)
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{name} must be a non-empty path; got {text!r}")
    if Path(text).is_dir():  # not probed: a finished run (or a dry run) in a read-only copy needs no writing
        return Path(text)
    return check_writable(text, directory=True, name=name)


def check_image_model(name: str) -> None:
    """ValueError unless `name` is a registered model that takes images (imports torch): the trainer builds
    every model with the data's in_channels, which the MLP ResNets (2-D points) do not have."""
    from . import list_models
    from .models.registry import model_options

    check_choice("model", name, list_models())
    if "in_channels" not in model_options(name):
        images = [m for m in list_models() if "in_channels" in model_options(m)]
        raise ValueError(f"model {name!r} takes feature vectors, not images (see nets.companion); the trainer takes "
                         f"an image model: one of {', '.join(images)}")


def check_stop_after(stop_after: int | None) -> int | None:
    """`stop_after` itself when it is None or an integer >= 1 (train()'s epochs per call), else ValueError."""
    if stop_after is not None and (isinstance(stop_after, bool) or not isinstance(stop_after, numbers.Integral)
                                   or stop_after < 1):
        raise ValueError(f"stop_after must be None or an integer >= 1; got {stop_after!r}")
    return stop_after


def train(config: TrainConfig, out_dir: str | os.PathLike, progress: bool = True,
          stop_after: int | None = None, dataset: Any = None) -> TrainResult:
    """Train (or resume, or report as finished) the run `config` in `out_dir`.

    `stop_after` N trains at most N epochs in this call and returns (finished=False while epochs remain); a
    later call resumes, bit for bit on CPU as after a kill. None trains to config.epochs.
    `dataset`: config.data already loaded (nets.data.load_dataset(config.data)) by a caller that needed it
    before (nets.reproduce checks its fingerprint first), so that it is not read again; None reads config.data.
    Either way its fingerprint is what the run records and what a resumed run must match.

    Writes out_dir/config.json (with the data's fingerprint), then after every epoch out_dir/checkpoint.pt (model, optimizer,
    scheduler, epoch, history and every RNG state) and out_dir/metrics.h5 (nets.metrics), both atomically.
    Running it again with the same config resumes from the checkpoint; a finished run returns at once
    with already_finished=True. Under torchrun (WORLD_SIZE > 1) it trains with DistributedDataParallel:
    each rank takes its shard of every batch and rank 0 alone writes the files.

    Raises:
        ValueError (RunConflictError) when out_dir holds a different run or one trained on other data
        (Dataset.fingerprint(), recorded as data_fingerprint); RunLockedError (a ValueError) when another
        process is training in out_dir (rank 0 holds out_dir/.lock while it trains; see run_lock);
        DataError (a ValueError) for missing or corrupt data; ValueError for a bad model name or option;
        TrainingDiverged (a RuntimeError) at the first epoch whose training or test loss is not finite: that
        epoch is not written, so checkpoint.pt and metrics.h5 keep the epochs before it (when the first
        epoch diverges nothing is kept: the config.json this call wrote is removed, and out_dir too when this
        call created it; a config.json that was there before is left as it was).
    """
    from . import build_config
    from .data import load_dataset

    check_stop_after(stop_after)
    check_image_model(config.model)
    build_config(config.model, **config.model_options())  # validates the options before any data is read
    device = resolve_device(config.device)
    out = check_out_dir(out_dir)
    world, rank = int(os.environ.get("WORLD_SIZE", "1")), int(os.environ.get("RANK", "0"))
    main = rank == 0
    # Nothing is written to `out` until the run is known to start: first a read-only look at what it holds
    # (a conflict is refused before the data is read), then the data, the model and the optimizer are built;
    # only then is the directory locked, checked again (another process may have written meanwhile) and written.
    holder = locked_by(out) if main and out.is_dir() else None
    if holder is not None:  # stop at once, not after loading the data (run_lock below is what guarantees it)
        raise RunLockedError(busy_message(out, holder))
    ckpt = _check_existing(out, config) if out.is_dir() else None
    if ckpt is not None and ckpt["finished"] and (not main or _metrics_current(out, ckpt)):
        return _finished_result(config, out, ckpt, None)  # nothing to write: no lock (a read-only copy works)
    prepared = None
    if ckpt is None or not ckpt["finished"]:
        _check_world(out, ckpt, world)
        if world > 1:
            device = _rank_device(device)
        if dataset is None:
            dataset = load_dataset(config.data, progress=progress and main)
        prepared = _prepare(config, dataset, device, rank)
        _check_fingerprint(out, _existing_fingerprints(out, ckpt), prepared.fingerprints, config.data)
    with run_lock(out) if main else nullcontext():  # rank 0 writes the files
        return _train_locked(config, out, device, world, rank, progress, prepared, stop_after)


def _check_world(out: Path, ckpt: dict[str, Any] | None, world: int) -> None:
    if ckpt is not None and ckpt.get("world_size", 1) != world:
        raise ValueError(f"out: {out} was trained by {ckpt.get('world_size', 1)} process(es); resume it with as many "
                         f"(WORLD_SIZE is {world} now)")


def _existing_fingerprints(out: Path, ckpt: dict[str, Any] | None) -> tuple[str | None, str | None]:
    """(data fingerprint, layout fingerprint) recorded in `out` (its checkpoint's, else its config.json's);
    None for each that was not recorded."""
    if ckpt is None:
        ckpt, recorded = _read_recorded(out) if out.is_dir() else (None, None)
    else:
        recorded = None
    return _recorded_fingerprint(ckpt, recorded), _recorded_fingerprint(ckpt, recorded, LAYOUT_KEY)


def _finished_result(config: TrainConfig, out: Path, ckpt: dict[str, Any], prepared: "_Prepared | None") -> TrainResult:
    """The TrainResult of a finished run; its data is loaded and checked only when --data names another path."""
    from .data import load_dataset
    from .grad_norms import records_from_state

    recorded = _existing_fingerprints(out, ckpt)
    if recorded[0] is not None and ckpt["config"].get("data") != config.data:  # moved: same data?
        current = prepared.fingerprints if prepared is not None else load_dataset(config.data).fingerprints()
        _check_fingerprint(out, recorded, current, config.data, warn=True)
    h = ckpt["history"]
    return TrainResult(out_dir=str(out), metrics_path=str(out / "metrics.h5"),
                       checkpoint_path=str(out / "checkpoint.pt"), epochs_completed=ckpt["epoch"], finished=True,
                       already_finished=True, resumed_from_epoch=ckpt["epoch"], final_test_acc=h["test_acc"][-1],
                       best_test_acc=max(h["test_acc"]), history=h,
                       grad_norms=records_from_state(ckpt.get("grad_norms")))


def _train_locked(config: TrainConfig, out: Path, device, world: int, rank: int, progress: bool,
                  prepared: "_Prepared | None", stop_after: int | None = None) -> TrainResult:
    """train() once the run directory is locked (rank 0): check again, then report as finished, resume or start."""
    import torch

    from .data import load_dataset

    main = rank == 0
    ckpt = _check_existing(out, config)
    recorded = _existing_fingerprints(out, ckpt)
    paths = dict(out_dir=str(out), metrics_path=str(out / "metrics.h5"), checkpoint_path=str(out / "checkpoint.pt"))
    if ckpt is not None and main:
        _sync_metrics(out, ckpt)
    if ckpt is not None and ckpt["finished"]:
        return _finished_result(config, out, ckpt, prepared)
    _check_world(out, ckpt, world)
    if prepared is None:  # finished when first looked at, not any more (replaced meanwhile): prepare now
        if world > 1:
            device = _rank_device(device)
        prepared = _prepare(config, load_dataset(config.data, progress=progress and main), device, rank)
    fingerprint, layout = prepared.fingerprints
    _check_fingerprint(out, recorded, prepared.fingerprints, config.data, warn=main)
    previous_config = None  # the bytes of a config.json that was there before (a run that saved no epoch)
    if main:
        out.mkdir(parents=True, exist_ok=True)
        _remove_stale_temporaries(out)
        if (out / "config.json").is_file():
            previous_config = (out / "config.json").read_bytes()
        _write_json_atomic(out / "config.json", {**config.to_dict(), FINGERPRINT_KEY: fingerprint, LAYOUT_KEY: layout})
    owns_group = False
    if world > 1:
        owns_group = _init_distributed(device)
        rank = torch.distributed.get_rank()
    try:
        return _run(config, out, paths, prepared, device, ckpt, rank, world, progress and main, stop_after)
    except TrainingDiverged as exc:
        if main and exc.saved_epoch == 0:  # nothing saved: leave out/config.json as this call found it
            if previous_config is None:  # ours: no record of the run is left (a rerun may change --lr)
                (out / "config.json").unlink(missing_ok=True)
            else:  # a record that was there before (e.g. beside metrics.h5 of a run whose checkpoint is gone)
                with atomic_output(out / "config.json", prefix=".config.json-", suffix=".tmp") as tmp:
                    Path(tmp).write_bytes(previous_config)
        raise
    finally:
        if owns_group:
            torch.distributed.destroy_process_group()


def _rank_device(device):
    """Under torchrun on CUDA, this rank's GPU (LOCAL_RANK), made current; on CPU `device` itself."""
    import torch

    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    return device


def _init_distributed(device) -> bool:
    """Join the torchrun process group (NCCL on CUDA, gloo on CPU); True when this call created it."""
    import torch.distributed as dist

    if dist.is_initialized():
        return False
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return True


@dataclass
class _Prepared:
    """What a run trains with, built before anything is written (a failure here leaves the run directory alone)."""

    dataset: Any
    model: Any
    optimizer: Any
    scheduler: Any
    augmenter: Any
    train_images: Any
    recorder: Any
    fingerprints: tuple[str, str]  # (Dataset.fingerprint(), Dataset.layout_fingerprint())


def initial_model(config: TrainConfig, dataset) -> "torch.nn.Module":
    """The network of `config` as its run starts training, on the CPU: torch, numpy and random seeded with
    config.seed, the model built for `dataset`'s channels and classes, then its stem's weights times
    config.stem_init_scale. Training (every rank) starts from exactly these weights and draws on from the global
    random states as this leaves them (nets.stem_norms.initial_weights restores them instead)."""
    import random

    import numpy as np
    import torch

    from . import build_model

    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    random.seed(config.seed)
    model = build_model(config.model, num_classes=dataset.num_classes, in_channels=dataset.in_channels,
                        **config.model_options())
    if config.stem_init_scale != 1.0:  # after build_model's draws: the rest of the run's randomness is unchanged
        with torch.no_grad():
            model.stem.weight.mul_(config.stem_init_scale)
    return model


def _prepare(config: TrainConfig, dataset, device, rank: int) -> _Prepared:
    """Seed, then build the model (initial_model), optimizer, scheduler, augmenter and (input_noise) the noisy
    training copy."""
    import torch

    from .augment import Augmenter, Normalizer
    from .grad_norms import GradNormRecorder
    from .input_noise import add_input_noise

    model = initial_model(config, dataset).to(device)
    if rank > 0:  # identical weights on every rank, independent noise masks
        torch.manual_seed(config.seed + 1_000_003 * rank)
    use_cuda = device.type == "cuda"
    memory_format = torch.channels_last if (use_cuda and config.channels_last) else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    optimizer = torch.optim.SGD(model.parameters(), lr=config.lr, momentum=config.momentum,
                                weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=list(config.milestones), gamma=config.gamma)
    mean, std = dataset.channel_stats()  # of the clean training images: the noise is in these normalized units
    augmenter = Augmenter(Normalizer.from_stats(mean, std), pad=dataset.pad, flip=dataset.flip, seed=config.seed)
    # robust-ResNet Fig. 8: a fixed noisy copy of the training set (its own generator: the other RNGs are untouched)
    train_images = add_input_noise(dataset.train_images, config.input_noise, std, config.seed)
    # robust-ResNet Fig. 2: per-block norms, on rank 0 only (DDP has all-reduced the gradients there)
    recorder = GradNormRecorder(model, config.grad_norm_every) if config.grad_norm_every and rank == 0 else None
    return _Prepared(dataset, model, optimizer, scheduler, augmenter, train_images, recorder, dataset.fingerprints())


def _run(config: TrainConfig, out: Path, paths: dict, prepared: _Prepared, device, ckpt,
         rank: int, world: int, progress: bool, stop_after: int | None = None) -> TrainResult:
    """The epoch loop of train() (up to stop_after epochs); rank 0 alone writes files when world > 1."""
    import torch
    from tqdm import tqdm

    from .checkpoint import (capture_rng_states, plain_scheduler_state, restore_rng_states, save_checkpoint,
                             scheduler_state_from_plain)
    from .metrics import EPOCH_FIELDS, summarize, write_metrics

    dataset, model, optimizer, scheduler = prepared.dataset, prepared.model, prepared.optimizer, prepared.scheduler
    augmenter, train_images, recorder = prepared.augmenter, prepared.train_images, prepared.recorder
    fingerprint, layout = prepared.fingerprints
    use_cuda = device.type == "cuda"
    if use_cuda:
        torch.backends.cudnn.benchmark = True  # fixed shapes: let cuDNN pick its fastest kernels
    memory_format = torch.channels_last if (use_cuda and config.channels_last) else torch.contiguous_format
    history: dict[str, list] = {name: [] for name in EPOCH_FIELDS}
    start_epoch = 0
    segments: list[dict] = []  # nets.provenance: the settings each stretch of epochs trained under
    if ckpt is not None:
        try:  # a checkpoint.pt of the right version whose contents do not fit this run: one line, not a traceback
            model.load_state_dict(ckpt["model"])
            optimizer.load_state_dict(ckpt["optimizer"])
            scheduler.load_state_dict(scheduler_state_from_plain(ckpt["scheduler"]))
            augmenter.set_state(restore_rng_states(ckpt["rng_ranks"][rank] if world > 1 else ckpt["rng"], device))
            history = {k: list(v) for k, v in ckpt["history"].items()}
            start_epoch = int(ckpt["epoch"])
            if recorder is not None:
                recorder.load_state_dict(ckpt["grad_norms"])
            segments = provenance.validated(ckpt.get("provenance"))
        except (RuntimeError, KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            raise ValueError(f"{out / 'checkpoint.pt'}: does not fit this run ({type(exc).__name__}: {first[:200]}); "
                             "delete it to start the run over") from None
    net = model
    if world > 1:
        net = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if use_cuda else None,
            find_unused_parameters=config.stochastic_depth is not None)  # dropped blocks get no gradient
    forward = torch.compile(net) if config.compile else net

    train_x = torch.from_numpy(train_images).to(device)
    train_y = torch.from_numpy(dataset.train_labels).to(device)
    test_x = torch.from_numpy(dataset.test_images).to(device)
    test_y = torch.from_numpy(dataset.test_labels).to(device)
    dev_name = device_name(device)
    settings = provenance.current_settings(dev_name, provenance.execution_settings(config, use_cuda))
    warning = provenance.resume_warning(out, segments, start_epoch + 1, settings)
    if warning is not None and rank == 0:
        print(warning, file=sys.stderr)
    segments = provenance.extend(segments, start_epoch + 1, settings)
    attrs = {"epsilon": float(model.epsilon()), "stochastic_depth_epsilon": float(model.stochastic_depth_epsilon()),
             "num_parameters": sum(p.numel() for p in model.parameters()),
             "dataset": dataset.describe(), FINGERPRINT_KEY: fingerprint, LAYOUT_KEY: layout,
             "world_size": world, "provenance_json": provenance.to_json(segments)}
    amp_dtype = torch.bfloat16 if (use_cuda and config.amp) else None
    shard = dict(rank=rank, world_size=world, amp_dtype=amp_dtype, memory_format=memory_format)

    bar = tqdm(total=config.epochs, initial=start_epoch, desc=f"{config.model} {out.name}", unit="epoch",
               disable=not progress, dynamic_ncols=True)
    last_epoch = config.epochs if stop_after is None else min(config.epochs, start_epoch + stop_after)
    for epoch in range(start_epoch + 1, last_epoch + 1):
        lr = optimizer.param_groups[0]["lr"]
        t0 = time.perf_counter()
        train_loss, train_acc = train_epoch(forward, optimizer, augmenter, train_x, train_y, config.batch_size,
                                            progress=progress, desc=f"epoch {epoch}", grad_norms=recorder, **shard)
        if recorder is not None:
            recorder.flush()
        test_loss, test_acc = evaluate(forward, augmenter.normalizer, test_x, test_y, config.eval_batch_size, **shard)
        if use_cuda:
            torch.cuda.synchronize(device)
        elapsed = time.perf_counter() - t0
        if not (math.isfinite(train_loss) and math.isfinite(test_loss)):  # the same reduced figures on every rank
            bar.close()  # _train_locked removes the config.json it wrote when epoch 1 diverged
            raise divergence_error(config, epoch, train_loss, test_loss, epoch - 1)
        scheduler.step()
        for name, value in zip(EPOCH_FIELDS, (epoch, train_loss, train_acc, test_loss, test_acc, lr, elapsed)):
            history[name].append(value)
        lm = model.lm_coefficients()
        if lm is not None:
            history.setdefault("lm_k", []).append([float(v) for v in lm.detach().float().cpu()])
        finished = epoch == config.epochs
        rng = [capture_rng_states(augmenter.get_state(), device)]
        if world > 1:
            rng = [None] * world
            torch.distributed.all_gather_object(rng, capture_rng_states(augmenter.get_state(), device))
        if rank == 0:
            save_checkpoint(out / "checkpoint.pt", {
                "config": config.to_dict(), "epoch": epoch, "finished": finished, "model": model.state_dict(),
                "optimizer": optimizer.state_dict(), "scheduler": plain_scheduler_state(scheduler.state_dict()), "history": history,
                "rng": rng[0], "rng_ranks": rng, "world_size": world, "metrics_attrs": attrs, "device_name": dev_name,
                "grad_norms": None if recorder is None else recorder.state_dict(), FINGERPRINT_KEY: fingerprint,
                LAYOUT_KEY: layout, "provenance": segments})
            write_metrics(out / "metrics.h5", history, config.to_dict(), attrs, summarize(history, finished, dev_name),
                          grad_norms=None if recorder is None else recorder.records())
        if world > 1:
            torch.distributed.barrier()
        bar.set_postfix(loss=f"{train_loss:.3f}", acc=f"{train_acc:.3f}", test_acc=f"{test_acc:.3f}",
                        img_s=f"{len(train_y) / elapsed:.0f}", refresh=False)
        bar.update(1)
    bar.close()
    return TrainResult(**paths, epochs_completed=len(history["epoch"]), finished=last_epoch == config.epochs,
                       already_finished=False,
                       resumed_from_epoch=start_epoch, final_test_acc=history["test_acc"][-1],
                       best_test_acc=max(history["test_acc"]), history=history,
                       grad_norms=None if recorder is None else recorder.records())
