"""1-D binary classification data for section 4.1 of the main paper: samples y with labels h(y) in {0, 1}.

With S = id, T = sigma and a constant velocity f, the plain network predicts sigma(y + f) (the
transport solution (3.9) at t = 0), i.e. label 1 exactly when y > -f: choosing f is choosing a
threshold -f. Every sample therefore adds one soft step to J_0(f) (3.10) at f = -y, downwards for
label 1 and upwards for label 0, and a local minimum of J_0 sits wherever, reading the samples by
increasing y, a label-0 sample is followed by a label-1 sample. The built-in data sets are placed
with that rule:

* ``rugged``: labels 0 1 0 0 | 1 1 0 1 1 at y = -11 ... 11.5. The 0|1 pairs at (-11, -7.5),
  (-2, 1) and (5.5, 9) give three minima of J_0 (f near 9, 0.5, -7); the outer two lie at large
  |f|, where the noise eps |f| of (3.4) is wide compared with the spacing, so J_eps at eps = 0.5
  keeps only the central one.
* ``double-well``: a flat well (the wide gap -5 | 2.5, f near 1) and a sharp well (the narrow gap
  7.5 | 8.5, f near -8) of equal error count; the sharp well's curvature is about 150 times the
  flat one's.
* ``separable``: four label-0 samples left of four label-1 samples with the gap centred at y = -3, so a
  perfect fit needs f near 3; a large eps moves the minimiser of J_eps towards f = 0, where the
  noise vanishes, and the fit is lost (Fig. 4b).

Users' data: .csv with header ``y,label``; .npz or .h5/.hdf5 with arrays ``y`` and ``label``.
"""
from __future__ import annotations

import csv
import math
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

DATASET_NAMES = ("rugged", "double-well", "separable")
FILE_SUFFIXES = (".csv", ".npz", ".h5", ".hdf5")

_BUILTIN: dict[str, tuple[tuple[float, ...], tuple[int, ...], str]] = {
    "rugged": (
        (-11.0, -7.5, -4.5, -2.0, 1.0, 3.0, 5.5, 9.0, 11.5),
        (0, 1, 0, 0, 1, 1, 0, 1, 1),
        "interleaved labels: J_0 has three minima, J_eps (eps=0.5) one",
    ),
    "double-well": (
        (-5.0, 2.5, 3.5, 7.0, 7.5, 8.5, 9.0),
        (0, 1, 1, 0, 0, 1, 1),
        "a flat well (f ~ 1) and a sharp well (f ~ -8) of J_0",
    ),
    "separable": (
        (-9.0, -7.5, -6.0, -4.5, -1.5, 0.0, 1.5, 3.0),
        (0, 0, 0, 0, 1, 1, 1, 1),
        "linearly separable, perfect fit needs f ~ 3",
    ),
}


@dataclass(frozen=True)
class Dataset:
    """Samples y (n,) and labels (n,) in {0, 1}; `name` is the built-in name or the file path."""

    name: str
    y: np.ndarray
    label: np.ndarray
    description: str = ""

    @property
    def n(self) -> int:
        return int(self.y.size)

    def default_f_range(self) -> tuple[float, float]:
        """f-range that shows every threshold -f between the samples, with 3 units of margin.

        The threshold -f sweeps [min y - 3, max y + 3], so f in [-max y - 3, -min y + 3], widened to
        whole numbers.
        """
        return float(math.floor(-self.y.max() - 3.0)), float(math.ceil(-self.y.min() + 3.0))


