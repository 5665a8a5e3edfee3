"""CIFAR-10 / CIFAR-100 in the official python format, verified by md5 before anything is unpickled.

The official archives (https://www.cs.toronto.edu/~kriz/cifar.html) unpack to `cifar-10-batches-py/`
(data_batch_1..5, test_batch, batches.meta) and `cifar-100-python/` (train, test, meta). Their files are
pickles, and unpickling runs code: each file's md5 is checked against the official table first, and
the unpickler then only admits the numpy array constructors those files need.
"""
from __future__ import annotations

import hashlib
import io
import os
import pickle
from collections.abc import Mapping

import numpy as np

from .base import Dataset, DataError

CIFAR10_DIR = "cifar-10-batches-py"
CIFAR100_DIR = "cifar-100-python"

#: Official md5 checksums of the unpacked files (the same values torchvision checks).
CIFAR10_MD5: dict[str, str] = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
    "batches.meta": "5ff9c542aee3614f3951f8cda6e48888",
}
CIFAR100_MD5: dict[str, str] = {
    "train": "16019d7e3df5f24257cddd939b257f8d",
    "test": "f0ef6b0ae62326f3e7ffdfab6717acfc",
    "meta": "7973b15100ade9c7d40fb424638fde48",
}
#: Official md5 checksums of the downloadable archives.
ARCHIVE_MD5: dict[str, str] = {
    "cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a",
    "cifar-100-python.tar.gz": "eb9058c3a382ffc7106e4002c42a8d85",
}

_LAYOUTS = {
    "cifar10": dict(train=[f"data_batch_{i}" for i in range(1, 6)], test=["test_batch"], meta="batches.meta",
                    names=b"label_names", labels=b"labels", checksums=CIFAR10_MD5, subdir=CIFAR10_DIR),
    "cifar100": dict(train=["train"], test=["test"], meta="meta", names=b"fine_label_names",
                     labels=b"fine_labels", checksums=CIFAR100_MD5, subdir=CIFAR100_DIR),
}

_ALLOWED_GLOBALS = {
    (module, name)
    for module in ("numpy.core.multiarray", "numpy._core.multiarray")
    for name in ("_reconstruct", "scalar")
} | {("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.numeric", "_frombuffer"),
     ("numpy._core.numeric", "_frombuffer"), ("_codecs", "encode")}


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """Admits plain containers and numpy arrays, nothing else (defence in depth after the md5 check)."""

    def find_class(self, module: str, name: str):  # noqa: D401 - pickle API
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a CIFAR batch")


def md5_of(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex md5 digest of a file's bytes."""
    digest = hashlib.md5()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(chunk), b""):
            digest.update(block)
    return digest.hexdigest()


def find_cifar_dir(path: str | os.PathLike) -> tuple[str, str] | None:
    """(layout, directory) if `path` is, or directly contains, an official CIFAR python directory."""
    path = os.fspath(path)
    for layout, spec in _LAYOUTS.items():
        for candidate in (path, os.path.join(path, spec["subdir"])):
            if os.path.isfile(os.path.join(candidate, spec["meta"])) and os.path.isfile(
                    os.path.join(candidate, spec["test"][0])):
                return layout, candidate
    return None


def _unpickle_verified_bytes(raw: bytes, expected_md5: str, where: str) -> dict:
    """md5-check `raw`, then unpickle it with the array-only unpickler; `where` names it in errors."""
    got = hashlib.md5(raw).hexdigest()
    if got != expected_md5:
        raise DataError(f"{where}: md5 {got} does not match the official checksum {expected_md5}; "
                        "refusing to unpickle it")
    try:
        entry = _ArrayOnlyUnpickler(io.BytesIO(raw), encoding="latin1").load()  # numpy's advice for py2 pickles
    except Exception as exc:  # pickle raises many kinds on garbage
        raise DataError(f"{where}: not a CIFAR batch ({type(exc).__name__}: {exc})") from None
    if not isinstance(entry, dict):
        raise DataError(f"{where}: not a CIFAR batch (top level is {type(entry).__name__}, not dict)")
    return entry


def _verified_unpickle(path: str, expected_md5: str) -> dict:
    if not os.path.isfile(path):
        raise DataError(f"{path}: missing (an official CIFAR file)")
    with open(path, "rb") as fh:
        return _unpickle_verified_bytes(fh.read(), expected_md5, path)


def _field(entry: dict, key: bytes, path: str):
    if key in entry:
        return entry[key]
    text_key = key.decode()
    if text_key in entry:
        return entry[text_key]
    raise DataError(f"{path}: not a CIFAR batch (no {text_key!r} entry)")


