"""Companion-paper data sets and the explicit Euler example (robust ResNet Fig. 1): exact properties."""
import numpy as np
import pytest

from nets.companion import datasets, euler


def test_synthetic_shapes_determinism_and_balance():
    a = datasets.synthetic_binary(n_train=400, n_test=200, seed=3)
    b = datasets.synthetic_binary(n_train=400, n_test=200, seed=3)
    c = datasets.synthetic_binary(n_train=400, n_test=200, seed=4)
    assert a.x_train.shape == (400, 2) and a.x_test.shape == (200, 2)
    assert a.x_train.dtype == np.float32 and a.y_train.dtype == np.int64
    np.testing.assert_array_equal(a.x_train, b.x_train)
    np.testing.assert_array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.x_train, c.x_train)
    assert not np.array_equal(a.x_train[:200], a.x_test)  # independent streams
    assert 0.4 < a.y_train.mean() < 0.6


def test_synthetic_separated_by_its_curve_with_margin_but_not_by_a_line():
    from sklearn.linear_model import LogisticRegression

    data = datasets.synthetic_binary(n_train=2000, n_test=500, seed=0, amplitude=0.7, frequency=1.5, margin=0.1)
    x, y = data.x_train.astype(np.float64), data.y_train
    gap = x[:, 1] - datasets.sine_boundary(x[:, 0], 0.7, 1.5)
    assert np.all(np.abs(gap) >= 0.05 - 1e-6)
    assert np.array_equal(y, (gap > 0).astype(np.int64))  # the curve classifies all points
    assert np.all(np.abs(x) <= 1.0)
    linear = LogisticRegression(C=1e4, max_iter=5000).fit(x, y)
    assert linear.score(x, y) < 0.85  # no straight line does


def test_moons_wine_digits():
    m = datasets.moons(n_train=300, n_test=100, noise=0.1, seed=1)
    assert m.x_train.shape == (300, 2) and set(np.unique(m.y_train)) == {0, 1}
    np.testing.assert_array_equal(m.x_test, datasets.moons(n_train=300, n_test=100, noise=0.1, seed=1).x_test)
    w = datasets.wine(seed=2)
    assert w.x_train.shape[1] == 13 and w.num_classes == 3 and len(w.x_train) + len(w.x_test) == 178
    np.testing.assert_allclose(w.x_train.mean(axis=0), 0.0, atol=1e-5)
    np.testing.assert_allclose(w.x_train.std(axis=0), 1.0, atol=1e-4)
    # stratified: class proportions agree between splits within one sample
    assert np.abs(np.bincount(w.y_train) / len(w.y_train) - np.bincount(w.y_test) / len(w.y_test)).max() < 0.03
    d = datasets.digits(seed=0)
    assert d.x_train.shape[1] == 64 and d.num_classes == 10 and len(d.x_train) + len(d.x_test) == 1797
    assert np.isfinite(d.x_train).all()


def test_input_noise_only_on_training_inputs():
    d = datasets.wine(seed=0)
    noisy = datasets.with_input_noise(d, 0.5, seed=7)
    np.testing.assert_array_equal(noisy.x_test, d.x_test)
    delta = noisy.x_train - d.x_train
    assert abs(delta.std() - 0.5) < 0.05 and abs(delta.mean()) < 0.05
    np.testing.assert_array_equal(noisy.x_train, datasets.with_input_noise(d, 0.5, seed=7).x_train)


@pytest.mark.parametrize("call, word", [
    (lambda: datasets.load_dataset("mnist"), "dataset"),
    (lambda: datasets.synthetic_binary(n_train=0), "n_train"),
    (lambda: datasets.synthetic_binary(margin=1.5), "margin"),
    (lambda: datasets.wine(test_fraction=1.0), "test_fraction"),
    (lambda: datasets.with_input_noise(datasets.wine(), -1.0), "std"),
    (lambda: euler.explicit_euler(0.0), "h"),
    (lambda: euler.stability_limit(1.0), "lam"),
])
def test_bad_arguments_name_themselves(call, word):
    with pytest.raises(ValueError, match=word):
        call()


def test_euler_iterates_are_powers_of_the_amplification_factor():
    for h in (0.05, 0.3, 0.8, 0.95):
        path = euler.explicit_euler(h, t_end=5.0)
        n = np.arange(len(path.x))
        np.testing.assert_allclose(path.x, (1 - 2.3 * h) ** n, rtol=1e-12, atol=1e-300)
        np.testing.assert_allclose(path.exact, np.exp(-2.3 * path.t), rtol=1e-14)


def test_euler_is_first_order():
    hs = np.array([0.02, 0.01, 0.005, 0.0025])
    errors = np.array([euler.error_at(1.0, h) for h in hs])
    orders = np.log2(errors[:-1] / errors[1:])
    np.testing.assert_allclose(orders, 1.0, atol=0.03)
    # leading error term of Euler at t: t lam^2 exp(lam t) h / 2
    np.testing.assert_allclose(errors[-1] / hs[-1], 2.3**2 * np.exp(-2.3) / 2, rtol=0.01)


def test_euler_stability_threshold_2_over_2_3():
    limit = euler.stability_limit(-2.3)
    assert limit == pytest.approx(2 / 2.3)
    grid = np.linspace(0.05, 1.2, 231)
    decays = np.array([abs(euler.explicit_euler(h, t_end=200.0).x[-1]) < 1.0 for h in grid])
    # numerically observed threshold: the last decaying step lies just below 2/2.3, the first growing just above
    assert grid[decays].max() < limit < grid[~decays].min()
    assert grid[~decays].min() - grid[decays].max() < 0.006
    assert all(euler.is_stable(h) == (h < limit) for h in grid)
