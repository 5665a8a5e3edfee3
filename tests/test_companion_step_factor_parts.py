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
from nets.companion.step_factor_parts import (CHANGES, H_PARTS, PARTS, SUBSETS, PartsConfig, main, prepare_run,
                                              run_parts, subsets)
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


@pytest.mark.parametrize("h", [0.25, 3.0])
def test_without_batch_norm_the_branch_parts_are_the_h_network(h):
    """Plain residual blocks y + h (K2 s(K1 y + b1) + b2): K2, b2 times h, trained at h^2 times the rate, is
    the h network: same logits at the start, and the same losses after an epoch of SGD up to float32 rounding."""
    model, data, training = prepare_run(h, 3, H_PARTS["residual"], trial=0, config=SHORT, variant="residual")
    stepped = build_net(NetSpec(depth=3, h=h, variant="residual"), data.in_features, data.num_classes, seed=1000)
    x = torch.as_tensor(data.x_test)
    torch.testing.assert_close(model.eval()(x), stepped.eval()(x), rtol=1e-5, atol=1e-5)
    assert len(training.lr_scales) == 6 and {f for _, f in training.lr_scales} == {h**2}
    ours = train(model, data, training)
    theirs = train(stepped, data, replace(training, lr_scales=()))
    np.testing.assert_allclose(ours.train_loss, theirs.train_loss, rtol=1e-3)
    assert abs(ours.test_accuracy - theirs.test_accuracy) <= 2 / len(data.y_test)
    # either part alone is not the h network: the first changes the function, the second only the training
    init_only, _, init_training = prepare_run(h, 3, ("branch_init",), trial=0, config=SHORT, variant="residual")
    fresh = build_net(NetSpec(depth=3, h=h, variant="residual"), data.in_features, data.num_classes, seed=1000)
    torch.testing.assert_close(init_only.eval()(x), fresh.eval()(x), rtol=1e-5, atol=1e-5)
    assert init_training.lr_scales == ()
    apart = train(init_only, data, init_training).train_loss
    assert np.max(np.abs(np.asarray(apart) / np.asarray(theirs.train_loss) - 1)) > 1e-2
    lr_only, _, lr_training = prepare_run(h, 3, ("branch_lr",), trial=0, config=SHORT, variant="residual")
    unit = build_net(NetSpec(depth=3, h=1.0, variant="residual"), data.in_features, data.num_classes, seed=1000)
    torch.testing.assert_close(lr_only.eval()(x), unit.eval()(x), rtol=0, atol=0)
    rates = {id(p): g["lr"] for g in make_optimizer(lr_only, lr_training).param_groups for p in g["params"]}
    assert rates[id(lr_only.blocks[2].branch.linear2.bias)] == pytest.approx(h**2 * SHORT.lr)
    assert rates[id(lr_only.blocks[2].branch.linear1.weight)] == SHORT.lr == rates[id(lr_only.fc.weight)]


def test_the_residual_variant_splits_its_own_changes_and_labels_the_h_network(tmp_path):
    assert subsets("residual")[0] == () and len(subsets("residual")) == 8
    assert ("branch_init", "branch_lr") in subsets("residual") and CHANGES["residual"][-1] == "classifier_lr"
    _, _, slow = prepare_run(2.0, 2, ("classifier_lr",), trial=0, config=SHORT, variant="residual")
    assert slow.lr_scales == (("fc.weight", 4.0),)
    with pytest.raises(ValueError, match="parts must be among branch_init, branch_lr, classifier_lr"):
        prepare_run(2.0, 2, ("input",), trial=0, variant="residual")
    with pytest.raises(ValueError, match="variant must be one of batchnorm, residual; got 'shrinkage'"):
        PartsConfig(variant="shrinkage")
    with pytest.raises(ValueError, match="train.lr_scales must be empty"):
        PartsConfig(train=replace(SHORT, lr_scales=(("fc.weight", 2.0),)))
    config = PartsConfig(h_values=(0.5,), depths=(2,), trials=1, train=SHORT, variant="residual")
    result = run_parts(config, tmp_path / "parts.json", progress=False)
    assert result.test_accuracy.shape == (1, 1, 8, 1) and np.all(result.test_accuracy > 0.3)  # 10 classes
    table = result.table()
    assert "| 0.5 | branch_init, branch_lr (the h = 0.5 network) |" in table
    assert "branch_init, branch_lr, classifier_lr |" in table
    with pytest.raises(ValueError, match="belongs to another configuration"):
        run_parts(replace(config, variant="batchnorm"), tmp_path / "parts.json", progress=False)


def test_the_variant_enters_the_hash_only_when_it_is_not_batchnorm():
    """Checkpoints written before PartsConfig.variant existed keep their hashes."""
    import hashlib
    from dataclasses import asdict

    from nets.companion.step_factor_parts import config_hash

    config = PartsConfig()
    fields = asdict(config)
    del fields["variant"]
    before = hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:12]
    assert config_hash(config) == before != config_hash(replace(config, variant="residual"))


def test_a_bad_variant_is_one_line_and_exit_2(capsys):
    assert_one_line_exit_2(capsys, main, ["--variant", "shrinkage"], "argument --variant: invalid choice")
