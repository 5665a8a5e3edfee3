"""One entry point that turns a `--data` argument into a Dataset."""
from __future__ import annotations

import os

from .base import Dataset, DataError
from .cifar import find_cifar_dir, load_cifar_archive, load_cifar_python
from .folder import is_image_folder, load_image_folder, load_jpeg_npz
from .h5 import read_h5
from .toy import load_digits_dataset, parse_synthetic

DATA_HELP = ("'synthetic' (or 'synthetic:N_TRAIN[:N_TEST]'), 'digits', a converted .h5 file, the JPEG CIFAR-10 "
             ".npz, an official CIFAR .tar.gz, or a directory in the official CIFAR python format or an "
             "image-folder tree")


def load_dataset(spec: str, progress: bool = False) -> Dataset:
    """Load the data set named by `spec`.

    Args:
        spec: "synthetic", "synthetic:N_TRAIN[:N_TEST]", "digits", a path to an .h5 file written by
            `python -m nets.data convert`, a JPEG .npz, or a directory holding the official CIFAR-10/100
            python format (md5-verified) or an image-folder tree DIR/{train,test}/<class>/*.
        progress: show tqdm progress while decoding images.

    Raises:
        DataError (a ValueError) naming the file when it is missing, corrupt or unverifiable.
    """
    if not isinstance(spec, str) or not spec:
        raise DataError(f"data must be {DATA_HELP}; got {spec!r}")
    if spec == "digits":
        return load_digits_dataset()
    if spec == "synthetic" or spec.startswith("synthetic:"):
        return parse_synthetic(spec)
    if not os.path.exists(spec):
        raise DataError(f"{spec}: no such file or directory (data must be {DATA_HELP})")
    if os.path.isdir(spec):
        if find_cifar_dir(spec) is not None:
            return load_cifar_python(spec)
        if is_image_folder(spec):
            return load_image_folder(spec, progress=progress)
        raise DataError(f"{spec}: directory is neither the CIFAR python format nor an image-folder tree")
    lower = spec.lower()
    if lower.endswith((".h5", ".hdf5")):
        return read_h5(spec)
    if lower.endswith(".npz"):
        return load_jpeg_npz(spec, progress=progress)
    if lower.endswith((".tar.gz", ".tgz")):
        return load_cifar_archive(spec)
    raise DataError(f"{spec}: unknown file type (data must be {DATA_HELP})")
