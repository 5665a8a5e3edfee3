"""File locks (fcntl.flock) that keep two processes from writing one run directory or one sweep manifest.

A flock is released by the kernel when its holder dies, so a killed trainer leaves nothing to clean up: the
next start takes the lock and resumes. Where fcntl does not exist (not POSIX) nothing is locked; on file
systems without flock support (some network and FUSE mounts) the run lock warns and the manifest lock
passes silently.

- run_lock: the trainer's exclusive lock on OUT/.lock, which holds the holder's pid; locked_by probes it.
- directory_lock: a blocking exclusive lock on a directory itself (no lock file), serializing nets.sweep's
  read-merge-write of its manifest (nets.sweep_run.write_manifest).
"""
from __future__ import annotations

import errno
import os
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

try:
    import fcntl
except ImportError:  # not POSIX (Windows): nothing is locked
    fcntl = None

#: The run directory's lock file (fcntl.flock; it holds the pid of the process training the run).
LOCK_NAME = ".lock"
#: Seconds run_lock keeps retrying a held lock before refusing: a probe (locked_by) holds it for microseconds,
#: a trainer for its whole run.
LOCK_PATIENCE = 1.0


class RunLockedError(ValueError):
    """Another process is training in the output directory now."""


def busy_message(out: str | os.PathLike, pid: str) -> str:
    """The one-line refusal for a run directory that process `pid` is training in."""
    return f"out: {out} is being trained by another process (pid {pid}); wait for it to finish or use another --out"


def _read_pid(path: Path) -> str:
    try:
        return path.read_text().strip() or "unknown"
    except OSError:
        return "unknown"


def locked_by(out: str | os.PathLike) -> str | None:
    """The pid (as text) of the process training in `out` now, or None when nobody holds out/.lock.

    Always None where fcntl does not exist (no locking there). The probe takes a shared lock for an instant,
    so probes never disturb each other; a trainer starting at that instant retries (run_lock).
    """
    path = Path(out) / LOCK_NAME
    if fcntl is None or not path.is_file():
        return None
    try:
        with open(path) as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                return _read_pid(path)
            except OSError:  # a file system without locks: nobody can hold one
                return None
            fcntl.flock(handle, fcntl.LOCK_UN)
    except FileNotFoundError:  # released and removed meanwhile
        return None
    return None


#: flock errors of file systems without locks (some network and FUSE mounts): train unlocked, with a warning
_NO_LOCKS_HERE = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EINVAL}


def _acquire(path: Path, out: Path) -> int | None:
    """Open and flock path (non-blocking); retry when the holder removed the file between open and flock.

    A lock found held is retried for LOCK_PATIENCE seconds (a probe of locked_by holds it only for an
    instant) before RunLockedError.
    """
    deadline = time.monotonic() + LOCK_PATIENCE
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            if time.monotonic() < deadline:
                time.sleep(0.01)
                continue
            raise RunLockedError(busy_message(out, _read_pid(path))) from None
        except OSError as exc:
            if exc.errno not in _NO_LOCKS_HERE:
                os.close(fd)
                raise
            os.close(fd)
            path.unlink(missing_ok=True)
            print(f"warning: out: {out}: this file system does not support flock ({exc.strerror}); training "
                  "without the run lock, so do not start a second trainer on this directory", file=sys.stderr)
            return None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


@contextmanager
def run_lock(out: Path) -> Iterator[None]:
    """Hold an exclusive lock on out/.lock (created with out) while the block runs; RunLockedError if held.

    The lock is fcntl.flock, so the kernel releases it when the process dies (a killed run resumes);
    the file holds the holder's pid and is removed on release. The directories this call created (out and
    any missing parents) are removed again, deepest first, when the block leaves them empty (a start that
    failed before writing anything). Without fcntl (not POSIX) nothing is locked.
    """
    if fcntl is None:
        yield
        return
    created = []
    missing = out.absolute()
    while not missing.exists() and missing != missing.parent:
        created.append(missing)
        missing = missing.parent
    try:
        out.mkdir(parents=True, exist_ok=True)
        path = out / LOCK_NAME
        fd = _acquire(path, out)
        if fd is None:  # no locks on this file system (warned)
            yield
            return
        try:
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            yield
        finally:
            path.unlink(missing_ok=True)
            os.close(fd)
    finally:
        _remove_empty(created)


def _remove_empty(created: list[Path]) -> None:
    """rmdir each of `created` (deepest first) while it exists and is empty."""
    for directory in created:
        try:
            directory.rmdir()
        except FileNotFoundError:
            continue
        except OSError:  # not empty (or not ours to remove): its parents are not empty either
            return


@contextmanager
def directory_lock(directory: str | os.PathLike) -> Iterator[None]:
    """Hold an exclusive flock on `directory` itself while the block runs, waiting for any other holder.

    No lock file is left behind. Where flock is missing or unsupported, or the directory cannot be opened,
    the block runs unlocked.
    """
    if fcntl is None:
        yield
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        yield
        return
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError:  # a file system without locks
            pass
        yield
    finally:
        os.close(fd)  # releases the lock
