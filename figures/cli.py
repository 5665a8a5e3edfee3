"""`python -m figures list | NAME... | all [--fast] [--out-dir DIR] [--results DIR]`."""
from __future__ import annotations

import sys
from pathlib import Path

from kolmogorov._cli import OneLineArgumentParser, fail
from figures import registry
from figures.output import MissingResults, check_output_dir

PROG = "python -m figures"
DEFAULT_RESULTS = Path("results")


def build_parser() -> OneLineArgumentParser:
    parser = OneLineArgumentParser(prog=PROG, description=__doc__)
    parser.add_argument("names", nargs="+", metavar="NAME", help="figure names, 'all', or 'list'")
    parser.add_argument("--fast", action="store_true", help="smaller grids and fewer trials (minutes on a laptop)")
    parser.add_argument("--out-dir", type=Path, default=Path("figures_out"), help="where PNG/PDF/HDF5 go (default: figures_out)")
    # default None: an explicit --results must be a directory, the default results/ may be absent (figures skipped)
    parser.add_argument("--results", type=Path, default=None,
                        help=f"root of training results (default: {DEFAULT_RESULTS}; figures that need it are skipped when absent)")
    return parser


class FigureOSError(OSError):
    """An OSError while making figure `name` (a full disk, an out-dir that became unwritable)."""

    def __init__(self, name: str, out_dir: Path, error: OSError):
        detail = error.strerror or str(error)
        if error.filename is not None:
            detail = f"{detail}: {error.filename}"
        super().__init__(f"{name}: {detail} (--out-dir {out_dir})")
        self.name = name
        self.error = error


def run_figures(names: list[str], out_dir: Path, fast: bool, results: Path | None) -> dict[str, list[Path] | str]:
    """Make each named figure; returns name -> files written, or name -> the missing-results message.

    An OSError of a figure is raised as FigureOSError naming the figure and out_dir; figures made
    before it are complete (every file is written atomically).
    """
    outcome: dict[str, list[Path] | str] = {}
    for name in names:
        module = registry.load(name)
        try:
            outcome[name] = module.make(out_dir=out_dir, fast=fast, results=results)
        except MissingResults as missing:
            outcome[name] = str(missing)
        except OSError as error:
            raise FigureOSError(name, out_dir, error) from error
    return outcome


def resolve_names(names: list[str]) -> list[str]:
    """The figures that NAME... asks for ('all' alone: every figure); ValueError naming the problem."""
    for word in ("all", "list"):
        if word in names and len(names) > 1:
            raise ValueError(f"'{word}' must be given alone, not with other names: {' '.join(names)}")
    if names == ["all"]:
        return registry.figure_names()
    for name in names:
        if name not in registry.FIGURES:
            raise ValueError(f"unknown figure {name!r}; allowed: {', '.join(registry.FIGURES)}, "
                             "or 'all' or 'list' alone")
    return names


def resolve_results(results: Path | None) -> Path:
    """--results as given (it must be a directory), or the default results/ (which may be absent)."""
    if results is None:
        return DEFAULT_RESULTS
    if not results.exists():
        raise ValueError(f"--results {results} does not exist")
    if not results.is_dir():
        raise ValueError(f"--results {results} is not a directory")
    return results


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.names == ["list"]:
        width = max(map(len, registry.figure_names()), default=0)
        for name in registry.figure_names():
            print(f"{name:{width}s}  {registry.load(name).SUMMARY}")
        return 0
    try:
        names = resolve_names(args.names)
        results = resolve_results(args.results)
        check_output_dir(args.out_dir, "--out-dir")  # before minutes of computing, not after
    except ValueError as bad:
        fail(PROG, str(bad))
    try:
        outcome = run_figures(names, args.out_dir, args.fast, results)
    except (ValueError, OSError) as bad:
        fail(PROG, str(bad))
    for name, result in outcome.items():
        if isinstance(result, str):
            print(f"{name}: skipped, no results: {result}")
        else:
            print(f"{name}: " + ", ".join(str(p) for p in result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
