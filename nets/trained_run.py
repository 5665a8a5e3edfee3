"""A trained run read back for measurement: its configuration, weights and data (nets.flow_steps,
nets.noise_response, nets.two_point_masks), and what the measurement commands share: their inputs, their
options, and measuring or reading saved measurements."""
from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np


@dataclass(frozen=True)
class TrainedRun:
    """run_dir/checkpoint.pt (loaded with weights_only=True), the TrainConfig it records, and its data."""

    run: Path
    config: Any  # nets.trainer.TrainConfig
    checkpoint: dict
    dataset: Any  # nets.data.Dataset

    def build_model(self, **override):
        """The run's network with its trained weights; `override` replaces build options (e.g. noise)."""
        from nets import build_model

        options = {**self.config.model_options(), **override}
        model = build_model(self.config.model, num_classes=self.dataset.num_classes,
                            in_channels=self.dataset.in_channels, **{k: v for k, v in options.items() if v is not None})
        model.load_state_dict(self.checkpoint["model"])
        return model

    def images(self, n_images: int, split: str = "test"):
        """(images, labels) tensors: n_images of the split, class-balanced (balanced_indices), in file order,
        normalised by the training set's channel statistics as in training (no augmentation).

        The images come in torch's standard (NCHW-contiguous) strides whatever the file's array layout. With
        one channel, strides such as (64, 1, 8, 1) are both NCHW- and channels_last-contiguous and torch then
        runs the network channels_last; the noise modules draw their masks in the activations' memory order
        (as torch's dropout does), so the same seed would put other draws on each image. Measured on the
        digits PreResNet-20 runs: J_eps of the masks a few per cent apart, within the Monte Carlo error."""
        import torch

        from nets.augment import Normalizer

        if split not in ("train", "test"):
            raise ValueError(f"split must be train or test; got {split!r}")
        raw = self.dataset.train_images if split == "train" else self.dataset.test_images
        targets = np.asarray(self.dataset.train_labels if split == "train" else self.dataset.test_labels)
        chosen = balanced_indices(targets, n_images)
        mean, std = self.dataset.channel_stats()
        images = Normalizer.from_stats(mean, std)(torch.from_numpy(np.ascontiguousarray(raw[chosen])))
        return images.clone(memory_format=torch.contiguous_format), torch.from_numpy(targets[chosen].astype(np.int64))


def balanced_indices(labels, n: int) -> np.ndarray:
    """Indices (increasing) of n images that take the classes in turn: each class's first image in file order,
    then each class's second, and so on (a class that runs out drops from the turn); all of them when n >= the
    number of images. Deterministic and balanced to one image per class even where the file is sorted by class
    (the CIFAR-10 image folders are: the first 2000 training images are all airplanes)."""
    labels = np.asarray(labels)
    by_class = np.argsort(labels, kind="stable")
    sorted_labels = labels[by_class]
    starts = np.searchsorted(sorted_labels, sorted_labels, side="left")  # first position of each one's class
    rank = np.empty(labels.size, dtype=np.int64)
    rank[by_class] = np.arange(labels.size) - starts  # position of each image within its class
    order = np.lexsort((labels, rank))  # by rank within class, then by class
    return np.sort(order[:n])


def load_trained_run(run_dir: str | os.PathLike, data: str | None, n_images: int, purpose: str) -> TrainedRun:
    """Read run_dir/checkpoint.pt and the run's data (or `data`); ValueError for n_images < 1, a missing or
    unreadable checkpoint (the message says what `purpose` needs it for), data that does not load, or `data`
    whose channels or classes the trained weights do not take."""
    from nets.checkpoint import load_checkpoint
    from nets.data import load_dataset
    from nets.trainer import TrainConfig

    run = Path(run_dir)
    if isinstance(n_images, bool) or not isinstance(n_images, int) or n_images < 1:
        raise ValueError(f"n_images must be an int >= 1; got {n_images!r}")
    path = run / "checkpoint.pt"
    if not path.is_file():
        raise ValueError(f"run_dir {run}: no checkpoint.pt ({purpose} the trained weights)")
    checkpoint = load_checkpoint(path)
    config = TrainConfig.from_recorded(dict(checkpoint["config"]))
    trained = TrainedRun(run, config, checkpoint, load_dataset(data or config.data))
    if data is not None:
        try:
            trained.build_model()
        except RuntimeError:  # load_state_dict: the stem's or the classifier's shape differs
            raise ValueError(f"data {data!r} does not fit run_dir {run}: its {trained.dataset.in_channels} "
                             f"channel(s) and {trained.dataset.num_classes} classes are not those of the "
                             f"{config.model} trained on {config.data!r}") from None
    return trained


