"""epsilon() against the closed forms of (3.2), (3.13)-(3.15), and against the variance of each mask."""
import math

import numpy as np
import pytest

from kolmogorov import epsilon, noise_parameter_for


@pytest.mark.parametrize("k", [1, 3, 27, 54])
def test_bernoulli_matches_modified_equation(k):
    p = 0.9
    assert epsilon("bernoulli", k, p=p) ** 2 == pytest.approx((1 - p) / (p * k), rel=1e-14)


@pytest.mark.parametrize("k", [1, 2, 7, 54, 110])
def test_eps_squared_times_k_is_the_exact_mask_variance(k):
    # eps^2 K = Var(m): Bern(p)/p has (1-p)/p, N(1, nu^2) nu^2, 1 + U(-beta, beta) beta^2/3 and the
    # shake mask 2 alpha, alpha ~ U(0, 1), 4/12 = 1/3 ((3.2), (3.13)-(3.15)).
    for p in (0.3, 0.9):
        assert epsilon("bernoulli", k, p=p) ** 2 * k == pytest.approx((1 - p) / p, rel=1e-14)
    for nu in (0.05, 0.3, 2.5):
        assert epsilon("gaussian", k, nu=nu) ** 2 * k == pytest.approx(nu**2, rel=1e-14)
    for beta in (0.05, 0.6, 0.99):
        assert epsilon("uniform", k, beta=beta) ** 2 * k == pytest.approx(beta**2 / 3, rel=1e-14)
    assert epsilon("shake", k) ** 2 * k == pytest.approx(1 / 3, rel=1e-14)


@pytest.mark.parametrize("k", [1, 2, 7, 54, 110])
def test_noise_parameter_for_is_the_closed_form_inverse(k):
    # p = 1/(1 + K eps^2), nu = eps sqrt(K), beta = eps sqrt(3K) (inverting eps^2 K = Var(m) above)
    for eps in (0.0, 0.01, 0.05, 0.3):
        assert noise_parameter_for("bernoulli", k, eps) == pytest.approx(1 / (1 + k * eps**2), rel=1e-14)
        assert noise_parameter_for("gaussian", k, eps) == pytest.approx(eps * math.sqrt(k), rel=1e-14)
        if eps * math.sqrt(3 * k) < 1:
            assert noise_parameter_for("uniform", k, eps) == pytest.approx(eps * math.sqrt(3 * k), rel=1e-14)
        else:
            with pytest.raises(ValueError, match="beta must be in"):
                noise_parameter_for("uniform", k, eps)


@pytest.mark.parametrize(
    "noise,params,mask",
    [
        ("bernoulli", {"p": 0.8}, lambda r, n: (r.random(n) < 0.8) / 0.8),
        ("gaussian", {"nu": 0.3}, lambda r, n: 1 + 0.3 * r.standard_normal(n)),
        ("uniform", {"beta": 0.6}, lambda r, n: 1 + r.uniform(-0.6, 0.6, n)),
        ("shake", {}, lambda r, n: 2 * r.random(n)),
    ],
)
def test_eps_squared_is_mask_variance_over_k(noise, params, mask):
    # eps^2 K = Var(m) for every injection (the increment-variance matching of section 3);
    # for shake the mask on the half-difference branch is 2 alpha - 1 + 1 = 2 alpha.
    k = 9
    samples = mask(np.random.default_rng(0), 400_000)
    var = samples.var()
    assert epsilon(noise, k, **params) ** 2 * k == pytest.approx(var, rel=0.01)


@pytest.mark.parametrize("noise,name,value", [("bernoulli", "p", 0.85), ("gaussian", "nu", 0.7), ("uniform", "beta", 0.4)])
def test_inverse_round_trip(noise, name, value):
    eps = epsilon(noise, 27, **{name: value})
    assert noise_parameter_for(noise, 27, eps) == pytest.approx(value, rel=1e-12)


