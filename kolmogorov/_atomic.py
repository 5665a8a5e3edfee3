"""Atomic file writes: a temporary file in the target's directory, then os.replace.

A reader, or a run killed while writing, finds the previous file or the new one, never half of one.
Every output file of the toolkit goes through `atomic_output`: metrics.h5, checkpoint.pt, the image
HDF5 of nets.data, sweep manifests, the landscape command's PNG/HDF5, figures and tables. It lives in
kolmogorov (the root of the import graph, standard library only) so that every package can use it.
"""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from typing import Iterator


def file_mode() -> int:
    """Permissions a plain open() would give (mkstemp's temporary files are 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextmanager
def atomic_output(path: str | os.PathLike, prefix: str | None = None, suffix: str = ".tmp") -> Iterator[str]:
    """Yield the name of a new, empty temporary file next to `path` (its directory is created).

    When the block ends normally the file gets the permissions of a plain open() and replaces `path`;
    in any case no temporary file is left behind. The default prefix is `.NAME.` (a hidden file).
    """
    path = os.path.abspath(os.fspath(path))
    if prefix is None:
        prefix = f".{os.path.basename(path)}."
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=directory)
    os.close(fd)
    try:
        yield tmp
        os.chmod(tmp, file_mode())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
