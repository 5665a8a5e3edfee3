"""J_0 (3.10), J_eps (3.7) and the expected objective against exact answers; solvers agree; gradients."""
import math
import warnings

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import integrate
from scipy.special import expit

import landscape
from landscape import compute, evaluate, gradient
from landscape.quadrature import TERMINALS, gaussian_expectation

Y = np.array([-3.0, -1.0, 0.5, 2.0, 4.0])
H = np.array([0.0, 1.0, 0.0, 1.0, 1.0])
F = np.array([-6.0, -2.5, -0.3, 0.0, 0.7, 3.0, 8.0])


def _loss(p, h, loss):
    if loss == "l1":
        return abs(p - h)
    if loss == "l2":
        return (p - h) ** 2
    return -h * math.log(p) - (1 - h) * math.log(1 - p)


def _gauss(g, m, s):
    """E[g(m + s Z)] by adaptive quadrature (scipy.integrate.quad), the reference for everything here."""
    if s == 0:
        return g(m)
    val, _ = integrate.quad(lambda z: g(m + s * z) * math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi),
                            -12, 12, points=[-m / s] if abs(m / s) < 12 else None, epsabs=1e-13, epsrel=1e-12, limit=400)
    return val


def _reference(f, eps, loss, objective):
    total = 0.0
    for y, h in zip(Y, H):
        m, s = y + f, eps * abs(f)
        if objective == "ensemble":
            u = _gauss(lambda x: 1.0 / (1.0 + math.exp(-x)), m, s)
            u_bar = _gauss(lambda x: 1.0 / (1.0 + math.exp(x)), m, s)
            total += -h * math.log(u) - (1 - h) * math.log(u_bar) if loss == "ce" else _loss(u, h, loss)
        else:
            if loss == "ce":
                g = (lambda x: math.log1p(math.exp(-x)) if x > -30 else -x) if h == 1 else (lambda x: math.log1p(math.exp(x)) if x < 30 else x)
            else:
                g = lambda x, h=h: _loss(1.0 / (1.0 + math.exp(-x)), h, loss)
            total += _gauss(g, m, s)
    return total / Y.size


@pytest.mark.parametrize("objective", ["ensemble", "expected"])
@pytest.mark.parametrize("loss", ["l1", "l2", "ce"])
@pytest.mark.parametrize("eps", [0.0, 0.3, 1.5])
def test_closed_matches_adaptive_quadrature(loss, objective, eps):
    J = compute(F, Y, H, eps, loss, "closed", objective)
    ref = np.array([_reference(f, eps, loss, objective) for f in F])
    np.testing.assert_allclose(J, ref, rtol=0, atol=1e-9)


@pytest.mark.parametrize("loss", ["l1", "l2", "ce"])
def test_eps_zero_is_plain_resnet_loss(loss):
    # J_0(f) = E_y ||sigma(y + f) - h(y)|| (section 4.1, below (3.10)), for both objectives.
    p = expit(Y[None, :] + F[:, None])
    per = {"l1": np.abs(p - H), "l2": (p - H) ** 2, "ce": -H * np.log(p) - (1 - H) * np.log1p(-p)}[loss]
    for objective in ("ensemble", "expected"):
        np.testing.assert_allclose(compute(F, Y, H, 0.0, loss, objective=objective), per.mean(axis=1), rtol=1e-12, atol=1e-15)


def test_l1_objectives_coincide_and_l2_differs_by_variance():
    # |sigma - h| is linear in sigma for h in {0, 1}, so E|sigma(X) - h| = |E sigma(X) - h|;
    # for l2, E(sigma - h)^2 - (E sigma - h)^2 = Var sigma(X), computed here by adaptive quadrature.
    eps = 0.8
    a = compute(F, Y, H, eps, "l1", objective="ensemble")
    b = compute(F, Y, H, eps, "l1", objective="expected")
    np.testing.assert_allclose(a, b, atol=1e-12)
    gap = compute(F, Y, H, eps, "l2", objective="expected") - compute(F, Y, H, eps, "l2", objective="ensemble")
    for k, f in enumerate(F):
        var = np.mean([_gauss(lambda x: expit(x) ** 2, y + f, eps * abs(f)) - _gauss(expit, y + f, eps * abs(f)) ** 2 for y in Y])
        assert gap[k] == pytest.approx(var, abs=1e-10)


