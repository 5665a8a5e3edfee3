"""Companion trainer, per-layer norms and feature propagation, checked against independent computations."""
import math

import numpy as np
import pytest
import torch

from nets.companion import datasets
from nets.companion.layer_norms import group_name, layer_groups
from nets.companion.models import NetSpec, build_net
from nets.companion.propagation import (layer_features, linear_probe_accuracy, perturbation_growth, shown_layers,
                                        step_lengths)
from nets.companion.trainer import TrainConfig, accuracy, train

torch.set_num_threads(1)


def test_group_names():
    assert group_name("blocks.3.branch.linear1.weight") == "blocks.3"
    assert group_name("blocks.12.branch.norm.bias") == "blocks.12"
    assert group_name("fc.weight") == "fc"
    assert group_name("stage.0.blocks.1.w") == "stage.0"


def test_layer_groups_of_mlp_resnet():
    model = build_net(NetSpec(depth=3, h=0.5, variant="batchnorm"), 2, 2, seed=0)
    groups = layer_groups(model)
    assert list(groups) == ["blocks.0", "blocks.1", "blocks.2", "fc"]
    n_params = sum(p.numel() for params in groups.values() for p in params)
    assert n_params == sum(p.numel() for p in model.parameters())


def test_recorded_norms_match_an_independent_first_step_and_final_weights():
    data = datasets.moons(n_train=64, n_test=32, noise=0.1, seed=0)
    spec = NetSpec(depth=4, h=0.5, variant="residual")
    config = TrainConfig(epochs=3, batch_size=16, lr=0.05, optimizer="sgd", seed=5, record_norms=True)
    model = build_net(spec, 2, 2, seed=11)
    result = train(model, data, config)
    assert result.grad_norms.shape == result.weight_norms.shape == (3 * 4, 5)
    assert result.layer_names == ["blocks.0", "blocks.1", "blocks.2", "blocks.3", "fc"]
    # final weight norms: recompute from the trained parameters by name
    named = dict(model.named_parameters())
    for j, layer in enumerate(result.layer_names):
        expected = math.sqrt(sum(float(p.detach().pow(2).sum()) for n, p in named.items() if n.startswith(layer + ".")))
        assert result.weight_norms[-1, j] == pytest.approx(expected, rel=1e-6)
    # first gradient: same initialization, same first batch, plain autograd
    fresh = build_net(spec, 2, 2, seed=11)
    order = torch.randperm(64, generator=torch.Generator().manual_seed(5))[:16]
    x = torch.as_tensor(data.x_train)[order]
    y = torch.as_tensor(data.y_train)[order]
    torch.nn.functional.cross_entropy(fresh(x), y).backward()
    for j, layer in enumerate(result.layer_names):
        expected = math.sqrt(sum(float(p.grad.pow(2).sum()) for n, p in fresh.named_parameters()
                                 if n.startswith(layer + ".")))
        assert result.grad_norms[0, j] == pytest.approx(expected, rel=1e-5)


def test_trainer_learns_wine_and_is_deterministic():
    data = datasets.wine(seed=0)
    config = TrainConfig(epochs=15, batch_size=16, lr=1e-2, optimizer="adam", seed=1)
    first = train(build_net(NetSpec(depth=3, h=0.5), data.in_features, 3, seed=2), data, config)
    second = train(build_net(NetSpec(depth=3, h=0.5), data.in_features, 3, seed=2), data, config)
    assert first.test_accuracy >= 0.9 and first.train_accuracy >= 0.95
    assert first.train_loss[-1] < first.train_loss[0]
    np.testing.assert_array_equal(first.train_loss, second.train_loss)
    assert not first.diverged


def test_divergence_is_reported_and_counted_as_errors():
    data = datasets.wine(seed=0)
    model = build_net(NetSpec(depth=30, h=1.0), data.in_features, 3, seed=0)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1e3)  # make the forward pass overflow float32
    result = train(model, data, TrainConfig(epochs=3, batch_size=32, lr=1.0, optimizer="sgd"))
    assert result.diverged and result.iterations == 0
    assert result.test_accuracy == 0.0  # non-finite logits are never counted as correct


def test_trainer_rejects_bad_config():
    with pytest.raises(ValueError, match="optimizer"):
        TrainConfig(optimizer="rmsprop")
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="variant"):
        NetSpec(variant="dense")


