"""nets.flow_steps: the relative Euler steps ||h F(X_k)|| / ||S X_k|| of a network's residual blocks."""
from __future__ import annotations

import json
import numpy as np
import pytest
import torch
from torch import nn

from cli_checks import assert_one_line_exit_2
from nets import build_model
from nets.flow_steps import flow_steps, format_table, main, run_flow_steps
from nets.trainer import TrainConfig, train


def settled(name: str, **options) -> nn.Module:
    """A seeded model whose BatchNorm running statistics are not the initial (0, 1): eval mode is non-trivial."""
    torch.manual_seed(0)
    model = build_model(name, num_classes=10, **options)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            model(torch.randn(32, 3, 32, 32))
    return model.eval()


def test_steps_are_the_differences_of_the_forward_states():
    """For identity-shortcut blocks S = I, so the step is X_{k+1} - X_k of the blocks' own forward calls."""
    model = settled("preresnet", depth=14)  # n = 2: blocks 2 and 4 change the width (projection shortcuts)
    x = torch.randn(40, 3, 32, 32)
    steps = flow_steps(model, x, batch_size=16)
    with torch.no_grad():
        state, expected = model.stem(x), []
        for block in model.blocks:
            following = block(state)
            move = following - block.shortcut(state)
            expected.append((move.flatten(1).norm(dim=1) / block.shortcut(state).flatten(1).norm(dim=1)).double())
            state = following
    identity = [k for k, block in enumerate(model.blocks) if isinstance(block.shortcut, nn.Identity)]
    assert identity == [0, 1, 3, 5]
    for k in range(len(model.blocks)):
        np.testing.assert_allclose(steps.relative_step[k], expected[k].mean().item(), rtol=1e-5)
        np.testing.assert_allclose(steps.relative_step_std[k], expected[k].numpy().std(), rtol=1e-4)
    assert steps.blocks == tuple(f"blocks.{k}" for k in range(6)) and steps.n_inputs == 40
    np.testing.assert_allclose(steps.total, sum(e.mean().item() for e in expected), rtol=1e-5)


def test_doubling_one_blocks_h_doubles_its_step_and_leaves_its_input_alone():
    model = settled("preresnet8")
    x = torch.randn(24, 3, 32, 32)
    before = flow_steps(model, x)
    model.blocks[1].h = 2.0 * model.blocks[1].h
    after = flow_steps(model, x)
    np.testing.assert_allclose(after.relative_step[1], 2 * before.relative_step[1], rtol=1e-6)
    np.testing.assert_allclose(after.increment_norm[1], 2 * before.increment_norm[1], rtol=1e-6)
    np.testing.assert_allclose(after.stream_norm[:2], before.stream_norm[:2], rtol=1e-6)
    np.testing.assert_allclose(after.relative_step[0], before.relative_step[0], rtol=1e-6)
    assert after.h[1] == 2.0 and after.h[0] == 1.0


def test_the_shortcut_gain_is_one_for_identities_and_the_projections_own_gain_otherwise():
    """||S X_k|| / ||X_k|| per input: 1 where S = I, the 1x1 convolution's gain on X_k where S projects."""
    model = settled("preresnet", depth=14)
    x = torch.randn(30, 3, 32, 32)
    steps = flow_steps(model, x, batch_size=7)
    with torch.no_grad():
        state, gains, norms = model.stem(x), [], []
        for block in model.blocks:
            flat = state.flatten(1).double()
            norms.append(flat.norm(dim=1).mean().item())
            gains.append((block.shortcut(state).flatten(1).double().norm(dim=1) / flat.norm(dim=1)).mean().item())
            state = block(state)
    np.testing.assert_allclose(steps.input_norm, norms, rtol=1e-6)
    np.testing.assert_allclose(steps.shortcut_gain, gains, rtol=1e-6)
    for k, block in enumerate(model.blocks):
        if isinstance(block.shortcut, nn.Identity):
            assert steps.shortcut_gain[k] == 1.0 and steps.input_norm[k] == steps.stream_norm[k]
        else:
            assert abs(steps.shortcut_gain[k] - 1.0) > 1e-3


def test_scaling_a_projection_scales_its_gain_and_divides_its_step():
    """S -> c S leaves the block's input and h F(X_k) alone: the gain goes up c-fold, the relative step down."""
    model = settled("preresnet8")
    x = torch.randn(20, 3, 32, 32)
    before = flow_steps(model, x)
    with torch.no_grad():
        model.blocks[1].shortcut.weight.mul_(3.0)
    after = flow_steps(model, x)
    np.testing.assert_allclose(after.shortcut_gain[1], 3 * before.shortcut_gain[1], rtol=1e-6)
    np.testing.assert_allclose(after.relative_step[1], before.relative_step[1] / 3, rtol=1e-6)
    np.testing.assert_allclose(after.input_norm[:2], before.input_norm[:2], rtol=1e-6)
    np.testing.assert_allclose(after.increment_norm[1], before.increment_norm[1], rtol=1e-6)


def test_zero_branch_outputs_give_zero_steps():
    model = settled("preresnet8", h=0.5)
    for block in model.blocks:
        nn.init.zeros_(block.branch.conv2.weight)
    steps = flow_steps(model, torch.randn(8, 3, 32, 32))
    assert np.all(steps.relative_step == 0) and steps.total == 0 and np.all(steps.stream_norm > 0)
    assert steps.h == (0.5, 0.5, 0.5)


