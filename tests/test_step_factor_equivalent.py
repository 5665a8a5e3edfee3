"""nets.models.step_factor: with branches invariant to their input's scale, a uniform h moves onto the layers
around the flow: a pre-activation network's stem (W / h), an MLP ResNet's opening (/ h) and classifier (x h).

BN(c x; eps) = BN(x; eps / c^2), so Y_k = X_k / h runs the h = 1 flow; under SGD a parameter rescaled by h^e
trains at h^(2e) times the learning rate and h^(-2e) times the decay. Checked in float64 on whole networks, in
training mode (noise drawn from fixed seeds), in evaluation mode after the running statistics have moved, and
through six SGD steps with momentum and weight decay.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

import nets
from nets.models.step_factor import (step_factor_rescaling, uniform_step_factor, unit_step_equivalent,
                                     unit_step_sgd_groups)

torch.set_num_threads(1)

LR, MOMENTUM, WEIGHT_DECAY, STEPS = 0.1, 0.9, 5e-4, 6

MLP = {"in_features": 5, "width": 7, "depth": 4, "num_classes": 10, "batch_norm": True}
NETWORKS = [
    ("preresnet8", {}),
    ("preresnet8", {"noise": "bernoulli", "p": 0.8}),
    ("preresnet", {"depth": 11, "block": "bottleneck", "stochastic_depth": 0.7}),
    ("lm_preresnet8", {}),
    ("mlp_resnet", {**MLP, "noise": "gaussian", "nu": 0.3}),
    ("mlp_resnet", {**MLP, "block": "shrinkage", "activation": "tanh"}),
    ("shake_preresnet26", {"width": 2, "shake_backward": "independent"}),
]


def _batch(name: str, size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    shape = (size, MLP["in_features"]) if name == "mlp_resnet" else (size, 3, 8, 8)
    return (torch.randn(shape, generator=generator, dtype=torch.float64),
            torch.randint(0, 10, (size,), generator=generator))


def _batchnorms(model: nn.Module) -> list[nn.Module]:
    modules = dict(model.named_modules())
    return [modules[name] for name in step_factor_rescaling(model).batchnorms]


def _stepped(name: str, h: float, options: dict) -> nn.Module:
    torch.manual_seed(0)
    return nets.build_model(name, h=h, **options).double()


@pytest.mark.parametrize("name,options", NETWORKS)
@pytest.mark.parametrize("h", [0.1, 3.0, 32.0])
def test_the_h_network_is_the_unit_network_with_the_stem_divided_by_h(name, options, h):
    stepped = _stepped(name, h, options)
    equivalent = unit_step_equivalent(stepped)
    assert all(block.h == 1.0 for block in equivalent.blocks) and equivalent.config.h == 1.0
    assert all(block.h == h for block in stepped.blocks)  # the original is left alone
    images, _ = _batch(name)
    for seed in range(3):  # training mode: batch statistics, noise masks, dropped blocks, shake coefficients
        torch.manual_seed(seed)
        a = stepped.train()(images)
        torch.manual_seed(seed)
        b = equivalent.train()(images)
        torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-9)
    for norm_h, norm_1 in zip(_batchnorms(stepped), _batchnorms(equivalent)):
        torch.testing.assert_close(norm_h.running_mean, h * norm_1.running_mean, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(norm_h.running_var, h**2 * norm_1.running_var, rtol=1e-9, atol=1e-12)
        assert norm_1.eps == pytest.approx(norm_h.eps / h**2, rel=1e-12)
    assert (_batchnorms(stepped)[0].running_mean.abs() > 0).any()  # the running statistics moved
    torch.testing.assert_close(equivalent.eval()(images), stepped.eval()(images), rtol=1e-9, atol=1e-9)
    parameters = dict(stepped.named_parameters())
    for parameter_name, parameter in equivalent.named_parameters():
        exponent = step_factor_rescaling(stepped).exponents.get(parameter_name, 0)
        torch.testing.assert_close(parameter, h**exponent * parameters[parameter_name], rtol=1e-12, atol=0.0)


def _train(model: nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor,
           labels: torch.Tensor) -> list[torch.Tensor]:
    logits = []
    for step in range(STEPS):
        torch.manual_seed(100 + step)
        out = model.train()(images)
        logits.append(out.detach().clone())
        optimizer.zero_grad()
        nn.functional.cross_entropy(out, labels).backward()
        optimizer.step()
    return logits


@pytest.mark.parametrize("name,options", NETWORKS[:6])
@pytest.mark.parametrize("h", [0.25, 8.0])
def test_under_sgd_the_stem_trains_at_lr_over_h_squared_and_decay_times_h_squared(name, options, h):
    stepped = _stepped(name, h, options)
    equivalent = unit_step_equivalent(stepped)
    images, labels = _batch(name)
    sgd_stepped = torch.optim.SGD(stepped.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    sgd_equivalent = torch.optim.SGD(unit_step_sgd_groups(equivalent, h, LR, WEIGHT_DECAY), lr=LR,
                                     momentum=MOMENTUM)
    logits_stepped = _train(stepped, sgd_stepped, images, labels)
    logits_equivalent = _train(equivalent, sgd_equivalent, images, labels)
    for a, b in zip(logits_stepped, logits_equivalent):
        torch.testing.assert_close(b, a, rtol=1e-8, atol=1e-8)
    assert (logits_stepped[-1] - logits_stepped[0]).abs().max() > 1e-2  # the steps moved the network
    start = dict(_stepped(name, h, options).named_parameters())
    parameters = dict(stepped.named_parameters())
    for parameter_name, exponent in step_factor_rescaling(stepped).exponents.items():
        if not parameter_name.endswith("linear1.bias"):  # a bias before BatchNorm gets no gradient in training
            assert (parameters[parameter_name] - start[parameter_name]).abs().max() > 1e-6  # the rescaled ones train
    for parameter_name, parameter in equivalent.named_parameters():
        exponent = step_factor_rescaling(stepped).exponents.get(parameter_name, 0)
        torch.testing.assert_close(parameter, h**exponent * parameters[parameter_name], rtol=1e-8, atol=1e-12)


def test_the_rescaled_learning_rate_is_needed_and_so_are_the_rescaled_weights():
    h = 4.0
    stepped = _stepped("preresnet8", h, {})
    images, labels = _batch("preresnet8")
    unscaled = unit_step_equivalent(stepped)
    with torch.no_grad():
        unscaled.stem.weight.mul_(h)  # the h = 1 network on the h network's stem
    assert (unscaled.eval()(images) - stepped.eval()(images)).abs().max() > 1e-3
    mlp = _stepped("mlp_resnet", h, MLP)
    mlp_equivalent = unit_step_equivalent(mlp)
    with torch.no_grad():
        mlp_equivalent.fc.weight.div_(h)  # the classifier left as it was
    features, _ = _batch("mlp_resnet")
    assert (mlp_equivalent.eval()(features) - mlp.eval()(features)).abs().max() > 1e-3
    equivalent = unit_step_equivalent(stepped)
    same_rate = torch.optim.SGD(equivalent.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    sgd_stepped = torch.optim.SGD(stepped.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    logits_stepped = _train(stepped, sgd_stepped, images, labels)
    logits_equivalent = _train(equivalent, same_rate, images, labels)
    torch.testing.assert_close(logits_equivalent[0], logits_stepped[0], rtol=1e-9, atol=1e-9)  # same start
    assert (logits_equivalent[-1] - logits_stepped[-1]).abs().max() > 1e-4


@pytest.mark.parametrize("h", [0.1, 10.0])
def test_without_an_opening_layer_the_input_carries_h(h):
    """The digits networks of docs/companion.md (batch norm, y_0 = x): the h network on x is the h = 1 network
    on x / h with every b1 / h, the branches' BatchNorm at eps / h^2 (running var / h^2) and the classifier h
    times."""
    options = {**MLP, "width": None, "depth": 6}
    stepped = _stepped("mlp_resnet", h, options)
    unit = _stepped("mlp_resnet", 1.0, options)
    unit.load_state_dict(stepped.state_dict())
    with torch.no_grad():
        unit.fc.weight.mul_(h)
        for block in unit.blocks:
            block.branch.linear1.bias.div_(h)
            block.branch.norm.eps /= h**2
            block.branch.norm.running_var.div_(h**2)  # (the running mean starts at 0)
    features, _ = _batch("mlp_resnet")
    torch.testing.assert_close(unit.train()(features / h), stepped.train()(features), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(unit.eval()(features / h), stepped.eval()(features), rtol=1e-9, atol=1e-9)
    assert (unit.eval()(features) - stepped.eval()(features)).abs().max() > 1e-3  # on x itself they differ


def test_networks_the_identity_does_not_cover_are_refused():
    with pytest.raises(ValueError, match="batch_norm must be True"):
        unit_step_equivalent(nets.build_model("mlp_resnet", h=0.5, width=4))
    with pytest.raises(ValueError, match="width must be given"):
        unit_step_equivalent(nets.build_model("mlp_resnet", h=0.5, batch_norm=True))
    with pytest.raises(ValueError, match="model must be a pre-activation network"):
        unit_step_equivalent(nn.Sequential(nn.Linear(2, 2)))
    mixed = nets.build_model("preresnet8", h=2.0)
    mixed.blocks[1].h = 1.0
    with pytest.raises(ValueError, match=r"every block must have the same step factor h; got \[1.0, 2.0\]"):
        unit_step_equivalent(mixed)
    assert uniform_step_factor(nets.build_model("preresnet8", h=2.0)) == 2.0
    with pytest.raises(ValueError, match="h must be a finite float > 0"):
        unit_step_sgd_groups(nets.build_model("preresnet8"), 0.0, LR, WEIGHT_DECAY)
