"""nets.branch_gradients: a branch's gradient split into the upstream gradient U_k and the branch's transfer T_k,
checked against finite differences and the scale invariances BatchNorm gives a pre-activation network."""
from __future__ import annotations

import json

import pytest
import torch

from nets import build_model
from nets.branch_gradients import (BranchGradient, batch_gradients, branch_gradients, check_moments,
                                   deterministic_training_mode, format_table, main, run_branch_gradients)
from nets.trainer import TrainConfig, train
from nets.weight_motion import run_weight_motion

DATA = "synthetic:200:32"


def small_net(h: float, **options) -> torch.nn.Module:
    torch.manual_seed(3)
    return build_model("preresnet8", num_classes=10, in_channels=3, h=h, **options).double()


def batch(n: int = 48, size: int = 12, seed: int = 5) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(n, 3, size, size, generator=generator, dtype=torch.float64),
            torch.randint(0, 10, (n,), generator=generator))


def by_block(measured: list[BranchGradient]) -> dict[str, BranchGradient]:
    return {b.block: b for b in measured}


def tensor_grads(block: BranchGradient) -> dict[str, float]:
    return {t.name.rsplit(".branch.", 1)[1]: t.grad for t in block.tensors}


def rate_along(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor, move, delta: float = 1e-4) -> float:
    """Central difference of the mean cross-entropy in delta, where move(delta) registers the hook that moves an
    activation by delta along a direction and returns its handle."""
    def loss_moved(step: float) -> float:
        handle = move(step)
        try:
            with torch.no_grad():
                return float(torch.nn.functional.cross_entropy(model(images), labels))
        finally:
            handle.remove()

    return (loss_moved(delta) - loss_moved(-delta)) / (2 * delta)


@pytest.mark.parametrize("block", ["blocks.0", "blocks.2"])
def test_the_upstream_gradient_is_the_derivative_along_the_branch_output_before_h(block):
    """U_k = ||dL/dr_k||: moving r_k by delta along dL/dr_k / U_k changes the loss at the rate U_k (a central
    difference in float64). Measured after h (at h r_k), the rate would be off by h = 0.5."""
    model, (images, labels) = small_net(0.5), batch()
    deterministic_training_mode(model)
    _, per_block = batch_gradients(model, images, labels)
    gradient = per_block[block].output_gradient
    direction = gradient / gradient.norm()
    branch = dict(model.named_modules())[block].branch
    rate = rate_along(model, images, labels,
                      lambda delta: branch.register_forward_hook(lambda m, args, output: output + delta * direction))
    assert rate == pytest.approx(float(gradient.norm()), rel=1e-6)
    assert by_block(branch_gradients(model, images, labels, 48))[block].upstream == pytest.approx(rate, rel=1e-6)


@pytest.mark.parametrize("layer", ["conv2", "bn2", "conv1"])
def test_a_layer_input_gradient_is_the_derivative_along_that_input(layer):
    """||dL/d(input)|| of a branch layer: moving the layer's input by delta along the recorded gradient's direction
    changes the loss at the rate of its norm (central difference, float64); the branch's first layer, whose input is
    the stream, is not recorded."""
    model, (images, labels) = small_net(0.5), batch()
    deterministic_training_mode(model)
    _, per_block = batch_gradients(model, images, labels)
    recorded = per_block["blocks.1"].layer_input_gradients
    assert list(recorded) == ["conv1", "bn2", "conv2"]
    gradient = recorded[layer]
    direction = gradient / gradient.norm()
    module = dict(model.named_modules())[f"blocks.1.branch.{layer}"]
    rate = rate_along(model, images, labels,
                      lambda delta: module.register_forward_pre_hook(lambda m, args: (args[0] + delta * direction,)))
    assert rate == pytest.approx(float(gradient.norm()), rel=1e-6)
    measured = by_block(branch_gradients(model, images, labels, 48))["blocks.1"]
    assert [x.name for x in measured.layer_inputs] == [f"blocks.1.branch.{n}" for n in ("conv1", "bn2", "conv2")]
    assert dict((x.name, x.grad) for x in measured.layer_inputs)[f"blocks.1.branch.{layer}"] == pytest.approx(rate,
                                                                                                          rel=1e-6)


def gains(block: BranchGradient) -> dict[str, float]:
    return {name.rsplit(".", 1)[1]: gain for name, gain in block.backward_gains}


