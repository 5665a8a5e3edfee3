"""What `python -m landscape.plot` computes and writes: curves J_0 and J_eps, statistics, SGD paths, HDF5.

The command (landscape/plot.py) only parses arguments into a :class:`PlotConfig` and calls
:func:`run_plot`; tests call the same function. Nothing is written until every number has been
computed, and each file goes to a temporary name first and is moved into place with os.replace.
"""
from __future__ import annotations

import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from kolmogorov._atomic import atomic_output, check_writable
from landscape.datasets import Dataset, get_dataset
from landscape.objective import LOSS_FLOOR, LOSSES, OBJECTIVES, SOLVERS, Landscape, check_choice, check_eps, evaluate
from landscape.sgd import SGD_MODES, SGDConfig, SGDPath, run_sgd
from landscape.statistics import LandscapeStatistics, format_table, landscape_statistics, write_statistics_group

FIGURE_SUFFIXES = (".png", ".pdf", ".svg")
H5_SUFFIXES = (".h5", ".hdf5")
F_LIMIT = 1e12
"""Largest |f| of the grid. J has steps of unit width at f = -y; beyond ~1e12 float64 spacing
(1.2e-4 at 1e12) no longer resolves them, and near 1e308 the grid itself overflows."""


def check_f_bound(name: str, value: float) -> float:
    """value if it is a finite f with |f| <= F_LIMIT, else a ValueError naming `name` and the range."""
    if not (math.isfinite(value) and abs(value) <= F_LIMIT):
        raise ValueError(f"{name} must be a finite number in [-{F_LIMIT:g}, {F_LIMIT:g}], got {value!r}")
    return value


def check_f_range(f_min: float, f_max: float, names: str = "f_min/f_max") -> None:
    """Refuse an f-range whose ends lie outside [-F_LIMIT, F_LIMIT] (the grid would be unresolved or
    overflow), naming `names` (the options that set it)."""
    if not (math.isfinite(f_min) and math.isfinite(f_max) and -F_LIMIT <= f_min and f_max <= F_LIMIT):
        raise ValueError(f"{names}: the f-range [{f_min:g}, {f_max:g}] must lie within [-{F_LIMIT:g}, {F_LIMIT:g}]")


@dataclass(frozen=True)
class PlotConfig:
    """Every option of `python -m landscape.plot`; each one is stored as an HDF5 attribute.

    survival_p with blocks = K adds, for each p, the curve at the noise level of K dropout blocks
    with survival probability p, eps = sqrt((1 - p) / (p K)) (main paper (3.2)-(3.4)); `eps` then
    lists every noise level drawn. solver "network" draws, at every eps, the K-block dropout network
    itself (p = 1 / (1 + K eps^2), landscape.network), with the SDE's closed-form curve beside it as
    its model; it needs blocks, and its SGD paths descend the network's landscape (sampled: dropout). jump = a < 1
    (solver "network" only) replaces dropout by two-point masks of the same eps, mask "uniform" by the uniform
    masks 1 + U(-beta, beta) of (3.14), beta = eps sqrt(3K) < 1, and mask "stochastic_depth" by stochastic depth's
    linear decay at the rms level eps, K <= 16 (landscape.network).
    """

    eps: tuple[float, ...] = (0.5,)
    loss: str = "l2"
    dataset: str = "rugged"
    solver: str = "closed"
    objective: str = "ensemble"
    f_min: float | None = None
    f_max: float | None = None
    n_f: int = 801
    n_samples: int = 20_000
    seed: int = 0
    sgd: bool = False
    sgd_mode: str = "smoothed"
    batch_size: int = 1
    steps: int = 200
    lr: float = 10.0
    lr_end: float | None = None
    f0: float | None = None
    out: str | None = None
    h5: str | None = None
    survival_p: tuple[float, ...] = ()
    blocks: int | None = None
    jump: float | None = None
    mask: str | None = None

    def __post_init__(self):
        eps = [check_eps(e) for e in self.eps]
        if self.survival_p:
            if self.blocks is None:
                raise ValueError("blocks: give the number of residual blocks K together with the survival probability p")
            from kolmogorov import epsilon

            eps += [epsilon("bernoulli", self.blocks, p=p) for p in self.survival_p]  # (3.2)-(3.4)
        elif self.blocks is not None and self.solver != "network":
            raise ValueError("blocks is only used with the survival probability p or solver 'network'")
        if self.solver == "network" and self.blocks is None:
            raise ValueError("blocks: solver 'network' needs the number of dropout blocks K")
        if not eps:
            raise ValueError("eps: give at least one value (or a survival probability p with blocks)")
        from landscape.network import check_network_masks, refuse_network_masks

        if self.solver != "network":
            refuse_network_masks(self.jump, self.mask, "solver 'network'")
        else:
            check_network_masks(self.mask, self.jump, eps, self.blocks)
        object.__setattr__(self, "eps", unique_eps(eps))
        check_choice("loss", self.loss, LOSSES)
        check_choice("solver", self.solver, SOLVERS)
        check_choice("objective", self.objective, OBJECTIVES)
        check_choice("sgd_mode", self.sgd_mode, SGD_MODES)
        for name in ("f_min", "f_max", "f0", "lr", "lr_end"):
            value = getattr(self, name)
            if value is not None and not math.isfinite(value):
                raise ValueError(f"{name} must be finite, got {value!r}")
        for name in ("f_min", "f_max", "f0"):  # f0 too: an SGD start at 1e300 sits on a flat plateau forever
            if getattr(self, name) is not None:
                check_f_bound(name, getattr(self, name))
        if self.f_min is not None and self.f_max is not None and not self.f_min < self.f_max:
            raise ValueError(f"empty f-range: f_min ({self.f_min}) must be below f_max ({self.f_max})")
        if self.lr <= 0 or (self.lr_end is not None and self.lr_end <= 0):
            raise ValueError(f"lr and lr_end must be > 0, got {self.lr} and {self.lr_end}")
        if not 3 <= self.n_f <= 1_000_000:
            raise ValueError(f"n_f must be between 3 and 1000000, got {self.n_f}")
        if self.n_samples < 2:
            raise ValueError(f"n_samples must be >= 2, got {self.n_samples}")
        if self.out is not None:
            check_target("out", self.out, FIGURE_SUFFIXES)
        if self.h5 is not None:
            check_target("h5", self.h5, H5_SUFFIXES)

    def output_path(self) -> Path:
        """--out, or landscape_<loss>_eps<eps>.png in the working directory (eps joined by '_')."""
        if self.out is not None:
            return Path(self.out)
        return Path(f"landscape_{self.loss}_eps{'_'.join(f'{e:g}' for e in self.eps)}.png")


