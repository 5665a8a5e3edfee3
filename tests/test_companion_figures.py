"""Each companion figure runs with tiny settings and writes PNG + PDF + HDF5 whose datasets are what the
library returns for the same settings (training is seeded and single-threaded, hence reproducible)."""
from __future__ import annotations

from dataclasses import replace

import h5py
import numpy as np
import pytest
import torch
from PIL import Image

from nets.companion.experiments import GradientNormConfig, PropagationConfig, run_gradient_norms, run_propagation
from nets.companion.models import NetSpec
from nets.companion.sweeps import GridConfig, config_hash, run_grid
from nets.companion.trainer import TrainConfig

torch.set_num_threads(1)
TINY_TRAIN = TrainConfig(epochs=2, batch_size=20, lr=1e-2)


def _check_files(files, out_dir, name):
    names = sorted(p.name for p in files)
    assert names == sorted([f"{name}.png", f"{name}.pdf", f"{name}.h5"])
    with Image.open(out_dir / f"{name}.png") as image:
        assert image.size[0] > 200 and image.size[1] > 100
    assert (out_dir / f"{name}.pdf").read_bytes()[:4] == b"%PDF"
    assert not list(out_dir.glob(".*"))  # no temporary files left behind


def test_euler_figure_matches_library(tmp_path):
    from figures import euler_steps
    from nets.companion import euler

    files = euler_steps.make(out_dir=tmp_path, fast=True, results=None)
    _check_files(files, tmp_path, euler_steps.NAME)
    with h5py.File(tmp_path / "robust_fig1.h5") as h5:
        assert h5.attrs["stability_limit"] == pytest.approx(2 / 2.3)
        for h in euler_steps.settings(True)["h_values"]:
            path = euler.explicit_euler(h, 6.0)
            np.testing.assert_array_equal(h5[f"h={h:g}/x"][...], path.x)
            np.testing.assert_array_equal(h5[f"h={h:g}/exact"][...], path.exact)
        errors = [euler.error_at(1.0, h) for h in h5["error/h"][...]]
        np.testing.assert_array_equal(h5["error/error_at_t1"][...], errors)


@pytest.mark.parametrize("module_name", ["propagation_plain", "propagation_shrinkage_h01", "propagation_batchnorm"])
def test_propagation_figures(tmp_path, monkeypatch, module_name):
    import importlib

    module = importlib.import_module(f"figures.{module_name}")
    full = module.settings(False)
    tiny = PropagationConfig(net=NetSpec(depth=4, h=full.net.h, variant=full.net.variant), train=TINY_TRAIN,
                             n_train=60, n_test=30)
    monkeypatch.setattr(module, "settings", lambda fast: tiny)
    files = module.make(out_dir=tmp_path, fast=True, results=None)
    _check_files(files, tmp_path, module.NAME)
    expected = run_propagation(tiny)
    with h5py.File(tmp_path / f"{module.NAME}.h5") as h5:
        np.testing.assert_array_equal(h5["features/layers"][...], [0, 1, 2, 3, 4])
        np.testing.assert_allclose(h5["features/features"][...], expected.features, rtol=1e-6)
        np.testing.assert_array_equal(h5["features/labels"][...], expected.labels)
        np.testing.assert_allclose(h5["features/probe_accuracy"][...], expected.probe_accuracy)
        np.testing.assert_allclose(h5["depth_profile/step_lengths"][...], expected.step_lengths, rtol=1e-6)
        assert h5["training"].attrs["test_accuracy"] == pytest.approx(expected.test_accuracy)
        assert f"Fig. {module.NAME[-1]}" in h5.attrs["paper"]


def test_full_propagation_settings_are_the_papers():
    from nets.companion import presets

    # the captions of Zhang & Wynter Figs. 2-7 (block, h, layers), written out here rather than read from the
    # presets' own table, which test_each_propagation_module_draws_its_papers_network compares the modules with
    captions = {"plain": ("residual", 1.0, 100), "plain_h01": ("residual", 0.1, 500),
                "shrinkage": ("shrinkage", 1.0, 100), "shrinkage_h01": ("shrinkage", 0.1, 500),
                "batchnorm": ("batchnorm", 1.0, 100), "batchnorm_h01": ("batchnorm", 0.1, 500)}
    for fast in (False, True):
        nets_drawn = {k: presets.propagation(k, fast).net for k in presets.PROPAGATION_FIGURES}
        assert {k: (n.variant, n.h, n.depth) for k, n in nets_drawn.items()} == captions
    assert presets.PAPER_FIGURE == {"plain": 2, "plain_h01": 3, "shrinkage": 4, "shrinkage_h01": 5,
                                    "batchnorm": 6, "batchnorm_h01": 7}
    wine = presets.smooth_wine(False)
    assert (wine.depths, wine.trials, wine.train.epochs, wine.train.batch_size) == ((20,), 10, 50, 10)
    assert presets.smooth_synthetic(False).h_values == tuple(round(0.1 * i, 1) for i in range(1, 11))
    with pytest.raises(ValueError, match="name"):
        presets.propagation("vanilla", False)


