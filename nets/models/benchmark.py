"""Time one training step (forward + backward) of registered models, with and without noise.

    python -m nets.models.benchmark --models preresnet20 lm_preresnet20 --batch 64 --repeats 5

Prints a table: parameters, median milliseconds per training step of the plain model, of the
same model with a Bernoulli mask (p = 0.9) after every branch, and their ratio (the cost of the
noise layer of Fig. 1), measured in the same process on random 32x32 inputs.
"""
from __future__ import annotations

import datetime
import platform
import statistics
import sys
import time
from dataclasses import dataclass

from kolmogorov._cli import OneLineArgumentParser, fail, positive_int
from nets.device import check_threads, resolve_device, thread_count


@dataclass(frozen=True)
class StepTiming:
    """Median wall time of one SGD step (ms) for a model, plain and with Bernoulli noise."""

    name: str
    parameters: int
    plain_ms: float
    noisy_ms: float

    @property
    def ratio(self) -> float:
        return self.noisy_ms / self.plain_ms


def time_training_step(name: str, batch: int = 64, repeats: int = 5, threads: int = 1,
                       noise_p: float = 0.9, device="cpu") -> StepTiming:
    """Median time of ``repeats`` forward+backward+SGD steps (after one warm-up step).

    ``device``: see :func:`resolve_device`; CUDA work is synchronized around each timed step.
    """
    import torch

    from nets.models.registry import build_model

    device = resolve_device(device)
    cuda = device.type == "cuda"
    if batch < 1 or repeats < 1 or threads < 1:
        raise ValueError(f"batch, repeats and threads must be >= 1; got {batch}, {repeats}, {threads}")
    check_threads(threads)
    torch.set_num_threads(threads)
    mlp = name.startswith("mlp")
    options = {"width": 4} if mlp else {}
    x = torch.randn((batch, 2) if mlp else (batch, 3, 32, 32), device=device)
    y = torch.randint(0, 2 if mlp else 10, (batch,), device=device)
    runs = {}
    for label, noise in (("plain", {}), ("noisy", {"noise": "bernoulli", "p": noise_p})):
        torch.manual_seed(0)
        model = build_model(name, **options, **noise).to(device)
        runs[label] = (model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9))
    parameters = sum(p.numel() for p in runs["plain"][0].parameters())
    samples: dict[str, list[float]] = {"plain": [], "noisy": []}
    for step in range(repeats + 1):  # alternate, so that load drifts hit both alike
        for label, (model, optimizer) in runs.items():
            if cuda:
                torch.cuda.synchronize(device)
            start = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            torch.nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
            if cuda:
                torch.cuda.synchronize(device)
            if step:  # step 0 is the warm-up
                samples[label].append(1e3 * (time.perf_counter() - start))
    times = {label: statistics.median(values) for label, values in samples.items()}
    return StepTiming(name, parameters, times["plain"], times["noisy"])


def format_table(rows: list[StepTiming], batch: int, threads: int) -> str:
    """Markdown table with the machine and the date."""
    head = (f"{datetime.date.today().isoformat()}, {platform.processor() or platform.machine()}, "
            f"torch threads {threads}, batch {batch}, 32x32 inputs\n\n"
            "| model | parameters | plain ms/step | bernoulli p=0.9 ms/step | ratio |\n|---|---|---|---|---|\n")
    return head + "\n".join(f"| {r.name} | {r.parameters:,} | {r.plain_ms:.1f} | {r.noisy_ms:.1f} | {r.ratio:.3f} |"
                            for r in rows)


def build_parser() -> OneLineArgumentParser:
    """The command's arguments (nothing imported or timed); numbers are checked here, before any progress bar."""
    parser = OneLineArgumentParser(prog="python -m nets.models.benchmark", description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["preresnet20", "lm_preresnet20", "preresnet56"])
    parser.add_argument("--batch", type=positive_int, default=64)
    parser.add_argument("--repeats", type=positive_int, default=5)
    parser.add_argument("--threads", type=thread_count, default=1)
    parser.add_argument("--device", default="cpu")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from tqdm import tqdm

    from nets.models.registry import list_models

    unknown = [m for m in args.models if m not in list_models()]
    if unknown:
        fail(parser.prog, f"unknown model(s) {unknown}; choose from {', '.join(list_models())}")
    try:
        device = resolve_device(args.device)
    except ValueError as error:
        fail(parser.prog, f"--{error}")
    try:
        rows = [time_training_step(m, args.batch, args.repeats, args.threads, device=device)
                for m in tqdm(args.models, desc="models", file=sys.stderr)]
    except (ValueError, RuntimeError) as error:
        fail(parser.prog, str(error))
    print(format_table(rows, args.batch, args.threads))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