EPS_REL_TOL = 1e-12


def unique_eps(values) -> tuple[float, ...]:
    """The noise levels in order, dropping any that agrees with an earlier one to EPS_REL_TOL relative.

    Only rounding is merged: --p 0.8 --blocks 1 gives eps = sqrt(0.2 / 0.8) = 0.49999999999999994,
    which is the eps = 0.5 asked for (the first value given is kept); 0.5 and 0.5000000001 are two
    curves.
    """
    kept: list[float] = []
    for value in values:
        if not any(abs(value - k) <= EPS_REL_TOL * max(abs(value), abs(k)) for k in kept):
            kept.append(value)
    return tuple(kept)


def curve_keys(eps_values) -> list[str]:
    """HDF5 group names of the curves at these (distinct) noise levels: "J0" for eps = 0, else
    f"eps_{eps:g}" (eps_0.5), or f"eps_{eps!r}" (all the digits, eps_0.5000000001) for the values
    whose 6-digit names would coincide. Distinct floats always get distinct names."""
    short = ["J0" if e == 0 else f"eps_{e:g}" for e in eps_values]
    keys = [s if short.count(s) == 1 or e == 0 else f"eps_{float(e)!r}" for s, e in zip(short, eps_values)]
    if len(set(keys)) != len(keys):
        raise ValueError(f"noise levels {list(eps_values)} do not have distinct names: {keys}")
    return keys


def check_target(name: str, path: str, suffixes: tuple[str, ...]) -> None:
    """Refuse an output path that could not be written, before anything is computed: wrong suffix, a
    directory, a parent that is missing or not a directory, or a directory where no file can be
    created (probed with a temporary file, removed at once: root ignores permission bits)."""
    target = Path(path)
    if target.suffix.lower() not in suffixes:
        raise ValueError(f"{name} {path!r} must end in one of {', '.join(suffixes)}")
    if target.is_dir():
        raise ValueError(f"{name} {path!r} is a directory")
    parent = target.parent if str(target.parent) else Path(".")
    if parent.exists() and not parent.is_dir():
        raise ValueError(f"{name} {path!r}: {str(parent)!r} is not a directory")
    if not parent.is_dir():
        raise ValueError(f"{name}: directory {str(parent)!r} does not exist")
    check_writable(path, directory=False, name=name)


