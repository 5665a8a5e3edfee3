"""nets.models.step_factor: a uniform h in a pre-activation network is its stem at W / h (BatchNorm eps / h^2).

Every branch and the head start with BatchNorm, BN(c x; eps) = BN(x; eps / c^2), so Y_k = X_k / h runs the
h = 1 flow from (W / h) y; under SGD the stem then trains at lr / h^2 and weight decay lambda h^2. Checked in
float64 on whole networks, in training mode (noise drawn from fixed seeds), in evaluation mode after the
running statistics have moved, and through six SGD steps with momentum and weight decay.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

import nets
from nets.models.step_factor import (stream_batchnorms, uniform_step_factor, unit_step_equivalent,
                                     unit_step_sgd_groups)

torch.set_num_threads(1)

LR, MOMENTUM, WEIGHT_DECAY, STEPS = 0.1, 0.9, 5e-4, 6

NETWORKS = [
    ("preresnet8", {}),
    ("preresnet8", {"noise": "bernoulli", "p": 0.8}),
    ("preresnet", {"depth": 11, "block": "bottleneck", "stochastic_depth": 0.7}),
    ("lm_preresnet8", {}),
    ("shake_preresnet26", {"width": 2, "shake_backward": "independent"}),
]


def _batch(size: int = 16) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return (torch.randn(size, 3, 8, 8, generator=generator, dtype=torch.float64),
            torch.randint(0, 10, (size,), generator=generator))


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
    images, _ = _batch()
    for seed in range(3):  # training mode: batch statistics, noise masks, dropped blocks, shake coefficients
        torch.manual_seed(seed)
        a = stepped.train()(images)
        torch.manual_seed(seed)
        b = equivalent.train()(images)
        torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-9)
    for norm_h, norm_1 in zip(stream_batchnorms(stepped), stream_batchnorms(equivalent)):
        torch.testing.assert_close(norm_h.running_mean, h * norm_1.running_mean, rtol=1e-9, atol=1e-12)
        torch.testing.assert_close(norm_h.running_var, h**2 * norm_1.running_var, rtol=1e-9, atol=1e-12)
        assert norm_1.eps == pytest.approx(norm_h.eps / h**2, rel=1e-12)
    assert (stream_batchnorms(stepped)[0].running_mean.abs() > 0).any()  # the running statistics moved
    torch.testing.assert_close(equivalent.eval()(images), stepped.eval()(images), rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(equivalent.stem.weight, stepped.stem.weight / h, rtol=1e-12, atol=0.0)


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


@pytest.mark.parametrize("name,options", NETWORKS[:4])
@pytest.mark.parametrize("h", [0.25, 8.0])
def test_under_sgd_the_stem_trains_at_lr_over_h_squared_and_decay_times_h_squared(name, options, h):
    stepped = _stepped(name, h, options)
    equivalent = unit_step_equivalent(stepped)
    images, labels = _batch()
    sgd_stepped = torch.optim.SGD(stepped.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    sgd_equivalent = torch.optim.SGD(unit_step_sgd_groups(equivalent, h, LR, WEIGHT_DECAY), lr=LR,
                                     momentum=MOMENTUM)
    logits_stepped = _train(stepped, sgd_stepped, images, labels)
    logits_equivalent = _train(equivalent, sgd_equivalent, images, labels)
    for a, b in zip(logits_stepped, logits_equivalent):
        torch.testing.assert_close(b, a, rtol=1e-8, atol=1e-8)
    assert (logits_stepped[-1] - logits_stepped[0]).abs().max() > 1e-2  # the steps moved the network
    assert (stepped.stem.weight - _stepped(name, h, options).stem.weight).abs().max() > 1e-6  # the stem too
    torch.testing.assert_close(equivalent.stem.weight, stepped.stem.weight / h, rtol=1e-8, atol=1e-12)


def test_the_stem_learning_rate_is_needed_and_so_is_the_stem_scale():
    h = 4.0
    stepped = _stepped("preresnet8", h, {})
    images, labels = _batch()
    unscaled = unit_step_equivalent(stepped)
    with torch.no_grad():
        unscaled.stem.weight.mul_(h)  # the h = 1 network on the h network's stem
    assert (unscaled.eval()(images) - stepped.eval()(images)).abs().max() > 1e-3
    equivalent = unit_step_equivalent(stepped)
    same_rate = torch.optim.SGD(equivalent.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    sgd_stepped = torch.optim.SGD(stepped.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    logits_stepped = _train(stepped, sgd_stepped, images, labels)
    logits_equivalent = _train(equivalent, same_rate, images, labels)
    torch.testing.assert_close(logits_equivalent[0], logits_stepped[0], rtol=1e-9, atol=1e-9)  # same start
    assert (logits_equivalent[-1] - logits_stepped[-1]).abs().max() > 1e-4


def test_networks_the_identity_does_not_cover_are_refused():
    with pytest.raises(ValueError, match="model must be a pre-activation network"):
        unit_step_equivalent(nets.build_model("mlp_resnet", h=0.5))
    mixed = nets.build_model("preresnet8", h=2.0)
    mixed.blocks[1].h = 1.0
    with pytest.raises(ValueError, match=r"every block must have the same step factor h; got \[1.0, 2.0\]"):
        unit_step_equivalent(mixed)
    assert uniform_step_factor(nets.build_model("preresnet8", h=2.0)) == 2.0
    with pytest.raises(ValueError, match="h must be a finite float > 0"):
        unit_step_sgd_groups(nets.build_model("preresnet8"), 0.0, LR, WEIGHT_DECAY)
