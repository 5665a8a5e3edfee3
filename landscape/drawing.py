"""Drawing landscapes, their minima and SGD paths with matplotlib (imported here only, lazily).

Used by `python -m landscape.plot` and by figures fig3-fig5. Nothing here computes: every number
comes from landscape.objective / statistics / sgd.
"""
from __future__ import annotations

import numpy as np

from landscape.network import DROPOUT_JUMP, STOCHASTIC_DEPTH
from landscape.statistics import LandscapeStatistics

# Fig. 5 of the main paper: iterates coloured from light pink to dark red as the iteration increases.
PINK_TO_RED = ("#ffc0cb", "#8b0000")
CURVE_COLORS = ("#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b")


def new_figure(interactive: bool = False, figsize: tuple[float, float] = (6.4, 4.4)):
    """A figure: through pyplot when it will be shown, else a bare Agg figure (faster, never a window)."""
    if interactive:
        import matplotlib.pyplot as plt

        return plt.figure(figsize=figsize)
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize)
    FigureCanvasAgg(fig)
    return fig


def pink_to_red():
    """The light-pink -> dark-red colormap of Fig. 5."""
    from matplotlib.colors import LinearSegmentedColormap

    return LinearSegmentedColormap.from_list("pink_to_red", PINK_TO_RED)


def draw_curve(ax, f: np.ndarray, J: np.ndarray, stats: LandscapeStatistics | None, *, label: str,
               color: str, linestyle: str = "-", stderr: np.ndarray | None = None) -> None:
    """One landscape with its local minima (open circles) and global minimum (filled star)."""
    ax.plot(f, J, color=color, linestyle=linestyle, linewidth=1.6, label=label)
    if stderr is not None and np.any(stderr > 0):
        ax.fill_between(f, J - 2 * stderr, J + 2 * stderr, color=color, alpha=0.25, linewidth=0)
    if stats is not None and stats.minima:
        ax.plot([m.f for m in stats.minima], [m.J for m in stats.minima], "o", mfc="none", mec=color, ms=7)
        ax.plot([stats.global_f], [stats.global_J], "*", color=color, ms=11)


def draw_sgd_path(ax, f: np.ndarray, J: np.ndarray, *, size: float = 18.0) -> None:
    """SGD iterates (f_k, J(f_k)) coloured light pink -> dark red with k (Fig. 5)."""
    order = np.arange(f.size)
    ax.scatter(f, J, c=order, cmap=pink_to_red(), s=size, zorder=3, edgecolors="none")


def plot_result(fig, result) -> None:
    """The command's figure: J_0 and every J_eps on one axes, minima marked, legend with eps and loss."""
    config = result.config
    ax = fig.add_subplot(1, 1, 1)
    curves = (result.plain, *result.noisy)
    for k, curve in enumerate(curves):
        land = curve.landscape
        color = "black" if land.eps == 0 else CURVE_COLORS[(k - 1) % len(CURVE_COLORS)]
        name = "J₀" if land.eps == 0 else f"J_ε, ε = {land.eps:g}"  # plain text: no mathtext pass
        if config.solver == "network" and land.eps > 0:
            name = f"network K = {config.blocks}, ε = {land.eps:g}"
            if land.mask == "uniform":
                name += ", uniform masks"
            elif land.mask == STOCHASTIC_DEPTH:
                name += ", stochastic depth"
            elif land.jump != DROPOUT_JUMP:
                name += f", jump a = {land.jump:g}"
        draw_curve(ax, land.f, land.J, curve.statistics, label=f"{name} ({config.loss})", color=color,
                   linestyle="--" if land.eps == 0 else "-", stderr=land.stderr if config.solver == "mc" else None)
        if curve.model is not None:
            model = curve.model.landscape
            ax.plot(model.f, model.J, color=color, linestyle=":", linewidth=1.2, label=f"its SDE model, ε = {model.eps:g}")
        if curve.sgd is not None:
            draw_sgd_path(ax, curve.sgd.f, curve.sgd.J)
    ax.set_xlabel("constant velocity f")
    ax.set_ylabel(f"loss ({config.loss}, {config.objective})")
    ax.set_title(f"dataset {result.dataset.name}, solver {config.solver}   (○ local minima, ★ global minimum)", fontsize=10)
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.12, top=0.92)
