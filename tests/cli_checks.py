"""The one-line exit-2 check of a command-line tool's errors, run in process or end to end in a fresh interpreter."""
from __future__ import annotations

import subprocess
from typing import Callable

import pytest


def assert_one_line_exit_2(capsys, main: Callable[[list[str]], object], argv: list[str], expect: str = "",
                           run_fresh: Callable[..., subprocess.CompletedProcess] | None = None) -> str:
    """Run main(argv), or run_fresh(*argv) when given (a subprocess: nothing but the one line may reach its
    stderr); assert exit status 2 and exactly one stderr line, without a traceback, containing `expect`.

    Returns stderr.
    """
    if run_fresh is not None:
        res = run_fresh(*argv)
        code, err = res.returncode, res.stderr
    else:
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        code, err = exit_info.value.code, capsys.readouterr().err
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err and expect in err, err
    return err
