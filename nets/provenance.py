"""Where a run's numbers came from: the code version, the library versions, the CPU threads, the processor and
how the trainer executed (torch.compile, bf16 autocast, channels_last, the test-set batch size).

A CPU run is bit-for-bit reproducible only under the same code, the same torch and numpy, the same
number of intra-op threads (a convolution's floating-point sums are split over the threads) and the same
kind of processor (torch and oneDNN pick kernels by instruction set and cache sizes). A run that
is resumed may continue under other settings than it started with, so a run records a list of segments:
the first epoch each one trained, then the settings it trained under. A new segment is appended only
when a resume changes something, so an uninterrupted run (or one resumed under the same settings) keeps
one segment. The trainer stores the list in checkpoint.pt (`provenance`) and as JSON in metrics.h5
(attribute `provenance_json`, read back by `RunMetrics.provenance`).
"""
from __future__ import annotations

import hashlib
import json
import platform
import subprocess
from pathlib import Path
from typing import Any, Sequence

# The fields of a segment besides first_epoch, in the order a message lists them.
SETTINGS = ("code_version", "torch", "numpy", "python", "threads", "cpu", "device", "compile", "amp", "channels_last",
            "eval_batch_size")
#: The SETTINGS that say how the trainer executed (TrainConfig's execution fields, which a resume may change):
#: torch.compile, bf16 autocast and channels_last as they took effect (the last two are CUDA only, so False on
#: the CPU) and the test-set batch size (its sums). Segments recorded before 2026-12-07 lack them, and a
#: comparison skips a field that either side lacks: unknown, not changed.
EXECUTION_SETTINGS = ("compile", "amp", "channels_last", "eval_batch_size")


def code_version() -> str | None:
    """`git describe --always --dirty` of the checkout holding this package, or None outside git."""
    try:
        result = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=Path(__file__).resolve().parent,
                                capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    if result.returncode != 0:
        return None
    return result.stdout.strip() or None


def cpu_description(cpuinfo: str | None = None) -> str:
    """The processor as kernels see it: model name, torch's CPU capability, and a digest of the feature flags.

    `cpuinfo` is /proc/cpuinfo's text (read when None; platform.processor() or machine() where absent),
    e.g. "Intel(R) Xeon(R) Processor; AVX512; flags 3f2a9c1e".
    """
    import torch

    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            cpuinfo = ""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        key, sep, value = line.partition(":")
        if sep and key.strip() not in fields:
            fields[key.strip()] = value.strip()
    model = fields.get("model name") or platform.processor() or platform.machine() or "unknown"
    parts = [model, str(torch.backends.cpu.get_cpu_capability())]
    flags = fields.get("flags") or fields.get("Features")  # x86 or ARM
    if flags:
        parts.append("flags " + hashlib.sha256(" ".join(sorted(flags.split())).encode()).hexdigest()[:8])
    return "; ".join(parts)


#: The code version when this module was imported (with the trainer): edits made to the checkout while a
#: run trains do not change the code it runs, so they must not change what it records either.
CODE_VERSION_AT_IMPORT = code_version()


def execution_settings(config: Any, on_cuda: bool) -> dict[str, Any]:
    """EXECUTION_SETTINGS of a nets.trainer.TrainConfig as they take effect on CUDA (`on_cuda`) or the CPU."""
    return {"compile": bool(config.compile), "amp": bool(on_cuda and config.amp),
            "channels_last": bool(on_cuda and config.channels_last), "eval_batch_size": int(config.eval_batch_size)}


def current_settings(device_name: str, execution: dict[str, Any] | None = None) -> dict[str, Any]:
    """The settings this process runs under; `device_name` as nets.trainer.device_name gives it. With `execution`
    (execution_settings of the run's config: what a trainer records) all of SETTINGS, without it (a measurement
    of trained weights) all but EXECUTION_SETTINGS.

    code_version is CODE_VERSION_AT_IMPORT, the checkout's state when the training code was imported.
    """
    import numpy
    import torch

    return {"code_version": CODE_VERSION_AT_IMPORT, "torch": str(torch.__version__), "numpy": str(numpy.__version__),
            "python": platform.python_version(), "threads": int(torch.get_num_threads()), "cpu": cpu_description(),
            "device": str(device_name), **(execution or {})}


def changed_settings(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """The SETTINGS fields whose values differ between two segments (or settings dicts), in SETTINGS order; an
    EXECUTION_SETTINGS field that either lacks (recorded before it existed) is not compared."""
    return [name for name in SETTINGS if before.get(name) != after.get(name)
            and not (name in EXECUTION_SETTINGS and (name not in before or name not in after))]


def describe_changes(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """'name old -> new' for each of changed_settings(before, after)."""
    return [f"{name} {before.get(name)} -> {after.get(name)}" for name in changed_settings(before, after)]


def extend(segments: Sequence[dict[str, Any]], first_epoch: int, settings: dict[str, Any]) -> list[dict[str, Any]]:
    """`segments` with one for `settings` from `first_epoch` on, unless the last one has the same settings.

    Raises:
        ValueError: first_epoch is not after the last segment's first epoch.
    """
    segments = [dict(segment) for segment in segments]
    if segments and int(segments[-1]["first_epoch"]) >= first_epoch:
        raise ValueError(f"first_epoch must be after the last segment's ({segments[-1]['first_epoch']}); "
                         f"got {first_epoch}")
    if segments and not changed_settings(segments[-1], settings):
        return segments
    return segments + [{"first_epoch": int(first_epoch), **{name: settings.get(name) for name in SETTINGS
                                                              if name not in EXECUTION_SETTINGS or name in settings}}]


def resume_warning(out: Path, segments: Sequence[dict[str, Any]], first_epoch: int,
                   settings: dict[str, Any]) -> str | None:
    """One line saying what changed, when a run resumed at `first_epoch` trains under other settings than its
    last segment; None when nothing changed or the run recorded no segments (made before they existed)."""
    changes = describe_changes(segments[-1], settings) if segments else []
    if not changes:
        return None
    return (f"warning: {out}: resuming at epoch {first_epoch} with {', '.join(changes)}; the run's numbers need "
            "not match an uninterrupted run bit for bit (metrics.h5 records both in provenance_json)")


def to_json(segments: Sequence[dict[str, Any]]) -> str:
    """The segments as the JSON text metrics.h5 stores."""
    return json.dumps([dict(segment) for segment in segments], sort_keys=True)


def validated(segments: object, source: str = "provenance") -> list[dict[str, Any]]:
    """`segments` as a list of dicts; [] for None (runs recorded before provenance existed).

    Raises:
        ValueError naming `source`: not a list of objects each with an integer first_epoch, ascending.
    """
    if segments is None:
        return []
    if not isinstance(segments, (list, tuple)) or not all(
            isinstance(s, dict) and type(s.get("first_epoch")) is int for s in segments):
        raise ValueError(f"{source} must be a list of objects each with an integer first_epoch")
    firsts = [s["first_epoch"] for s in segments]
    if firsts != sorted(set(firsts)):
        raise ValueError(f"{source}: first_epoch must increase from segment to segment; got {firsts}")
    return [dict(s) for s in segments]


def from_json(text: str | None) -> list[dict[str, Any]]:
    """Segments from metrics.h5's provenance_json; [] for None (runs recorded before it existed).

    Raises:
        ValueError: the text is not JSON, or not segments (see validated).
    """
    if text is None:
        return []
    try:
        segments = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"provenance_json is not valid JSON ({exc.msg})") from None
    return validated(segments, "provenance_json")
