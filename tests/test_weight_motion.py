"""nets.weight_motion: the decay-only factor of a recipe, and how far the loss moved each trained tensor."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from nets.epoch import optimizer_steps_per_epoch
from nets.trainer import TrainConfig, train
from nets.weight_motion import TensorMotion, decay_only_factor, format_table, main, run_weight_motion, weight_motion

DATA = "synthetic:200:32"  # 200 training images: 4 steps of 64 per epoch, the last of 8 images


def torch_sgd_with_zero_gradients(lr: float, momentum: float, weight_decay: float, milestones: list[int],
                                  gamma: float, epochs: int, steps: int) -> float:
    """What torch.optim.SGD and MultiStepLR, stepped as the trainer steps them, leave of a float64 weight of 1 when
    every gradient is zero: the independent reference for decay_only_factor."""
    weight = torch.nn.Parameter(torch.ones((), dtype=torch.float64))
    optimizer = torch.optim.SGD([weight], lr=lr, momentum=momentum, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=gamma)
    for _ in range(epochs):
        for _ in range(steps):
            weight.grad = torch.zeros((), dtype=torch.float64)
            optimizer.step()
        scheduler.step()
    return float(weight.detach())


@pytest.mark.parametrize("lr, momentum, weight_decay, milestones, gamma, epochs, steps", [
    (0.1, 0.9, 1e-4, [12, 18], 0.1, 24, 391),  # the recipe of docs/experiments.md section 8
    (0.1, 0.9, 1e-4, [81, 122], 0.1, 164, 391),  # the main paper's section 4.2.1
    (0.05, 0.5, 3e-3, [2], 0.2, 5, 17),
    (0.3, 0.0, 1e-2, [1, 3], 0.5, 4, 9),
])
def test_the_decay_only_factor_is_what_torch_sgd_leaves_without_gradients(lr, momentum, weight_decay, milestones,
                                                                         gamma, epochs, steps):
    expected = torch_sgd_with_zero_gradients(lr, momentum, weight_decay, milestones, gamma, epochs, steps)
    lrs = [lr * gamma ** sum(m <= epoch for m in milestones) for epoch in range(epochs)]
    assert decay_only_factor(lrs, steps, momentum, weight_decay) == pytest.approx(expected, rel=1e-11)


def test_without_momentum_the_factor_is_a_product_of_one_step_factors():
    assert decay_only_factor([0.1, 0.01], 7, 0.0, 0.02) == pytest.approx(0.998 ** 7 * 0.9998 ** 7, rel=1e-13)


def test_momentum_amplifies_the_decay_about_one_over_one_minus_momentum():
    """For small lr * lambda the product tends to exp(-lr lambda n / (1 - mu)): momentum 0.9 decays ten times as
    fast; the recipe's F = 0.6098 of docs/experiments.md section 8 is exp(-0.495) to 0.1 %, and the main
    paper's 164 epochs leave 0.0352 (docs/models.md)."""
    assert decay_only_factor([1e-3], 10_000, 0.9, 1e-3) == pytest.approx(math.exp(-0.1), rel=1e-4)
    recipe = decay_only_factor([0.1] * 12 + [0.01] * 6 + [0.001] * 6, 391, 0.9, 1e-4)
    assert recipe == pytest.approx(math.exp(-1e-4 * 391 * (1.2 + 0.06 + 0.006) / 0.1), rel=1e-3)
    assert round(recipe, 4) == 0.6098
    assert round(decay_only_factor([0.1] * 81 + [0.01] * 41 + [0.001] * 42, 391, 0.9, 1e-4), 4) == 0.0352


@pytest.mark.parametrize("arguments, message", [
    (([], 3, 0.9, 1e-4), "epoch_lrs"), (([0.1, -1.0], 3, 0.9, 1e-4), "epoch_lrs"),
    (([0.1], 0, 0.9, 1e-4), "steps_per_epoch"), (([0.1], 3, 1.0, 1e-4), "momentum"),
    (([0.1], 3, 0.9, -1e-4), "weight_decay"), (([float("nan")], 3, 0.9, 1e-4), "epoch_lrs"),
])
def test_bad_recipes_are_refused_naming_the_argument(arguments, message):
    with pytest.raises(ValueError, match=message):
        decay_only_factor(*arguments)


def test_steps_per_epoch_count_the_last_smaller_batch_unless_a_process_would_get_none():
    assert optimizer_steps_per_epoch(50_000, 128) == 391
    assert optimizer_steps_per_epoch(200, 64) == 4
    assert optimizer_steps_per_epoch(256, 64) == 4
    assert optimizer_steps_per_epoch(200, 64, world_size=8) == 4  # a last batch of 8 feeds 8 processes
    assert optimizer_steps_per_epoch(200, 64, world_size=9) == 3
    with pytest.raises(ValueError, match="batch_size"):
        optimizer_steps_per_epoch(200, 0)