def test_the_first_convolution_is_scale_free_its_gradient_scales_inversely():
    """conv1 is followed by BatchNorm: scaling it by 4 leaves the network's output, the upstream gradient and the
    other tensors' gradients as they were (to BatchNorm's eps) and divides conv1's gradient by 4."""
    images, labels = batch()
    plain = by_block(branch_gradients(small_net(0.5), images, labels, 24))["blocks.0"]
    model = small_net(0.5)
    with torch.no_grad():
        model.blocks[0].branch.conv1.weight.mul_(4.0)
    scaled = by_block(branch_gradients(model, images, labels, 24))["blocks.0"]
    assert scaled.upstream == pytest.approx(plain.upstream, rel=1e-4)
    before, after = tensor_grads(plain), tensor_grads(scaled)
    assert after["conv1.weight"] == pytest.approx(before["conv1.weight"] / 4.0, rel=1e-4)
    for name in ("bn1.weight", "bn1.bias", "bn2.weight", "bn2.bias", "conv2.weight"):
        assert after[name] == pytest.approx(before[name], rel=1e-4), name
    # bn2's backward divides by its input's standard deviation, 4 times larger; conv1's multiplies by its weights
    assert gains(scaled)["bn2"] == pytest.approx(gains(plain)["bn2"] / 4.0, rel=1e-4)
    assert gains(scaled)["conv1"] == pytest.approx(4.0 * gains(plain)["conv1"], rel=1e-4)
    assert gains(scaled)["conv2"] == pytest.approx(gains(plain)["conv2"], rel=1e-4)


def test_the_transfer_scales_with_the_branch_output_weights():
    """With h = 1e-7 the branches do not reach the rest of the network, so scaling block #1's conv2 by 3 leaves
    the upstream gradient as it was, multiplies the gradients of every tensor before conv2 by 3 (the backward pass
    goes through conv2), and leaves conv2's own gradient (which sees only its input) as it was."""
    images, labels = batch()
    plain = by_block(branch_gradients(small_net(1e-7), images, labels, 24))["blocks.0"]
    model = small_net(1e-7)
    with torch.no_grad():
        model.blocks[0].branch.conv2.weight.mul_(3.0)
    scaled = by_block(branch_gradients(model, images, labels, 24))["blocks.0"]
    assert scaled.upstream == pytest.approx(plain.upstream, rel=1e-5)
    before, after = tensor_grads(plain), tensor_grads(scaled)
    for name in ("bn1.weight", "bn1.bias", "conv1.weight", "bn2.weight", "bn2.bias"):
        assert after[name] == pytest.approx(3.0 * before[name], rel=1e-5), name
    assert after["conv2.weight"] == pytest.approx(before["conv2.weight"], rel=1e-5)
    assert scaled.transfer > 2.0 * plain.transfer
    assert gains(scaled)["conv2"] == pytest.approx(3.0 * gains(plain)["conv2"], rel=1e-5)
    for layer in ("bn2", "conv1"):
        assert gains(scaled)[layer] == pytest.approx(gains(plain)[layer], rel=1e-5), layer


def test_a_larger_stream_divides_the_upstream_gradient_and_leaves_the_transfer():
    """With h = 1e-7 the network after the stem is invariant to the stream's scale (BatchNorm first in every branch
    and in the head, linear projections): a stem 10 times larger makes rms(X_k) 10 times larger, U_k 10 times
    smaller, and leaves U_k rms(X_k) and T_k as they were, in every block."""
    images, labels = batch()
    plain = branch_gradients(small_net(1e-7), images, labels, 24)
    model = small_net(1e-7)
    with torch.no_grad():
        model.stem.weight.mul_(10.0)
    scaled = branch_gradients(model, images, labels, 24)
    for before, after in zip(plain, scaled):
        assert after.stream_rms == pytest.approx(10.0 * before.stream_rms, rel=1e-6)
        assert after.upstream == pytest.approx(before.upstream / 10.0, rel=1e-4)
        assert after.scale_free_upstream == pytest.approx(before.scale_free_upstream, rel=1e-4)
        assert after.transfer == pytest.approx(before.transfer, rel=1e-4)


def test_noise_and_stochastic_depth_are_off_and_the_model_is_left_as_found():
    images, labels = batch()
    quiet = branch_gradients(small_net(0.5), images, labels, 16)
    noisy = small_net(0.5, noise="bernoulli", p=0.5, stochastic_depth=0.5)
    noisy.eval()
    marker = torch.full_like(noisy.stem.weight, 7.0)
    noisy.stem.weight.grad = marker
    measured = branch_gradients(noisy, images, labels, 16)
    assert measured == quiet
    assert not any(module.training for module in noisy.modules())
    assert noisy.stem.weight.grad is marker
    assert all(p.grad is None for name, p in noisy.named_parameters() if name != "stem.weight")