def load_cifar_python(path: str | os.PathLike, checksums: Mapping[str, str] | None = None) -> Dataset:
    """Load CIFAR-10 or CIFAR-100 from the official python format, verifying every file's md5 first.

    Args:
        path: the `cifar-10-batches-py` / `cifar-100-python` directory, or a directory containing one.
        checksums: file name -> md5 table; defaults to the official one (CIFAR10_MD5 / CIFAR100_MD5).
            Only tests pass their own.

    Raises:
        DataError: the directory is not in the official layout, a file is missing, a checksum does not
            match (the file is then never unpickled), or a file's contents are malformed.
    """
    found = find_cifar_dir(path)
    if found is None:
        raise DataError(f"{os.fspath(path)}: not a CIFAR python directory (expected {CIFAR10_DIR}/ with "
                        f"batches.meta, data_batch_1..5, test_batch, or {CIFAR100_DIR}/ with meta, train, test)")
    layout, directory = found
    return _load_layout(layout, checksums, lambda name, md5: _verified_unpickle(os.path.join(directory, name), md5),
                        lambda name: os.path.join(directory, name), os.path.abspath(directory))


def load_cifar_archive(path: str | os.PathLike, checksums: Mapping[str, str] | None = None,
                       archive_checksums: Mapping[str, str] | None = None) -> Dataset:
    """Load CIFAR-10/100 straight from the official `cifar-10-python.tar.gz` / `cifar-100-python.tar.gz`.

    The archive's md5 must be one of `archive_checksums` (default: the published ARCHIVE_MD5 values),
    which tells the layout apart; then every member is md5-checked as in load_cifar_python, in memory,
    before it is unpickled. Nothing is extracted to disk.
    """
    import tarfile

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise DataError(f"{path}: no such file")
    table = dict(ARCHIVE_MD5 if archive_checksums is None else archive_checksums)
    got = md5_of(path)
    layouts = {"cifar-10-python.tar.gz": "cifar10", "cifar-100-python.tar.gz": "cifar100"}
    matches = [layouts[name] for name, md5 in table.items() if md5 == got and name in layouts]
    if not matches:
        raise DataError(f"{path}: md5 {got} matches neither official CIFAR archive "
                        f"({', '.join(f'{k} {v}' for k, v in table.items())}); refusing to open it")
    layout = matches[0]
    subdir = _LAYOUTS[layout]["subdir"]
    try:
        with tarfile.open(path, "r:gz") as tar:
            members = {m.name: m for m in tar.getmembers() if m.isfile()}

            def read(name: str, md5: str) -> dict:
                member = members.get(f"{subdir}/{name}")
                if member is None:
                    raise DataError(f"{path}: archive has no {subdir}/{name}")
                return _unpickle_verified_bytes(tar.extractfile(member).read(), md5, f"{path}:{subdir}/{name}")

            return _load_layout(layout, checksums, read, lambda name: f"{path}:{subdir}/{name}", os.path.abspath(path))
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read the archive ({type(exc).__name__}: {exc})") from None


def _load_layout(layout: str, checksums: Mapping[str, str] | None, load_verified, where, source: str) -> Dataset:
    """Assemble a Dataset from the files of one layout; load_verified(name, md5) -> the unpickled dict."""
    spec = _LAYOUTS[layout]
    table = dict(spec["checksums"] if checksums is None else checksums)

    def load(name: str) -> dict:
        if name not in table:
            raise DataError(f"checksums: no md5 for {name!r}; the table must cover {sorted(spec['checksums'])}")
        return load_verified(name, table[name])

    classes = tuple(n.decode() if isinstance(n, bytes) else str(n)
                    for n in _field(load(spec["meta"]), spec["names"], where(spec["meta"])))
    splits = {}
    for split in ("train", "test"):
        images, labels = [], []
        for name in spec[split]:
            entry = load(name)
            data = np.asarray(_field(entry, b"data", where(name)))
            lab = np.asarray(_field(entry, spec["labels"], where(name)), dtype=np.int64)
            if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or data.shape[0] != lab.size:
                raise DataError(f"{where(name)}: not a CIFAR batch (data {data.dtype} {data.shape}, "
                                f"{lab.size} labels; expected uint8 (N, 3072) and N labels)")
            images.append(data.reshape(-1, 3, 32, 32))
            labels.append(lab)
        splits[split] = (np.concatenate(images), np.concatenate(labels))
    return Dataset(name=layout, classes=classes, train_images=splits["train"][0], train_labels=splits["train"][1],
                   test_images=splits["test"][0], test_labels=splits["test"][1], source=source)