TINY_GRIDS = {
    "smooth_accuracy_synthetic": GridConfig(dataset="synthetic", variants=("residual", "shrinkage"), depths=(3,),
                                            h_values=(0.5, 1.0), trials=2, train=TINY_TRAIN,
                                            dataset_kwargs=(("n_train", 60), ("n_test", 30))),
    "smooth_accuracy_wine": GridConfig(dataset="wine", variants=("batchnorm",), depths=(2,), h_values=(0.1, 1.0),
                                       trials=2, train=TINY_TRAIN),
    "digits_accuracy_h": GridConfig(dataset="digits", variants=("batchnorm",), depths=(2, 3), h_values=(0.1, 10.0),
                                    trials=2, train=TrainConfig(epochs=1, batch_size=256, lr=0.1, optimizer="sgd")),
}


@pytest.mark.parametrize("module_name", sorted(TINY_GRIDS))
def test_accuracy_vs_h_figures(tmp_path, monkeypatch, module_name):
    import importlib

    module = importlib.import_module(f"figures.{module_name}")
    tiny = TINY_GRIDS[module_name]
    monkeypatch.setattr(module, "settings", lambda fast: tiny)
    files = module.make(out_dir=tmp_path / "out", fast=False, results=tmp_path / "results")
    _check_files(files, tmp_path / "out", module.NAME)
    # a full (not --fast) sweep keeps a resumable checkpoint under results/companion
    assert [p.name for p in (tmp_path / "results" / "companion").iterdir()] == [
        f"{module.NAME}-{config_hash(tiny)}.json"]
    tmp_path = tmp_path / "out"
    expected = run_grid(tiny, progress=False)
    statistic = "median" if module_name == "digits_accuracy_h" else "mean"
    with h5py.File(tmp_path / f"{module.NAME}.h5") as h5:
        assert h5.attrs["std"] == "population std over trials (ddof = 0)"  # what group["std"] is (below)
        for v, variant in enumerate(tiny.variants):
            for d, depth in enumerate(tiny.depths):
                group = h5[f"{variant}/depth={depth}/noise=0"]
                trials = expected.test_accuracy[v, d, :, 0, :]
                np.testing.assert_allclose(group["test_accuracy"][...], trials)
                centre = np.median(trials, axis=1) if statistic == "median" else trials.mean(axis=1)
                np.testing.assert_allclose(group[statistic][...], centre)
                np.testing.assert_allclose(group["std"][...], trials.std(axis=1))
                np.testing.assert_array_equal(group["h"][...], tiny.h_values)


def test_digits_noise_figure(tmp_path, monkeypatch):
    from figures import digits_noise

    tiny = GridConfig(dataset="digits", variants=("residual",), depths=(2,), h_values=(1.0, 0.1),
                      noise_levels=(0.0, 2.0), trials=2, train=TrainConfig(epochs=1, batch_size=256, lr=0.1,
                                                                           optimizer="sgd"))
    monkeypatch.setattr(digits_noise, "settings", lambda fast: tiny)
    files = digits_noise.make(out_dir=tmp_path, fast=True, results=None)
    _check_files(files, tmp_path, digits_noise.NAME)
    expected = run_grid(tiny, progress=False)
    with h5py.File(tmp_path / "robust_fig8_digits.h5") as h5:
        assert h5.attrs["std"] == "population std over trials (ddof = 0)"
        for k, h in enumerate(tiny.h_values):
            group = h5[f"residual/depth=2/h={h:g}"]
            np.testing.assert_allclose(group["test_accuracy"][...], expected.test_accuracy[0, 0, k])
            np.testing.assert_allclose(group["mean"][...], expected.test_accuracy[0, 0, k].mean(axis=1))
            np.testing.assert_allclose(group["std"][...], expected.test_accuracy[0, 0, k].std(axis=1, ddof=0))
            np.testing.assert_array_equal(group["noise"][...], [0.0, 2.0])