#: how a measurement was made (MeasuredWith's fields but settings), with the type each value must have
MEASURED_WITH = {"data": str, "split": str, "images": int, "draws": int, "seed": int}


@dataclass(frozen=True, kw_only=True)
class MeasuredWith:
    """How and where a measurement of a trained run was made (the records of nets.noise_response and
    nets.two_point_masks): the data set's name (nets.data.Dataset.name), split, number of images, noise draws per
    cell and seed of the draws, and settings (nets.provenance.current_settings: code version, torch, numpy,
    python, threads, processor, device; the draws, and so the numbers, depend on them). None where a file saved
    before they were recorded lacks them."""

    data: str | None = None
    split: str | None = None
    images: int | None = None
    draws: int | None = None
    seed: int | None = None
    settings: dict | None = None


def measured_with(trained: TrainedRun, split: str, images, draws: int, seed: int, where) -> dict:
    """MeasuredWith's fields of a measurement made now of `images` (a tensor) of trained's data set on the torch
    device `where`: the keyword arguments of its record."""
    from nets.provenance import current_settings
    from nets.trainer import device_name

    return {"data": trained.dataset.name, "split": split, "images": int(images.shape[0]), "draws": draws,
            "seed": seed, "settings": current_settings(device_name(where))}


def data_label(data: str | None, split: str | None) -> str:
    """A summary row's data column: the data set's name ("-" when not recorded), "(test)" after it for the test
    split (nets.noise_response and nets.two_point_masks --summary)."""
    return (data or "-") + (" (test)" if split == "test" else "")


def measured_with_json(record) -> dict:
    """The record's MEASURED_WITH values and settings that are not None, for its JSON."""
    fields = {field: getattr(record, field) for field in MEASURED_WITH if getattr(record, field) is not None}
    return {**fields, **({"settings": record.settings} if record.settings is not None else {})}


def measured_with_from_json(saved: dict) -> dict:
    """The MEASURED_WITH values and settings of a saved record (None where it lacks them), each checked for its
    type (settings: a JSON object); ValueError naming the field otherwise."""
    out = {}
    for field, kind in MEASURED_WITH.items():
        value = saved.get(field)
        if value is not None and (isinstance(value, bool) or not isinstance(value, kind)):
            raise ValueError(f"{field} must be a {kind.__name__}; got {value!r}")
        out[field] = value
    settings = saved.get("settings")
    if settings is not None and not isinstance(settings, dict):
        raise ValueError(f"settings must be an object; got {settings!r}")
    return {**out, "settings": settings}


def read_saved(paths, parse: Callable[[str], list]) -> list:
    """The measurements saved in the JSON files `paths`, in order, each file's text read by `parse` (a module's
    from_json); ValueError naming the file that cannot be read or that parse refuses."""
    results: list = []
    for path in paths:
        try:
            text = Path(path).read_text()
        except OSError as error:
            raise ValueError(f"{path}: cannot read it ({error.strerror})") from None
        try:
            parsed = parse(text)
        except ValueError as error:
            raise ValueError(f"{path}: {error}") from None
        if not parsed:
            raise ValueError(f"{path}: no measurements in it")
        results += parsed
    return results