def test_the_means_are_over_mini_batches_including_a_last_smaller_one():
    model, (images, labels) = small_net(0.5), batch(n=40)
    whole = branch_gradients(model, images, labels, 40)
    first, last = branch_gradients(model, images[:32], labels[:32], 32), branch_gradients(model, images[32:],
                                                                                             labels[32:], 8)
    mean = branch_gradients(model, images, labels, 32)
    for b, b1, b2, b0 in zip(mean, first, last, whole):
        assert b.upstream == pytest.approx((b1.upstream + b2.upstream) / 2, rel=1e-12)
        assert b.branch_grad == pytest.approx((b1.branch_grad + b2.branch_grad) / 2, rel=1e-12)
        assert b.upstream != pytest.approx(b0.upstream, rel=1e-3)


def test_bad_arguments_are_refused_naming_them():
    model, (images, labels) = small_net(0.5), batch()
    with pytest.raises(ValueError, match="batch_size"):
        branch_gradients(model, images, labels, 1)
    with pytest.raises(ValueError, match="one length"):
        branch_gradients(model, images, labels[:3], 8)
    with pytest.raises(ValueError, match="residual blocks"):
        branch_gradients(torch.nn.Linear(3, 2), images, labels, 8)
    for moments in ([], ["middle"], ["start", "later"]):
        with pytest.raises(ValueError, match="moments must be some of start, end"):
            check_moments(moments)
    assert check_moments(["end", "start", "end"]) == ("start", "end")


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("branch") / "run"
    train(TrainConfig(model="preresnet8", data=DATA, epochs=2, batch_size=64, milestones=(1,), device="cpu", seed=2,
                      h=0.5), out, progress=False)
    return out


def test_a_run_is_measured_at_its_rebuilt_start_and_its_checkpoint(trained_run):
    """The weight norms the measurement reports are those nets.weight_motion finds at the start and the end."""
    measured = run_branch_gradients(trained_run, n_images=96)
    assert measured.moments == ("start", "end") and measured.epoch == 2
    assert measured.batch_size == 64 and measured.n_images == 96
    motion = {t.name: t for t in run_weight_motion(trained_run).tensors}
    for moment, attribute in (("start", "start"), ("end", "end")):
        blocks = measured.at(moment)
        assert [b.block for b in blocks] == ["blocks.0", "blocks.1", "blocks.2"]
        assert all(b.h == 0.5 for b in blocks)
        for t in (t for b in blocks for t in b.tensors):
            assert t.norm == pytest.approx(getattr(motion[t.name], attribute), rel=1e-6), t.name
    assert measured.at("start")[0].upstream != pytest.approx(measured.at("end")[0].upstream, rel=1e-3)
    only_end = run_branch_gradients(trained_run, n_images=96, batch_size=32, moments=["end"])
    assert only_end.moments == ("end",) and only_end.batch_size == 32
    with pytest.raises(ValueError, match="moment must be one of end"):
        only_end.at("start")


def test_a_saved_measurement_reads_back_as_it_was_measured(trained_run, tmp_path):
    from nets.branch_gradients import from_json, load_saved, to_json

    measured = run_branch_gradients(trained_run, n_images=64)
    assert measured.trained_with == "no noise, h=0.5" and measured.seed == 2
    from nets.branch_gradients import trained_with_label

    assert trained_with_label(TrainConfig(model="preresnet8", data=DATA, h=0.01, stem_init_scale=0.01)) == \
        "no noise, h=0.01, stem x0.01"
    assert trained_with_label(TrainConfig(model="preresnet8", data=DATA, noise="bernoulli", p=0.9)) == "bernoulli p=0.9"
    assert measured.settings["code_version"] is None or isinstance(measured.settings["code_version"], str)
    assert from_json(to_json([measured])) == [measured]
    path = tmp_path / "saved.json"
    path.write_text(to_json([measured, measured]))
    assert load_saved([path]) == [measured, measured]
    for text in ("{", "[{}]", '[{"run": "r", "model": "m", "epoch": 1, "n_images": 2, "batch_size": 2}]'):
        with pytest.raises(ValueError, match="not the JSON of nets.branch_gradients"):
            from_json(text)
    path.write_text("[]")
    with pytest.raises(ValueError, match="no measurements"):
        load_saved([path])


