"""Local minima, energy barriers and the global minimum of a sampled 1-D landscape J(f).

The paper's reading of Figs. 3-5 (main paper, section 4.1) is in these terms: noise "lessens the
energy barrier between pairs of minima" and removes poor local minima. Given J on a grid:

* a local minimum is an interior grid point (or the middle of a flat run) lower than both
  neighbours, kept if its prominence (the smaller climb to a higher point on either side before
  reaching a lower one or the edge) exceeds `tol`; its location and value are refined by the
  parabola through the three grid points, and its curvature J'' is the second difference
  interpolated to that location;
* the barrier between neighbouring minima a < b is the highest point between them (refined the
  same way); `rise_left` and `rise_right` are the climbs from each side and `height`, the smaller
  of the two, is the barrier that has to be crossed to leave the higher minimum;
* the global minimum is the lowest grid point, which may be an edge of the grid (`at_edge`). When
  that point is (the grid index of) a kept local minimum, the global minimum is that minimum, with
  its refined f and J: f then lies within one grid step of the lowest sample, and J lies below the
  lowest sample by no more than the parabola through the three points dips (on a uniform grid at
  most 1/8 of the larger rise to a neighbour). Otherwise it is the grid point itself, unrefined; an
  edge is never refined, so `at_edge` holds exactly when `global_f` is f[0] or f[-1]. Ties between
  equal lowest samples go to a kept minimum (the lowest refined one), else to the leftmost sample.

  The global minimum is chosen by the samples, not by the refined values: where the grid does not
  resolve a well (a steep wall on one side of a minimum), the parabola through its three samples
  can dip well below them, and such a minimum keeps that refined J in `minima` (it may then lie
  below `global_J`) but does not displace the lowest sample as the global minimum.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import math

import numpy as np


@dataclass(frozen=True)
class Minimum:
    """A local minimum: refined location f and value J, curvature J''(f), and its grid index."""

    f: float
    J: float
    curvature: float
    index: int


@dataclass(frozen=True)
class Barrier:
    """The highest point between neighbouring minima `left` and `right` (indices into the minima)."""

    left: int
    right: int
    f: float
    J: float
    rise_left: float
    rise_right: float

    @property
    def height(self) -> float:
        """The climb from the higher of the two minima: J_saddle - max(J_left, J_right)."""
        return min(self.rise_left, self.rise_right)


@dataclass(frozen=True)
class LandscapeStatistics:
    """Minima (by increasing f), barriers between neighbours, and the global minimum of J."""

    minima: tuple[Minimum, ...]
    barriers: tuple[Barrier, ...]
    global_f: float
    global_J: float
    at_edge: bool

    @property
    def n_minima(self) -> int:
        return len(self.minima)

    @property
    def largest_barrier(self) -> float:
        """The highest barrier height between neighbouring minima; 0 with fewer than two minima."""
        return max((b.height for b in self.barriers), default=0.0)


def _parabola(f: np.ndarray, J: np.ndarray, i: int, rescaled: bool = False) -> tuple[float, float, float]:
    """Vertex (f, J) and second derivative of the parabola through grid points i-1, i, i+1.

    ValueError naming J when its differences themselves exceed float64 (values near +-1e308).
    """
    x0, x1, x2 = f[i - 1], f[i], f[i + 1]
    y0, y1, y2 = J[i - 1], J[i], J[i + 1]
    with np.errstate(over="ignore", invalid="ignore"):
        d01 = (y1 - y0) / (x1 - x0)
        d12 = (y2 - y1) / (x2 - x1)
        a = (d12 - d01) / (x2 - x0)
    if not np.isfinite(a) and rescaled:  # unit spacing and still no finite difference: J's own range overflows
        raise ValueError(f"J: the differences of its values {y0:.3g}, {y1:.3g}, {y2:.3g} exceed the float64 range; "
                         "rescale J")
    if not np.isfinite(a):
        # spacings so fine (f steps of 1e-300) that the divided differences overflow: the vertex in the
        # coordinate (x - x1)/(x1 - x0), then J'' = 2 a / h^2, which is inf only where it exceeds float64
        h = x1 - x0
        fx, fJ, second_u = _parabola(np.array([-1.0, 0.0, (x2 - x1) / h]), np.array([y0, y1, y2]), 1, rescaled=True)
        with np.errstate(over="ignore"):
            return float(x1 + fx * h), fJ, float(second_u / h / h)
    second = 2.0 * a
    if a == 0.0:
        return float(x1), float(y1), 0.0
    slope_mid = d01 + a * (x1 - x0)  # p'(x1) for p(x) = y0 + d01 (x - x0) + a (x - x0)(x - x1)
    shift = -slope_mid / second
    shift = float(np.clip(shift, x0 - x1, x2 - x1))
    vertex_J = y1 + slope_mid * shift + a * shift * shift
    return float(x1 + shift), float(vertex_J), float(second)


def _curvature_at(f: np.ndarray, J: np.ndarray, i: int, x: float, fallback: float) -> float:
    """J''(x) for x near grid point i: the parabolas' second derivatives at i-1, i, i+1 interpolated
    linearly to x (second order in the spacing), or `fallback` next to the grid's ends."""
    if i < 2 or i > J.size - 3:
        return fallback
    second = [_parabola(f, J, k)[2] for k in (i - 1, i, i + 1)]
    if x >= f[i]:
        return float(second[1] + (x - f[i]) * (second[2] - second[1]) / (f[i + 1] - f[i]))
    return float(second[1] + (x - f[i]) * (second[1] - second[0]) / (f[i] - f[i - 1]))