def add_measurement_arguments(parser, draws_per: str, images_default: int, draws_default: int) -> None:
    """The options every measurement of trained runs takes (nets.noise_response, nets.two_point_masks): RUN_DIR...,
    --from-json, --data, --split, --images, --draws (per `draws_per`), --seed, --device, --no-progress, --save,
    --summary."""
    from kolmogorov._cli import positive_int

    from nets.train_config import DEVICES

    parser.add_argument("runs", nargs="*", metavar="RUN_DIR", help="run directories with a checkpoint.pt")
    parser.add_argument("--from-json", nargs="+", metavar="FILE", default=[],
                        help="read measurements saved with --save instead of measuring runs (with --summary, "
                             "to summarize saved ones)")
    parser.add_argument("--data", default=None, help="the data to measure on (default: each run's own)")
    parser.add_argument("--split", choices=("train", "test"), default="train",
                        help="training images (the data of J_eps, the default) or test images")
    parser.add_argument("--images", type=positive_int, default=images_default,
                        help=f"images measured, class-balanced, of the split (default {images_default})")
    parser.add_argument("--draws", type=positive_int, default=draws_default,
                        help=f"noise draws per {draws_per}, >= 2 (default {draws_default})")
    parser.add_argument("--seed", type=int, default=0, help="seed of the noise draws (default 0)")
    parser.add_argument("--device", choices=DEVICES, default="cpu",
                        help="where the networks run (default cpu; cuda draws other masks than the CPU and is not "
                             "bit-reproducible; TF32 is off)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.add_argument("--save", metavar="FILE.json", default=None,
                        help="also write the measurements' JSON to this file (atomically; checked before measuring)")
    parser.add_argument("--summary", action="store_true",
                        help="one row per model, training setting and eps: c over the runs (mean +- sample std)")


def measure_or_read(args, prog: str, measure: Callable[[str], Any], parse: Callable[[str], list],
                    to_json: Callable[[list], str], eps_given: bool) -> list:
    """What a measurement command reports: measure(run) for each of args.runs, or the measurements saved in
    args.from_json (read_saved with parse); written to args.save (checked writable first, then atomically) when
    given. Bad input (both or neither source, runs without eps_given, an unwritable --save, a refused
    measurement or file) ends the process with one line on stderr and exit status 2."""
    from kolmogorov._atomic import atomic_output, check_writable
    from kolmogorov._cli import fail

    if bool(args.runs) == bool(args.from_json):
        fail(prog, "give either run directories (RUN_DIR...) or --from-json FILE..., not both and not neither")
    if args.runs and not eps_given:
        fail(prog, "--eps is required with run directories (noise levels > 0)")
    try:
        if args.save is not None:
            check_writable(args.save, directory=False, name="--save")
        if args.from_json:
            try:
                results = read_saved(args.from_json, parse)
            except ValueError as error:
                raise ValueError(f"--from-json {error}") from None
        else:
            results = [measure(run) for run in args.runs]
    except ValueError as error:
        fail(prog, str(error))
    if args.save is not None:
        with atomic_output(args.save) as temporary:
            Path(temporary).write_text(to_json(results) + "\n")
    return results


def measurement_inputs(run_dir: str | os.PathLike, data: str | None, n_images: int, split: str, device,
                       purpose: str):
    """(TrainedRun, images, labels, torch.device) of a measurement: the run read back, n_images class-balanced
    images of its `split` (train or test) and their labels on `device` (nets.device.resolve_device's forms).

    Raises:
        ValueError: a split other than train/test, a device that is not one of those forms or not present, or
            load_trained_run's refusals (its message says what `purpose` needs the checkpoint for).
    """
    from nets.device import resolve_device

    if split not in ("train", "test"):
        raise ValueError(f"split must be train or test; got {split!r}")
    where = resolve_device(device)
    trained = load_trained_run(run_dir, data, n_images, purpose)
    images, labels = trained.images(n_images, split)
    return trained, images.to(where), labels.to(where), where


@contextmanager
def full_float32() -> Iterator[None]:
    """TF32 off for CUDA convolutions and matrix products inside (float32 as on the CPU: its 10-bit mantissa would
    blur an excess J_eps - J_0 of 1e-4 relative); the previous settings restored after."""
    import torch

    before = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = before
