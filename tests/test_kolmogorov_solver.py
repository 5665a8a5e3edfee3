"""solve_backward / solve_backward_batched against exact solutions, convergence orders and invariants."""
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import integrate
from scipy.special import expit, ndtr

from kolmogorov import solve_backward, solve_backward_batched, u_sigmoid
from kolmogorov.closed_form import sigmoid_normal_moments


def _grid(n_cells, half_width=40.0):
    return np.linspace(-half_width, half_width, n_cells + 1)


def _probe(x, u, points):
    """u at grid points (the probes are grid nodes on every grid used below)."""
    idx = [int(np.argmin(np.abs(x - p))) for p in points]
    assert np.allclose(x[idx], points)
    return u[idx]


PROBES = np.array([-5.0, -1.0, 0.0, 2.0, 6.0])


def _errors(solve, exact, cells, steps):
    errs = []
    for n_cells, n_steps in zip(cells, steps):
        x = _grid(n_cells)
        errs.append(np.max(np.abs(_probe(x, solve(x, n_steps), PROBES) - exact(PROBES))))
    return np.array(errs)


def _order(errs):
    return np.log2(errs[:-1] / errs[1:])


def test_crank_nicolson_is_second_order_against_u_sigmoid():
    f, eps = 8.0, 0.5
    errs = _errors(
        lambda x, n: solve_backward(expit, f, eps * abs(f), x, n),
        lambda p: u_sigmoid(p, f, eps),
        cells=[320, 640, 1280, 2560],
        steps=[40, 80, 160, 320],
    )
    ratios = errs[:-1] / errs[1:]
    assert np.all((ratios > 3.7) & (ratios < 4.3)), ratios
    assert errs[-1] < 1e-4


def test_implicit_upwind_is_first_order_and_converges():
    f, eps = -6.0, 0.4
    errs = _errors(
        lambda x, n: solve_backward(expit, f, eps * abs(f), x, n, scheme="implicit-upwind"),
        lambda p: u_sigmoid(p, f, eps),
        cells=[320, 640, 1280, 2560],
        steps=[40, 80, 160, 320],
    )
    assert np.all(np.abs(_order(errs) - 1.0) < 0.15), _order(errs)


def test_pure_transport_converges_to_the_shifted_sigmoid():
    # b = 0: (3.9), v(x, 0) = sigma(x + f t_end). Rannacher start keeps CN second order here.
    f = 7.5
    errs = _errors(
        lambda x, n: solve_backward(expit, f, 0.0, x, n),
        lambda p: expit(p + f),
        cells=[320, 640, 1280, 2560],
        steps=[40, 80, 160, 320],
    )
    assert np.all(np.abs(_order(errs) - 2.0) < 0.2), _order(errs)
    x = _grid(2560)
    u = solve_backward(expit, f, 0.0, x, 320, t_end=0.5)
    np.testing.assert_allclose(_probe(x, u, PROBES), expit(PROBES + 0.5 * f), rtol=0, atol=5e-5)


def _heaviside(x):
    # H(0) = 1/2, the mean of H over the cell around the node at 0: with H(0) = 0 the sampled
    # terminal carries an O(dx) error of its own and no time start can be second order.
    return np.where(x > 0, 1.0, np.where(x < 0, 0.0, 0.5))


@pytest.mark.parametrize("rannacher_steps, order", [(2, 2.0), (0, 1.0)])
def test_rannacher_start_restores_second_order_for_a_heaviside_terminal(rannacher_steps, order):
    # u_t + a u_x + 1/2 b^2 u_xx = 0, u(x, 1) = H(x): u(x, 0) = P(x + a + b W_1 > 0) = Phi((x + a) / b).
    # dt / dx^2 grows (25.6 -> 205): plain Crank-Nicolson (no start) leaves the discontinuity's high
    # modes undamped (amplification -> -1) and drops to first order at the probes; the default two
    # Rannacher steps (implicit-Euler half steps) damp them and give second order.
    a, b = 2.0, 1.0
    probes = np.array([-5.0, -3.0, -2.0, -1.0, 0.0, 1.0, 2.0])
    errs = []
    for n_cells, n_steps in [(640, 10), (1280, 20), (2560, 40), (5120, 80)]:
        x = np.linspace(-20.0, 20.0, n_cells + 1)
        u = solve_backward(_heaviside, a, b, x, n_steps, rannacher_steps=rannacher_steps)
        # the variable-coefficient path (its own time plan) takes the same steps
        via_callables = solve_backward(_heaviside, lambda x, t: a, lambda x, t: b, x, n_steps,
                                       rannacher_steps=rannacher_steps)
        np.testing.assert_allclose(via_callables, u, rtol=0, atol=1e-12)
        errs.append(np.max(np.abs(_probe(x, u, probes) - ndtr((probes + a) / b))))
    errs = np.array(errs)
    assert np.all(np.abs(_order(errs) - order) < 0.15), (errs, _order(errs))