def test_moons_filtering_figure(tmp_path, monkeypatch):
    from figures import moons_filtering

    base = PropagationConfig(net=NetSpec(depth=3, h=1.0), train=TINY_TRAIN, dataset="moons", noise=0.25,
                             n_train=60, n_test=30, perturbation_std=0.1, layers=(0, 1, 3))
    tiny = (base, replace(base, net=NetSpec(depth=3, h=0.1)))
    monkeypatch.setattr(moons_filtering, "settings", lambda fast: tiny)
    files = moons_filtering.make(out_dir=tmp_path, fast=True, results=None)
    _check_files(files, tmp_path, moons_filtering.NAME)
    with h5py.File(tmp_path / "robust_fig7.h5") as h5:
        for config in tiny:
            expected = run_propagation(config)
            tag = f"h={config.net.h:g}"
            np.testing.assert_allclose(h5[f"{tag}/features/features"][...], expected.features, rtol=1e-6)
            np.testing.assert_allclose(h5[f"{tag}/noise_amplification/perturbation_growth"][...],
                                       expected.perturbation_growth, rtol=1e-6)
            assert h5[f"{tag}/noise_amplification/perturbation_growth"][0] == pytest.approx(1.0)
        np.testing.assert_array_equal(h5["training_data/x"][...], tiny[0].data().x_train)


def test_gradient_norms_figure(tmp_path, monkeypatch):
    from figures import gradient_norms

    tiny = GradientNormConfig(net=NetSpec(depth=3, variant="batchnorm"), h_values=(1.0, 0.1),
                              train=TrainConfig(epochs=1, batch_size=256, lr=0.1, optimizer="sgd"), lrs=(0.1, 0.01))
    monkeypatch.setattr(gradient_norms, "settings", lambda fast: tiny)
    files = gradient_norms.make(out_dir=tmp_path, fast=True, results=None)
    _check_files(files, tmp_path, gradient_norms.NAME)
    expected = run_gradient_norms(tiny)
    with h5py.File(tmp_path / "robust_fig2.h5") as h5:
        assert h5.attrs["shown_layers"] == "blocks.1,blocks.2"
        assert sorted(expected.runs) == [(0.01, 0.1), (0.01, 1.0), (0.1, 0.1), (0.1, 1.0)]
        for (lr, h), run in expected.runs.items():
            group = h5[f"lr={lr:g}/h={h:g}"]
            np.testing.assert_allclose(group["grad_norms"][...], run.grad_norms, rtol=1e-6)
            np.testing.assert_allclose(group["weight_norms"][...], run.weight_norms, rtol=1e-6)
            assert group.attrs["layer_names"] == "blocks.0,blocks.1,blocks.2,fc"
            assert run.grad_norms.shape == (6, 4)  # ceil(1437 / 256) iterations, 3 blocks + head


def test_gradient_norms_largest_finite_ignores_nan():
    import warnings

    from figures.gradient_norms import largest_finite

    grad = np.array([[1.0, 2.0, np.nan, 5.0],
                     [3.0, np.nan, np.nan, np.inf],
                     [np.nan, 1.0, np.nan, 4.0]])  # columns = blocks; a diverged run ends in NaN / inf
    assert np.isnan(grad.max(axis=0)).sum() == 3  # the plain max loses every block that ever became NaN
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "All-NaN slice" RuntimeWarning for the all-NaN block
        best = largest_finite(grad)
    np.testing.assert_array_equal(best[[0, 1, 3]], [3.0, 2.0, 5.0])
    assert np.isnan(best[2])


def test_digits_accuracy_h_summary_names_both_presets():
    from figures import digits_accuracy_h

    for fast, prefix in ((False, "h "), (True, "--fast: h ")):
        config = digits_accuracy_h.settings(fast)
        assert f"{prefix}{min(config.h_values):g}..{max(config.h_values):g} at {config.depths[0]} and " \
               f"{config.depths[1]} blocks" in digits_accuracy_h.SUMMARY


def test_companion_figures_are_registered_and_run_from_the_cli(tmp_path, capsys):
    from figures import registry
    from figures.cli import main

    ours = ["robust_fig1", "smooth_fig1", "smooth_fig2", "smooth_fig3", "smooth_fig4", "smooth_fig5", "smooth_fig6", "smooth_fig7",
            "smooth_fig8", "smooth_fig9", "robust_fig7", "robust_fig2", "robust_fig9_digits", "robust_fig8_digits"]
    for name in ours:
        module = registry.load(name)
        assert module.SUMMARY and callable(module.make) and callable(module.settings)
    assert main(["robust_fig1", "--fast", "--out-dir", str(tmp_path)]) == 0
    assert (tmp_path / "robust_fig1.png").exists()


def test_each_propagation_module_draws_its_papers_network():
    import importlib

    from nets.companion import presets

    for key, (variant, h, depth) in presets.PROPAGATION_FIGURES.items():
        module = importlib.import_module(f"figures.propagation_{key}")
        assert module.NAME == f"smooth_fig{presets.PAPER_FIGURE[key]}"
        for fast in (True, False):
            net = module.settings(fast).net
            assert (net.variant, net.h, net.depth) == (variant, h, depth)


