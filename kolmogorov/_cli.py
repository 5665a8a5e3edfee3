"""Command-line conventions shared by every resnet-sde command.

Bad input gives one line on stderr and exit status 2, never a traceback. kolmogorov sits at the root
of the import graph, so the other packages' commands take this helper from here.
"""
from __future__ import annotations

import argparse
import re
import sys
from typing import Any, Callable, NoReturn


class OneLineArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are a single line on stderr and exit status 2.

    Negative numbers in exponent notation (`--f-min -1e12`, `--f0 -2.5E3`) are values, as `-5` and `-0.5`
    are: argparse before Python 3.13 took them for an option and answered "expected one argument".
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._negative_number_matcher = re.compile(r"^-(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$")

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def print_output(text: str) -> None:
    """Print a command's result to stdout; a reader that left early (`| head`) ends it quietly, not with a
    BrokenPipeError traceback (stdout goes to /dev/null for the interpreter's final flush)."""
    import os

    try:
        print(text, flush=True)
    except BrokenPipeError:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def fail(prog: str, message: str) -> NoReturn:
    """Print `prog: error: message` as one line on stderr and exit with status 2."""
    first_line = str(message).strip().splitlines()[0] if str(message).strip() else "invalid input"
    sys.stderr.write(f"{prog}: error: {first_line}\n")
    raise SystemExit(2)


def in_flag_words(message: str, fields, flag_of: dict[str, str] | None = None) -> str:
    """A library message that starts with a config field ("stochastic_depth must ...") in the command's words
    ("--stochastic-depth must ..."): the flag is flag_of[field], else --FIELD-WITH-DASHES. Other messages
    (a path, a run name first) are returned unchanged."""
    field, sep, rest = str(message).partition(" ")
    if sep and field in set(fields):
        return f"{(flag_of or {}).get(field, '--' + field.replace('_', '-'))} {rest}"
    return str(message)


def checked_type(convert: Callable[[str], Any], check: Callable[[Any], Any],
                 requirement: str) -> Callable[[str], Any]:
    """An argparse `type`: check(convert(text)), or argparse's one-line error `must be REQUIREMENT; got 'TEXT'`.

    `check` is the library's validator (it raises ValueError), so a flag and its library field accept
    exactly the same values.
    """
    def parse(text: str) -> Any:
        try:
            return check(convert(text))
        except ValueError:
            raise argparse.ArgumentTypeError(f"must be {requirement}; got {text!r}") from None

    return parse


def _at_least_one(value: int) -> int:
    if value < 1:
        raise ValueError(f"must be >= 1; got {value}")
    return value


#: argparse `type` of a count: an integer >= 1, else argparse's one-line error naming the flag.
positive_int = checked_type(int, _at_least_one, "a positive integer")