@pytest.mark.parametrize("bad", [-1, 1.5, True, None])
def test_bad_rannacher_steps_is_refused(bad):
    x = np.linspace(-5, 5, 11)
    with pytest.raises(ValueError, match=rf"rannacher_steps must be an integer >= 0, got {bad!r}"):
        solve_backward(expit, 1.0, 0.5, x, 4, rannacher_steps=bad)
    with pytest.raises(ValueError, match=rf"rannacher_steps must be an integer >= 0, got {bad!r}"):
        solve_backward_batched(expit, [1.0], 0.5, x, 4, rannacher_steps=bad)
    with pytest.raises(ValueError, match=rf"rannacher_steps must be an integer >= 0, got {bad!r}"):
        solve_backward(expit, lambda x, t: 1.0, 0.5, x, 4, rannacher_steps=bad)


def test_ornstein_uhlenbeck_variable_coefficients_against_the_gaussian_law():
    # a(x, t) = -k x + c(t), b(t) = b0 (1 + t): X_T | X_0 = x is Gaussian with
    # mean x e^{-kT} + int_0^T e^{-k(T-s)} c(s) ds and variance int_0^T e^{-2k(T-s)} b(s)^2 ds,
    # so u(x, 0) = E[sigma(X_T)] = U(mean, sd) (closed form checked against quadrature elsewhere).
    k, b0, T = 0.8, 0.9, 1.0
    c = lambda t: 2.0 * np.sin(3.0 * t)
    b = lambda t: b0 * (1.0 + t)
    shift = integrate.quad(lambda s: math.exp(-k * (T - s)) * c(s), 0, T, epsabs=1e-14)[0]
    var = integrate.quad(lambda s: math.exp(-2 * k * (T - s)) * b(s) ** 2, 0, T, epsabs=1e-14)[0]
    (exact,) = sigmoid_normal_moments(PROBES * math.exp(-k * T) + shift, np.full(PROBES.size, math.sqrt(var)))
    errs = []
    # n_steps: Crank-Nicolson needs |a| dt/dx <= 2 + b^2 dt/dx^2 (diagonal dominance); |a| reaches 33 at the ends
    for n_cells, n_steps in zip([400, 800, 1600], [100, 200, 400]):
        x = _grid(n_cells)
        u = solve_backward(expit, lambda x, t: -k * x + c(t), lambda x, t: b(t), x, n_steps, t_end=T)
        errs.append(np.max(np.abs(_probe(x, u, PROBES) - exact)))
    errs = np.array(errs)
    assert np.all(np.abs(_order(errs) - 2.0) < 0.25), (errs, _order(errs))
    assert errs[-1] < 2e-5


@pytest.mark.parametrize("q", [2.0, 2.5])
def test_multiplicative_noise_geometric_brownian_motion(q):
    # a = mu x, b = s x on x > 0 with terminal x^q: E[X_T^q] = x^q exp((q mu + q (q - 1) s^2 / 2) T) exactly.
    # q = 2.5 is not a polynomial, so central differences are not exact in x and the order tests space as well
    # as time. The far end (x = 60) is far enough in log X: at x = 30, the linear boundary's error reached
    # x <= 3 at 1e-4 and stalled the convergence there (measured: errors 6.3e-4, 1.1e-4, 1.9e-4 on [0.5, 3]).
    mu, s = 0.3, 0.5
    errs = []
    for n_nodes, n_steps in [(1501, 100), (3001, 200), (6001, 400)]:
        x = np.linspace(0.0, 60.0, n_nodes)
        u = solve_backward(lambda x: x**q, lambda x, t: mu * x, lambda x, t: s * x, x, n_steps)
        exact = x**q * math.exp(q * mu + 0.5 * q * (q - 1) * s * s)
        inner = x <= 3.0
        errs.append(np.max(np.abs(u[inner] - exact[inner])))
    errs = np.array(errs)
    assert np.all(np.abs(_order(errs) - 2.0) < 0.2), _order(errs)
    assert errs[-1] < 1e-3