@dataclass(frozen=True)
class Curve:
    """One landscape (J_0 when eps = 0) with its statistics and, with --sgd, an SGD path."""

    label: str
    landscape: Landscape
    statistics: LandscapeStatistics
    sgd: SGDPath | None = None
    model: "Curve | None" = None  # solver "network": the SDE's closed-form curve at the same eps


@dataclass(frozen=True)
class PlotResult:
    """Everything the figure and the HDF5 file show."""

    config: PlotConfig
    dataset: Dataset
    f: np.ndarray
    plain: Curve
    noisy: tuple[Curve, ...] = field(default_factory=tuple)

    def table(self) -> str:
        curves = [c for curve in (self.plain, *self.noisy) for c in (curve, curve.model) if c is not None]
        return "\n".join(format_table(c.statistics, c.label) for c in curves)


def _curve(config: PlotConfig, data: Dataset, f: np.ndarray, eps: float, f0: float) -> Curve:
    if config.solver == "network":
        from kolmogorov import stochastic_depth_survival_for
        from landscape.network import DROPOUT_JUMP, STOCHASTIC_DEPTH, survival_probability, uniform_half_width

        land = evaluate(f, data.y, data.label, eps, config.loss, "network", config.objective, n_blocks=config.blocks,
                        jump=config.jump, mask=config.mask)
        label, model = "J_0", None  # eps = 0: p = 1, the network is the plain one and has no SDE model to show
        if eps > 0:
            if land.mask == "uniform":
                masks = f"uniform masks, beta={uniform_half_width(eps, config.blocks):.4g}"
            elif land.mask == STOCHASTIC_DEPTH:
                masks = f"stochastic depth, p_L={stochastic_depth_survival_for(eps, config.blocks):.4g}"
            elif land.jump == DROPOUT_JUMP:
                masks = f"p={survival_probability(eps, config.blocks):.4g}"
            else:
                masks = f"two-point masks, jump a={land.jump:g}"
            label = f"network, K={config.blocks} blocks, {masks} (eps={eps:g})"
            sde = evaluate(f, data.y, data.label, eps, config.loss, "closed", config.objective)
            model = Curve(f"SDE model, eps={eps:g}", sde, landscape_statistics(f, sde.J, floor=LOSS_FLOOR))
        return Curve(label, land, landscape_statistics(f, land.J, floor=LOSS_FLOOR), _sgd_path(config, data, eps, f0),
                     model)
    land = evaluate(f, data.y, data.label, eps, config.loss, config.solver, config.objective,
                    n_samples=config.n_samples, seed=config.seed)
    label = "J_0" if eps == 0 else f"J_eps, eps={eps:g}"
    return Curve(label, land, landscape_statistics(f, land.J, floor=LOSS_FLOOR), _sgd_path(config, data, eps, f0))


def _sgd_path(config: PlotConfig, data: Dataset, eps: float, f0: float) -> SGDPath | None:
    """The SGD path on the curve at eps (with sgd), on the network's landscape with solver "network"."""
    if not config.sgd:
        return None
    sgd_config = SGDConfig(f0=f0, lr=config.lr, lr_end=config.lr_end, steps=config.steps, batch_size=config.batch_size,
                           seed=config.seed, mode=config.sgd_mode, eps=eps, loss=config.loss, objective=config.objective,
                           n_blocks=config.blocks if config.solver == "network" else None, jump=config.jump,
                           mask=config.mask)
    return run_sgd(sgd_config, data.y, data.label)


def compute_plot(config: PlotConfig) -> PlotResult:
    """Compute J_0, every J_eps of config.eps, their statistics and (with sgd) the SGD paths."""
    data = get_dataset(config.dataset)
    low, high = data.default_f_range()
    f_min = low if config.f_min is None else config.f_min
    f_max = high if config.f_max is None else config.f_max
    if not f_min < f_max:
        raise ValueError(f"empty f-range: f_min ({f_min}) must be below f_max ({f_max})")
    if config.f_min is None or config.f_max is None:  # an end from the data: samples y of up to ~1e308
        check_f_range(f_min, f_max, f"dataset {data.name} (its samples set the default f-range; give f_min/f_max)")
    if config.sgd and config.batch_size > data.n:
        raise ValueError(f"batch_size must be between 1 and the number of samples ({data.n}), got {config.batch_size}")
    f = np.linspace(f_min, f_max, config.n_f)
    f0 = f_min + 0.9 * (f_max - f_min) if config.f0 is None else config.f0
    if config.solver == "fd":  # refuse a too-wide range before any curve is solved, at the largest eps
        from landscape.fd import check_fd_work

        check_fd_work(f, data.y, max(config.eps, default=0.0))
    plain = _curve(config, data, f, 0.0, f0)
    noisy = tuple(_curve(config, data, f, e, f0) for e in config.eps if e > 0)
    return PlotResult(config, data, f, plain, noisy)


