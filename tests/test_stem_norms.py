"""nets.stem_norms and nets.trainer.initial_model: the stem's norm when training started and in the checkpoint."""
from __future__ import annotations

import json
import random

import numpy as np
import pytest
import torch

from nets import build_model
from nets.checkpoint import load_checkpoint
from nets.data import load_dataset
from nets.flow_steps import format_table, main, run_flow_steps
from nets.models.step_factor import unit_step_equivalent
from nets.stem_norms import StemNorms, initial_weights, stem_norms, stem_weight_norm, unit_step_factor
from nets.trained_run import load_trained_run
from nets.trainer import TrainConfig, initial_model, train

DATA = "synthetic:128:32"


def config(**fields) -> TrainConfig:
    return TrainConfig(**{"model": "preresnet8", "data": DATA, "epochs": 1, "batch_size": 64, "milestones": (1,),
                          "device": "cpu", **fields})


def test_the_initial_model_is_seeded_and_the_stem_scale_touches_the_stem_only():
    data = load_dataset(DATA)
    plain = initial_model(config(seed=3), data).state_dict()
    again = initial_model(config(seed=3), data).state_dict()
    scaled = initial_model(config(seed=3, stem_init_scale=0.25), data).state_dict()
    other = initial_model(config(seed=4), data).state_dict()
    for name, value in plain.items():
        torch.testing.assert_close(again[name], value, rtol=0, atol=0)
        expected = value * 0.25 if name == "stem.weight" else value
        torch.testing.assert_close(scaled[name], expected, rtol=0, atol=0)
    assert not torch.equal(other["stem.weight"], plain["stem.weight"])


def test_a_run_starts_from_the_initial_model(tmp_path):
    """At a learning rate of 1e-12 one epoch moves no weight by more than ~1e-12 (relative), so the checkpoint is
    the start: the rebuilt start must match it weight for weight (another seed's start would be off by O(1))."""
    torch.set_num_threads(1)
    run_config = config(seed=5, lr=1e-12, stem_init_scale=3.0, h=0.5)
    train(run_config, tmp_path / "run", progress=False)
    trained = load_trained_run(tmp_path / "run", None, 1, "the test needs")
    saved = load_checkpoint(tmp_path / "run" / "checkpoint.pt")["model"]
    start = initial_weights(trained).state_dict()
    for name, value in start.items():
        if value.is_floating_point() and "running" not in name:  # BatchNorm statistics do move at any lr
            torch.testing.assert_close(saved[name], value, rtol=1e-6, atol=1e-9)
    norms = run_flow_steps(tmp_path / "run", n_images=8).stem
    assert norms.start == pytest.approx(norms.end, rel=1e-6)
    assert norms.start == pytest.approx(float(start["stem.weight"].double().norm()), rel=1e-12)
    assert norms.unit_step_start == pytest.approx(norms.start / 0.5, rel=1e-12)


def test_rebuilding_the_start_leaves_the_global_random_states_alone(tmp_path):
    torch.set_num_threads(1)
    train(config(seed=1), tmp_path / "run", progress=False)
    trained = load_trained_run(tmp_path / "run", None, 1, "the test needs")
    torch.manual_seed(11)
    np.random.seed(12)
    random.seed(13)
    expected = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(11)
    np.random.seed(12)
    random.seed(13)
    initial_weights(trained)
    torch.testing.assert_close(torch.rand(3), expected[0], rtol=0, atol=0)
    np.testing.assert_array_equal(np.random.rand(3), expected[1])
    assert random.random() == expected[2]


@pytest.mark.parametrize("h", [1.0, 0.1, 0.01, 4.0])
def test_unit_step_terms_are_the_stem_of_the_equivalent_h1_network(h):
    """The h network is the h = 1 network with stem W / h (nets.models.step_factor): check against the equivalent
    network the identity builds, and against ||W|| / h."""
    torch.manual_seed(0)
    model = build_model("preresnet8", h=h)
    assert unit_step_factor(model) == pytest.approx(1 / h, rel=1e-15)
    equivalent_norm = stem_weight_norm(unit_step_equivalent(model))
    torch.manual_seed(1)
    later = build_model("preresnet8", h=h)
    norms = stem_norms(model, later)
    assert norms.unit_step_start == pytest.approx(equivalent_norm, rel=1e-6)  # its float32 weights W / h, rounded
    assert norms.unit_step_start == pytest.approx(norms.start / h, rel=1e-12)
    assert norms.unit_step_end == pytest.approx(stem_weight_norm(later) / h, rel=1e-12)
    assert norms.growth == pytest.approx(norms.end / norms.start, rel=1e-15)


def test_the_norm_is_the_frobenius_norm_of_the_stem_weight():
    model = build_model("preresnet8")
    with torch.no_grad():
        model.stem.weight.fill_(0.5)  # 16 x 3 x 3 x 3 = 432 entries
    assert stem_weight_norm(model) == pytest.approx(0.5 * np.sqrt(432), rel=1e-15)


def test_models_without_a_stem_or_outside_the_identity():
    mlp = build_model("mlp_resnet", in_features=2, num_classes=2, depth=3, width=8, batch_norm=True)
    assert stem_weight_norm(mlp) is None and stem_norms(mlp, mlp) is None
    mixed = build_model("preresnet8")
    mixed.blocks[1].h = 0.5  # the identity needs one h for all blocks
    norms = stem_norms(mixed, mixed)
    assert norms.unit_step_start is None and norms.unit_step_end is None and norms.growth == 1.0
    with pytest.raises(ValueError, match="both have a stem"):
        stem_norms(mlp, mixed)
    zero = build_model("preresnet8")
    with torch.no_grad():
        zero.stem.weight.zero_()
    with pytest.raises(ValueError, match="must not be zero"):
        stem_norms(zero, mixed)


def test_the_flow_steps_table_and_json_carry_the_stem(tmp_path, capsys):
    torch.set_num_threads(1)
    train(config(seed=2, h=0.25), tmp_path / "run", progress=False)
    result = run_flow_steps(tmp_path / "run", n_images=8)
    stem = result.stem
    assert isinstance(stem, StemNorms) and stem.end != stem.start
    table = format_table([result])
    assert "| sum | stem (h = 1 terms) |" in table
    assert f"| {stem.unit_step_start:.4g} -> {stem.unit_step_end:.4g} |" in table
    assert main([str(tmp_path / "run"), "--images", "8", "--json"]) == 0
    (record,) = json.loads(capsys.readouterr().out)
    assert record["stem_norm"] == {"start": stem.start, "end": stem.end, "unit_step_start": stem.unit_step_start,
                                   "unit_step_end": stem.unit_step_end}
    no_stem = type(result)(run=result.run, model="mlp_resnet", h=None, epoch=1, steps=result.steps, stem=None)
    assert format_table([no_stem]).splitlines()[-1].endswith(" | - |")
