"""landscape.network with mask "uniform": the K-block network with the uniform masks 1 + U(-beta, beta) of (3.14)."""
import math

import h5py
import numpy as np
import pytest
from scipy import integrate
from scipy.special import expit

from landscape import compute, evaluate, get_dataset
from loss_by_hand import loss_by_hand
from landscape.objective import LOSSES, OBJECTIVES
from landscape.report import PlotConfig, run_plot

DATA = get_dataset("rugged")
GRID = np.linspace(-14.75, 13.75, 58)  # f = 0 left out: the one-block closed form divides by f


@pytest.mark.parametrize("loss", LOSSES)
def test_one_uniform_block_by_hand(loss):
    # K = 1: m = 1 + U(-beta, beta), so E sigma(y + f m) = (softplus(y + f (1 + beta)) - softplus(y + f (1 - beta)))
    # / (2 beta f), and 1 - E sigma(X) = E sigma(-X) the same way with -y, -f
    eps = 0.4
    beta = eps * math.sqrt(3.0)
    y, h, f = DATA.y[None, :], DATA.label[None, :], GRID[:, None]

    def mean_sigma(y, f):
        return (np.logaddexp(0.0, y + f * (1 + beta)) - np.logaddexp(0.0, y + f * (1 - beta))) / (2 * beta * f)

    u, u_bar = mean_sigma(y, f), mean_sigma(-y, -f)
    if loss == "ce":
        want = (-h * np.log(u) - (1 - h) * np.log(u_bar)).mean(axis=1)
    else:
        want = loss_by_hand(u, h, loss).mean(axis=1)
    net = evaluate(GRID, DATA.y, DATA.label, eps, loss, "network", n_blocks=1, mask="uniform")
    assert net.mask == "uniform" and net.n_blocks == 1
    np.testing.assert_allclose(net.J, want, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("objective", OBJECTIVES)
def test_two_uniform_blocks_against_adaptive_quadrature(loss, objective):
    # K = 2: the mean of two masks is 1 + beta T, T triangular on [-1, 1]; every loss and objective by scipy's quad
    eps, k = 0.3, 2
    beta = eps * math.sqrt(3.0 * k)
    grid = np.array([-12.0, -3.3, -0.7, 0.9, 4.1, 11.5])
    net = evaluate(grid, DATA.y, DATA.label, eps, loss, "network", objective, n_blocks=k, mask="uniform").J

    def expect(g, y, f):
        return integrate.quad(lambda t: g(expit(y + f * (1 + beta * t)), expit(-(y + f * (1 + beta * t))))
                              * (1 - abs(t)), -1.0, 1.0, points=[0.0], epsabs=1e-15, epsrel=1e-13, limit=200)[0]

    for i, f in enumerate(grid):
        per = []
        for y, h in zip(DATA.y, DATA.label):
            if objective == "ensemble":
                u, u_bar = expect(lambda s, s_bar: s, y, f), expect(lambda s, s_bar: s_bar, y, f)
                per.append(-h * math.log(u) - (1 - h) * math.log(u_bar) if loss == "ce" else loss_by_hand(u, h, loss))
            elif loss == "ce":
                per.append(expect(lambda s, s_bar: -h * math.log(s) - (1 - h) * math.log(s_bar), y, f))
            else:
                per.append(expect(lambda s, s_bar: loss_by_hand(s, h, loss), y, f))
        assert net[i] == pytest.approx(np.mean(per), rel=1e-11, abs=1e-14), f


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("objective", OBJECTIVES)
def test_uniform_network_gradient_against_central_differences(loss, objective):
    from landscape.network import network_gradient

    f = np.linspace(-14.0, 13.0, 28)

    def J(grid):
        return evaluate(grid, DATA.y, DATA.label, 0.25, loss, "network", objective, n_blocks=3, mask="uniform").J

    exact = network_gradient(f, DATA.y, DATA.label, 0.25, loss, objective, 3, mask="uniform")
    errors = [np.max(np.abs((J(f + h) - J(f - h)) / (2 * h) - exact)) for h in (2e-3, 1e-3)]
    assert errors[1] < 1e-7 and 3.5 < errors[0] / errors[1] < 4.5  # the differences' own O(h^2)


@pytest.mark.parametrize("loss", LOSSES)
def test_no_noise_is_the_plain_landscape(loss):
    net = evaluate(GRID, DATA.y, DATA.label, 0.0, loss, "network", n_blocks=4, mask="uniform")
    np.testing.assert_allclose(net.J, compute(GRID, DATA.y, DATA.label, 0.0, loss), rtol=1e-13, atol=1e-15)


def test_uniform_network_tends_to_the_sde_at_weak_order_three():
    # at a fixed mask (beta = 0.9) eps^2 = beta^2 / (3K): symmetric masks, no third cumulant, order 3 as K doubles
    # (on |f| <= 4, where one block's step f beta / K is small from K = 32 on; at |f| = 14 it takes K ~ 500)
    beta, ks, grid = 0.9, (32, 64, 128), np.linspace(-4.0, 4.0, 33)
    gaps = []
    for k in ks:
        eps = beta / math.sqrt(3.0 * k)
        net = evaluate(grid, DATA.y, DATA.label, eps, "l2", "network", n_blocks=k, mask="uniform").J
        gaps.append(np.max(np.abs(net - compute(grid, DATA.y, DATA.label, eps, "l2"))))
    orders = np.log2(np.array(gaps[:-1]) / np.array(gaps[1:]))
    assert np.all(np.abs(orders - 3.0) < 0.1), orders


def test_one_pass_gradient_averages_to_the_expected_gradient():
    from landscape.network import network_gradient, network_law, network_sample_gradient

    k, eps, f = 3, 0.25, 2.5
    law = network_law(eps, k, mask="uniform", reach=f)
    for loss in LOSSES:
        for y, h in zip(DATA.y, DATA.label):
            mean = law.probabilities @ np.array([network_sample_gradient(f, np.array([y]), np.array([h]), loss,
                                                                         np.array([m])) for m in law.multipliers])
            exact = network_gradient(np.array([f]), np.array([y]), np.array([h]), eps, loss, "expected", k,
                                     mask="uniform")[0]
            assert mean == pytest.approx(exact, rel=1e-12, abs=1e-15)


def test_drawn_uniform_multipliers_follow_the_law():
    # 200000 passes: mean 1 and variance eps^2 within 5 standard errors, the range of the mean of K masks, and
    # E sigma(y + f m) within 5 standard errors of the quadrature law's value
    from landscape.network import draw_multipliers, network_law

    k, eps, n, y, f = 3, 0.25, 200_000, -0.4, 3.0
    beta = eps * math.sqrt(3 * k)
    draws = draw_multipliers(np.random.default_rng(7), eps, k, n, mask="uniform")
    assert draws.shape == (n,) and np.all(np.abs(draws - 1) <= beta)
    assert abs(draws.mean() - 1) < 5 * eps / math.sqrt(n)
    assert abs(draws.var() - eps ** 2) < 5 * eps ** 2 * math.sqrt(2.0 / n) * 1.5
    law = network_law(eps, k, mask="uniform", reach=f)
    values = expit(y + f * draws)
    assert abs(values.mean() - expit(y + f * law.multipliers) @ law.probabilities) < 5 * values.std() / math.sqrt(n)
    np.testing.assert_array_equal(draw_multipliers(np.random.default_rng(7), 0.0, k, 5, mask="uniform"), np.ones(5))


def test_uniform_sgd_path_lies_on_its_landscape_and_the_plot_records_the_mask(tmp_path):
    h5, out = tmp_path / "uniform.h5", tmp_path / "uniform.png"
    config = PlotConfig(eps=(0.25,), blocks=3, solver="network", mask="uniform", n_f=101, sgd=True,
                        sgd_mode="sampled", steps=30, out=str(out), h5=str(h5))
    result = run_plot(config)
    assert out.exists() and "network, K=3 blocks, uniform masks, beta=0.75 (eps=0.25)" in result.table()
    with h5py.File(h5) as f:
        assert f.attrs["mask"] == "uniform"
        grid = f["f"][()]
        np.testing.assert_allclose(f["Jeps"][0], evaluate(grid, DATA.y, DATA.label, 0.25, "l2", "network", n_blocks=3,
                                                          mask="uniform").J, rtol=1e-14)
        group = f["sgd"]["eps_0.25"]
        path, J = group["f"][()], group["J"][()]
        assert group.attrs["mask"] == "uniform"
    np.testing.assert_allclose(J, evaluate(path, DATA.y, DATA.label, 0.25, "l2", "network", n_blocks=3,
                                           mask="uniform").J, rtol=1e-12)


@pytest.mark.parametrize("mode", ["smoothed", "sampled"])
def test_uniform_network_sgd_without_noise_is_plain_sgd(mode):
    from landscape.sgd import sgd

    common = dict(f0=10.0, lr=5.0, steps=40, batch_size=2, seed=3, mode=mode, loss="l2")
    plain = sgd(DATA.y, DATA.label, 0.0, **common)
    network = sgd(DATA.y, DATA.label, 0.0, n_blocks=4, mask="uniform", **common)
    np.testing.assert_allclose(network.f, plain.f, rtol=1e-13)


def test_bad_masks_are_refused_naming_the_argument():
    from landscape.sgd import SGDConfig

    with pytest.raises(ValueError, match="mask must be one of dropout, uniform, stochastic_depth; got 'gaussian'"):
        evaluate(GRID, DATA.y, DATA.label, 0.25, "l2", "network", n_blocks=3, mask="gaussian")
    with pytest.raises(ValueError, match=r"mask 'uniform' at eps = 0.4 with K = 3: its half-width beta = eps sqrt\(3K\) "
                                         r"= 1.2 must be < 1 \(a mask that keeps its sign\), so eps < 0.3333"):
        evaluate(GRID, DATA.y, DATA.label, 0.4, "l2", "network", n_blocks=3, mask="uniform")
    with pytest.raises(ValueError, match="jump: the masks' jump a goes with mask 'dropout' only"):
        evaluate(GRID, DATA.y, DATA.label, 0.25, "l2", "network", n_blocks=3, mask="uniform", jump=0.9)
    with pytest.raises(ValueError, match="mask: the network's masks go with solver 'network' only"):
        evaluate(GRID, DATA.y, DATA.label, 0.25, "l2", "closed", mask="uniform")
    with pytest.raises(ValueError, match="mask: the network's masks go with solver 'network' only"):
        PlotConfig(eps=(0.25,), mask="uniform")
    with pytest.raises(ValueError, match="mask 'uniform' at eps = 0.4"):
        PlotConfig(eps=(0.2, 0.4), blocks=3, solver="network", mask="uniform")
    with pytest.raises(ValueError, match="mask: the network's masks go with n_blocks"):
        SGDConfig(f0=1.0, eps=0.25, mask="uniform")
    with pytest.raises(ValueError, match="mask 'uniform' at eps = 0.4 with K = 3"):
        SGDConfig(f0=1.0, eps=0.4, n_blocks=3, mask="uniform")
