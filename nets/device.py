"""Which torch.device a name means: the one resolver behind the trainer, the sweep children and the benchmarks.

Accepted: "auto" (CUDA when available, else the CPU), "cpu", "cpu:N", "cuda", "cuda:N", or a torch.device.
A command that offers fewer (nets.train: auto, cpu, cuda) restricts its flag's choices with argparse.
"""
from __future__ import annotations

from kolmogorov._cli import checked_type

#: The accepted forms, in the words of the error message.
DEVICE_FORMS = ("auto", "cpu", "cpu:N", "cuda", "cuda:N")
#: the most torch CPU threads a --threads takes: far above any core count, far below the ~10^5 at which creating
#: the OpenMP pool fails and the process dies with a segmentation fault
MAX_THREADS = 1024


def check_threads(value: object) -> int:
    """`value` as an int when it is an integer in [1, MAX_THREADS] (torch.set_num_threads' count), else ValueError."""
    from nets.models.base import check_positive_int

    check_positive_int(value, "threads")
    if value > MAX_THREADS:
        raise ValueError(f"threads must be an integer in [1, {MAX_THREADS}]; got {value}")
    return int(value)


#: argparse `type` of --threads: check_threads(int(text)), else argparse's one-line error naming the flag.
thread_count = checked_type(int, check_threads, f"an integer in [1, {MAX_THREADS}]")


def resolve_device(device):
    """``device`` ("auto", "cpu", "cpu:N", "cuda", "cuda:N" or a torch.device) as a torch.device.

    "auto" is "cuda" when torch.cuda.is_available(), else "cpu".

    Raises:
        ValueError (one line, naming ``device``): for any other value; for CUDA where torch has none (use cpu);
        for cuda:N beyond the CUDA devices there are.
    """
    import torch

    if isinstance(device, str) and device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    resolved = None
    if isinstance(device, torch.device):
        resolved = device
    elif isinstance(device, str):  # not an int: torch.device(3) would silently mean cuda:3
        try:
            resolved = torch.device(device)
        except (RuntimeError, TypeError, ValueError):
            pass
    if resolved is None or resolved.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be one of {', '.join(DEVICE_FORMS)}; got {device!r}")
    if resolved.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {str(device)!r} needs CUDA, which this torch build or machine does not "
                             f"have (torch.cuda.is_available() is False); use cpu")
        if resolved.index is not None and resolved.index >= torch.cuda.device_count():
            raise ValueError(f"device {str(device)!r}: there are {torch.cuda.device_count()} CUDA device(s), "
                             f"numbered from 0")
    return resolved
