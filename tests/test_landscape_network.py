"""landscape.network / solver "network": the K-block dropout network's own landscape, exactly."""
import itertools
import math

import h5py
import numpy as np
import pytest
from scipy.special import expit
from scipy.stats import poisson

from landscape import compute, evaluate, get_dataset
from loss_by_hand import loss_by_hand
from landscape.network import survival_probability
from landscape.objective import LOSSES, OBJECTIVES
from landscape.report import PlotConfig, run_plot

DATA = get_dataset("rugged")
GRID = np.linspace(-15.0, 14.0, 59)


def _landscape_over_atoms(multipliers, probs, loss, objective, f=GRID):
    """J from a finite law of X = y + f m, summed directly (the ensemble's E[sigma(X)] stays away from 0 and 1 on
    this grid: the atom X = y of all blocks dropped; the expected ce of one atom is softplus(-+X))."""
    y, h = DATA.y[None, :, None], DATA.label[None, :, None]
    x = y + f[:, None, None] * np.asarray(multipliers)[None, None, :]
    if objective == "ensemble":
        return loss_by_hand(expit(x) @ probs, h[..., 0], loss).mean(axis=1)
    if loss == "ce":
        return ((h * np.logaddexp(0.0, -x) + (1 - h) * np.logaddexp(0.0, x)) @ probs).mean(axis=1)
    return (loss_by_hand(expit(x), h, loss) @ probs).mean(axis=1)


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("objective", OBJECTIVES)
def test_no_noise_is_the_plain_landscape(loss, objective):
    net = evaluate(GRID, DATA.y, DATA.label, 0.0, loss, "network", objective, n_blocks=5)
    assert net.n_blocks == 5 and net.solver == "network"
    np.testing.assert_allclose(net.J, compute(GRID, DATA.y, DATA.label, 0.0, loss, objective=objective),
                               rtol=1e-13, atol=1e-15)


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("objective", OBJECTIVES)
def test_every_mask_pattern_of_four_blocks(loss, objective):
    # an independent count: the 2^4 keep/drop patterns, each X = y + (f/K) sum_k gamma_k / p
    k, eps = 4, 0.4
    p = survival_probability(eps, k)
    assert math.isclose((1 - p) / (p * k), eps ** 2)  # (3.2)
    multipliers, probs = [], []
    for pattern in itertools.product((0, 1), repeat=k):
        kept = sum(pattern)
        multipliers.append(kept / (p * k))
        probs.append(p ** kept * (1 - p) ** (k - kept))
    expected = _landscape_over_atoms(multipliers, np.array(probs), loss, objective)
    net = evaluate(GRID, DATA.y, DATA.label, eps, loss, "network", objective, n_blocks=k).J
    np.testing.assert_allclose(net, expected, rtol=1e-12, atol=1e-15)


def test_one_block_by_hand():
    # K = 1: the branch is kept (scaled 1/p) with probability p, else dropped: u = p sigma(y + f/p) + (1-p) sigma(y)
    eps = 0.5
    p = survival_probability(eps, 1)
    u = p * expit(DATA.y[None, :] + GRID[:, None] / p) + (1 - p) * expit(DATA.y[None, :])
    expected = ((u - DATA.label[None, :]) ** 2).mean(axis=1)
    np.testing.assert_allclose(evaluate(GRID, DATA.y, DATA.label, eps, "l2", "network", n_blocks=1).J, expected,
                               rtol=1e-13)


@pytest.mark.parametrize("loss,objective", [("l2", "ensemble"), ("l2", "expected"), ("ce", "ensemble"),
                                            ("l1", "ensemble")])
def test_weak_order_two_to_the_sde_at_fixed_p(loss, objective):
    # fixed p, eps_K^2 = (1-p)/(pK): the network's J approaches the SDE's J_eps at order 2 in 1/K (third cumulant)
    p, ks = 0.8, (256, 512, 1024)  # |f| up to 15: the steps f/K are small only from a few hundred blocks
    gaps = []
    for k in ks:
        eps = math.sqrt((1 - p) / (p * k))
        net = evaluate(GRID, DATA.y, DATA.label, eps, loss, "network", objective, n_blocks=k).J
        sde = compute(GRID, DATA.y, DATA.label, eps, loss, objective=objective)
        gaps.append(np.max(np.abs(net - sde)))
    orders = [math.log2(gaps[i] / gaps[i + 1]) for i in range(2)]
    assert all(abs(order - 2.0) < 0.12 for order in orders), (gaps, orders)