def _candidates(J: np.ndarray) -> list[int]:
    """Interior local minima; a flat run lower than both sides gives its middle index."""
    out = []
    n = J.size
    i = 1
    while i < n - 1:
        if J[i] < J[i - 1]:
            j = i
            while j + 1 < n and J[j + 1] == J[i]:
                j += 1
            if j + 1 < n and J[j + 1] > J[i]:
                out.append((i + j) // 2)
            i = j + 1
        else:
            i += 1
    return out


def _prominence(J: np.ndarray, i: int) -> float:
    """min over both sides of (highest point before a lower point or the edge) - J[i].

    Lower is strict on the right and includes equal values on the left (outside i's own flat run), so that of
    two exactly equal minima (J(f) = J(-f) on a symmetric data set) with only a rounding-level bump between
    them the right one measures its prominence to that bump and is dropped, rather than both reaching the far
    walls and both being kept."""
    lo = i
    while lo > 0 and J[lo - 1] == J[i]:
        lo -= 1
    hi = i
    while hi + 1 < J.size and J[hi + 1] == J[i]:
        hi += 1
    lower_left = np.nonzero(J[:lo] <= J[i])[0]
    start = lower_left[-1] + 1 if lower_left.size else 0
    lower_right = np.nonzero(J[hi + 1 :] < J[i])[0]
    stop = hi + 1 + lower_right[0] if lower_right.size else J.size
    left = J[start : i + 1].max()
    right = J[i:stop].max()
    return float(min(left, right) - J[i])


def landscape_statistics(f, J, tol: float | None = None, floor: float | None = None) -> LandscapeStatistics:
    """Minima, barriers and global minimum of J sampled on the increasing grid f.

    Args:
        f: strictly increasing grid, (n_f,) with n_f >= 3.
        J: values, (n_f,), finite.
        tol: smallest prominence of a kept minimum; default 1e-9 (max J - min J) + 1e-13, which
            drops rounding-level wiggles on saturated plateaus.
        floor: a known lower bound of J, or None. A parabola refined on a coarse grid can dip below it (a
            steep wall beside a minimum), which J itself cannot; such a minimum is not refined: it keeps its
            grid point's f and J (its curvature is still interpolated there). The objectives J_0 (3.10) and
            J_eps (3.7) are mean losses, bounded below by landscape.objective.LOSS_FLOOR = 0.

    Returns:
        LandscapeStatistics.
    """
    f = np.asarray(f, dtype=float)
    J = np.asarray(J, dtype=float)
    if f.ndim != 1 or f.shape != J.shape or f.size < 3:
        raise ValueError(f"f and J must be 1-D of the same length >= 3, got shapes {f.shape} and {J.shape}")
    if not (np.all(np.isfinite(f)) and np.all(np.isfinite(J))):
        raise ValueError("f and J must be finite")
    if not np.all(np.diff(f) > 0):
        raise ValueError("f must be strictly increasing")
    if floor is not None:
        if isinstance(floor, bool) or not isinstance(floor, (int, float, np.floating, np.integer)) or not math.isfinite(floor):
            raise ValueError(f"floor must be a finite number or None, got {floor!r}")
    if tol is None:
        tol = 1e-9 * float(J.max() - J.min()) + 1e-13
    kept = [i for i in _candidates(J) if _prominence(J, i) > tol]
    minima = []
    for i in kept:
        fm, Jm, curvature = _parabola(f, J, i)
        if floor is not None and Jm < floor:  # the grid does not resolve this well: keep the sample itself
            fm, Jm = float(f[i]), float(J[i])
        with np.errstate(over="ignore", invalid="ignore"):
            curvature = _curvature_at(f, J, i, fm, curvature)
        if not math.isfinite(curvature):
            raise ValueError(
                f"f: the grid spacing {f[i + 1] - f[i]:.3g} near the minimum at f = {fm:.6g} is so fine that J'' "
                "there exceeds the float64 range; widen the f-range (f_min/f_max) or use fewer points (n_f)"
            )
        minima.append(Minimum(fm, min(Jm, float(J[i])), curvature, int(i)))
    barriers = []
    for k in range(len(kept) - 1):
        a, b = kept[k], kept[k + 1]
        top = a + int(np.argmax(J[a : b + 1]))
        fs, Js, _ = _parabola(f, J, top) if a < top < b else (float(f[top]), float(J[top]), 0.0)
        Js = max(Js, float(J[top]))
        barriers.append(Barrier(k, k + 1, fs, Js, Js - minima[k].J, Js - minima[k + 1].J))
    lowest = J.min()
    at_lowest = [m for m in minima if J[m.index] == lowest]  # a flat run's middle index is at the run's value
    if at_lowest:
        best = min(at_lowest, key=lambda m: m.J)  # refined around that sample only, within its two grid steps
        global_f, global_J, at_edge = best.f, best.J, False
    else:
        g = int(np.argmin(J))
        global_f, global_J, at_edge = float(f[g]), float(J[g]), g in (0, J.size - 1)
    return LandscapeStatistics(tuple(minima), tuple(barriers), global_f, global_J, at_edge)


def format_table(stats: LandscapeStatistics, title: str) -> str:
    """A plain-text table of the minima and barriers, for the command's standard output."""
    noun = "local minimum" if stats.n_minima == 1 else "local minima"
    lines = [f"{title}: {stats.n_minima} {noun}, largest barrier {stats.largest_barrier:.4g}, "
             f"global minimum J = {stats.global_J:.6g} at f = {stats.global_f:.4g}" + (" (grid edge)" if stats.at_edge else "")]
    if stats.minima:
        lines.append(f"  {'minimum':>8s} {'f':>10s} {'J':>12s} {'J_ff':>12s}")
        for k, m in enumerate(stats.minima):
            lines.append(f"  {k:>8d} {m.f:>10.4f} {m.J:>12.6f} {m.curvature:>12.5g}")
    if stats.barriers:
        lines.append(f"  {'barrier':>8s} {'f':>10s} {'J':>12s} {'height':>12s} {'rise L':>10s} {'rise R':>10s}")
        for b in stats.barriers:
            lines.append(f"  {f'{b.left}-{b.right}':>8s} {b.f:>10.4f} {b.J:>12.6f} {b.height:>12.5g} {b.rise_left:>10.4g} {b.rise_right:>10.4g}")
    return "\n".join(lines)


def statistics_arrays(stats: LandscapeStatistics) -> dict[str, object]:
    """The statistics as arrays and scalars, for an HDF5 group (datasets) and its attributes."""
    minima = [asdict(m) for m in stats.minima]
    barriers = [dict(asdict(b), height=b.height) for b in stats.barriers]
    return {
        "minima_f": np.array([m["f"] for m in minima], dtype=float),
        "minima_J": np.array([m["J"] for m in minima], dtype=float),
        "minima_curvature": np.array([m["curvature"] for m in minima], dtype=float),
        "barrier_f": np.array([b["f"] for b in barriers], dtype=float),
        "barrier_J": np.array([b["J"] for b in barriers], dtype=float),
        "barrier_height": np.array([b["height"] for b in barriers], dtype=float),
        "barrier_rise_left": np.array([b["rise_left"] for b in barriers], dtype=float),
        "barrier_rise_right": np.array([b["rise_right"] for b in barriers], dtype=float),
        "n_minima": stats.n_minima,
        "largest_barrier": stats.largest_barrier,
        "global_f": stats.global_f,
        "global_J": stats.global_J,
        "global_at_edge": stats.at_edge,
    }


def write_statistics_group(group, stats: LandscapeStatistics) -> None:
    """Write the statistics into an open h5py group: arrays as datasets, scalars as attributes."""
    for key, value in statistics_arrays(stats).items():
        if isinstance(value, np.ndarray):
            group.create_dataset(key, data=value)
        else:
            group.attrs[key] = value
