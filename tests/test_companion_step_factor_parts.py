"""nets.companion.step_factor_parts: the h = 1 digits network with subsets of the three parts of a uniform h."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from cli_checks import assert_one_line_exit_2
from nets.companion.models import NetSpec, build_net
from nets.companion.presets import ROBUST_SGD
from nets.companion.step_factor_parts import PARTS, SUBSETS, PartsConfig, main, prepare_run, run_parts
from nets.companion.trainer import TrainConfig, make_optimizer, train

torch.set_num_threads(1)

SHORT = replace(ROBUST_SGD, epochs=1, lr=0.02)


def test_the_subsets_run_from_none_to_all_three():
    assert SUBSETS[0] == () and SUBSETS[-1] == PARTS and len(SUBSETS) == 8 and len(set(SUBSETS)) == 8


@pytest.mark.parametrize("h", [0.5, 4.0])
def test_all_three_parts_are_the_h_network_and_none_the_unit_one(h):
    """Same logits at the start, and after training the same losses up to float32 rounding."""
    model, data, training = prepare_run(h, 3, PARTS, trial=0, config=SHORT)
    stepped = build_net(NetSpec(depth=3, h=h, variant="batchnorm"), data.in_features, data.num_classes, seed=1000)
    x = torch.as_tensor(data.x_test)
    original = x * h  # prepare_run divided the inputs by h
    torch.testing.assert_close(model.eval()(x), stepped.eval()(original), rtol=1e-5, atol=1e-5)
    original_data = replace(data, x_train=data.x_train * h, x_test=data.x_test * h)
    ours = train(model, data, training)
    theirs = train(stepped, original_data, replace(training, lr_scales=()))
    np.testing.assert_allclose(ours.train_loss, theirs.train_loss, rtol=1e-3)
    assert abs(ours.test_accuracy - theirs.test_accuracy) <= 2 / len(data.y_test)
    unit, unit_data, unit_training = prepare_run(h, 3, (), trial=0, config=SHORT)
    plain = build_net(NetSpec(depth=3, h=1.0, variant="batchnorm"), data.in_features, data.num_classes, seed=1000)
    for a, b in zip(unit.state_dict().values(), plain.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert unit_training.lr_scales == () and np.array_equal(unit_data.x_train, data.x_train * h)


def test_each_part_changes_only_its_own_piece():
    h = 3.0
    base, base_data, _ = prepare_run(h, 2, (), trial=1, config=SHORT)
    init, init_data, init_training = prepare_run(h, 2, ("classifier_init",), trial=1, config=SHORT)
    torch.testing.assert_close(init.fc.weight, h * base.fc.weight)
    assert np.array_equal(init_data.x_train, base_data.x_train) and init_training.lr_scales == ()
    lr, _, lr_training = prepare_run(h, 2, ("classifier_lr",), trial=1, config=SHORT)
    assert lr_training.lr_scales == (("fc.weight", 9.0),) and lr_training.seed == 1
    torch.testing.assert_close(lr.fc.weight, base.fc.weight)
    optimizer = make_optimizer(lr, lr_training)
    rates = {id(p): group["lr"] for group in optimizer.param_groups for p in group["params"]}
    assert rates[id(lr.fc.weight)] == pytest.approx(9.0 * SHORT.lr) and rates[id(lr.fc.bias)] == SHORT.lr
    inputs, inputs_data, _ = prepare_run(h, 2, ("input",), trial=1, config=SHORT)
    np.testing.assert_allclose(inputs_data.x_test, base_data.x_test / h, rtol=1e-6)
    torch.testing.assert_close(inputs.fc.weight, base.fc.weight)
    assert inputs.blocks[0].branch.norm.eps == pytest.approx(base.blocks[0].branch.norm.eps / h**2)
    with pytest.raises(ValueError, match="parts must be among input, classifier_init, classifier_lr"):
        prepare_run(h, 2, ("stem",), trial=0)


def test_lr_scales_are_checked():
    with pytest.raises(ValueError, match="lr_scales must be a tuple of"):
        TrainConfig(lr_scales=(("fc.weight", 0.0),))
    with pytest.raises(ValueError, match="lr_scales must be a tuple of"):
        TrainConfig(lr_scales=(("fc.weight", 2.0), ("fc.weight", 3.0)))
    model, _, _ = prepare_run(2.0, 2, (), trial=0, config=SHORT)
    with pytest.raises(ValueError, match=r"lr_scales names parameters the model does not have: \['stem.weight'\]"):
        make_optimizer(model, TrainConfig(lr_scales=(("stem.weight", 2.0),)))


def test_a_checkpoint_resumes_without_training_again(tmp_path, monkeypatch):
    config = PartsConfig(h_values=(2.0,), depths=(2,), trials=1, train=SHORT)
    first = run_parts(config, tmp_path / "parts.json", progress=False)
    assert first.test_accuracy.shape == (1, 1, 8, 1) and np.all(first.test_accuracy > 0.3)  # 10 classes
    saved = json.loads((tmp_path / "parts.json").read_text())
    assert len(saved["points"]) == 8
    import nets.companion.step_factor_parts as parts

    monkeypatch.setattr(parts, "train", lambda *a, **k: pytest.fail("a finished run was trained again"))
    again = run_parts(config, tmp_path / "parts.json", progress=False)
    np.testing.assert_array_equal(again.test_accuracy, first.test_accuracy)
    table = again.table()
    assert "| 2 | none (the h = 1 network) |" in table and "(the h = 2 network)" in table
    with pytest.raises(ValueError, match="belongs to another configuration"):
        run_parts(replace(config, trials=2), tmp_path / "parts.json", progress=False)


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    assert_one_line_exit_2(capsys, main, ["--h", "0"], "--h must be one or more numbers > 0")
    assert_one_line_exit_2(capsys, main, ["--depths", "0"], "argument --depths: must be a positive integer")
    assert_one_line_exit_2(capsys, main, ["--lr", "-1"], "--lr must be > 0")
    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    assert_one_line_exit_2(capsys, main, ["--checkpoint", str(broken)], "is not a step-factor parts checkpoint")
    with pytest.raises(ValueError, match="train must be SGD without weight decay"):
        PartsConfig(train=TrainConfig(optimizer="adam"))


def test_lr_scales_enter_a_sweeps_hash_only_when_set():
    """Sweep checkpoints written before TrainConfig.lr_scales existed keep their names (hash without the key)."""
    import hashlib
    from dataclasses import asdict

    from nets.companion import presets
    from nets.companion.sweeps import config_hash

    config = presets.digits_h(True)
    fields = asdict(config)
    del fields["train"]["lr_scales"]
    before = hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:12]
    assert config_hash(config) == before
    scaled = replace(config, train=replace(config.train, lr_scales=(("fc.weight", 2.0),)))
    assert config_hash(scaled) != before
