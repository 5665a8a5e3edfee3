"""`python -m figures list | NAME... | all [--fast] [--out-dir DIR] [--results DIR]`."""
from __future__ import annotations

import sys
from pathlib import Path

from kolmogorov._cli import OneLineArgumentParser, fail
from figures import registry
from figures.output import MissingResults


def build_parser() -> OneLineArgumentParser:
    parser = OneLineArgumentParser(prog="python -m figures", description=__doc__)
    parser.add_argument("names", nargs="+", metavar="NAME", help="figure names, 'all', or 'list'")
    parser.add_argument("--fast", action="store_true", help="smaller grids and fewer trials (minutes on a laptop)")
    parser.add_argument("--out-dir", type=Path, default=Path("figures_out"), help="where PNG/PDF/HDF5 go (default: figures_out)")
    parser.add_argument("--results", type=Path, default=Path("results"), help="root of training results (default: results)")
    return parser


def run_figures(names: list[str], out_dir: Path, fast: bool, results: Path | None) -> dict[str, list[Path] | str]:
    """Make each named figure; returns name -> files written, or name -> the missing-results message."""
    outcome: dict[str, list[Path] | str] = {}
    for name in names:
        module = registry.load(name)
        try:
            outcome[name] = module.make(out_dir=out_dir, fast=fast, results=results)
        except MissingResults as missing:
            outcome[name] = str(missing)
    return outcome


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.names == ["list"]:
        width = max(map(len, registry.figure_names()), default=0)
        for name in registry.figure_names():
            print(f"{name:{width}s}  {registry.load(name).SUMMARY}")
        return 0
    names = registry.figure_names() if args.names == ["all"] else args.names
    for name in names:
        if name not in registry.FIGURES:
            fail("python -m figures", f"unknown figure {name!r}; allowed: {', '.join(registry.FIGURES)}, all, list")
    try:
        outcome = run_figures(names, args.out_dir, args.fast, args.results)
    except ValueError as bad:
        fail("python -m figures", str(bad))
    for name, result in outcome.items():
        if isinstance(result, str):
            print(f"{name}: skipped, no results: {result}")
        else:
            print(f"{name}: " + ", ".join(str(p) for p in result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
