"""kolmogorov._atomic.atomic_output: a failed write names the target, not the temporary file, keeps the
errno (so the OSError subclass), and leaves no temporary file behind."""
import errno
import os

import pytest

from kolmogorov._atomic import atomic_output


def _write(path, text="new"):
    with atomic_output(path) as tmp:
        with open(tmp, "w") as handle:
            handle.write(text)


def _hidden(directory):
    return [p.name for p in directory.iterdir() if p.name.startswith(".")]


def test_target_is_a_directory(tmp_path):
    target = tmp_path / "dir.h5"
    target.mkdir()
    with pytest.raises(IsADirectoryError) as info:
        _write(target)
    assert info.value.errno == errno.EISDIR
    assert str(info.value) == f"[Errno 21] cannot write {target}: Is a directory"  # not '.dir.h5.abc.tmp' -> ...
    assert _hidden(tmp_path) == [] and target.is_dir()


@pytest.mark.parametrize("below", ["x.png", "sub/x.png"])
def test_target_below_a_file(tmp_path, below):
    (tmp_path / "afile").write_text("keep")
    with pytest.raises(NotADirectoryError) as info:
        _write(tmp_path / "afile" / below)
    assert info.value.errno == errno.ENOTDIR
    assert str(info.value) == f"[Errno 20] cannot write {tmp_path / 'afile' / below}: {tmp_path / 'afile'} is not a directory"
    assert (tmp_path / "afile").read_text() == "keep"


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")
def test_directory_that_takes_no_files():
    # the temporary file cannot be created in /proc: the error named '/proc/.x.png.XXXX.tmp'
    with pytest.raises(FileNotFoundError) as info:
        _write("/proc/x.png")
    assert str(info.value) == "[Errno 2] cannot write /proc/x.png: No such file or directory"



@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs Linux /proc")
def test_data_then_directory_reach_the_disk(tmp_path, monkeypatch):
    # a rename can reach the disk before the data: the temporary file is fsynced before os.replace, and the
    # directory (the rename itself) after it
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(src, dst):
        events.append(("replace", os.fspath(dst)))
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    target = tmp_path / "out.h5"
    _write(target)
    assert target.read_text() == "new"
    kinds = [kind for kind, _ in events]
    assert kinds == ["fsync", "replace", "fsync"]
    assert os.path.basename(events[0][1]).startswith(".out.h5.")      # the temporary file's data
    assert events[2][1] == str(tmp_path)                              # then the directory's entry


def test_print_output_ends_quietly_when_the_reader_leaves_early():
    # `python -m nets.noise_response --from-json ... | head -1` ended in a BrokenPipeError traceback
    import subprocess
    import sys

    script = "from kolmogorov._cli import print_output; print_output('row\\n' * 200000)"
    done = subprocess.run(f"{sys.executable} -c \"{script}\" | head -1", shell=True, capture_output=True, text=True)
    assert done.stdout == "row\n" and done.stderr == ""