def test_fixed_eps_and_many_blocks_tend_to_the_poisson_jump_law_not_the_sde():
    # p = 1/(1 + K eps^2) -> 0: N ~ Binomial(K, p) -> Poisson(1/eps^2), X = y + f eps^2 M; the gap is O(1/K)
    eps = 0.5
    lam = 1 / eps ** 2
    m = np.arange(60)
    limit = _landscape_over_atoms(m * eps ** 2, poisson.pmf(m, lam), "l2", "ensemble")
    gaps = [np.max(np.abs(evaluate(GRID, DATA.y, DATA.label, eps, "l2", "network", n_blocks=k).J - limit))
            for k in (200, 400, 800)]
    assert all(abs(math.log2(gaps[i] / gaps[i + 1]) - 1.0) < 0.1 for i in range(2))
    sde_gap = np.max(np.abs(compute(GRID, DATA.y, DATA.label, eps, "l2") - limit))
    assert sde_gap > 10 * gaps[-1]  # the limit is a jump process, measurably not the diffusion


def test_cross_entropy_far_out_in_f_is_the_all_dropped_atom():
    # f -> -inf: every kept branch pushes sigma to 0; what is left of E[sigma(X)] is the atom N = 0 (all blocks
    # dropped, X = y), so the ensemble ce of a label-1 sample is -log((1-p)^K sigma(y)): finite, no underflow
    k, eps, f = 3, 0.5, np.array([-1e4])
    p = survival_probability(eps, k)
    y, label = np.array([0.5]), np.array([1.0])
    J = evaluate(f, y, label, eps, "ce", "network", n_blocks=k).J
    assert math.isclose(J[0], -math.log((1 - p) ** k * expit(0.5)), rel_tol=1e-12)


def test_n_blocks_goes_with_the_network_solver_only():
    with pytest.raises(ValueError, match="n_blocks: give the number of dropout blocks K with solver 'network'"):
        evaluate(GRID, DATA.y, DATA.label, 0.5, "l2", "network")
    with pytest.raises(ValueError, match="n_blocks"):
        evaluate(GRID, DATA.y, DATA.label, 0.5, "l2", "closed", n_blocks=3)
    with pytest.raises(ValueError, match="n_blocks must be an integer >= 1"):
        evaluate(GRID, DATA.y, DATA.label, 0.5, "l2", "network", n_blocks=0)


def test_plot_draws_the_network_beside_its_sde_model(tmp_path):
    out, h5 = tmp_path / "net.png", tmp_path / "net.h5"
    config = PlotConfig(eps=(0.5,), survival_p=(0.9,), blocks=3, solver="network", n_f=201, out=str(out), h5=str(h5))
    result = run_plot(config)
    assert out.exists() and "SDE model, eps=0.5" in result.table() and "network, K=3 blocks, p=0.5714" in result.table()
    with h5py.File(h5) as f:
        grid = f["f"][()]
        eps = f["eps"][()]
        np.testing.assert_allclose(eps, [0.5, math.sqrt(0.1 / (0.9 * 3))])
        for i, level in enumerate(eps):
            np.testing.assert_allclose(f["Jeps"][i], evaluate(grid, DATA.y, DATA.label, level, "l2", "network",
                                                              n_blocks=3).J, rtol=1e-14)
            np.testing.assert_allclose(f["Jeps_sde"][i], compute(grid, DATA.y, DATA.label, level, "l2"), rtol=1e-14)
        assert set(f["statistics_sde"]) == set(f["statistics"]) - {"J0"}
        assert f.attrs["solver"] == "network" and f.attrs["blocks"] == 3


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("objective", OBJECTIVES)
def test_network_gradient_against_central_differences(loss, objective):
    from landscape.network import network_gradient

    f = np.linspace(-14.0, 13.0, 28)

    def J(grid):
        return evaluate(grid, DATA.y, DATA.label, 0.5, loss, "network", objective, n_blocks=3).J

    exact = network_gradient(f, DATA.y, DATA.label, 0.5, loss, objective, 3)
    errors = [np.max(np.abs((J(f + h) - J(f - h)) / (2 * h) - exact)) for h in (2e-3, 1e-3)]
    assert errors[1] < 1e-7 and 3.5 < errors[0] / errors[1] < 4.5  # the differences' own O(h^2)