def test_weight_motion_splits_the_end_into_the_decayed_start_and_the_loss_part():
    torch.manual_seed(0)
    start, end = torch.nn.Linear(4, 3), torch.nn.Linear(4, 3)
    moved = torch.randn(3, 4, dtype=torch.float64)
    with torch.no_grad():
        start.bias.zero_()
        end.weight.copy_(0.5 * start.weight.double() + moved)
        end.bias.copy_(torch.tensor([3.0, 0.0, 4.0]))
    weight, bias = weight_motion(start, end, 0.5)
    assert weight.name == "weight" and bias.name == "bias"
    w0 = float(start.weight.detach().double().norm())
    assert weight.decayed_start == pytest.approx(0.5 * w0, rel=1e-12)
    assert weight.loss_part == pytest.approx(float(moved.float().double().norm()), rel=1e-6)
    assert weight.loss_fraction == pytest.approx(weight.loss_part / weight.end, rel=1e-12)
    assert bias.start == 0.0 and math.isnan(bias.end_over_decayed)
    assert bias.end == pytest.approx(5.0) and bias.loss_fraction == pytest.approx(1.0)
    frozen, _ = weight_motion(start, _scaled_copy(start, 0.25), 0.25)
    assert frozen.end_over_decayed == pytest.approx(1.0, rel=1e-6) and frozen.loss_fraction < 1e-6


def _scaled_copy(model: torch.nn.Module, factor: float) -> torch.nn.Module:
    copy = torch.nn.Linear(4, 3)
    copy.load_state_dict({name: factor * value for name, value in model.state_dict().items()})
    return copy


def test_weight_motion_refuses_a_factor_outside_0_1_and_different_models():
    linear = torch.nn.Linear(4, 3)
    with pytest.raises(ValueError, match="factor"):
        weight_motion(linear, linear, 1.5)
    with pytest.raises(ValueError, match="same parameters"):
        weight_motion(linear, torch.nn.Linear(5, 3), 0.5)


def train_run(tmp_path, name: str, **fields):
    torch.set_num_threads(1)
    config = TrainConfig(**{"model": "preresnet8", "data": DATA, "epochs": 3, "batch_size": 64, "milestones": (2,),
                            "weight_decay": 0.05, "device": "cpu", "seed": 2, **fields})
    train(config, tmp_path / name, progress=False)
    return run_weight_motion(tmp_path / name)


def test_a_stem_a_million_times_larger_freezes_the_branches_to_their_decayed_start(tmp_path):
    """Every branch starts with BatchNorm and the head too, so the loss's gradient on a branch scales as one over the
    stream: with the stem's weights a million times larger the branches' tensors end at F times their start (to the
    float32 rounding of 12 steps), where F, at weight decay 0.05, is far from 1 (a step miscounted would show).
    The projections, which act on the stream itself, learn whatever its size; and in the same run with the
    ordinary stem the loss moves the branches' convolutions."""
    frozen = train_run(tmp_path, "frozen", stem_init_scale=1e6)
    assert frozen.steps_per_epoch == 4 and frozen.epoch == 3
    assert frozen.factor == pytest.approx(decay_only_factor([0.1, 0.1, 0.01], 4, 0.9, 0.05), rel=1e-12)
    assert frozen.factor < 0.93
    by_name = {t.name: t for t in frozen.tensors}
    branch = [t for name, t in by_name.items() if ".branch." in name and name.endswith("weight")]
    assert len(branch) == 12
    for tensor in branch:
        assert tensor.end_over_decayed == pytest.approx(1.0, abs=1e-5), tensor.name
        assert tensor.loss_fraction < 1e-5, tensor.name
    assert all(by_name[f"blocks.{k}.shortcut.weight"].loss_fraction > 1e-3 for k in (1, 2))

    ordinary = train_run(tmp_path, "ordinary")
    convs = [t for t in ordinary.tensors if ".branch.conv" in t.name]
    assert min(t.loss_fraction for t in convs) > 1e-2


def test_the_command_line_prints_tables_and_json_and_refuses_bad_runs(tmp_path, capsys):
    train_run(tmp_path, "run")
    assert main([str(tmp_path / "run"), "--only", "stem", "conv2"]) == 0
    table = capsys.readouterr().out
    assert "decay-only factor F = " in table and "| stem.weight |" in table
    assert "blocks.2.branch.conv2.weight" in table and "conv1" not in table
    assert main([str(tmp_path / "run"), "--json"]) == 0
    (saved,) = json.loads(capsys.readouterr().out)
    assert saved["steps_per_epoch"] == 4 and len(saved["tensors"]) == len(run_weight_motion(tmp_path / "run").tensors)
    bias = next(t for t in saved["tensors"] if t["name"].endswith("bn1.bias"))
    assert bias["end_over_decayed"] is None and bias["loss_fraction"] == pytest.approx(1.0)
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "missing")])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err.strip()
    assert len(error.splitlines()) == 1 and "no checkpoint.pt" in error


def test_stochastic_depth_in_batch_mode_has_no_one_factor(tmp_path):
    with pytest.raises(ValueError, match="batch mode"):
        train_run(tmp_path, "sd", epochs=1, milestones=(1,), stochastic_depth=0.8, stochastic_depth_mode="batch")


def test_format_table_marks_undefined_ratios():
    from pathlib import Path

    from nets.weight_motion import RunWeightMotion

    result = RunWeightMotion(run=Path("r"), model="m", epoch=1, steps_per_epoch=2, factor=0.5,
                             tensors=(TensorMotion("b", 0.0, 1.0, 0.0, 1.0), TensorMotion("w", 2.0, 1.0, 1.0, 0.0)))
    rows = format_table([result]).splitlines()
    assert rows[-2] == "| b | 0 | 1 | - | 1.000 |" and rows[-1] == "| w | 2 | 1 | 1.000 | 0.000 |"
    assert np.isclose(result.factor, 0.5)