def test_synthetic_data_figure_matches_library(tmp_path):
    from figures import propagation_data
    from nets.companion import presets
    from nets.companion.datasets import synthetic_binary

    files = propagation_data.make(out_dir=tmp_path, fast=True, results=None)
    _check_files(files, tmp_path, propagation_data.NAME)
    config = presets.propagation("plain", True)
    data = synthetic_binary(config.n_train, config.n_test, seed=config.data_seed)
    with h5py.File(tmp_path / "smooth_fig1.h5") as h5:
        np.testing.assert_array_equal(h5["train/x"][...], data.x_train)
        np.testing.assert_array_equal(h5["test/y"][...], data.y_test)
        assert h5.attrs["amplitude"] == data.params["amplitude"]


def test_accuracy_error_bars_stay_inside_zero_one():
    from figures.smooth_accuracy_synthetic import accuracy_error_bars

    bars = accuracy_error_bars(np.array([0.96, 0.5, 0.0, 0.99]), np.array([0.38, 0.1, 0.0, 0.05]))
    lower, upper = bars
    np.testing.assert_allclose(lower, [0.38, 0.1, 0.0, 0.05])
    np.testing.assert_allclose(upper, [0.04, 0.1, 0.0, 0.01])
    centre = np.array([0.96, 0.5, 0.0, 0.99])
    assert np.all(centre - lower >= 0) and np.all(centre + upper <= 1 + 1e-12)


def test_diverged_points_are_labelled_or_crossed():
    """Some trials diverged: a 'k/n div.' label; all of them: a black x and one legend entry, no label."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from figures.smooth_accuracy_synthetic import annotate_diverged, legend_with_diverged

    fig, ax = plt.subplots()
    flags = np.array([[False, False, False], [True, False, False], [True, True, True], [True, True, True]])
    ax.plot([1, 2, 3, 4], [0.9, 0.8, 0.0, 0.0], label="line")
    assert annotate_diverged(ax, np.array([1, 2, 3, 4]), np.array([0.9, 0.8, 0.0, 0.0]), flags) is True
    assert [t.get_text() for t in ax.texts] == ["1/3 div."]
    crosses = [line for line in ax.lines if line.get_marker() == "x"]
    assert len(crosses) == 2
    legend_with_diverged(ax, True)
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["line", "all trials diverged"]
    plt.close(fig)
    fig, ax = plt.subplots()
    assert annotate_diverged(ax, np.array([1.0]), np.array([0.9]), np.array([[False, True]])) is False
    plt.close(fig)


def test_depth_profile_plots_block_k_step_at_layer_k():
    """At x = k the step curve is ||y_k - y_{k-1}|| (block k's step) and the range curve is max |y_k|."""
    from types import SimpleNamespace

    import matplotlib
    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    from figures.propagation import plot_depth_profile
    from nets.companion.propagation import step_lengths

    rng = np.random.default_rng(3)
    features = np.cumsum(rng.normal(size=(6, 4, 2)) * np.arange(1, 7)[:, None, None], axis=0)
    result = SimpleNamespace(step_lengths=step_lengths(features), feature_scale=np.abs(features).max(axis=(1, 2)))
    ax = Figure().subplots()
    plot_depth_profile(ax, result)
    lines = {line.get_label(): line for line in ax.get_lines()}
    step = lines["mean step ||y_k - y_{k-1}||"]
    for x, y in zip(step.get_xdata(), step.get_ydata()):
        k = int(x)
        assert y == pytest.approx(np.linalg.norm(features[k] - features[k - 1], axis=1).mean(), rel=1e-12)
    scale = lines["feature range max |y_k|"]
    np.testing.assert_allclose(scale.get_ydata(), [np.abs(features[k]).max() for k in scale.get_xdata()])


@pytest.mark.parametrize("fast", [True, False])
def test_a_fast_figure_says_its_shorter_recipe_in_the_title(tmp_path, monkeypatch, fast):
    """--fast trains with 10x the learning rate for a tenth of the steps on fewer points; the gallery shows
    --fast renders, so their titles say so (it was only in the HDF5's `fast` attribute)."""
    import figures.output
    from figures import moons_filtering

    base = PropagationConfig(net=NetSpec(depth=3, h=1.0), train=TINY_TRAIN, dataset="moons", noise=0.25,
                             n_train=60, n_test=30, perturbation_std=0.1, layers=(0, 1, 3))
    monkeypatch.setattr(moons_filtering, "settings", lambda fast: (base, replace(base, net=NetSpec(depth=3, h=0.1))))
    titles = []
    monkeypatch.setattr(figures.output, "save_outputs",
                        lambda fig, *args, **kwargs: titles.append(fig._suptitle.get_text()) or [])
    moons_filtering.make(out_dir=tmp_path, fast=fast, results=None)
    note = f" [--fast: {TINY_TRAIN.describe()}, 60 training points]"
    assert titles[0].endswith(note) == fast and (note in titles[0]) == fast
    assert TrainConfig(epochs=20, batch_size=100, lr=0.01).describe() == "Adam lr 0.01, 20 epochs, batch 100"
