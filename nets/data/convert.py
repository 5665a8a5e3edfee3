"""Library side of `python -m nets.data convert`: any supported source -> one pickle-free HDF5 file."""
from __future__ import annotations

import os
from collections.abc import Mapping

from kolmogorov._atomic import check_writable
from .base import Dataset, DataError
from .cifar import find_cifar_dir, load_cifar_archive, load_cifar_python
from .folder import is_image_folder, load_image_folder, load_jpeg_npz
from .h5 import is_image_h5, write_h5


def load_source(source: str | os.PathLike, checksums: Mapping[str, str] | None = None,
                progress: bool = False, archive_checksums: Mapping[str, str] | None = None) -> Dataset:
    """Read a convertible source: CIFAR python directory or official .tar.gz archive (md5-verified),
    image-folder tree, or JPEG npz. The checksum tables default to the official ones."""
    source = os.fspath(source)
    if not os.path.exists(source):
        raise DataError(f"{source}: no such file or directory")
    if os.path.isdir(source):
        if find_cifar_dir(source) is not None:
            return load_cifar_python(source, checksums=checksums)
        if is_image_folder(source):
            return load_image_folder(source, progress=progress)
        raise DataError(f"{source}: neither the CIFAR python format (cifar-10-batches-py/, cifar-100-python/) "
                        "nor an image-folder tree (train/<class>/, test/<class>/)")
    if source.lower().endswith(".npz"):
        return load_jpeg_npz(source, progress=progress)
    if source.lower().endswith((".tar.gz", ".tgz")):
        return load_cifar_archive(source, checksums=checksums, archive_checksums=archive_checksums)
    raise DataError(f"{source}: not convertible (expected a directory, a JPEG .npz or an official CIFAR .tar.gz)")


def check_destination(destination: str | os.PathLike) -> str:
    """The HDF5 target of a conversion, refused before any image is read: it must end in .h5/.hdf5, not be a
    directory, and lie where a file can be written (missing folders are created by the conversion). A file
    already there is replaced only when it is an image HDF5 of this toolkit (a conversion done again); any
    other file (a metrics.h5, text that happens to end in .h5) is refused, not overwritten."""
    destination = os.fspath(destination)
    if not destination.lower().endswith((".h5", ".hdf5")):
        raise ValueError(f"destination must end in .h5 or .hdf5, got {destination!r}")
    check_writable(destination, directory=False, name="destination")  # missing folders are created later
    if os.path.isfile(destination) and not is_image_h5(destination):
        raise ValueError(f"destination {destination!r} exists and is not an image HDF5 of nets.data; "
                         "refusing to overwrite it (remove it, or choose another name)")
    return destination


def convert(source: str | os.PathLike, destination: str | os.PathLike, checksums: Mapping[str, str] | None = None,
            progress: bool = False, archive_checksums: Mapping[str, str] | None = None) -> Dataset:
    """Convert `source` into the HDF5 file `destination` (written atomically) and return the data set."""
    destination = check_destination(destination)
    dataset = load_source(source, checksums=checksums, progress=progress, archive_checksums=archive_checksums)
    write_h5(dataset, destination)
    return dataset