def test_switched_off_noise_has_zero_eps():
    assert epsilon("bernoulli", 5, p=1.0) == 0.0
    assert epsilon("gaussian", 5, nu=0.0) == 0.0
    assert epsilon("uniform", 5, beta=0.0) == 0.0
    assert epsilon("shake", 3) == pytest.approx(1 / 3)


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: epsilon("bernoulli", 3, p=0.0), "p must be in"),
        (lambda: epsilon("bernoulli", 3, p=1.2), "p must be in"),
        (lambda: epsilon("gaussian", 3, nu=-0.1), "nu must be"),
        (lambda: epsilon("uniform", 3, beta=1.0), "beta must be in"),
        (lambda: epsilon("uniform", 3, beta=math.nan), "beta must be finite"),
        (lambda: epsilon("dropconnect", 3, p=0.5), "noise must be one of"),
        (lambda: epsilon("bernoulli", 0, p=0.5), "n_blocks"),
        (lambda: epsilon("bernoulli", 3), "needs the parameter p"),
        (lambda: epsilon("gaussian", 3, p=0.5), "unexpected parameter"),
        (lambda: noise_parameter_for("bernoulli", 3, -1.0), "eps must be"),
        (lambda: noise_parameter_for("uniform", 3, 1.0), "beta must be in"),
        (lambda: noise_parameter_for("shake", 3, 0.1), "no free parameter"),
        (lambda: epsilon("bernoulli", math.inf, p=0.5), "n_blocks must be an integer >= 1, got inf"),
        (lambda: epsilon("bernoulli", math.nan, p=0.5), "n_blocks must be an integer >= 1, got nan"),
        (lambda: epsilon("bernoulli", None, p=0.5), "n_blocks must be an integer >= 1, got None"),
        (lambda: epsilon("bernoulli", "3", p=0.5), "n_blocks must be an integer >= 1"),
        (lambda: noise_parameter_for("gaussian", None, 0.1), "n_blocks must be an integer >= 1, got None"),
        (lambda: epsilon("bernoulli", 3.0, p=0.5), "n_blocks must be an integer >= 1, got 3.0"),
        (lambda: epsilon("bernoulli", True, p=0.5), "n_blocks must be an integer >= 1, got True"),
        (lambda: epsilon("bernoulli", 3, p=None), r"p must be a real number \(p in \(0, 1\]\), got None"),
        (lambda: epsilon("bernoulli", 3, p="x"), r"p must be a real number \(p in \(0, 1\]\), got 'x'"),
        (lambda: epsilon("gaussian", 3, nu=[0.1]), r"nu must be a real number \(nu >= 0\)"),
        (lambda: epsilon("uniform", 3, beta=None), r"beta must be a real number \(beta in \[0, 1\)\)"),
        (lambda: epsilon(None, 3), "noise must be one of bernoulli, gaussian, uniform, shake"),
        (lambda: noise_parameter_for("gaussian", 3, None), "eps must be a finite number >= 0, got None"),
        (lambda: noise_parameter_for("gaussian", 3, math.inf), "eps must be"),
        (lambda: epsilon("gaussian", 3, nu=False), r"^nu must be a real number \(nu >= 0\), not a bool, got False$"),
        (lambda: epsilon("gaussian", 3, nu=True), r"^nu must be a real number \(nu >= 0\), not a bool, got True$"),
        (lambda: epsilon("bernoulli", 3, p=True), r"^p must be a real number \(p in \(0, 1\]\), not a bool"),
        (lambda: epsilon("uniform", 3, beta=np.False_), r"^beta must be a real number \(beta in \[0, 1\)\), not a bool"),
        (lambda: noise_parameter_for("gaussian", 3, True), r"^eps must be a finite number >= 0, not a bool, got True$"),
    ],
)
def test_bad_input_names_the_argument(call, match):
    with pytest.raises(ValueError, match=match):
        call()


def test_bernoulli_extremes_are_exact_or_refused():
    # eps^2 = (1-p)/(pK) overflowed for p below ~1e-308: epsilon(p=1e-300, K=3)... was fine, p=1e-310 gave inf
    assert epsilon("bernoulli", 3, p=1e-300) == pytest.approx(1.0 / math.sqrt(3e-300), rel=1e-14)
    assert epsilon("bernoulli", 4, p=2.5e-308) == pytest.approx(1.0 / math.sqrt(1e-307), rel=1e-14)
    assert math.isfinite(epsilon("bernoulli", 3, p=1e-310))
    # the inverse returned p = 0.0 (outside (0, 1]) for eps = 1e160; now a normal p or a ValueError
    assert noise_parameter_for("bernoulli", 3, 1e150) == pytest.approx(1.0 / 3e300, rel=1e-14)
    assert epsilon("bernoulli", 3, p=noise_parameter_for("bernoulli", 3, 1e150)) == pytest.approx(1e150, rel=1e-14)
    for eps in (1e160, 1e200, 1.7e308):
        with pytest.raises(ValueError, match=r"eps=.* with n_blocks=3 .*eps must be at most"):
            noise_parameter_for("bernoulli", 3, eps)


def test_one_parameter_map_shared_by_every_module():
    """The kind -> parameter map was written out four times; now nets and figures import the one in kolmogorov."""
    import figures.noise_kinds
    import nets.models.noise
    import nets.sweep
    from kolmogorov.noise_level import PARAMETER_OF

    assert nets.models.noise.PARAMETER_OF is PARAMETER_OF
    assert figures.noise_kinds.PARAMETER_OF is PARAMETER_OF
    assert nets.sweep._PARAMETER_OF is PARAMETER_OF
    assert list(PARAMETER_OF.items()) == [("bernoulli", "p"), ("gaussian", "nu"), ("uniform", "beta")]
    with pytest.raises(TypeError):
        PARAMETER_OF["shake"] = "alpha"  # read-only


@pytest.mark.parametrize("kind, value", [("bernoulli", 0.9), ("gaussian", 0.3), ("uniform", 0.5)])
def test_each_parameter_name_is_what_epsilon_and_the_models_take(kind, value):
    import nets
    from kolmogorov.noise_level import PARAMETER_OF

    name = PARAMETER_OF[kind]
    eps = epsilon(kind, 9, **{name: value})
    model = nets.build_model("preresnet20", noise=kind, **{name: value})
    assert model.config.noise_spec.parameter == name and getattr(model.config, name) == value
    assert model.num_blocks == 9 and model.epsilon() == eps
