"""The project's pickle-free image file: one HDF5 that `python -m nets.data convert` writes and training reads.

Layout (format "resnet-sde-images", version 1):
    train/images, test/images   uint8 (N, H, W, C)   (attribute layout = "NHWC")
    train/labels, test/labels   int64 (N,)
    attributes: format, format_version, name, classes, source, layout, pad, flip, description
"""
from __future__ import annotations

import os

import numpy as np

from kolmogorov._atomic import atomic_output
from .base import Dataset, DataError

FORMAT = "resnet-sde-images"
FORMAT_VERSION = 1


def write_h5(dataset: Dataset, path: str | os.PathLike) -> str:
    """Write `dataset` to `path` atomically (temporary file in the same directory, then os.replace)."""
    import h5py

    path = os.path.abspath(os.fspath(path))
    with atomic_output(path, prefix=".tmp-", suffix=".h5") as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs.update(format=FORMAT, format_version=FORMAT_VERSION, name=dataset.name,
                           classes=np.array(dataset.classes, dtype=h5py.string_dtype()), source=dataset.source,
                           layout="NHWC", pad=dataset.pad, flip=dataset.flip, description=dataset.describe())
            for split in ("train", "test"):
                images = np.ascontiguousarray(getattr(dataset, f"{split}_images").transpose(0, 2, 3, 1))
                f.create_dataset(f"{split}/images", data=images)
                f.create_dataset(f"{split}/labels", data=getattr(dataset, f"{split}_labels").astype(np.int64))
    return path


def _plain(value):
    """An HDF5 attribute as the Python value it holds (np.int64(99) -> 99), for messages."""
    return value.item() if isinstance(value, np.generic) else value


def _augmentation_attrs(path: str, attrs) -> tuple[int, bool]:
    """The file's crop padding (an integer >= 0, default 4) and flip flag (a bool, default True)."""
    pad, flip = attrs.get("pad", 4), attrs.get("flip", True)
    if isinstance(pad, (bool, np.bool_)) or not isinstance(pad, (int, np.integer)) or pad < 0:
        raise DataError(f"{path}: attribute pad must be an integer >= 0, got {_plain(pad)!r}")
    if not isinstance(flip, (bool, np.bool_)):
        raise DataError(f"{path}: attribute flip must be a bool, got {_plain(flip)!r}")
    return int(pad), bool(flip)


def _classes_attr(path: str, attrs) -> tuple[str, ...]:
    """The `classes` attribute: a 1-D array of strings."""
    classes = attrs.get("classes")
    if not isinstance(classes, np.ndarray) or classes.ndim != 1 or classes.dtype.kind not in "OSU":
        raise DataError(f"{path}: attribute classes must be a 1-D array of class names, got {_plain(classes)!r}")
    return tuple(c.decode() if isinstance(c, bytes) else str(c) for c in classes)


def is_image_h5(path: str | os.PathLike) -> bool:
    """Whether `path` is an HDF5 file of this format (its `format` attribute), without reading its arrays."""
    import h5py

    if not h5py.is_hdf5(path):
        return False
    try:
        with h5py.File(path, "r") as f:
            return f.attrs.get("format") == FORMAT
    except OSError:
        return False


def read_h5(path: str | os.PathLike) -> Dataset:
    """Read a file written by write_h5 (NHWC or NCHW layout) into a Dataset (uint8 NCHW)."""
    import h5py

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such file")
    try:
        with h5py.File(path, "r") as f:
            if not isinstance(f.attrs.get("format"), str) or f.attrs["format"] != FORMAT:
                raise DataError(f"{path}: not a {FORMAT} file (write one with `python -m nets.data convert`)")
            version = f.attrs.get("format_version", FORMAT_VERSION)
            if not isinstance(version, (int, np.integer)) or not 1 <= version <= FORMAT_VERSION:
                raise DataError(f"{path}: format_version {_plain(version)!r} is not one this code reads (1 to "
                                f"{FORMAT_VERSION}); convert the data again with `python -m nets.data convert`")
            pad, flip = _augmentation_attrs(path, f.attrs)
            layout = str(f.attrs.get("layout", "NHWC"))
            if layout not in ("NHWC", "NCHW"):
                raise DataError(f"{path}: layout {layout!r} is not one of 'NHWC', 'NCHW'")
            arrays = {}
            for split in ("train", "test"):
                for key in ("images", "labels"):
                    if not isinstance(f.get(f"{split}/{key}"), h5py.Dataset):
                        raise DataError(f"{path}: dataset '{split}/{key}' is missing (or is not a dataset)")
                images = f[f"{split}/images"][()]
                if images.ndim != 4:
                    raise DataError(f"{path}: {split}/images must be 4-D, got shape {images.shape}")
                if layout == "NHWC":
                    images = np.ascontiguousarray(images.transpose(0, 3, 1, 2))
                labels = f[f"{split}/labels"][()]
                if labels.dtype.kind not in "iu":
                    raise DataError(f"{path}: {split}/labels must be integers, got dtype {labels.dtype}")
                arrays[split] = (images, labels.astype(np.int64))
            classes = _classes_attr(path, f.attrs)
            size = min(arrays["train"][0].shape[2:])
            if pad > size:
                shape = "x".join(str(n) for n in arrays["train"][0].shape[1:])
                given = "got" if "pad" in f.attrs else "the default when the file has no pad attribute:"
                raise DataError(f"{path}: attribute pad must be an integer in [0, {size}] (the image size), {given} "
                                f"{pad}; read as {layout}, the images are C x H x W = {shape} (is layout right?)")
            return Dataset(name=str(f.attrs.get("name", "h5")), classes=classes,
                           train_images=arrays["train"][0], train_labels=arrays["train"][1],
                           test_images=arrays["test"][0], test_labels=arrays["test"][1],
                           source=os.path.abspath(path), pad=pad, flip=flip)
    except DataError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as exc:
        raise DataError(f"{path}: cannot read HDF5 ({type(exc).__name__}: {exc})") from None