def check_samples(y, label, source: str = "data", min_samples: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Validate samples and labels; returns (y float64 (n,), label float64 (n,) of 0.0/1.0).

    Raises:
        ValueError: y or label complex, y and label not 1-D of equal length, fewer than min_samples samples (a data set
            needs 2; a minibatch may have 1), y not finite, or a label other than 0 and 1.
    """
    y = np.asarray(y)
    label = np.asarray(label)
    for what, values in (("y", y), ("label", label)):
        if np.iscomplexobj(values):  # astype(float) would silently drop the imaginary part
            raise ValueError(f"{source}: {what} must be real, got complex values ({values.dtype})")
    if y.ndim != 1 or label.ndim != 1:
        raise ValueError(f"{source}: y and label must be 1-D arrays, got shapes {y.shape} and {label.shape}")
    if y.size != label.size:
        raise ValueError(f"{source}: y and label must have the same length, got {y.size} and {label.size}")
    if y.size < min_samples:
        raise ValueError(f"{source}: need at least {min_samples} samples, got {y.size}")
    try:
        y = y.astype(float)
        label_f = label.astype(float)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{source}: y and label must be numeric ({err})") from None
    if not np.all(np.isfinite(y)):
        raise ValueError(f"{source}: y must be finite (found nan or inf)")
    if not np.all((label_f == 0.0) | (label_f == 1.0)):
        bad = label_f[~((label_f == 0.0) | (label_f == 1.0))][0]
        raise ValueError(f"{source}: label must be 0 or 1, found {float(bad):g}")
    return y, label_f


def builtin_dataset(name: str) -> Dataset:
    """One of the named data sets (see the module docstring); ValueError naming the allowed names."""
    if name not in _BUILTIN:
        raise ValueError(f"unknown dataset {name!r}; allowed: {', '.join(DATASET_NAMES)} or a .csv/.npz/.h5 file")
    y, label, description = _BUILTIN[name]
    y_arr, label_arr = check_samples(np.array(y), np.array(label), name)
    return Dataset(name, y_arr, label_arr, description)


def _read_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        return _parse_csv(path)
    except UnicodeDecodeError as err:
        raise ValueError(f"{path}: not a UTF-8 text .csv file (byte {err.start} cannot be decoded)") from None
    except csv.Error as err:
        raise ValueError(f"{path}: not a readable .csv file ({err})") from None


def _parse_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    with path.open(newline="", encoding="utf-8-sig") as handle:  # a BOM (Excel) is not part of the header
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or [h.strip().lower() for h in header] != ["y", "label"]:
            raise ValueError(f"{path}: the first line must be the header 'y,label', got {header!r}")
        ys, labels = [], []
        for line_no, row in enumerate(reader, start=2):
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) != 2:
                raise ValueError(f"{path}: line {line_no} must have 2 fields (y,label), got {len(row)}")
            try:
                ys.append(float(row[0]))
                labels.append(float(row[1]))
            except ValueError:
                raise ValueError(f"{path}: line {line_no} is not numeric: {','.join(row)!r}") from None
    return np.array(ys), np.array(labels)


def _require_arrays(path: Path, keys) -> None:
    missing = [k for k in ("y", "label") if k not in keys]
    if missing:
        raise ValueError(f"{path}: missing array(s) {', '.join(missing)}; the file needs arrays 'y' and 'label'")


def _read_npz(path: Path) -> tuple[np.ndarray, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as data:
            _require_arrays(path, data.files)
            return np.asarray(data["y"]), np.asarray(data["label"])
    except (OSError, ValueError, EOFError, KeyError, NotImplementedError, zipfile.BadZipFile, zlib.error) as err:
        # a damaged archive fails in zipfile (BadZipFile, KeyError, NotImplementedError), zlib or numpy
        if str(err).startswith(str(path)):
            raise
        if "pickled" in str(err):  # numpy's guess for any file that is not .npy/.npz: never act on it
            raise ValueError(f"{path}: not an .npz archive (numpy could only read it by unpickling, which is never done "
                             "here)") from None
        raise ValueError(f"{path}: not a readable .npz file ({err})") from None


def _read_h5(path: Path) -> tuple[np.ndarray, np.ndarray]:
    import h5py

    try:
        with h5py.File(path, "r") as h5:
            _require_arrays(path, list(h5.keys()))
            if not all(isinstance(h5[k], h5py.Dataset) for k in ("y", "label")):
                raise ValueError(f"{path}: 'y' and 'label' must be datasets, not groups")
            return np.asarray(h5["y"][()]), np.asarray(h5["label"][()])
    except (OSError, KeyError, RuntimeError) as err:  # KeyError: 'y' or 'label' is a link to nothing
        raise ValueError(f"{path}: not a readable HDF5 file ({err})") from None


def load_dataset(path: str | Path) -> Dataset:
    """Read a user's data set from .csv (header y,label), .npz or .h5/.hdf5 (arrays y, label).

    Raises:
        ValueError: missing file, unknown suffix, malformed content, or data refused by
            :func:`check_samples`; the message names the file.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in FILE_SUFFIXES:
        raise ValueError(f"dataset file {str(path)!r} must end in one of {', '.join(FILE_SUFFIXES)}")
    if path.is_dir():
        raise ValueError(f"dataset file {str(path)!r} is a directory")
    if not path.is_file():
        raise ValueError(f"dataset file {str(path)!r} does not exist")
    if suffix == ".csv":
        y, label = _read_csv(path)
    elif suffix == ".npz":
        y, label = _read_npz(path)
    else:
        y, label = _read_h5(path)
    y, label = check_samples(y, label, str(path))
    return Dataset(str(path), y, label, f"{y.size} samples from {path.name}")


def get_dataset(name_or_path: str | Path) -> Dataset:
    """A built-in name (rugged, double-well, separable) or a path to a .csv/.npz/.h5 file."""
    text = str(name_or_path)
    if text in _BUILTIN:
        return builtin_dataset(text)
    if Path(text).suffix.lower() in FILE_SUFFIXES:
        return load_dataset(text)
    raise ValueError(f"unknown dataset {text!r}; allowed: {', '.join(DATASET_NAMES)} or a .csv/.npz/.h5 file")