def test_batched_equals_single_solves_and_the_closed_form():
    x = _grid(1600, 60.0)
    f = np.array([-12.0, -3.3, -0.5, 0.0, 0.7, 4.0, 11.0, 9.0, -7.0] * 2)  # 18 problems: a partial tile
    eps = 0.5
    batch = solve_backward_batched(expit, f, eps * np.abs(f), x, 200)
    assert batch.shape == (f.size, x.size)
    for p, fp in enumerate(f):
        single = solve_backward(expit, fp, eps * abs(fp), x, 200)
        np.testing.assert_allclose(batch[p], single, rtol=0, atol=1e-11)
    inner = np.abs(x) <= 10
    # measured 1.05e-4 (the dx^2 error of dx = 0.075; 1.01e-4 with 400 steps)
    np.testing.assert_allclose(batch[:, inner], u_sigmoid(x[inner], f[:, None], eps), rtol=0, atol=2e-4)
    # chunked with a progress bar: the same numbers
    np.testing.assert_array_equal(solve_backward_batched(expit, f, eps * np.abs(f), x, 200, progress=True), batch)
    # scalars broadcast; the variable-coefficient path agrees with the constant one
    assert solve_backward_batched(expit, 2.0, np.array([0.1, 0.2]), x, 20).shape == (2, x.size)
    via_callables = solve_backward(expit, lambda x, t: 4.0, lambda x, t: 2.0, x, 50)
    np.testing.assert_allclose(via_callables, solve_backward(expit, 4.0, 2.0, x, 50), rtol=0, atol=1e-13)


def test_boundaries_agree_in_the_interior_and_terminal_can_be_an_array():
    x = _grid(800, 50.0)
    a = solve_backward(expit, -5.0, 2.0, x, 100, boundary="linear")
    d = solve_backward(expit(x), -5.0, 2.0, x, 100, boundary="dirichlet")
    inner = np.abs(x) <= 20
    np.testing.assert_allclose(a[inner], d[inner], rtol=0, atol=1e-12)
    assert d[0] == expit(x[0]) and d[-1] == expit(x[-1])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    drift=st.floats(-60, 60),
    noise=st.floats(0, 100),
    n_cells=st.integers(4, 300),
    half_width=st.floats(0.5, 80),
    n_steps=st.integers(1, 60),
    t_end=st.floats(0.05, 2.0),
    boundary=st.sampled_from(["linear", "dirichlet"]),
    seed=st.integers(0, 2**16),
)
def test_implicit_upwind_obeys_the_maximum_principle(drift, noise, n_cells, half_width, n_steps, t_end, boundary, seed):
    # The upwind implicit matrix is an M-matrix with unit row sums: interior values stay within
    # [min T, max T] for any step size. Terminal: sigmoid or arbitrary values in [0, 1]. The
    # "linear" ends keep the terminal's end slope where information enters (T extended
    # linearly), so there the terminal is made flat over its last cell: T extended stays in range.
    # In floating point the bound holds to rounding amplified by the matrix's condition, which
    # grows with the diffusion number r = (b^2/2 + |a| dx) dt / dx^2 (up to 1e9 here): tolerance
    # 1e-12 + 8 eps r. A non-monotone scheme overshoots by 1e-2, far beyond it.
    x = np.linspace(-half_width, half_width, n_cells + 1)
    terminal = expit(x) if seed % 2 else np.random.default_rng(seed).random(x.size)
    if boundary == "linear":
        terminal[0], terminal[-1] = terminal[1], terminal[-2]
    u = solve_backward(terminal, drift, noise, x, n_steps, t_end, scheme="implicit-upwind", boundary=boundary)
    lo, hi = terminal.min(), terminal.max()
    dx = x[1] - x[0]
    tol = 1e-12 + 8 * np.finfo(float).eps * (0.5 * noise**2 + abs(drift) * dx) * (t_end / n_steps) / dx**2
    interior = u if boundary == "dirichlet" else u[1:-1]
    assert np.all(interior >= lo - tol) and np.all(interior <= hi + tol)
    # batched path, same guarantee
    ub = solve_backward_batched(
        terminal, [drift, -drift], noise, x, n_steps, t_end, scheme="implicit-upwind", boundary=boundary
    )
    inner_b = ub if boundary == "dirichlet" else ub[:, 1:-1]
    assert np.all(inner_b >= lo - tol) and np.all(inner_b <= hi + tol)


