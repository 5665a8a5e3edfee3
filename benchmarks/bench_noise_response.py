"""Wall time of nets.noise_response's estimators on one network: plain, the control variate with the clean
backward pass shared by every mask kind and eps (what `--estimator control-variate` runs), and the control
variate cell by cell (one clean backward per kind and eps, as before the sharing).

    python benchmarks/bench_noise_response.py [--model preresnet8] [--images 1000] [--draws 8] [--eps 0.06 0.12]
                                              [--repeat 3]

Random weights and random CIFAR-shaped images: the cost does not depend on them. Prints its table; it is not
a test. The shared and cell-by-cell control variates give the same numbers bit for bit (checked here too).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_timing import best_time  # noqa: E402

MASKS = ("bernoulli", "gaussian", "uniform")


def _cell_by_cell(model_name, state, images, labels, eps, draws, batch_size):
    """The control variate of each mask kind and eps on its own (its own clean backward per batch)."""
    import torch

    from nets import build_model
    from nets.control_variate import control_variate_draws
    from nets.noise_response import options_at

    blocks = build_model(model_name).num_blocks
    results = []
    for level in eps:
        for kind in MASKS:
            options = {k: v for k, v in options_at(kind, blocks, level).items() if v is not None}
            model = build_model(model_name, **options)
            model.load_state_dict(state)
            torch.manual_seed(0)
            results.append(control_variate_draws(model.eval(), images, labels, draws, batch_size)[0])
    return results


def build_parser() -> argparse.ArgumentParser:
    """The script's argparse parser (tests/test_docs_commands.py parses the documented commands with it)."""
    parser = argparse.ArgumentParser(prog="benchmarks/bench_noise_response.py", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="preresnet8", help="a PreResNet of nets.models (default preresnet8)")
    parser.add_argument("--images", type=int, default=1000, help="random images measured (default 1000)")
    parser.add_argument("--draws", type=int, default=8, help="noise draws per kind and eps (default 8)")
    parser.add_argument("--eps", type=float, nargs="+", default=[0.06, 0.12], help="noise levels (default 0.06 0.12)")
    parser.add_argument("--batch-size", type=int, default=500, help="images per batch (default 500)")
    parser.add_argument("--repeat", type=int, default=3, help="timed calls after a warm-up; the best is shown")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)

    import numpy as np
    import torch

    from nets import build_model
    from nets.noise_response import noise_response

    torch.manual_seed(0)
    state = build_model(args.model).state_dict()
    images, labels = torch.randn(args.images, 3, 32, 32), torch.randint(0, 10, (args.images,))
    common = dict(kinds=MASKS, draws=args.draws, batch_size=args.batch_size)

    def plain():
        return noise_response(args.model, state, {}, images, labels, args.eps, **common)

    def shared():
        return noise_response(args.model, state, {}, images, labels, args.eps, estimator="control-variate", **common)

    def cells():
        return _cell_by_cell(args.model, state, images, labels, args.eps, args.draws, args.batch_size)

    together = [r.loss for r in shared()[2]]
    alone = [float(np.mean(draws)) for draws in cells()]
    if together != alone:
        print("shared and cell-by-cell control variates differ:", together, alone, file=sys.stderr)
        return 1
    print(f"{args.model}, {args.images} images, {args.draws} draws, eps {args.eps}, kinds {', '.join(MASKS)}, "
          f"{torch.get_num_threads()} threads; best of {args.repeat} (s):")
    for name, fn in (("plain", plain), ("control variate, shared", shared), ("control variate, cell by cell", cells)):
        print(f"  {name:<30} {best_time(fn, args.repeat):8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