def test_an_lm_resnet_is_measured_on_the_stream_that_enters_each_branch():
    """eq. (1) of the LM-ResNet paper: the first block's input is the stem's output."""
    model = settled("lm_preresnet8")
    x = torch.randn(8, 3, 32, 32)
    steps = flow_steps(model, x)
    with torch.no_grad():
        first = model.blocks[0]
        state = model.stem(x)
        expected = (first.increment(state).flatten(1).norm(dim=1) / first.shortcut(state).flatten(1).norm(dim=1))
    np.testing.assert_allclose(steps.relative_step[0], expected.double().mean().item(), rtol=1e-5)
    assert len(steps.blocks) == 3 and np.all(np.isfinite(steps.relative_step))


def test_noise_and_stochastic_depth_are_off_in_the_measurement():
    """Eval mode: a noisy network measures as its deterministic twin, whatever the random state."""
    noisy = settled("preresnet8", noise="bernoulli", p=0.5, stochastic_depth=0.5)
    plain = settled("preresnet8")
    plain.load_state_dict(noisy.state_dict())
    x = torch.randn(8, 3, 32, 32)
    torch.manual_seed(1)
    first = flow_steps(noisy, x)
    torch.manual_seed(2)
    np.testing.assert_array_equal(first.relative_step, flow_steps(noisy, x).relative_step)
    np.testing.assert_allclose(first.relative_step, flow_steps(plain, x).relative_step, rtol=1e-6)


@pytest.mark.parametrize("model, inputs, batch_size, words", [
    (nn.Linear(4, 2), torch.randn(3, 4), 10, "residual blocks"),
    (None, torch.randn(0, 3, 32, 32), 10, "N >= 1"),
    (None, torch.randn(2, 3, 32, 32), 0, "batch_size"),
])
def test_bad_input_is_a_value_error(model, inputs, batch_size, words):
    with pytest.raises(ValueError, match=words):
        flow_steps(model if model is not None else build_model("preresnet8"), inputs, batch_size=batch_size)


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("flow") / "h05"
    train(TrainConfig(model="preresnet8", h=0.5, data="synthetic:256:64", epochs=1, batch_size=64, milestones=(1,),
                      device="cpu"), out, progress=False)
    return out


def test_a_trained_run_is_measured_on_its_test_images(trained_run):
    result = run_flow_steps(trained_run, n_images=50)
    assert result.model == "preresnet8" and result.h == 0.5 and result.epoch == 1
    assert result.steps.n_inputs == 50 and result.steps.h == (0.5, 0.5, 0.5)
    assert np.all(result.steps.relative_step > 0) and np.all(np.isfinite(result.steps.relative_step))
    fewer = run_flow_steps(trained_run, n_images=25)  # n_images sets how many test images are measured
    assert fewer.steps.n_inputs == 25
    table = format_table([result])
    assert trained_run.name in table and f"{result.steps.total:.3f}" in table


def test_a_trained_run_is_its_checkpoints_weights_on_class_balanced_normalized_test_images(trained_run):
    """The wiring, rebuilt by hand: the checkpoint's weights (not a fresh network), the test split (not the
    training one), the classes taken in turn, and the training set's per-channel statistics."""
    from nets.checkpoint import load_checkpoint
    from nets.data import load_dataset

    data = load_dataset("synthetic:256:64")
    labels = np.asarray(data.test_labels)
    per_class = {c: list(np.flatnonzero(labels == c)) for c in np.unique(labels)}
    chosen = []
    while len(chosen) < 50:  # each class's first image, then each one's second, ...
        for c in sorted(per_class):
            if per_class[c] and len(chosen) < 50:
                chosen.append(per_class[c].pop(0))
    train = data.train_images.astype(np.float64) / 255.0
    mean, std = train.mean(axis=(0, 2, 3)), train.std(axis=(0, 2, 3))
    images = (data.test_images[np.sort(chosen)].astype(np.float64) / 255.0 - mean[:, None, None]) / std[:, None, None]
    model = build_model("preresnet8", h=0.5, num_classes=10)
    fresh = flow_steps(model, torch.tensor(images, dtype=torch.float32)).relative_step
    model.load_state_dict(load_checkpoint(trained_run / "checkpoint.pt")["model"])
    expected = flow_steps(model, torch.tensor(images, dtype=torch.float32)).relative_step
    measured = run_flow_steps(trained_run, n_images=50).steps.relative_step
    np.testing.assert_allclose(measured, expected, rtol=1e-5)
    assert not np.allclose(measured, fresh, rtol=1e-3)  # one epoch of training moved the steps


def test_cli_prints_the_table_and_refuses_bad_input_with_one_line(trained_run, tmp_path, capsys):
    assert main([str(trained_run), "--images", "20"]) == 0
    out = capsys.readouterr().out
    assert "| run | model | h | epoch | block 0 | block 1 | block 2 | sum | stem (h = 1 terms) |" in out
    assert trained_run.name in out
    assert main([str(trained_run), "--images", "20", "--json"]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    direct = run_flow_steps(trained_run, n_images=20).steps
    for field in ("relative_step", "increment_norm", "stream_norm", "input_norm", "shortcut_gain"):
        np.testing.assert_allclose(record[field], getattr(direct, field), rtol=1e-12)
    assert record["h"] == 0.5 and record["n_inputs"] == 20 and record["shortcut_gain"][0] == 1.0
    assert_one_line_exit_2(capsys, main, [str(tmp_path)], "no checkpoint.pt")
    assert_one_line_exit_2(capsys, main, [str(trained_run), "--images", "0"], "argument --images: must be a positive integer")
    (tmp_path / "checkpoint.pt").write_bytes(b"not a checkpoint")
    assert_one_line_exit_2(capsys, main, [str(tmp_path)], "cannot load checkpoint")
