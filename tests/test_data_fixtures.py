"""Helpers (no tests) for the data tests: the JPEG CIFAR-10 npz and a python-format CIFAR tree."""
from __future__ import annotations

import hashlib
import os
import pickle
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]


def cifar_npz_path() -> Path:
    """<repo root>/../shared/data/cifar10-jpeg.npz, or $RESNET_SDE_CIFAR_NPZ; fails (never skips) when absent."""
    path = Path(os.environ.get("RESNET_SDE_CIFAR_NPZ", REPO_ROOT.parent / "shared" / "data" / "cifar10-jpeg.npz"))
    if not path.is_file():
        raise AssertionError(f"the JPEG CIFAR-10 npz is missing at {path}: put shared/ beside the repository "
                             "or set RESNET_SDE_CIFAR_NPZ to the file")
    return path


def write_jpeg_tree(root: Path, per_class: int = 20) -> dict[str, list[tuple[bytes, int]]]:
    """Write the first `per_class` JPEGs of each class per split from the npz as root/{train,test}/<class>/NNNN.jpg.

    Returns split -> list of (jpeg bytes, label) in class-then-file order (the order image folders load in).
    """
    z = np.load(cifar_npz_path())
    classes = [str(c) for c in z["classes"]]
    written: dict[str, list[tuple[bytes, int]]] = {}
    for split in ("train", "test"):
        data, offsets, labels = z[f"{split}_bytes"], z[f"{split}_offsets"], z[f"{split}_labels"]
        per = {k: [] for k in range(len(classes))}
        for i, lab in enumerate(labels):
            if len(per[int(lab)]) < per_class:
                per[int(lab)].append(data[offsets[i]:offsets[i + 1]].tobytes())
            if all(len(v) == per_class for v in per.values()):
                break
        written[split] = []
        for k, blobs in per.items():
            d = root / split / classes[k]
            d.mkdir(parents=True, exist_ok=True)
            for j, blob in enumerate(blobs):
                (d / f"{j:04d}.jpg").write_bytes(blob)
                written[split].append((blob, k))
    return written


def write_cifar10_python(root: Path, per_batch: int = 6, seed: int = 0) -> tuple[dict[str, str], dict]:
    """Write a small CIFAR-10 python-format tree (real file names, keys and layout) under root/cifar-10-batches-py.

    Returns (md5 table of the written files, the arrays written: {'train': (data, labels), 'test': ...}).
    """
    rng = np.random.default_rng(seed)
    d = root / "cifar-10-batches-py"
    d.mkdir(parents=True)
    names = [b"airplane", b"automobile", b"bird", b"cat", b"deer", b"dog", b"frog", b"horse", b"ship", b"truck"]
    table: dict[str, str] = {}

    def dump(name: str, obj: dict) -> None:
        blob = pickle.dumps(obj, protocol=2)
        (d / name).write_bytes(blob)
        table[name] = hashlib.md5(blob).hexdigest()

    dump("batches.meta", {b"label_names": names, b"num_cases_per_batch": per_batch, b"num_vis": 3072})
    arrays = {"train": ([], []), "test": ([], [])}
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        data = rng.integers(0, 256, size=(per_batch, 3072), dtype=np.uint8)
        labels = [int(x) for x in rng.integers(0, 10, size=per_batch)]
        dump(name, {b"batch_label": name.encode(), b"labels": labels, b"data": data,
                    b"filenames": [f"img{i}.png".encode() for i in range(per_batch)]})
        split = "test" if name == "test_batch" else "train"
        arrays[split][0].append(data)
        arrays[split][1].extend(labels)
    out = {s: (np.concatenate(a[0]).reshape(-1, 3, 32, 32), np.asarray(a[1])) for s, a in arrays.items()}
    return table, out


def write_cifar100_python(root: Path, n_train: int = 8, n_test: int = 4, seed: int = 1) -> tuple[dict[str, str], dict]:
    """A small CIFAR-100 python-format tree (train, test, meta with fine and coarse labels) under root/cifar-100-python."""
    rng = np.random.default_rng(seed)
    d = root / "cifar-100-python"
    d.mkdir(parents=True)
    table: dict[str, str] = {}

    def dump(name: str, obj: dict) -> None:
        blob = pickle.dumps(obj, protocol=2)
        (d / name).write_bytes(blob)
        table[name] = hashlib.md5(blob).hexdigest()

    dump("meta", {b"fine_label_names": [f"fine{k}".encode() for k in range(100)],
                  b"coarse_label_names": [f"coarse{k}".encode() for k in range(20)]})
    arrays = {}
    for name, n in (("train", n_train), ("test", n_test)):
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        fine = [int(x) for x in rng.integers(0, 100, size=n)]
        dump(name, {b"filenames": [b"x.png"] * n, b"batch_label": name.encode(), b"fine_labels": fine,
                    b"coarse_labels": [f // 5 for f in fine], b"data": data})
        arrays[name] = (data.reshape(-1, 3, 32, 32), np.asarray(fine))
    return table, arrays
