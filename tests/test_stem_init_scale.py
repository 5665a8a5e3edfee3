"""TrainConfig.stem_init_scale / --stem-init-scale: the stem convolution's initial weights times S, nothing else.

With the step factor h it separates the stem's scale from its learning rate, the two things a uniform h is in a
pre-activation network (nets.models.step_factor; the identity itself is tested in test_step_factor_equivalent).
"""
from __future__ import annotations

import math

import pytest
import torch

from cli_checks import assert_one_line_exit_2
from nets.checkpoint import load_checkpoint
from nets.train import main
from nets.trainer import TrainConfig, train

FAST = dict(model="preresnet8", data="synthetic:128:64", epochs=1, batch_size=64, milestones=(1,), device="cpu",
            seed=3, lr=1e-6, momentum=0.0, weight_decay=0.0)  # one epoch that barely moves the weights


def _initial_weights(config: TrainConfig) -> dict[str, torch.Tensor]:
    """The weights right after _prepare (the trainer's own construction), before any step."""
    from nets.data import load_dataset
    from nets.trainer import _prepare

    prepared = _prepare(config, load_dataset(config.data), torch.device("cpu"), rank=0)
    return {k: v.detach().clone() for k, v in prepared.model.state_dict().items()}


def test_the_stem_alone_is_scaled_and_nothing_else_moves():
    plain = _initial_weights(TrainConfig(**FAST))
    scaled = _initial_weights(TrainConfig(**FAST, stem_init_scale=0.25))
    assert set(plain) == set(scaled)
    for name in plain:
        expected = 0.25 * plain[name] if name == "stem.weight" else plain[name]
        torch.testing.assert_close(scaled[name], expected, rtol=0, atol=0)


def test_a_run_records_the_scale_and_old_records_mean_one(tmp_path):
    config = TrainConfig(**FAST, stem_init_scale=4.0)
    train(config, tmp_path / "run", progress=False)
    checkpoint = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert checkpoint["config"]["stem_init_scale"] == 4.0
    recorded = dict(checkpoint["config"])
    recorded.pop("stem_init_scale")
    assert TrainConfig.from_recorded(recorded).stem_init_scale == 1.0


@pytest.mark.parametrize("value,words", [
    (0.0, "stem_init_scale must be a finite number > 0"),
    (-2.0, "stem_init_scale must be a finite number > 0"),
    (math.nan, "stem_init_scale must be a finite number"),
    (True, "stem_init_scale must be a finite number"),
])
def test_bad_scales_are_refused(value, words):
    with pytest.raises(ValueError, match=words):
        TrainConfig(**FAST, stem_init_scale=value)


def test_a_model_without_a_stem_is_refused():
    with pytest.raises(ValueError, match="stem_init_scale needs a model with a stem convolution; mlp_resnet has none"):
        TrainConfig(model="mlp_resnet", data="digits", stem_init_scale=2.0)
    assert TrainConfig(model="mlp_resnet", data="digits").stem_init_scale == 1.0


def test_the_flag_is_one_line_exit_2_when_bad(tmp_path, capsys):
    args = ["--model", "preresnet8", "--data", "synthetic:64:32", "--out", str(tmp_path / "r"), "--epochs", "1"]
    assert_one_line_exit_2(capsys, main, [*args, "--stem-init-scale", "0"], "--stem-init-scale must be a finite number > 0")
    assert not (tmp_path / "r" / "metrics.h5").exists()