@pytest.mark.parametrize("objective", ["ensemble", "expected"])
@pytest.mark.parametrize("loss", ["l2", "ce"])
def test_j_eps_tends_to_j0_at_second_order(loss, objective):
    # u = sigma + eps^2 f^2 sigma''/2 + O(eps^4): |J_eps - J_0| = O(eps^2), so halving eps quarters it.
    f = np.array([-2.0, 1.0, 3.0])
    J0 = compute(f, Y, H, 0.0, loss, objective=objective)
    gaps = [np.abs(compute(f, Y, H, e, loss, objective=objective) - J0) for e in (0.02, 0.01, 0.005)]
    assert np.all(gaps[2] < gaps[1]) and np.all(gaps[1] < gaps[0])
    np.testing.assert_allclose(gaps[0] / gaps[1], 4.0, rtol=0.01)
    np.testing.assert_allclose(gaps[1] / gaps[2], 4.0, rtol=0.005)


@pytest.mark.parametrize("objective", ["ensemble", "expected"])
@pytest.mark.parametrize("loss", ["l1", "l2", "ce"])
def test_fd_solver_agrees_with_closed(loss, objective):
    f = np.linspace(-7.0, 7.0, 8)
    for eps in (0.0, 0.6):
        fd = compute(f, Y, H, eps, loss, "fd", objective)
        closed = compute(f, Y, H, eps, loss, "closed", objective)
        np.testing.assert_allclose(fd, closed, rtol=0, atol=1e-5)


@pytest.mark.parametrize("objective", ["ensemble", "expected"])
@pytest.mark.parametrize("loss", ["l1", "l2", "ce"])
def test_mc_solver_agrees_within_standard_error(loss, objective):
    f = np.array([-4.0, 1.0, 5.0])
    closed = compute(f, Y, H, 0.7, loss, "closed", objective)
    mc = evaluate(f, Y, H, 0.7, loss, "mc", objective, n_samples=40_000, seed=3)
    assert np.all(mc.stderr > 0)
    assert np.all(np.abs(mc.J - closed) < 4.5 * mc.stderr)
    # the error really is a Monte Carlo one: a 16x larger sample shrinks it about 4x
    big = evaluate(f, Y, H, 0.7, loss, "mc", objective, n_samples=640_000, seed=4)
    np.testing.assert_allclose(mc.stderr / big.stderr, 4.0, rtol=0.1)


def test_mc_seed_reproducible_and_eps_zero_exact():
    a = evaluate(F, Y, H, 0.5, "l2", "mc", n_samples=1000, seed=7)
    b = evaluate(F, Y, H, 0.5, "l2", "mc", n_samples=1000, seed=7)
    np.testing.assert_array_equal(a.J, b.J)
    zero = evaluate(F, Y, H, 0.0, "l2", "mc", n_samples=100, seed=1)
    np.testing.assert_allclose(zero.J, compute(F, Y, H, 0.0, "l2"), atol=1e-14)
    np.testing.assert_allclose(zero.stderr, 0.0, atol=1e-15)


@pytest.mark.parametrize("objective", ["ensemble", "expected"])
@pytest.mark.parametrize("loss", ["l1", "l2", "ce"])
@pytest.mark.parametrize("eps", [0.0, 0.4, 1.2])
def test_gradient_matches_finite_differences(loss, objective, eps):
    # five-point central differences, truncation O(h^4) ~ 1e-12; u_sigmoid's 1e-10 absolute accuracy
    # becomes ~1e-7 after dividing by h, hence the tolerance.
    f = np.array([-5.0, -1.3, 0.0, 0.9, 6.0])
    h = 1e-3

    def J(shift):
        return compute(f + shift, Y, H, eps, loss, objective=objective)

    fd = (8 * (J(h) - J(-h)) - (J(2 * h) - J(-2 * h))) / (12 * h)
    np.testing.assert_allclose(gradient(f, Y, H, eps, loss, objective), fd, rtol=1e-6, atol=2e-7)