def test_shown_layers_are_the_papers():
    assert shown_layers(100) == [0, 5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100]
    assert shown_layers(500) == [0, 5, 50, 100, 150, 200, 250, 300, 350, 400, 450, 500]
    assert shown_layers(3) == [0, 1, 2, 3]


@pytest.mark.parametrize("variant", ["residual", "shrinkage"])
def test_layer_features_follow_eqs_7_and_8(variant):
    model = build_net(NetSpec(depth=5, h=0.3, variant=variant), 2, 2, seed=3)
    x = np.random.default_rng(0).normal(size=(7, 2))
    features = layer_features(model, x)
    p = {n: t.detach().double().numpy() for n, t in model.named_parameters()}
    y = x.copy()
    np.testing.assert_allclose(features[0], x, rtol=1e-6)
    for i in range(5):
        k1, b1 = p[f"blocks.{i}.branch.linear1.weight"], p[f"blocks.{i}.branch.linear1.bias"]
        hidden = np.maximum(y @ k1.T + b1, 0.0)
        if variant == "residual":
            y = y + 0.3 * (hidden @ p[f"blocks.{i}.branch.linear2.weight"].T + p[f"blocks.{i}.branch.linear2.bias"])
        else:
            y = y - 0.3 * (hidden @ k1 + p[f"blocks.{i}.branch.bias2"])
        np.testing.assert_allclose(features[i + 1], y, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer_features(model, x, [0, 5]), features[[0, 5]])


def test_linear_probe_step_lengths_and_noise_growth():
    rng = np.random.default_rng(1)
    x = rng.uniform(-1, 1, size=(400, 2))
    line = (x[:, 0] + 0.3 * x[:, 1] > 0).astype(int)
    xor = ((x[:, 0] > 0) ^ (x[:, 1] > 0)).astype(int)
    feats = np.stack([x, x])
    assert linear_probe_accuracy(feats[:, :300], line[:300], feats[:, 300:], line[300:])[0] >= 0.98
    assert linear_probe_accuracy(feats[:, :300], xor[:300], feats[:, 300:], xor[300:])[0] <= 0.75
    bad = feats.copy()
    bad[1, 0, 0] = np.inf
    assert np.isnan(linear_probe_accuracy(bad, line, bad, line)[1])
    path = np.zeros((3, 2, 2))
    path[1, :, 0] = 3.0
    path[2, :, 0] = 3.0
    path[2, :, 1] = 4.0
    np.testing.assert_allclose(step_lengths(path), [3.0, 4.0])
    # a network with a vanishing step factor is the identity: perturbations are passed on unchanged
    model = build_net(NetSpec(depth=6, h=1e-7), 2, 2, seed=0)
    np.testing.assert_allclose(perturbation_growth(model, x[:50], std=0.1), 1.0, rtol=1e-4)


def test_accuracy_helper():
    model = torch.nn.Linear(2, 2)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 0.0], [-1.0, 0.0]]))
        model.bias.zero_()
    x = np.array([[1.0, 0.0], [-1.0, 0.0], [2.0, 1.0], [-3.0, 1.0]], dtype=np.float32)
    assert accuracy(model, x, np.array([0, 1, 0, 0])) == pytest.approx(0.75)


def test_grid_result_does_not_depend_on_workers(monkeypatch):
    from nets.companion.sweeps import GridConfig, default_workers, run_grid

    config = GridConfig(dataset="wine", variants=("residual",), depths=(2,), h_values=(0.5, 1.0), trials=2,
                        train=TrainConfig(epochs=2, batch_size=32, lr=1e-2))
    serial = run_grid(config, progress=False, workers=1)
    parallel = run_grid(config, progress=False, workers=2)
    np.testing.assert_array_equal(serial.test_accuracy, parallel.test_accuracy)
    np.testing.assert_array_equal(serial.train_accuracy, parallel.train_accuracy)
    assert np.isfinite(serial.test_accuracy).all()
    monkeypatch.setenv("RESNET_SDE_WORKERS", "3")
    assert default_workers() == 3
    monkeypatch.setenv("RESNET_SDE_WORKERS", "zero")
    with pytest.raises(ValueError, match="RESNET_SDE_WORKERS"):
        default_workers()
    with pytest.raises(ValueError, match="workers"):
        run_grid(config, workers=0)


