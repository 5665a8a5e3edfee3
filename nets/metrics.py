"""runs/NAME/metrics.h5: the per-epoch record of a training run, its configuration and its summary.

Layout (the contract every reader relies on):
    datasets, one entry per completed epoch: epoch (int64, 1-based), train_loss, train_acc, test_loss,
        test_acc (fractions in [0, 1]), lr (the rate used during the epoch), epoch_time (seconds);
        lm_k (epochs x num_blocks) when the model's lm_coefficients() is not None.
    datasets of runs with grad_norm_every = N > 0 (robust-ResNet paper Fig. 2; nets.grad_norms), R records of
        B blocks: grad_norm_step (int64, (R,), the optimizer step of each record, 0 = the run's first; attribute
        every = N), grad_norm and weight_norm (float32, (R, B), L2 norms of each block's gradient and
        parameters; attribute block_names, "stem", "blocks.0", ...). Absent when N = 0.
    root attributes: every TrainConfig field under its own name (None stored as the string "None"),
        config_json (the whole configuration as JSON), epsilon (eps of (3.4) in the main paper),
        stochastic_depth_epsilon (the rms eps of stochastic depth; absent in runs recorded before it),
        num_parameters, dataset (a one-line description), data_fingerprint (Dataset.fingerprint() of the
        training data: 16 hex digits over its content, not its path; absent in runs recorded before it).
    group "summary" attributes: finished, epochs_completed, final_test_acc, final_test_error,
        best_test_acc, final_train_loss, total_train_time_s, device_name, torch_version.

The file is rewritten whole after every epoch, to a temporary file that then replaces it, so a reader
never sees a half-written run. `read_metrics` is the reader the sweeps and figures use.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import numpy as np

from kolmogorov._atomic import atomic_output

EPOCH_FIELDS = ("epoch", "train_loss", "train_acc", "test_loss", "test_acc", "lr", "epoch_time")
SUMMARY_FIELDS = ("finished", "epochs_completed", "final_test_acc", "final_test_error", "best_test_acc",
                  "final_train_loss", "total_train_time_s", "device_name", "torch_version")


def _attr_value(value: Any) -> Any:
    """A Python value as an HDF5 attribute: None -> "None", sequences -> arrays."""
    if value is None:
        return "None"
    if isinstance(value, str):
        return str(value)  # plain str: subclasses such as torch's TorchVersion do not convert
    if isinstance(value, (list, tuple)):
        return np.asarray(value)
    return value


def _python_value(value: Any) -> Any:
    """An HDF5 attribute back as a plain Python value ("None" -> None)."""
    if isinstance(value, bytes):
        value = value.decode()
    if isinstance(value, str):
        return None if value == "None" else value
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def summarize(history: Mapping[str, Sequence[float]], finished: bool, device_name: str) -> dict[str, Any]:
    """The summary group's attributes computed from the per-epoch history."""
    import torch

    test_acc = list(history.get("test_acc", []))
    n = len(test_acc)
    return {
        "finished": bool(finished),
        "epochs_completed": n,
        "final_test_acc": float(test_acc[-1]) if n else float("nan"),
        "final_test_error": float(1.0 - test_acc[-1]) if n else float("nan"),
        "best_test_acc": float(max(test_acc)) if n else float("nan"),
        "final_train_loss": float(history["train_loss"][-1]) if n else float("nan"),
        "total_train_time_s": float(np.sum(history.get("epoch_time", []))),
        "device_name": device_name,
        "torch_version": torch.__version__,
    }


def write_metrics(path: str | os.PathLike, history: Mapping[str, Sequence], config: Mapping[str, Any],
                  attrs: Mapping[str, Any], summary: Mapping[str, Any], grad_norms: Any = None) -> None:
    """Write metrics.h5 atomically.

    Args:
        history: EPOCH_FIELDS -> one value per completed epoch; optional "lm_k" -> list of (num_blocks,) rows.
        config: the TrainConfig as a dict (dataclasses.asdict); each field becomes a root attribute.
        attrs: further root attributes (epsilon, num_parameters, dataset).
        summary: the "summary" group's attributes (see summarize()).
        grad_norms: nets.grad_norms.GradNormRecords, or None (no grad_norm datasets are written).
    """
    import h5py

    with atomic_output(path, prefix=".metrics-", suffix=".h5.tmp") as tmp:
        with h5py.File(tmp, "w") as f:
            for name in EPOCH_FIELDS:
                dtype = np.int64 if name == "epoch" else np.float64
                f.create_dataset(name, data=np.asarray(history.get(name, []), dtype=dtype).reshape(-1))
            if history.get("lm_k"):
                f.create_dataset("lm_k", data=np.asarray(history["lm_k"], dtype=np.float64))
            if grad_norms is not None:
                _write_grad_norms(f, grad_norms)
            for key, value in config.items():
                f.attrs[key] = _attr_value(value)
            f.attrs["config_json"] = json.dumps(dict(config), sort_keys=True)
            for key, value in attrs.items():
                f.attrs[key] = _attr_value(value)
            group = f.create_group("summary")
            for key in SUMMARY_FIELDS:
                group.attrs[key] = _attr_value(summary[key])