def test_quadrature_rules_against_adaptive_quadrature():
    for loss, funcs in TERMINALS.items():
        for func in funcs:
            for m, s in [(0.0, 0.1), (3.0, 1.9), (1.0, 2.0), (-10.0, 8.0), (40.0, 10.0), (0.3, 35.0), (-39.0, 4.0)]:
                ref = _gauss(lambda x: float(func.g(np.array(x))), m, s)
                assert float(gaussian_expectation(func, m, s)) == pytest.approx(ref, abs=1e-10), (loss, func.name, m, s)


def _gauss_tight(g, m, s):
    """E[g(m + s Z)] by quad at epsrel 1e-14, split at the sigmoid's turn-over z0 = -m/s and around it."""
    if s == 0:
        return g(m)
    density = lambda z: g(m + s * z) * math.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    z0 = -m / s
    cuts = sorted({-13.0, 13.0} | {min(max(z0 + d / s, -13.0), 13.0) for d in (-40, -20, -10, -4, -1, 0, 1, 4, 10, 20, 40)})
    with warnings.catch_warnings():  # quad flags roundoff on some pieces at epsrel 1e-14; the sum is still kept
        warnings.simplefilter("ignore", integrate.IntegrationWarning)
        return math.fsum(
            integrate.quad(density, a, b, epsabs=1e-16, epsrel=1e-14, limit=400)[0]
            for a, b in zip(cuts[:-1], cuts[1:])
            if b > a
        )


@pytest.mark.parametrize("s", [1e-3, 0.5, 1.0, 1.4, 1.4999, 1.5, 1.5001, 1.9, 1.999, 2.0, 3.0, 5.0])
def test_quadrature_accuracy_claim_on_both_sides_of_the_switch(s):
    # the module docstring claims 1e-13; the worst case is Gauss-Hermite just below the switch, at
    # m = 0 for (sigma^2)'' (6.1e-14 at s = 1.4999; 96-node Hermite gave 2.5e-10 at s = 1.999).
    m = np.array([-20.0, -7.5, -1.0, -0.3, 0.0, 0.3, 1.0, 7.5, 20.0])
    for loss, funcs in TERMINALS.items():
        for func in funcs:
            ref = np.array([_gauss_tight(lambda x: float(func.g(np.array(x))), mi, s) for mi in m])
            err = np.abs(gaussian_expectation(func, m, np.full(m.size, s)) - ref)
            assert np.max(err) < 1e-12, (loss, func.name, s, m[np.argmax(err)], np.max(err))


