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


_GRAY_MODES = ("1", "L", "LA")
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N")


def _pixels(img, name: str) -> tuple[np.ndarray, bool]:
    """One decoded image as uint8 (H, W, 3) and whether it is grayscale.

    Grayscale images are replicated over the three channels, so that the mode of the data set can be decided
    once every image is seen (a grayscale first image must not turn RGB images gray). 16-bit images are
    scaled to 8 bits (v / 257, rounded: 65535 -> 255), not clipped; 32-bit integer and float images are
    refused, since no scale for them is implied by the file.
    """
    mode = img.mode
    if mode in _SIXTEEN_BIT_MODES or (mode == "I" and img.format in ("PNG", "PPM")):  # their "I" is 16-bit gray
        wide = np.asarray(img, dtype=np.int64)
        if wide.size and (wide.min() < 0 or wide.max() > 65535):
            raise DataError(f"{name}: {mode} image values lie outside the 16-bit range [0, 65535]")
        gray = ((wide * 255 + 32767) // 65535).astype(np.uint8)
    elif mode in ("I", "F"):
        raise DataError(f"{name}: {mode} (32-bit {'float' if mode == 'F' else 'integer'}) images are not "
                        "supported; allowed: 8- or 16-bit grayscale, RGB, RGBA, palette")
    elif mode in _GRAY_MODES:
        gray = np.asarray(img.convert("L"), dtype=np.uint8)
    else:
        return np.asarray(img.convert("RGB"), dtype=np.uint8), False
    return np.repeat(gray[:, :, None], 3, axis=2), True


def _decode_all(items: Iterable[tuple[str, bytes | str]], total: int, what: str,
                progress: bool) -> tuple[np.ndarray, bool]:
    """Decode images (name, bytes-or-path) into one uint8 (N, 3, H, W) array; also whether all were grayscale."""
    from PIL import Image, UnidentifiedImageError
    from tqdm import tqdm

    out: np.ndarray | None = None
    all_gray = True
    for i, (name, payload) in enumerate(tqdm(items, total=total, desc=f"decode {what}", unit="img",
                                             disable=not progress, leave=False)):
        try:
            with Image.open(io.BytesIO(payload) if isinstance(payload, bytes) else payload) as img:
                array, gray = _pixels(img, name)
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
            if isinstance(exc, DataError):
                raise
            raise DataError(f"{name}: cannot decode image ({type(exc).__name__}: {exc})") from None
        all_gray = all_gray and gray
        if out is None:
            out = np.empty((total, 3, array.shape[0], array.shape[1]), dtype=np.uint8)
        if array.shape[:2] != out.shape[2:]:
            raise DataError(f"{name}: image is {array.shape[1]}x{array.shape[0]}, the others are "
                            f"{out.shape[3]}x{out.shape[2]}; all images must share one size")
        out[i] = array.transpose(2, 0, 1)
    if out is None:
        raise DataError(f"{what}: no images")
    return out, all_gray


def _decode_splits(splits: dict[str, tuple[Iterable[tuple[str, bytes | str]], int]],
                   progress: bool) -> dict[str, np.ndarray]:
    """Decode each split; one channel for every split when every image of every split is grayscale, else RGB."""
    decoded = {split: _decode_all(items, total, split, progress) for split, (items, total) in splits.items()}
    one_channel = all(gray for _, gray in decoded.values())
    return {split: np.ascontiguousarray(images[:, :1]) if one_channel else images
            for split, (images, _) in decoded.items()}


def _list_split(root: str, split: str, classes: tuple[str, ...] | None) -> tuple[tuple[str, ...], list[str], np.ndarray]:
    split_dir = os.path.join(root, split)
    found = tuple(sorted(d for d in os.listdir(split_dir)  # hidden folders (.ipynb_checkpoints) are no class
                         if not d.startswith(".") and os.path.isdir(os.path.join(split_dir, d))))
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
        if not names and split == "train":  # a class with no training image: an output the network never learns
            raise DataError(f"{cls_dir}: no images (every class folder of train/ needs *.png|jpg)")
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
    decoded = _decode_splits({"train": (((f, f) for f in train_files), len(train_files)),
                              "test": (((f, f) for f in test_files), len(test_files))}, progress)
    train, test = decoded["train"], decoded["test"]
    if train.shape[1:] != test.shape[1:]:
        raise DataError(f"{root}: train images {train.shape[1:]} and test images {test.shape[1:]} differ")
    pad = 4 if min(train.shape[2:]) >= 16 else 1
    lossy = any(f.lower().endswith((".jpg", ".jpeg")) for f in train_files + test_files)
    # the name says JPEG when any image is: numbers trained on re-encoded images must say so
    return Dataset(name="imagefolder-jpeg" if lossy else "imagefolder", classes=classes, train_images=train, train_labels=train_labels,
                   test_images=test, test_labels=test_labels, source=os.path.abspath(root), pad=pad)


def _npz_split(z, path: str, split: str) -> tuple[Iterator[tuple[str, bytes]], int, np.ndarray]:
    missing = [key for key in (f"{split}_bytes", f"{split}_offsets", f"{split}_labels") if key not in z.files]
    if missing:
        raise DataError(f"{path}: not a JPEG image npz (missing {', '.join(repr(key) for key in missing)})")
    data, offsets, labels = z[f"{split}_bytes"], z[f"{split}_offsets"], z[f"{split}_labels"]
    for key, array in ((f"{split}_bytes", data), (f"{split}_offsets", offsets), (f"{split}_labels", labels)):
        if array.ndim != 1 or array.dtype.kind not in "iu":
            raise DataError(f"{path}: {key} must be a 1-D integer array, got {array.dtype} {array.shape}")
    n = labels.shape[0]
    if n == 0:  # else "test: no images" from the decoder, naming neither the file nor the array
        raise DataError(f"{path}: {split}_labels is empty; the {split} split must hold at least one image")
    if offsets.shape != (n + 1,) or offsets[0] != 0 or offsets[-1] != data.shape[0] or np.any(np.diff(offsets) <= 0):
        raise DataError(f"{path}: {split}_offsets do not delimit {n} images in {split}_bytes")
    items = ((f"{path}[{split} {i}]", data[offsets[i]:offsets[i + 1]].tobytes()) for i in range(n))
    return items, n, labels.astype(np.int64)


def _npz_classes(z, path: str) -> tuple[str, ...]:
    """The npz's `classes`: a 1-D array of class names."""
    if "classes" not in z.files:
        raise DataError(f"{path}: not a JPEG image npz (missing 'classes')")
    classes = z["classes"]
    if classes.ndim != 1 or classes.dtype.kind not in "SU":
        raise DataError(f"{path}: classes must be a 1-D array of class names, got {classes.dtype} {classes.shape}")
    return tuple(c.decode() if isinstance(c, bytes) else str(c) for c in classes.tolist())


def load_jpeg_npz(path: str | os.PathLike, progress: bool = False, limit_per_class: int | None = None) -> Dataset:
    """Decode the JPEG CIFAR-10 npz (shared/data/cifar10-jpeg.npz) into a Dataset.

    Args:
        limit_per_class: keep only the first this-many images of each class per split (for tests).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such file")
    try:
        with np.load(path, allow_pickle=False) as z:
            classes = _npz_classes(z, path)
            splits, labels_of = {}, {}
            for split in ("train", "test"):
                items, n, labels = _npz_split(z, path, split)
                if limit_per_class is not None:
                    keep = np.zeros(n, dtype=bool)
                    for k in range(len(classes)):
                        keep[np.flatnonzero(labels == k)[:limit_per_class]] = True
                    items = (item for item, kept in zip(items, keep) if kept)
                    n, labels = int(keep.sum()), labels[keep]
                splits[split], labels_of[split] = (items, n), labels
            images = _decode_splits(splits, progress)
    except DataError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        if "pickled" in str(exc):  # numpy's guess for any file that is not .npy/.npz: never act on it
            raise DataError(f"{path}: not an .npz archive (numpy could only read it by unpickling, which is never "
                            "done here)") from None
        raise DataError(f"{path}: cannot read npz ({type(exc).__name__}: {exc})") from None
    return Dataset(name="cifar10-jpeg" if len(classes) == 10 else "jpeg-npz", classes=classes,
                   train_images=images["train"], train_labels=labels_of["train"],
                   test_images=images["test"], test_labels=labels_of["test"], source=os.path.abspath(path))