@pytest.mark.parametrize("noise, n_cells, n_steps, t_end", [(27.0, 38, 1, 1.0), (14.0, 33, 3, 2.0)])
def test_linear_end_rows_keep_unit_row_sums_at_large_diffusion_numbers(noise, n_cells, n_steps, t_end):
    # Diffusion number ~1e5 with a drift of 1e-9: the end row's diagonal 1 + hi - lo was once
    # summed as (1 + lo + hi) - 2 lo, whose cancellation left the row sum 1 +- 1e-11 and pushed
    # u below min T by 7e-12 (found by the property test above). Summed without cancellation
    # the bound holds to 1e-13.
    x = np.linspace(-1.0, 1.0, n_cells + 1)
    terminal = expit(x)
    terminal[0], terminal[-1] = terminal[1], terminal[-2]
    lo, hi = terminal.min(), terminal.max()
    for drift in (1e-9, -1e-9):
        u = solve_backward(terminal, drift, noise, x, n_steps, t_end, scheme="implicit-upwind")[1:-1]
        assert u.min() >= lo - 1e-13 and u.max() <= hi + 1e-13
    ub = solve_backward_batched(terminal, [1e-9, -1e-9], noise, x, n_steps, t_end, scheme="implicit-upwind")[:, 1:-1]
    assert ub.min() >= lo - 1e-13 and ub.max() <= hi + 1e-13


@settings(max_examples=25, deadline=None)
@given(drift=st.floats(-30, 30), eps=st.floats(0.05, 2.0))
def test_crank_nicolson_stays_in_unit_interval_when_resolved(drift, eps):
    # CN is not monotone in general; with the sigmoid resolved and the domain containing the
    # characteristics, 0 <= u <= 1 holds to the discretization error.
    s = eps * abs(drift)
    half_width = abs(drift) + 8 * s + 20
    x = np.linspace(-half_width, half_width, int(2 * half_width / 0.1) + 1)
    u = solve_backward(expit, drift, s, x, 100)
    assert np.all(u >= -1e-6) and np.all(u <= 1 + 1e-6)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"x": np.array([0.0, 1.0, 2.0, 3.5, 4.0, 5.0])}, "uniform"),
        ({"x": np.linspace(5, -5, 11)}, "uniform, strictly increasing"),
        ({"x": np.linspace(-5, 5, 4)}, "at least 5 nodes"),
        ({"x": np.zeros((3, 3))}, "1-D"),
        ({"n_steps": 0}, "n_steps must be an integer >= 1"),
        ({"n_steps": 2.5}, "n_steps must be an integer >= 1"),
        ({"t_end": 0.0}, "t_end must be"),
        ({"scheme": "explicit"}, "scheme must be one of"),
        ({"boundary": "periodic"}, "boundary must be one of"),
        ({"terminal": lambda x: np.full_like(x, np.nan)}, "terminal must be finite"),
        ({"noise": lambda x, t: np.inf}, "noise must be finite"),
        ({"drift": np.ones(3)}, "drift must be a scalar"),
        ({"t_end": None}, r"t_end must be a finite number > 0, got None"),
        ({"t_end": "x"}, r"t_end must be a finite number > 0"),
        ({"terminal": np.ones(7)}, r"terminal must be a scalar or an array of shape \(11,\)"),
        ({"terminal": lambda x: np.ones(7)}, r"terminal must be a scalar or an array of shape \(11,\)"),
        ({"terminal": "abc"}, r"terminal must be numeric"),
        ({"drift": lambda x, t: np.ones(7)}, r"drift\(x, t\) must return a scalar or an array of shape \(11,\)"),
        ({"noise": lambda x, t: np.ones((11, 2))}, r"noise\(x, t\) must return a scalar or an array"),
        ({"drift": lambda x, t: "a"}, r"drift must return numbers"),
        ({"noise": "abc"}, r"noise must be a scalar, an array of shape"),
    ],
)
def test_bad_input_names_the_argument(kwargs, match):
    args = {"terminal": expit, "drift": lambda x, t: 1.0, "noise": 0.5, "x": np.linspace(-5, 5, 11), "n_steps": 4}
    args |= kwargs
    with pytest.raises(ValueError, match=match):
        solve_backward(**args)