def _config_attrs(config) -> dict[str, object]:
    """A config dataclass as HDF5 attributes: None -> "None", tuples -> float arrays."""
    attrs = {}
    for key, value in asdict(config).items():
        if value is None:
            attrs[key] = "None"
        elif isinstance(value, tuple):
            attrs[key] = np.asarray(value, dtype=float)
        else:
            attrs[key] = value
    return attrs


def write_h5(result: PlotResult, path: Path) -> None:
    """HDF5 at path: datasets f, J0, Jeps (n_eps, n_f), eps, y, label; options as root attributes;
    groups statistics/<curve> and sgd/<curve> (f, J of the path), named by :func:`curve_keys`, each
    with attribute eps; with solver "network" also Jeps_sde (the SDE's curves) and statistics_sde/<curve>;
    written atomically."""
    import h5py

    with atomic_output(path, suffix=Path(path).suffix) as tmp:
        with h5py.File(tmp, "w") as h5:
            for key, value in _config_attrs(result.config).items():
                h5.attrs[key] = value
            h5.attrs["dataset_resolved"] = result.dataset.name
            h5.attrs["f_min_used"] = float(result.f[0])
            h5.attrs["f_max_used"] = float(result.f[-1])
            h5.create_dataset("f", data=result.f)
            h5.create_dataset("J0", data=result.plain.landscape.J)
            eps = np.array([c.landscape.eps for c in result.noisy], dtype=float)
            h5.create_dataset("eps", data=eps)
            h5.create_dataset("Jeps", data=np.array([c.landscape.J for c in result.noisy]).reshape(eps.size, result.f.size))
            if result.config.solver == "network":
                h5.create_dataset("Jeps_sde", data=np.array([c.model.landscape.J for c in result.noisy]).reshape(eps.size, result.f.size))
            if result.config.solver == "mc":
                h5.create_dataset("J0_stderr", data=result.plain.landscape.stderr)
                h5.create_dataset("Jeps_stderr", data=np.array([c.landscape.stderr for c in result.noisy]).reshape(eps.size, result.f.size))
            h5.create_dataset("y", data=result.dataset.y)
            h5.create_dataset("label", data=result.dataset.label)
            curves = (result.plain, *result.noisy)
            for curve, key in zip(curves, curve_keys([c.landscape.eps for c in curves])):
                group = h5.require_group("statistics").create_group(key)
                group.attrs["eps"] = curve.landscape.eps
                write_statistics_group(group, curve.statistics)
                if curve.model is not None:
                    model_group = h5.require_group("statistics_sde").create_group(key)
                    model_group.attrs["eps"] = curve.landscape.eps
                    write_statistics_group(model_group, curve.model.statistics)
                if curve.sgd is not None:
                    sgd_group = h5.require_group("sgd").create_group(key)
                    sgd_group.create_dataset("f", data=curve.sgd.f)
                    sgd_group.create_dataset("J", data=curve.sgd.J)
                    for name, value in _config_attrs(curve.sgd.config).items():
                        sgd_group.attrs[name] = value


def display_available() -> bool:
    """True if a window could open: an interactive platform or a DISPLAY / WAYLAND_DISPLAY, and an
    MPLBACKEND that is not a file-only backend."""
    import sys

    backend = os.environ.get("MPLBACKEND", "").lower()
    if backend in ("agg", "pdf", "svg", "ps", "cairo", "pgf", "template") or backend.startswith("module://matplotlib_inline"):
        return False
    if sys.platform in ("darwin", "win32"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def run_plot(config: PlotConfig, show: bool = False) -> PlotResult:
    """Compute, draw and write the figure (and the HDF5 file if config.h5); show it if asked and possible.

    Raises ValueError on any bad input before anything is written.
    """
    from landscape.drawing import new_figure, plot_result

    interactive = show and display_available()
    result = compute_plot(config)
    out = config.output_path()
    fig = new_figure(interactive=interactive)
    plot_result(fig, result)
    # The PNG replaces `out` only once the HDF5 (if asked for) is written: a failure leaves neither half.
    with atomic_output(out, suffix=out.suffix) as tmp_png:
        fig.savefig(tmp_png, format=out.suffix.lstrip(".").lower(), dpi=150)  # fixed margins: one draw, no "tight" pass
        if config.h5 is not None:
            write_h5(result, Path(config.h5))
    if interactive:
        import matplotlib.pyplot as plt

        plt.show()
    return result
