"""Image-folder trees DIR/{train,test}/<class>/*.png|jpg and the JPEG CIFAR-10 npz, decoded with Pillow.

The tree is the layout torchvision's ImageFolder reads: class names are the sorted sub-directory names of
`train/`, and `test/` must hold the same classes. The npz (`shared/data/cifar10-jpeg.npz`, see its
README) stores the same JPEG files concatenated: `{train,test}_bytes`, `{train,test}_offsets`,
`{train,test}_labels`, `classes`.
"""
from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Iterable, Iterator

import numpy as np

from .base import Dataset, DataError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".ppm")


def is_image_folder(path: str | os.PathLike) -> bool:
    """Whether `path` has train/ and test/ sub-directories (the image-folder layout)."""
    path = os.fspath(path)
    return os.path.isdir(os.path.join(path, "train")) and os.path.isdir(os.path.join(path, "test"))


def _decode_all(items: Iterable[tuple[str, bytes | str]], total: int, what: str, progress: bool) -> np.ndarray:
    """Decode images (name, bytes-or-path) into one uint8 (N, C, H, W) array; mode fixed by the first image."""
    from PIL import Image, UnidentifiedImageError
    from tqdm import tqdm

    out: np.ndarray | None = None
    mode = "RGB"
    for i, (name, payload) in enumerate(tqdm(items, total=total, desc=f"decode {what}", unit="img",
                                             disable=not progress, leave=False)):
        try:
            with Image.open(io.BytesIO(payload) if isinstance(payload, bytes) else payload) as img:
                if out is None:
                    mode = "L" if img.mode in ("1", "L", "I", "I;16", "F") else "RGB"
                array = np.asarray(img.convert(mode), dtype=np.uint8)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            raise DataError(f"{name}: cannot decode image ({type(exc).__name__}: {exc})") from None
        if array.ndim == 2:
            array = array[:, :, None]
        if out is None:
            out = np.empty((total, array.shape[2], array.shape[0], array.shape[1]), dtype=np.uint8)
        if array.shape != (out.shape[2], out.shape[3], out.shape[1]):
            raise DataError(f"{name}: image is {array.shape[1]}x{array.shape[0]}, the others are "
                            f"{out.shape[3]}x{out.shape[2]}; all images must share one size")
        out[i] = array.transpose(2, 0, 1)
    if out is None:
        raise DataError(f"{what}: no images")
    return out


def _list_split(root: str, split: str, classes: tuple[str, ...] | None) -> tuple[tuple[str, ...], list[str], np.ndarray]:
    split_dir = os.path.join(root, split)
    found = tuple(sorted(d for d in os.listdir(split_dir) if os.path.isdir(os.path.join(split_dir, d))))
    if classes is None:
        classes = found
    elif set(found) - set(classes):
        raise DataError(f"{split_dir}: classes {sorted(set(found) - set(classes))} are not in train/")
    files, labels = [], []
    for k, cls in enumerate(classes):
        cls_dir = os.path.join(split_dir, cls)
        if not os.path.isdir(cls_dir):
            continue
        names = sorted(f for f in os.listdir(cls_dir) if f.lower().endswith(IMAGE_SUFFIXES))
        files += [os.path.join(cls_dir, f) for f in names]
        labels += [k] * len(names)
    if not files:
        raise DataError(f"{split_dir}: no images (expected <class>/*.png|jpg)")
    return classes, files, np.asarray(labels, dtype=np.int64)


def load_image_folder(path: str | os.PathLike, progress: bool = False) -> Dataset:
    """Load an image-folder tree DIR/{train,test}/<class>/*.png|jpg into a Dataset (uint8, NCHW)."""
    root = os.fspath(path)
    if not is_image_folder(root):
        raise DataError(f"{root}: not an image-folder tree (expected {root}/train/<class>/ and {root}/test/<class>/)")
    classes, train_files, train_labels = _list_split(root, "train", None)
    _, test_files, test_labels = _list_split(root, "test", classes)
    train = _decode_all(((f, f) for f in train_files), len(train_files), "train", progress)
    test = _decode_all(((f, f) for f in test_files), len(test_files), "test", progress)
    if train.shape[1:] != test.shape[1:]:
        raise DataError(f"{root}: train images {train.shape[1:]} and test images {test.shape[1:]} differ")
    pad = 4 if min(train.shape[2:]) >= 16 else 1
    lossy = any(f.lower().endswith((".jpg", ".jpeg")) for f in train_files + test_files)
    # the name says JPEG when any image is: numbers trained on re-encoded images must say so
    return Dataset(name="imagefolder-jpeg" if lossy else "imagefolder", classes=classes, train_images=train, train_labels=train_labels,
                   test_images=test, test_labels=test_labels, source=os.path.abspath(root), pad=pad)


def _npz_split(z, path: str, split: str) -> tuple[Iterator[tuple[str, bytes]], int, np.ndarray]:
    try:
        data, offsets, labels = z[f"{split}_bytes"], z[f"{split}_offsets"], z[f"{split}_labels"]
    except KeyError as exc:
        raise DataError(f"{path}: not a JPEG image npz (missing {exc.args[0]!r})") from None
    n = labels.shape[0]
    if offsets.shape != (n + 1,) or offsets[0] != 0 or offsets[-1] != data.shape[0] or np.any(np.diff(offsets) <= 0):
        raise DataError(f"{path}: {split}_offsets do not delimit {n} images in {split}_bytes")
    items = ((f"{path}[{split} {i}]", data[offsets[i]:offsets[i + 1]].tobytes()) for i in range(n))
    return items, n, labels.astype(np.int64)


def load_jpeg_npz(path: str | os.PathLike, progress: bool = False, limit_per_class: int | None = None) -> Dataset:
    """Decode the JPEG CIFAR-10 npz (shared/data/cifar10-jpeg.npz) into a Dataset.

    Args:
        limit_per_class: keep only the first this-many images of each class per split (for tests).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such file")
    try:
        z = np.load(path, allow_pickle=False)
        classes = tuple(str(c) for c in z["classes"])
    except KeyError:
        raise DataError(f"{path}: not a JPEG image npz (missing 'classes')") from None
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        if "pickled" in str(exc):  # numpy's guess for any file that is not .npy/.npz: never act on it
            raise DataError(f"{path}: not an .npz archive (numpy could only read it by unpickling, which is never "
                            "done here)") from None
        raise DataError(f"{path}: cannot read npz ({type(exc).__name__}: {exc})") from None
    with z:
        arrays = {}
        for split in ("train", "test"):
            items, n, labels = _npz_split(z, path, split)
            if limit_per_class is not None:
                keep = np.zeros(n, dtype=bool)
                for k in range(len(classes)):
                    keep[np.flatnonzero(labels == k)[:limit_per_class]] = True
                items = (item for item, kept in zip(items, keep) if kept)
                n, labels = int(keep.sum()), labels[keep]
            arrays[split] = (_decode_all(items, n, split, progress), labels)
    return Dataset(name="cifar10-jpeg" if len(classes) == 10 else "jpeg-npz", classes=classes,
                   train_images=arrays["train"][0], train_labels=arrays["train"][1],
                   test_images=arrays["test"][0], test_labels=arrays["test"][1], source=os.path.abspath(path))
