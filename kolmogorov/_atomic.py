"""Atomic file writes: a temporary file in the target's directory, then os.replace.

A reader, or a run killed while writing, finds the previous file or the new one, never half of one; the
file and then its directory are fsynced around the replace, so a power loss does not leave it empty either.
Every output file of the toolkit goes through `atomic_output`: metrics.h5, checkpoint.pt, the image
HDF5 of nets.data, sweep manifests, the landscape command's PNG/HDF5, figures and tables. It lives in
kolmogorov (the root of the import graph, standard library only) so that every package can use it.
"""
from __future__ import annotations

import errno
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def file_mode() -> int:
    """Permissions a plain open() would give (mkstemp's temporary files are 0600)."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


def _cannot_write(path: str, err: OSError, reason: str | None = None) -> OSError:
    """OSError of err's errno (so the same subclass, e.g. IsADirectoryError) whose message names the
    target `path`, not the temporary file: "[Errno 21] cannot write /x/dir.h5: Is a directory"."""
    code = err.errno if err.errno is not None else errno.EIO
    return OSError(code, f"cannot write {path}: {reason or err.strerror or os.strerror(code)}")


def _make_directory(path: str, directory: str) -> None:
    try:
        os.makedirs(directory, exist_ok=True)
    except OSError as err:
        ancestor = directory  # the nearest existing one: a file there is the usual cause
        while os.path.dirname(ancestor) != ancestor and not os.path.lexists(ancestor):
            ancestor = os.path.dirname(ancestor)
        if os.path.lexists(ancestor) and not os.path.isdir(ancestor):
            raise _cannot_write(path, NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR)),
                                f"{ancestor} is not a directory") from err
        raise _cannot_write(path, err) from err


def _flush_to_disk(path: str) -> None:
    """fsync a file's data, or a directory's entries, so that a power loss after the replace finds the new
    file whole rather than empty (the rename can reach the disk before the data does)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_output(path: str | os.PathLike, prefix: str | None = None, suffix: str = ".tmp") -> Iterator[str]:
    """Yield the name of a new, empty temporary file next to `path` (its directory is created).

    When the block ends normally the file gets the permissions of a plain open() and replaces `path`;
    in any case no temporary file is left behind. The default prefix is `.NAME.` (a hidden file).

    Raises:
        OSError: the directory, the temporary file or the final replace cannot be made; same errno
            as the failure, and the message names `path` (never the temporary file).
    """
    path = os.path.abspath(os.fspath(path))
    if prefix is None:
        prefix = f".{os.path.basename(path)}."
    directory = os.path.dirname(path)
    _make_directory(path, directory)
    try:
        fd, tmp = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=directory)
    except OSError as err:
        raise _cannot_write(path, err) from err
    os.close(fd)
    try:
        yield tmp
        try:
            os.chmod(tmp, file_mode())
            _flush_to_disk(tmp)
            os.replace(tmp, path)
            _flush_to_disk(directory)
        except OSError as err:
            raise _cannot_write(path, err) from err
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def check_writable(path: str | os.PathLike, directory: bool, name: str | None = None) -> Path:
    """`path` as a Path when it can be written later, checked before any work and without creating anything.

    A file (`directory` False) or a directory (`directory` True) may already exist there or be created later
    (atomic_output creates missing folders): where `path` or its parent folders do not exist yet, their
    nearest existing ancestor must be a directory in which a file can be created. That is probed with an
    unnamed temporary file, gone when closed, since os.access says yes to root even on /proc.

    Raises:
        ValueError: one line, starting with `name` (e.g. "--out") when given: an existing directory where a
            file is wanted or the reverse, a regular file among the parent folders, or a folder in which
            nothing can be created.
    """
    path = Path(path)
    label = f"{name} " if name else ""
    if path.is_dir() and not directory:
        raise ValueError(f"{label}{str(path)!r} is a directory")
    if path.exists() and directory and not path.is_dir():
        raise ValueError(f"{label}{str(path)!r} exists and is not a directory")
    ancestor = path if directory else path.parent
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ValueError(f"{label}{str(path)!r}: {str(ancestor)!r} is not a directory")
    try:
        with tempfile.TemporaryFile(dir=ancestor):
            pass
    except OSError as exc:
        raise ValueError(f"{label}{str(path)!r}: cannot create files in {str(ancestor)!r} "
                         f"({exc.strerror or type(exc).__name__})") from None
    return path