def test_interrupted_grid_resumes_from_its_checkpoint(tmp_path, monkeypatch):
    import json

    from nets.companion import sweeps

    config = sweeps.GridConfig(dataset="wine", variants=("residual",), depths=(2,), h_values=(0.5, 1.0), trials=2,
                               train=TrainConfig(epochs=2, batch_size=32, lr=1e-2))
    reference = sweeps.run_grid(config, progress=False, workers=1)
    path = tmp_path / "grid.json"
    real = sweeps._run_point
    calls = []

    def dies_after_two(*args, **kwargs):
        if len(calls) == 2:
            raise KeyboardInterrupt
        calls.append(args)
        return real(*args, **kwargs)

    monkeypatch.setattr(sweeps, "_run_point", dies_after_two)
    with pytest.raises(KeyboardInterrupt):
        sweeps.run_grid(config, progress=False, workers=1, checkpoint=path)
    assert len(json.loads(path.read_text())["points"]) == 2
    calls.clear()
    monkeypatch.setattr(sweeps, "_run_point", lambda *a, **k: (calls.append(a), real(*a, **k))[1])
    resumed = sweeps.run_grid(config, progress=False, workers=1, checkpoint=path)
    assert len(calls) == 2  # only the two missing points were trained
    np.testing.assert_array_equal(resumed.test_accuracy, reference.test_accuracy)
    np.testing.assert_array_equal(resumed.diverged, reference.diverged)
    other = sweeps.GridConfig(**{**config.__dict__, "trials": 3})
    with pytest.raises(ValueError, match="another configuration"):
        sweeps.run_grid(other, progress=False, workers=1, checkpoint=path)
    assert not list(tmp_path.glob(".*"))


@pytest.mark.parametrize("content, needle", [
    ("[1]", "no config_hash and points"),
    ("", "not JSON"),
    ("{\"config_hash\": \"HASH\"}", "no config_hash and points"),
    ("{\"config_hash\": \"HASH\", \"points\": {\"[0, 0, 0, 0]\": [0.9, 1.0, false, 1.0]}}", "point"),
    ("{\"config_hash\": \"HASH\", \"points\": {\"[0, 0, 9, 0, 0]\": [0.9, 1.0, false, 1.0]}}", "point"),
    ("{\"config_hash\": \"HASH\", \"points\": {\"[0, 0, 0, 0, 0]\": [0.9, 1.0]}}", "point"),
    ("{\"config_hash\": \"HASH\", \"points\": {\"x\": [0.9, 1.0, false, 1.0]}}", "point"),
])
def test_a_damaged_checkpoint_is_refused_in_one_line_naming_it(tmp_path, monkeypatch, capsys, content, needle):
    """A checkpoint that is not what point_checkpoint.save_points writes: a ValueError naming the file (it was an
    AttributeError / KeyError / unpacking error, a traceback from `python -m figures`), before any training."""
    from figures import smooth_accuracy_wine
    from figures.cli import main
    from figures.smooth_accuracy_synthetic import grid_checkpoint
    from nets.companion import sweeps

    config = sweeps.GridConfig(dataset="wine", variants=("residual",), depths=(2,), h_values=(0.5, 1.0), trials=2,
                               train=TrainConfig(epochs=2, batch_size=32, lr=1e-2))
    path = grid_checkpoint(tmp_path / "results", smooth_accuracy_wine.NAME, config, fast=False)
    path.parent.mkdir(parents=True)
    path.write_text(content.replace("HASH", sweeps.config_hash(config)))
    monkeypatch.setattr(sweeps, "_run_point", lambda *a, **k: pytest.fail("trained despite a damaged checkpoint"))
    with pytest.raises(ValueError, match=needle) as error:
        sweeps.run_grid(config, progress=False, workers=1, checkpoint=path)
    assert str(path) in str(error.value)
    monkeypatch.setattr(smooth_accuracy_wine, "settings", lambda fast: config)
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(["smooth_fig9", "--out-dir", str(tmp_path / "out"), "--results", str(tmp_path / "results")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(path) in err and "Traceback" not in err