@pytest.mark.parametrize("jump", [1.0, 0.7])
def test_one_pass_gradient_averages_to_the_expected_gradient(jump):
    # one sample at a time: the sum over the end point's law of the one-pass gradient is the expected objective's
    from landscape.network import network_gradient, network_law, network_sample_gradient

    k, eps, f = 4, 0.3, 2.5
    law = network_law(eps, k, jump)
    for loss in LOSSES:
        for y, h in zip(DATA.y, DATA.label):
            mean = sum(prob * network_sample_gradient(f, np.array([y]), np.array([h]), loss, np.array([m]))
                       for m, prob in zip(law.multipliers, law.probabilities))
            exact = network_gradient(np.array([f]), np.array([y]), np.array([h]), eps, loss, "expected", k, jump)[0]
            assert mean == pytest.approx(exact, rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("jump", [1.0, 0.6])
def test_drawn_multipliers_follow_the_network_law(jump):
    # 200000 passes: each atom's frequency within 5 binomial standard errors of its probability, mean 1, variance eps^2
    from landscape.network import draw_multipliers, network_law

    k, eps, n = 4, 0.3, 200_000
    law = network_law(eps, k, jump)
    draws = draw_multipliers(np.random.default_rng(7), eps, k, n, jump)
    assert set(np.round(draws, 12)) <= set(np.round(law.multipliers, 12))
    for m, prob in zip(law.multipliers, law.probabilities):
        count = np.count_nonzero(np.isclose(draws, m, rtol=0, atol=1e-12))
        assert abs(count / n - prob) < 5 * math.sqrt(prob * (1 - prob) / n) + 1e-12
    assert law.multipliers @ law.probabilities == pytest.approx(1.0, abs=1e-14)
    assert (law.multipliers - 1) ** 2 @ law.probabilities == pytest.approx(eps ** 2, rel=1e-12)


@pytest.mark.parametrize("mode", ["smoothed", "sampled"])
def test_network_sgd_without_noise_is_plain_sgd(mode):
    from landscape.sgd import sgd

    common = dict(f0=10.0, lr=5.0, steps=40, batch_size=2, seed=3, mode=mode, loss="l2")
    plain = sgd(DATA.y, DATA.label, 0.0, **common)
    network = sgd(DATA.y, DATA.label, 0.0, n_blocks=4, **common)
    np.testing.assert_allclose(network.f, plain.f, rtol=1e-13)
    np.testing.assert_allclose(network.J, plain.J, rtol=1e-13)


def test_network_sgd_path_lies_on_the_network_landscape(tmp_path):
    h5 = tmp_path / "sgd.h5"
    config = PlotConfig(eps=(0.5,), blocks=3, solver="network", n_f=101, sgd=True, sgd_mode="sampled", steps=30,
                        out=str(tmp_path / "sgd.png"), h5=str(h5))
    run_plot(config)
    with h5py.File(h5) as f:
        group = f["sgd"]["eps_0.5"]
        path, J = group["f"][()], group["J"][()]
        assert group.attrs["n_blocks"] == 3
    np.testing.assert_allclose(J, evaluate(path, DATA.y, DATA.label, 0.5, "l2", "network", n_blocks=3).J, rtol=1e-14)


def test_sgd_config_refuses_a_bad_block_count():
    from landscape.sgd import SGDConfig

    with pytest.raises(ValueError, match="n_blocks must be an integer >= 1 or None"):
        SGDConfig(f0=1.0, n_blocks=0)


# ---- two-point masks of the same eps in place of dropout (jump a < 1)

@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("objective", OBJECTIVES)
@pytest.mark.parametrize("jump", [0.6, 0.8])
def test_every_two_point_mask_pattern_of_four_blocks(loss, objective, jump):
    # an independent count: the 2^4 patterns of masks 1 - a (probability q = v/(a^2 + v)) and 1 + v/a, v = K eps^2
    k, eps = 4, 0.3
    v = k * eps ** 2
    q = v / (jump ** 2 + v)
    multipliers, probs = [], []
    for pattern in itertools.product((0, 1), repeat=k):
        down = sum(pattern)
        multipliers.append(sum(1 - jump if d else 1 + v / jump for d in pattern) / k)
        probs.append(q ** down * (1 - q) ** (k - down))
    expected = _landscape_over_atoms(multipliers, np.array(probs), loss, objective)
    net = evaluate(GRID, DATA.y, DATA.label, eps, loss, "network", objective, n_blocks=k, jump=jump)
    assert net.jump == jump
    # no atom at X = y here (the low mask 1 - a is not 0): far out in f the direct sum's E[sigma(X)] comes within
    # rounding of 0 or 1, and its log loses about 1e-12 relative, which the solver's log domain does not
    rtol = 1e-10 if (loss, objective) == ("ce", "ensemble") else 1e-12
    np.testing.assert_allclose(net.J, expected, rtol=rtol, atol=1e-15)


def test_jump_one_is_dropout_and_the_default():
    from kolmogorov.two_point import two_point_law
    from landscape.network import network_law

    k, eps = 5, 0.4
    dropout, two_point = network_law(eps, k), two_point_law(k, eps, 1.0)
    # two_point_law counts the steps down, dropout_law the blocks kept: the same atoms in reverse order
    np.testing.assert_allclose(two_point.multipliers[::-1], dropout.multipliers, rtol=1e-14)
    np.testing.assert_allclose(two_point.probabilities[::-1], dropout.probabilities, rtol=1e-13)
    default = evaluate(GRID, DATA.y, DATA.label, eps, "ce", "network", n_blocks=k)
    assert default.jump == 1.0
    np.testing.assert_array_equal(evaluate(GRID, DATA.y, DATA.label, eps, "ce", "network", n_blocks=k, jump=1.0).J,
                                  default.J)


@pytest.mark.parametrize("jump,order", [(0.7, 2.0), (0.5, 3.0)])
def test_two_point_network_tends_to_the_sde_at_fixed_mask(jump, order):
    # fixed mask (v = 0.25, so eps^2 = v/K): the gap to the SDE is the third cumulant's, order 2 in 1/K, and for
    # the fair coin (a = sqrt(v) = 0.5, kappa_3 = 0) the fourth cumulant's, order 3
    v, ks = 0.25, (256, 512, 1024)  # orders 1.94, 1.97 and 2.88, 2.94 here: the rates are approached from below
    gaps = []
    for k in ks:
        eps = math.sqrt(v / k)
        net = evaluate(GRID, DATA.y, DATA.label, eps, "l2", "network", n_blocks=k, jump=jump).J
        gaps.append(np.max(np.abs(net - compute(GRID, DATA.y, DATA.label, eps, "l2"))))
    orders = [math.log2(gaps[i] / gaps[i + 1]) for i in range(2)]
    assert all(abs(o - order) < 0.15 for o in orders), (gaps, orders)


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("objective", OBJECTIVES)
def test_two_point_network_gradient_against_central_differences(loss, objective):
    from landscape.network import network_gradient

    f = np.linspace(-14.0, 13.0, 28)

    def J(grid):
        return evaluate(grid, DATA.y, DATA.label, 0.4, loss, "network", objective, n_blocks=3, jump=0.8).J

    exact = network_gradient(f, DATA.y, DATA.label, 0.4, loss, objective, 3, 0.8)
    errors = [np.max(np.abs((J(f + h) - J(f - h)) / (2 * h) - exact)) for h in (2e-3, 1e-3)]
    assert errors[1] < 1e-7 and 3.5 < errors[0] / errors[1] < 4.5


def test_jump_is_refused_where_no_two_point_mask_has_the_variance():
    with pytest.raises(ValueError, match=r"jump 0.5 at eps = 0.5 with K = 3: jump must be a number in "
                                         r"\[sqrt\(K eps\^2\), 1\] = \[0.866025, 1\]; got 0.5"):
        evaluate(GRID, DATA.y, DATA.label, 0.5, "l2", "network", n_blocks=3, jump=0.5)
    with pytest.raises(ValueError, match="eps must be at most 1/sqrt"):
        evaluate(GRID, DATA.y, DATA.label, 0.5, "l2", "network", n_blocks=5, jump=0.9)
    with pytest.raises(ValueError, match="jump must be a number in \\(0, 1\\]"):
        evaluate(GRID, DATA.y, DATA.label, 0.5, "l2", "network", n_blocks=3, jump=1.5)
    with pytest.raises(ValueError, match="jump: the masks' jump a goes with solver 'network' only"):
        evaluate(GRID, DATA.y, DATA.label, 0.5, "l2", "closed", jump=0.9)
    with pytest.raises(ValueError, match="jump: the masks' jump a goes with solver 'network' only"):
        PlotConfig(eps=(0.5,), jump=0.9)
    with pytest.raises(ValueError, match="jump 0.7 at eps = 0.5"):
        PlotConfig(eps=(0.2, 0.5), blocks=3, solver="network", jump=0.7)


def test_two_point_sgd_path_lies_on_its_landscape_and_the_plot_records_the_jump(tmp_path):
    from landscape.sgd import SGDConfig

    h5, out = tmp_path / "jump.h5", tmp_path / "jump.png"
    config = PlotConfig(eps=(0.4,), blocks=3, solver="network", jump=0.75, n_f=101, sgd=True, sgd_mode="sampled",
                        steps=30, out=str(out), h5=str(h5))
    result = run_plot(config)
    assert out.exists() and "network, K=3 blocks, two-point masks, jump a=0.75 (eps=0.4)" in result.table()
    with h5py.File(h5) as f:
        assert f.attrs["jump"] == 0.75
        grid = f["f"][()]
        np.testing.assert_allclose(f["Jeps"][0], evaluate(grid, DATA.y, DATA.label, 0.4, "l2", "network", n_blocks=3,
                                                          jump=0.75).J, rtol=1e-14)
        group = f["sgd"]["eps_0.4"]
        path, J = group["f"][()], group["J"][()]
        assert group.attrs["jump"] == 0.75
    np.testing.assert_allclose(J, evaluate(path, DATA.y, DATA.label, 0.4, "l2", "network", n_blocks=3, jump=0.75).J,
                               rtol=1e-14)
    with pytest.raises(ValueError, match="jump: the masks' jump a goes with n_blocks"):
        SGDConfig(f0=1.0, eps=0.4, jump=0.75)
    with pytest.raises(ValueError, match="jump 0.5 at eps = 0.4 with K = 3"):
        SGDConfig(f0=1.0, eps=0.4, n_blocks=3, jump=0.5)


def test_sgd_config_fills_in_the_network_masks_and_a_path_with_defaults_equals_the_explicit_one():
    from landscape.sgd import SGDConfig, run_sgd

    implicit = SGDConfig(f0=2.0, eps=0.4, n_blocks=np.int64(3), mode="sampled", steps=20)
    assert (implicit.n_blocks, implicit.mask, implicit.jump) == (3, "dropout", 1.0)
    assert type(implicit.n_blocks) is int and type(implicit.jump) is float
    explicit = SGDConfig(f0=2.0, eps=0.4, n_blocks=3, mode="sampled", steps=20, mask="dropout", jump=1)
    assert implicit == explicit
    np.testing.assert_array_equal(run_sgd(implicit, DATA.y, DATA.label).f, run_sgd(explicit, DATA.y, DATA.label).f)
    uniform = SGDConfig(f0=2.0, eps=0.25, n_blocks=2, mask="uniform")
    assert (uniform.mask, uniform.jump) == ("uniform", 1.0)
    plain = SGDConfig(f0=2.0, eps=0.4)
    assert (plain.n_blocks, plain.mask, plain.jump) == (None, None, None)


@pytest.mark.parametrize("mode", ["smoothed", "sampled"])
def test_two_point_network_sgd_without_noise_is_plain_sgd(mode):
    from landscape.sgd import sgd

    common = dict(f0=10.0, lr=5.0, steps=40, batch_size=2, seed=3, mode=mode, loss="l2")
    plain = sgd(DATA.y, DATA.label, 0.0, **common)
    network = sgd(DATA.y, DATA.label, 0.0, n_blocks=4, jump=0.5, **common)
    np.testing.assert_allclose(network.f, plain.f, rtol=1e-13)