def _write_grad_norms(f, records: Any) -> None:
    """The grad_norm_step / grad_norm / weight_norm datasets of the layout above."""
    import h5py

    blocks = len(records.block_names)
    step = f.create_dataset("grad_norm_step", data=np.asarray(records.step, dtype=np.int64).reshape(-1))
    step.attrs["every"] = int(records.every)
    names = np.asarray([str(name) for name in records.block_names], dtype=object)
    for key in ("grad_norm", "weight_norm"):
        values = np.asarray(getattr(records, key), dtype=np.float32).reshape(-1, blocks)
        if values.shape[0] != step.shape[0]:
            raise ValueError(f"grad_norms: {key} has {values.shape[0]} records, grad_norm_step {step.shape[0]}")
        dataset = f.create_dataset(key, data=values)
        dataset.attrs.create("block_names", names, dtype=h5py.string_dtype())


@dataclass(frozen=True)
class RunMetrics:
    """One run's metrics.h5, read back.

    Arrays have one entry per completed epoch; `lm_k` is (epochs, num_blocks) or None; `config` is the
    TrainConfig as a dict (from config_json); `summary` the summary group's attributes; `attrs` every
    other root attribute (epsilon, num_parameters, dataset, ...). grad_norm_step (R,), grad_norm and
    weight_norm (R, B), grad_norm_blocks (B names) and grad_norm_every are None for a file without
    recorded norms (grad_norm_every = 0, or written before the option existed).
    """

    path: str
    epoch: np.ndarray
    train_loss: np.ndarray
    train_acc: np.ndarray
    test_loss: np.ndarray
    test_acc: np.ndarray
    lr: np.ndarray
    epoch_time: np.ndarray
    lm_k: np.ndarray | None
    config: dict[str, Any]
    summary: dict[str, Any]
    attrs: dict[str, Any] = field(default_factory=dict)
    grad_norm_step: np.ndarray | None = None
    grad_norm: np.ndarray | None = None
    weight_norm: np.ndarray | None = None
    grad_norm_blocks: tuple[str, ...] | None = None
    grad_norm_every: int | None = None

    @property
    def test_error(self) -> np.ndarray:
        return 1.0 - self.test_acc

    @property
    def finished(self) -> bool:
        return bool(self.summary.get("finished", False))

    @property
    def epochs_completed(self) -> int:
        return int(self.epoch.size)

    @property
    def epsilon(self) -> float:
        return float(self.attrs["epsilon"])

    @property
    def provenance(self) -> list[dict[str, Any]]:
        """The settings each stretch of epochs trained under (nets.provenance); [] for runs recorded before it.

        Raises:
            ValueError naming the file when its provenance_json is malformed.
        """
        from .provenance import from_json

        try:
            return from_json(self.attrs.get("provenance_json"))
        except ValueError as exc:
            raise ValueError(f"{self.path}: {exc}") from None


def read_metrics(path: str | os.PathLike) -> RunMetrics:
    """Read a metrics.h5 (the file or its run directory) into a RunMetrics.

    Raises:
        ValueError naming the file when it is missing or not a metrics file.
    """
    import h5py

    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, "metrics.h5")
    if not os.path.isfile(path):
        raise ValueError(f"{path}: no such metrics file")
    try:
        with h5py.File(path, "r") as f:
            missing = [name for name in EPOCH_FIELDS if name not in f] + (["summary"] if "summary" not in f else [])
            if missing or "config_json" not in f.attrs:
                raise ValueError(f"{path}: not a metrics file (missing {missing or ['config_json']})")
            arrays = {name: f[name][()] for name in EPOCH_FIELDS}
            lm_k = f["lm_k"][()] if "lm_k" in f else None
            norms = _read_grad_norms(f)
            config = json.loads(_python_value(f.attrs["config_json"]))
            summary = {key: _python_value(value) for key, value in f["summary"].attrs.items()}
            attrs = {key: _python_value(value) for key, value in f.attrs.items() if key not in config}
    except OSError as exc:
        raise ValueError(f"{path}: cannot read metrics ({type(exc).__name__}: {exc})") from None
    attrs.pop("config_json", None)
    return RunMetrics(path=os.path.abspath(path), lm_k=lm_k, config=config, summary=summary, attrs=attrs, **arrays,
                      **norms)


def _read_grad_norms(f) -> dict[str, Any]:
    """The grad_norm datasets as RunMetrics fields; an empty dict (every field None) when absent."""
    if "grad_norm_step" not in f:
        return {}
    names = f["grad_norm"].attrs.get("block_names", [])
    return {"grad_norm_step": f["grad_norm_step"][()], "grad_norm": f["grad_norm"][()],
            "weight_norm": f["weight_norm"][()],
            "grad_norm_blocks": tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names),
            "grad_norm_every": int(f["grad_norm_step"].attrs.get("every", 0)) or None}