def test_batched_bad_input():
    x = np.linspace(-5, 5, 11)
    with pytest.raises(ValueError, match="drift and noise must be"):
        solve_backward_batched(expit, np.ones((2, 2)), 0.1, x, 4)
    with pytest.raises(ValueError, match="drift and noise must be finite"):
        solve_backward_batched(expit, [1.0, np.nan], 0.1, x, 4)
    with pytest.raises(ValueError, match="n_steps"):
        solve_backward_batched(expit, [1.0], 0.1, x, 0)
    with pytest.raises(ValueError, match="t_end must be a finite number > 0, got None"):
        solve_backward_batched(expit, [1.0], 0.1, x, 4, t_end=None)
    with pytest.raises(ValueError, match=r"terminal must be a scalar or an array of shape \(11,\)"):
        solve_backward_batched(np.ones(4), [1.0], 0.1, x, 4)
    with pytest.raises(ValueError, match="drift and noise must have the same length or length 1, got 2 and 3"):
        solve_backward_batched(expit, [1.0, 2.0], [0.1, 0.2, 0.3], x, 4)
    with pytest.raises(ValueError, match="drift and noise must be numeric"):
        solve_backward_batched(expit, ["a"], 0.1, x, 4)


# Crank-Nicolson's step matrix, row -lo u_{i-1} + (1 + lo + hi) u_i - hi u_{i+1} with lo, hi =
# dt/2 (b^2/(2dx^2) -+ a/(2dx)), is diagonally dominant iff |a| dt/dx <= 2 + b^2 dt/dx^2. At the inflow
# end (slope-keeping row, a < 0 at the left) the first Thomas pivot is 1 + hi = 1 - dt/2 (|a|/(2dx) -
# b^2/(2dx^2)): exactly 0 for a = -40, b = 0, dt = 1/200, dx = 0.05 (Courant 4). It was a
# ZeroDivisionError (single) or silent NaN (batched); now both refuse, naming the Courant number.
_REPRO_X = np.linspace(-100, 100, 4001)  # dx = 0.05


@pytest.mark.parametrize("drift, noise, courant, bound", [(-40.0, 0.0, "4", "2"), (-40.8, 0.2, "4.08", "2.08")])
def test_crank_nicolson_beyond_diagonal_dominance_is_refused(drift, noise, courant, bound):
    message = (rf"crank-nicolson: drift {drift:g} \(noise {noise:g}\) is too large for n_steps=200 \(t_end=1\) and "
               rf"dx=0.05: Courant number \|drift\| dt/dx = {courant} > allowed {bound} .*use n_steps >= 400")
    with pytest.raises(ValueError, match=message):
        solve_backward(expit, drift, noise, _REPRO_X, 200)
    with pytest.raises(ValueError, match=message):
        solve_backward_batched(expit, [1.0, drift], [0.0, noise], _REPRO_X, 200)
    with pytest.raises(ValueError, match=rf"drift {drift:g} and noise {noise:g} give Courant number \|drift\| dt/dx = "
                                         rf"{courant} > allowed {bound} .* increase n_steps"):
        solve_backward(expit, lambda x, t: drift + 0.0 * x, noise, _REPRO_X, 200)


