"""landscape.network with mask "stochastic_depth": K blocks that each drop their whole branch with the linear-decay
probability 1 - p_l of the LM-ResNet paper's section 3.2, scaled by 1 / p_l, at the rms noise level eps."""
import itertools
import math

import h5py
import numpy as np
import pytest
from scipy.special import expit

from kolmogorov import stochastic_depth_survival_for
from landscape import compute, evaluate, get_dataset
from landscape.objective import LOSSES, OBJECTIVES
from landscape.report import PlotConfig, run_plot
from loss_by_hand import loss_by_hand

DATA = get_dataset("rugged")
GRID = np.linspace(-14.75, 13.75, 58)
SD = "stochastic_depth"


def keep_patterns(eps: float, k: int):
    """(multiplier, probability) of every keep pattern of the K blocks, enumerated one by one."""
    p_last = stochastic_depth_survival_for(eps, k)
    survival = [1.0 - (l / k) * (1.0 - p_last) for l in range(1, k + 1)]
    for kept in itertools.product((0, 1), repeat=k):
        m = sum(e / p for e, p in zip(kept, survival)) / k
        yield m, math.prod(p if e else 1.0 - p for e, p in zip(kept, survival))


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("objective", OBJECTIVES)
def test_three_blocks_by_hand_over_every_keep_pattern(loss, objective):
    eps, k = 0.35, 3
    patterns = list(keep_patterns(eps, k))
    # the patterns' multiplier has mean 1 and variance eps^2: the SDE's first two moments at the rms level
    assert sum(q for _, q in patterns) == pytest.approx(1.0, abs=1e-15)
    assert sum(m * q for m, q in patterns) == pytest.approx(1.0, abs=1e-14)
    assert sum((m - 1) ** 2 * q for m, q in patterns) == pytest.approx(eps ** 2, rel=1e-12)
    net = evaluate(GRID, DATA.y, DATA.label, eps, loss, "network", objective, n_blocks=k, mask=SD)
    assert net.mask == SD and net.n_blocks == k
    for i, f in enumerate(GRID):
        per = []
        for y, h in zip(DATA.y, DATA.label):
            if objective == "ensemble":
                u = sum(q * expit(y + f * m) for m, q in patterns)
                u_bar = sum(q * expit(-(y + f * m)) for m, q in patterns)
                per.append(-h * math.log(u) - (1 - h) * math.log(u_bar) if loss == "ce" else loss_by_hand(u, h, loss))
            elif loss == "ce":
                per.append(sum(q * (h * np.logaddexp(0.0, -(y + f * m)) + (1 - h) * np.logaddexp(0.0, y + f * m))
                               for m, q in patterns))
            else:
                per.append(sum(q * loss_by_hand(expit(y + f * m), h, loss) for m, q in patterns))
        assert net.J[i] == pytest.approx(np.mean(per), rel=1e-12, abs=1e-15), f


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("objective", OBJECTIVES)
def test_one_block_is_dropout_at_the_same_eps(loss, objective):
    # K = 1: p_1 = p_L and eps^2 = (1 - p_L)/p_L, dropout's (3.2) at p = 1/(1 + eps^2): the binomial law's code path
    for eps in (0.2, 0.7, 1.5):
        sd = evaluate(GRID, DATA.y, DATA.label, eps, loss, "network", objective, n_blocks=1, mask=SD).J
        dropout = evaluate(GRID, DATA.y, DATA.label, eps, loss, "network", objective, n_blocks=1).J
        np.testing.assert_allclose(sd, dropout, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("loss", LOSSES)
@pytest.mark.parametrize("objective", OBJECTIVES)
def test_stochastic_depth_gradient_against_central_differences(loss, objective):
    from landscape.network import network_gradient

    f = np.linspace(-14.0, 13.0, 28)

    def J(grid):
        return evaluate(grid, DATA.y, DATA.label, 0.3, loss, "network", objective, n_blocks=4, mask=SD).J

    exact = network_gradient(f, DATA.y, DATA.label, 0.3, loss, objective, 4, mask=SD)
    errors = [np.max(np.abs((J(f + h) - J(f - h)) / (2 * h) - exact)) for h in (2e-3, 1e-3)]
    assert errors[1] < 1e-7 and 3.5 < errors[0] / errors[1] < 4.5  # the differences' own O(h^2)


@pytest.mark.parametrize("loss", LOSSES)
def test_no_noise_is_the_plain_landscape(loss):
    net = evaluate(GRID, DATA.y, DATA.label, 0.0, loss, "network", n_blocks=5, mask=SD)
    np.testing.assert_allclose(net.J, compute(GRID, DATA.y, DATA.label, 0.0, loss), rtol=1e-13, atol=1e-15)


def test_one_pass_gradient_averages_to_the_expected_gradient():
    from landscape.network import network_gradient, network_law, network_sample_gradient

    k, eps, f = 3, 0.3, 2.5
    law = network_law(eps, k, mask=SD)
    for loss in LOSSES:
        for y, h in zip(DATA.y, DATA.label):
            mean = law.probabilities @ np.array([network_sample_gradient(f, np.array([y]), np.array([h]), loss,
                                                                         np.array([m])) for m in law.multipliers])
            exact = network_gradient(np.array([f]), np.array([y]), np.array([h]), eps, loss, "expected", k, mask=SD)[0]
            assert mean == pytest.approx(exact, rel=1e-12, abs=1e-15)


def test_drawn_multipliers_take_the_law_s_values_with_its_probabilities():
    # 200000 passes of K = 3 blocks: every draw is one of the 8 atoms, each atom's frequency within 5 standard errors
    from landscape.network import draw_multipliers, network_law

    k, eps, n = 3, 0.3, 200_000
    draws = draw_multipliers(np.random.default_rng(11), eps, k, n, mask=SD)
    law = network_law(eps, k, mask=SD)
    assert draws.shape == (n,) and law.multipliers.size == 8
    nearest = np.argmin(np.abs(draws[:, None] - law.multipliers[None, :]), axis=1)
    np.testing.assert_allclose(draws, law.multipliers[nearest], rtol=1e-14)
    counts = np.bincount(nearest, minlength=8) / n
    se = np.sqrt(law.probabilities * (1 - law.probabilities) / n)
    assert np.all(np.abs(counts - law.probabilities) < 5 * se), (counts, law.probabilities)
    np.testing.assert_array_equal(draw_multipliers(np.random.default_rng(7), 0.0, k, 5, mask=SD), np.ones(5))


def test_stochastic_depth_sgd_path_lies_on_its_landscape_and_the_plot_records_the_mask(tmp_path):
    h5, out = tmp_path / "sd.h5", tmp_path / "sd.png"
    p_last = stochastic_depth_survival_for(0.3, 3)
    config = PlotConfig(eps=(0.3,), blocks=3, solver="network", mask=SD, n_f=101, sgd=True, sgd_mode="sampled",
                        steps=30, out=str(out), h5=str(h5))
    result = run_plot(config)
    assert out.exists() and f"network, K=3 blocks, stochastic depth, p_L={p_last:.4g} (eps=0.3)" in result.table()
    with h5py.File(h5) as f:
        assert f.attrs["mask"] == SD
        grid = f["f"][()]
        np.testing.assert_allclose(f["Jeps"][0], evaluate(grid, DATA.y, DATA.label, 0.3, "l2", "network", n_blocks=3,
                                                          mask=SD).J, rtol=1e-14)
        group = f["sgd"]["eps_0.3"]
        path, J = group["f"][()], group["J"][()]
        assert group.attrs["mask"] == SD
    np.testing.assert_allclose(J, evaluate(path, DATA.y, DATA.label, 0.3, "l2", "network", n_blocks=3, mask=SD).J,
                               rtol=1e-12)


@pytest.mark.parametrize("mode", ["smoothed", "sampled"])
def test_stochastic_depth_network_sgd_without_noise_is_plain_sgd(mode):
    from landscape.sgd import sgd

    common = dict(f0=10.0, lr=5.0, steps=40, batch_size=2, seed=3, mode=mode, loss="l2")
    plain = sgd(DATA.y, DATA.label, 0.0, **common)
    network = sgd(DATA.y, DATA.label, 0.0, n_blocks=4, mask=SD, **common)
    np.testing.assert_allclose(network.f, plain.f, rtol=1e-13)


def test_bad_stochastic_depth_networks_are_refused_naming_the_argument():
    from landscape.sgd import SGDConfig

    too_many = r"mask 'stochastic_depth' with K = 17: its exact law has 2\^K atoms, so K must be <= 16"
    with pytest.raises(ValueError, match=too_many):
        evaluate(GRID, DATA.y, DATA.label, 0.25, "l2", "network", n_blocks=17, mask=SD)
    with pytest.raises(ValueError, match=too_many):
        PlotConfig(eps=(0.25,), blocks=17, solver="network", mask=SD)
    with pytest.raises(ValueError, match=too_many):
        SGDConfig(f0=1.0, eps=0.25, n_blocks=17, mask=SD)
    with pytest.raises(ValueError, match=r"jump: the masks' jump a goes with mask 'dropout' only \(stochastic_depth"):
        evaluate(GRID, DATA.y, DATA.label, 0.25, "l2", "network", n_blocks=3, mask=SD, jump=0.9)
    with pytest.raises(ValueError, match="mask: the network's masks go with solver 'network' only"):
        PlotConfig(eps=(0.25,), mask=SD)


def test_long_sums_show_a_progress_bar_on_a_terminal_and_short_ones_none(monkeypatch):
    import io
    import sys

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    f = np.linspace(-15.0, 14.0, 120)
    evaluate(f, DATA.y, DATA.label, 0.25, "l2", "network", n_blocks=3, mask=SD)  # one chunk: no bar
    assert terminal.getvalue() == ""
    evaluate(f, DATA.y, DATA.label, 0.25, "l2", "network", n_blocks=16, mask=SD)  # 2^16 atoms: 40 chunks
    assert "network K=16" in terminal.getvalue() and "0/40 [" in terminal.getvalue()  # leave=False: no last frame
