"""Writing figures and their data: PNG + PDF + HDF5, each atomically (temporary file, then os.replace)."""
from __future__ import annotations

import json
import re
import textwrap
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, TypeVar

import numpy as np

from kolmogorov._atomic import atomic_output, check_writable

T = TypeVar("T")


class MissingResults(RuntimeError):
    """The figure's numbers come from training runs that are not present; `command` produces them."""

    def __init__(self, what: str, command: str):
        super().__init__(f"{what}; produce them with: {command}")
        self.what = what
        self.command = command


#: the training setting of a network trained without noise (nets.noise_response.trained_with's label)
NOISE_FREE = "no noise"
_BERNOULLI = re.compile(r"bernoulli p=(?P<p>[0-9.eE+-]+)")


def count_of_runs(n: int) -> str:
    """'1 run', '4 runs': a legend's count of the runs behind a curve."""
    return f"{n} run" + ("" if n == 1 else "s")


def survival_of(setting: str) -> float | None:
    """The Bernoulli survival probability p of a training setting (nets.noise_response.trained_with's label): 1.0
    for "no noise", P for "bernoulli p=P" alone; None for any other noise (it is not a dose of this one)."""
    if setting == NOISE_FREE:
        return 1.0
    match = _BERNOULLI.fullmatch(setting)
    return float(match["p"]) if match else None


def in_noise_order(items: Iterable[T], setting: Callable[[T], str] = str) -> list[T]:
    """items with the noise-free setting first (drawn solid, the first colour in every panel, whatever order the
    result files came in), then the Bernoulli settings from the least noise to the most (decreasing p), then the
    rest in their order."""
    def rank(indexed: tuple[int, T]) -> tuple:
        index, item = indexed
        p = survival_of(setting(item))
        return (0, 0.0) if p == 1.0 else (1, -p) if p is not None else (2, index)

    return [item for _, item in sorted(enumerate(items), key=rank)]


def wrapped_suptitle(fig, text: str, fontsize: float = 8) -> None:
    """fig.suptitle(text) broken into lines that fit the figure's width (a long data note otherwise runs past
    the axes, and a tight bounding box then widens the saved image around it)."""
    width_points = fig.get_figwidth() * 72.0
    chars_per_line = max(40, int(width_points / (0.55 * fontsize)))
    fig.suptitle("\n".join(textwrap.wrap(text, chars_per_line)), fontsize=fontsize)


def save_figure(fig, out_dir: Path, name: str) -> list[Path]:
    """Save a matplotlib figure as out_dir/name.png and out_dir/name.pdf; returns both paths."""
    written = []
    for ext in ("png", "pdf"):
        target = Path(out_dir) / f"{name}.{ext}"
        with atomic_output(target, suffix=f".{ext}") as tmp:
            fig.savefig(tmp, format=ext, dpi=150, bbox_inches="tight")
        written.append(target)
    return written


def _attr_value(value: Any) -> Any:
    if value is None:
        return "None"
    if isinstance(value, (str, int, float, bool, np.integer, np.floating, np.bool_)):
        return value
    if isinstance(value, (list, tuple)) and all(isinstance(v, (int, float, np.integer, np.floating)) for v in value):
        return np.asarray(value)
    if is_dataclass(value):
        value = asdict(value)
    return json.dumps(value, default=str)


def save_data(out_dir: Path, name: str, groups: Mapping[str, Mapping[str, Any]], attrs: Mapping[str, Any] | None = None) -> Path:
    """Write out_dir/name.h5: one HDF5 group per key of `groups`, holding its arrays as datasets.

    Non-array values in a group become attributes of that group; `attrs` go on the root.
    """
    import h5py

    target = Path(out_dir) / f"{name}.h5"
    with atomic_output(target, suffix=".h5") as tmp:
        with h5py.File(tmp, "w") as h5:
            for key, value in (attrs or {}).items():
                h5.attrs[key] = _attr_value(value)
            for group_name, content in groups.items():
                group = h5.require_group(group_name)
                for key, value in content.items():
                    if isinstance(value, np.ndarray) or (isinstance(value, (list, tuple)) and value and isinstance(value[0], (list, tuple, np.ndarray))):
                        group.create_dataset(key, data=np.asarray(value))
                    else:
                        group.attrs[key] = _attr_value(value)
    return target


def save_outputs(fig, out_dir: Path, name: str, groups: Mapping[str, Mapping[str, Any]],
                 attrs: Mapping[str, Any] | None = None) -> list[Path]:
    """PNG + PDF of fig (closed afterwards, also on error) and name.h5 of the plotted numbers; returns the three paths."""
    import matplotlib.pyplot as plt

    try:
        written = save_figure(fig, out_dir, name)
    finally:
        plt.close(fig)
    written.append(save_data(out_dir, name, groups, attrs=attrs))
    return written


def save_labelled(draw: Callable[[dict, str], Any], data: Mapping[str, Mapping[str, Any]], note: str, out_dir: Path,
                  name: str) -> list[Path]:
    """save_outputs of draw(data, note), the figure of results-driven data keyed by curve label: one HDF5 group
    per label ('/' in a label written as '_', so that it names one group, not a path) and the note as attribute."""
    groups = {label.replace("/", "_"): values for label, values in data.items()}
    return save_outputs(draw(data, note), out_dir, name, groups, attrs={"note": note})


def check_output_dir(path: Path, flag: str = "--out-dir") -> None:
    """ValueError (one line, naming `flag`) unless `path` is a directory that files can be written
    to, or one that can be created. Nothing is left behind: a missing directory is not created here."""
    check_writable(path, directory=True, name=flag)


def check_output_file(path: Path, flag: str) -> None:
    """ValueError (one line, naming `flag`) unless a file can be written at `path`: not a directory,
    and its directory exists or can be created and takes new files. Nothing is left behind."""
    check_writable(path, directory=False, name=flag)