@pytest.mark.parametrize("drift", [-40.0, 40.0])
def test_at_the_courant_bound_and_with_upwind_the_repro_solves(drift):
    # n_steps = 400: Courant exactly 2 (weakly dominant, allowed); pure transport u(x, 0) = sigma(x + a).
    # Measured errors 6.2e-3 (CN, n = 400; 3.1e-3 at 800, 2.3e-3 at 1600: the dx^2 dispersion floor of
    # transport over 40 units).
    inner = np.abs(_REPRO_X + drift) <= 8
    exact = expit(_REPRO_X[inner] + drift)
    for u in (solve_backward(expit, drift, 0.0, _REPRO_X, 400),
              solve_backward_batched(expit, [drift, -drift], 0.0, _REPRO_X, 400)[0],
              solve_backward(expit, lambda x, t: drift + 0.0 * x, 0.0, _REPRO_X, 400)):
        assert np.all(np.isfinite(u))
        np.testing.assert_allclose(u[inner], exact, rtol=0, atol=1e-2)
    # the implicit-upwind matrix is an M-matrix: any Courant number is allowed (first order, smeared)
    # Its leading error is numerical diffusion: implicit upwind on u_t + a u_x = 0 solves, to higher order, the
    # viscous problem with variance s^2 = |a| dx + a^2 dt over t_end = 1 (upwind dx/2 |a| u_xx plus implicit
    # Euler dt/2 a^2 u_xx), i.e. u_sigmoid(x, a, eps) with eps |a| = s. Measured 6.4e-3, 3.8e-3, 2.3e-3 at
    # n = 200, 400, 800 (against 0.18, 0.14, 0.11 from the inviscid sigma(x + a)).
    dx = _REPRO_X[1] - _REPRO_X[0]
    for n_steps in (200, 400, 800):
        up = solve_backward(expit, drift, 0.0, _REPRO_X, n_steps, scheme="implicit-upwind")
        assert np.all(np.isfinite(up)) and np.all((up > -1e-12) & (up < 1 + 1e-12))
        s = math.sqrt(abs(drift) * dx + drift**2 / n_steps)
        assert np.max(np.abs(up[inner] - u_sigmoid(_REPRO_X[inner], drift, s / abs(drift)))) < 1e-2
    # dx and dt halved together: against the viscous problem the error falls at first order (measured 0.86
    # then 1.04), against the inviscid one only at order 1/2 (0.49, 0.60, the smearing s ~ sqrt(dx)): the
    # modified equation is the scheme's leading error
    viscous, inviscid = [], []
    for n_nodes, n_steps in ((2401, 200), (4801, 400), (9601, 800)):
        x = np.linspace(-120.0, 120.0, n_nodes)
        near = np.abs(x + drift) <= 8
        up = solve_backward(expit, drift, 0.0, x, n_steps, scheme="implicit-upwind")
        s = math.sqrt(abs(drift) * (x[1] - x[0]) + drift**2 / n_steps)
        viscous.append(np.max(np.abs(up[near] - u_sigmoid(x[near], drift, s / abs(drift)))))
        inviscid.append(np.max(np.abs(up[near] - expit(x[near] + drift))))
    assert abs(_order(np.array(viscous))[-1] - 1.0) < 0.15, viscous
    assert np.all(_order(np.array(inviscid)) < 0.75), inviscid


@pytest.mark.parametrize("scheme", ["implicit-upwind", "crank-nicolson"])
@pytest.mark.parametrize("drift, noise", [(1e20, 0.0), (-1e145, 0.0), (1e145, 1e72), (0.0, 1e10), (1e300, 1e300)])
def test_step_matrices_beyond_float64_are_refused(scheme, drift, noise):
    # |a| dt/dx + b^2 dt/dx^2 above 1e15: the diagonal 1 + c loses its 1, and the old code raised
    # ZeroDivisionError from the kernel (drift 1e20), returned u = 0 for a terminal in (0, 1)
    # (implicit-upwind, drift 1e145, noise 1e72) or nan (b^2 overflowing, noise 1e300).
    x = np.linspace(-60.0, 60.0, 241)
    for solve in (solve_backward, solve_backward_batched):
        with pytest.raises(ValueError, match=r"too large for n_steps=3.*noise\^2 dt/dx\^2 = .* must be at most 1e\+15"):
            solve(expit, drift, noise, x, 3, scheme=scheme)


def test_large_but_representable_courant_numbers_still_solve():
    # c = |a| dt/dx ~ 7e13 < 1e15: implicit upwind carries the right end's value sigma(60) ~ 1 (drift > 0)
    # or the left end's sigma(-60) ~ 0 (drift < 0) across the grid
    x = np.linspace(-60.0, 60.0, 241)
    assert np.max(np.abs(solve_backward(expit, 1e13, 0.0, x, 3, scheme="implicit-upwind") - 1.0)) < 1e-12
    assert np.max(np.abs(solve_backward(expit, -1e13, 0.0, x, 3, scheme="implicit-upwind"))) < 1e-12
