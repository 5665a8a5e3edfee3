"""Step time of each model family, plain against noisy (the cost of Fig. 1's noise layer).

    python benchmarks/bench_models.py [--models ...] [--batch 64] [--repeats 7]

A thin wrapper over `python -m nets.models.benchmark`, kept here so that every benchmark lives in
benchmarks/. Prints its table; it is not a test.
"""
import sys

from nets.models.benchmark import build_parser, main

__all__ = ["build_parser", "main"]  # build_parser: what tests/test_docs_commands.py parses with

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