@settings(max_examples=40, deadline=None)
@given(
    f=st.floats(-20, 20),
    eps=st.floats(0, 2),
    y=st.lists(st.floats(-10, 10), min_size=2, max_size=6),
    seed=st.integers(0, 2**16),
)
def test_invariants(f, eps, y, seed):
    y = np.array(y)
    h = (np.random.default_rng(seed).random(y.size) < 0.5).astype(float)
    ens = {loss: float(compute([f], y, h, eps, loss)[0]) for loss in ("l1", "l2", "ce")}
    exp = {loss: float(compute([f], y, h, eps, loss, objective="expected")[0]) for loss in ("l1", "l2", "ce")}
    assert 0.0 <= ens["l2"] <= ens["l1"] <= 1.0
    # Jensen: the losses are convex in the prediction, so the expected loss is never below the ensemble's
    assert exp["l2"] >= ens["l2"] - 1e-12
    assert exp["ce"] >= ens["ce"] - 1e-9
    assert exp["l1"] == pytest.approx(ens["l1"], abs=1e-10)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"loss": "l3"}, "loss must be one of l1, l2, ce"),
        ({"solver": "exact"}, "solver must be one of closed, fd, mc"),
        ({"objective": "mean"}, "objective must be one of ensemble, expected"),
        ({"eps": -0.1}, "eps must be a finite number >= 0"),
        ({"eps": float("nan")}, "eps must be a finite number >= 0"),
        ({"eps": float("inf")}, "eps must be a finite number >= 0"),
        ({"f": []}, "f must be a non-empty"),
        ({"f": [0.0, float("nan")]}, "f must be finite"),
        ({"label": np.array([0, 1, 2, 0, 1])}, "label must be 0 or 1"),
        ({"y": np.array([0.0, 1.0, np.inf, 0.0, 1.0])}, "y must be finite"),
        ({"y": np.zeros(3)}, "same length"),
        ({"n_samples": 1, "solver": "mc"}, "n_samples must be an integer >= 2"),
        ({"n_samples": 20_000_000, "solver": "mc"}, "n_samples x samples must be at most"),
    ],
)
def test_bad_arguments_are_refused(kwargs, match):
    args = {"f": F, "y": Y, "label": H, "eps": 0.5}
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        landscape.evaluate(**args)


def test_gradient_refuses_bad_objective():
    with pytest.raises(ValueError, match="objective must be one of"):
        gradient(F, Y, H, 0.5, "l2", "mean")


def test_fd_in_chunks_matches_closed(monkeypatch):
    # a grid split into several chunks (each on its own x grid) gives the same answer as one solve
    import landscape.fd as fd

    monkeypatch.setattr(fd, "_MAX_CELLS", 20_000)
    f = np.linspace(-9.0, 9.0, 7)
    chunks = list(fd._chunks(f, Y, 1.5, fd.DX / 2))
    assert len(chunks) > 2 and chunks[0].start == 0 and chunks[-1].stop == f.size
    np.testing.assert_allclose(compute(f, Y, H, 1.5, "l2", "fd"), compute(f, Y, H, 1.5, "l2"), atol=1e-5)


@pytest.mark.parametrize("loss", ["l1", "l2", "ce"])
def test_ensemble_at_huge_eps_matches_quadrature(loss):
    # eps |f| up to 8e300: the closed form used to read past its band tables there (a segfault)
    J = compute(F, Y, H, 1e300, loss, "closed", "ensemble")
    ref = []
    for f in F:
        total = 0.0
        for y, h in zip(Y, H):
            u = _gauss(lambda x: float(expit(x)), y + f, 1e300 * abs(f))
            u_bar = _gauss(lambda x: float(expit(-x)), y + f, 1e300 * abs(f))
            total += -h * math.log(u) - (1 - h) * math.log(u_bar) if loss == "ce" else _loss(u, h, loss)
        ref.append(total / Y.size)
    assert abs(J[0] - {"l1": 0.5, "l2": 0.25, "ce": math.log(2.0)}[loss]) < 1e-12  # u = 1/2 in the limit
    np.testing.assert_allclose(J, ref, rtol=0, atol=1e-12)
    assert np.all(np.isfinite(gradient(F, Y, H, 1e300, loss, "ensemble")))
    with pytest.raises(ValueError, match=r"eps \* \|f\| \* sqrt\(1 - t\).*overflows float64 at eps=1e\+308"):
        compute(F, Y, H, 1e308, loss, "closed", "ensemble")