def test_the_images_of_a_file_sorted_by_class_are_measured_in_mixed_batches(trained_run):
    """CIFAR-10's JPEG npz is sorted by class, so class-balanced images in file order would make batches of one
    class: the measured order mixes every batch of 32 (at least 6 of the 10 classes), keeps the same images, and is
    the same each time."""
    import dataclasses

    import numpy as np

    from nets.branch_gradients import mixed_training_images
    from nets.trained_run import load_trained_run

    trained = load_trained_run(trained_run, None, 1, "test")
    by_class = np.argsort(trained.dataset.train_labels, kind="stable")
    data = trained.dataset
    sorted_run = dataclasses.replace(trained, dataset=dataclasses.replace(
        data, train_images=data.train_images[by_class], train_labels=data.train_labels[by_class]))
    in_file_order = sorted_run.images(160, split="train")[1]
    assert len(set(in_file_order[:32].tolist())) <= 2
    images, labels = mixed_training_images(sorted_run, 160)
    assert all(len(set(labels[i:i + 32].tolist())) >= 6 for i in range(0, 160, 32))
    assert sorted(labels.tolist()) == sorted(in_file_order.tolist())
    again_images, again_labels = mixed_training_images(sorted_run, 160)
    assert torch.equal(images, again_images) and torch.equal(labels, again_labels)


def test_the_command_line_prints_tables_and_json_and_refuses_bad_input(trained_run, tmp_path, capsys):
    assert main([str(trained_run), "--images", "64", "--at", "end", "--tensors", "--only", "conv2"]) == 0
    table = capsys.readouterr().out
    assert "run: preresnet8 at its end (epoch 2), 64 training images in batches of 64" in table
    assert "| blocks.1 | 0.5 |" in table and "| blocks.2.branch.conv2.weight |" in table
    assert "| blocks.2.branch.conv2 |" in table and "| blocks.2.branch.bn2 |" not in table
    assert "at its start" not in table and "conv1" not in table
    assert main([str(trained_run), "--images", "64", "--json"]) == 0
    (saved,) = json.loads(capsys.readouterr().out)
    assert set(saved) >= {"start", "end", "settings"} and len(saved["end"]) == 3
    first_settings = saved["settings"]
    first = saved["start"][0]
    assert first["transfer"] == pytest.approx(first["branch_grad"] / first["upstream"])
    assert len(first["tensors"]) == 6
    assert [x["name"] for x in first["layer_inputs"]] == [f"blocks.0.branch.{n}" for n in ("conv1", "bn2", "conv2")]
    assert first["layer_inputs"][2]["backward_gain"] == pytest.approx(first["layer_inputs"][2]["grad"]
                                                                      / first["upstream"])
    saved_path = tmp_path / "out" / "gradients.json"
    assert main([str(trained_run), "--images", "64", "--at", "end", "--only", "conv2", "--save", str(saved_path)]) == 0
    capsys.readouterr()
    (kept,) = json.loads(saved_path.read_text())
    assert len(kept["end"][0]["tensors"]) == 6 and "start" not in kept  # --only shapes the printout, not the file
    assert kept["settings"]["code_version"] == first_settings["code_version"] and kept["settings"]["threads"] >= 1
    assert [p.name for p in saved_path.parent.iterdir()] == ["gradients.json"]
    for argv, message in (([str(tmp_path / "missing")], "no checkpoint.pt"),
                          ([str(trained_run), "--save", str(tmp_path)], "--save"),
                          ([str(trained_run), "--images", "1"], "--images"),
                          ([str(trained_run), "--at", "middle"], "--at"),
                          ([str(trained_run), "--batch-size", "1"], "--batch-size")):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        assert exit_info.value.code == 2
        error = capsys.readouterr().err.strip()
        assert len(error.splitlines()) == 1 and message in error, error


def test_format_table_marks_a_branch_without_upstream_gradient():
    from pathlib import Path

    from nets.branch_gradients import RunBranchGradients

    silent = BranchGradient(block="blocks.0", h=1.0, stream_rms=2.0, upstream=0.0, branch_grad=0.0, tensors=())
    result = RunBranchGradients(run=Path("r"), model="m", epoch=3, n_images=4, batch_size=2, moments=("end",),
                                blocks=((silent,),))
    assert "| blocks.0 | 1 | 2 | 0 | nan | 0 | 0 |" in format_table([result])
    from nets.branch_gradients import LayerInputGradient

    layers = (LayerInputGradient("b.branch.conv1", 3.0), LayerInputGradient("b.branch.bn2", 0.0),
              LayerInputGradient("b.branch.conv2", 8.0))
    chain = BranchGradient(block="b", h=1.0, stream_rms=1.0, upstream=2.0, branch_grad=1.0, tensors=(),
                           layer_inputs=layers)
    assert chain.backward_gains[1:] == (("b.branch.bn2", 0.0), ("b.branch.conv2", 4.0))
    assert chain.backward_gains[0][1] != chain.backward_gains[0][1]  # NaN: the next layer's gradient is 0