def _log_expectation_of_sigmoid(m, s):
    """log E[sigma(m + s Z)] by adaptive quadrature of the log-shifted integrand (independent of u_sigmoid)."""
    if s == 0.0:
        return -np.logaddexp(0.0, -m)
    expo = lambda z: -np.logaddexp(0.0, -(m + s * z)) - 0.5 * z * z
    # the integrand's maximum: at the saddle z = s of e^{m + s z - z^2/2} if m + s^2 < 0, else near z = -m/s or 0
    cands = np.concatenate([np.linspace(-60.0, 60.0, 120001), [s, -m / s, 0.0]])
    cands = cands[np.abs(cands) <= 60.0]
    z_star = cands[np.argmax(expo(cands))]
    c = expo(z_star)
    cuts = sorted({-60.0, 60.0, *(min(max(z_star + d, -60.0), 60.0) for d in (-8, -1, -0.1, 0, 0.1, 1, 8)),
                   *(min(max(-m / s + d / s, -60.0), 60.0) for d in (-30, -3, 0, 3, 30))})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", integrate.IntegrationWarning)
        total = sum(integrate.quad(lambda z: math.exp(expo(z) - c), a, b, epsabs=0, epsrel=1e-13, limit=400)[0]
                    for a, b in zip(cuts[:-1], cuts[1:]) if b > a)
    return c + math.log(total) - 0.5 * math.log(2.0 * math.pi)


@pytest.mark.parametrize("eps, f", [(0.0, -1000.0), (0.0, -650.0), (0.0, 200.0), (0.0, 1000.0), (1e-10, -700.0),
                                    (0.025, -200.0), (0.025, -650.0), (0.025, 1000.0), (0.2, -300.0), (0.5, -40.0)])
def test_ensemble_cross_entropy_keeps_relative_accuracy_in_the_tails(eps, f):
    # -log u of the ensemble prediction needs u to full relative accuracy: u_sigmoid's absolute 1e-10 and its
    # clipping of |y + f| > 600 gave J_0 = 300 instead of 500 at f = -1000 and 283.8 instead of 93.8 at
    # eps = 0.025, f = -200 (eps |f| = 5), and a zero gradient at f = 200 (exact: 0.5).
    y, label = np.array([0.0, 1.0]), np.array([1.0, 0.0])
    s = eps * abs(f)
    ref = np.mean([-_log_expectation_of_sigmoid(y[0] + f, s), -_log_expectation_of_sigmoid(-(y[1] + f), s)])
    J = compute([f], y, label, eps, loss="ce")[0]
    assert abs(J - ref) <= 1e-9 * max(1.0, abs(ref))
    h = 1e-3 * max(1.0, abs(f)) * (1e-2 if eps == 0.0 else 1.0)
    Jp, Jm = compute([f + h, f - h], y, label, eps, loss="ce")
    fd = (Jp - Jm) / (2 * h)
    g = gradient([f], y, label, eps, loss="ce")[0]
    assert abs(g - fd) <= 1e-5 * max(1e-3, abs(fd))
    if eps == 0.0:  # J_0 = mean softplus(-+(y + f)): its derivative exactly
        exact = 0.5 * (-expit(-(y[0] + f)) + expit(y[1] + f))
        assert abs(g - exact) <= 1e-12


def test_mc_ensemble_cross_entropy_does_not_saturate():
    # the Monte Carlo mean u = mean sigma(y + f + ...) underflowed to 0 for y + f < -745 and the loss was capped
    # at -log 1e-300 = 690.8 with a zero standard error (J = 345.4 instead of 500 here)
    y, label = np.array([0.0, 1.0]), np.array([1.0, 0.0])
    f = np.array([-1000.0, 1000.0, -3.0])
    exact = 0.5 * (np.logaddexp(0.0, -(y[0] + f)) + np.logaddexp(0.0, y[1] + f))  # J_0 = mean softplus
    mc = evaluate(f, y, label, 0.0, "ce", "mc", n_samples=1000)
    np.testing.assert_allclose(mc.J, exact, rtol=1e-13)
    np.testing.assert_array_equal(mc.stderr, 0.0)
    mc = evaluate([-3.0], y, label, 0.5, "ce", "mc", n_samples=20000)
    closed = compute([-3.0], y, label, 0.5, "ce")
    assert abs(mc.J[0] - closed[0]) < 4 * mc.stderr[0]
