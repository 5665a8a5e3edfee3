"""The step factor h under SGD is a reparametrization of the branch's last convolution.

X_{k+1} = S X_k + h M_k(F(X_k)) (robust-ResNet paper eq. (4), main paper (3.1)) with F ending in a linear
convolution W is, for plain SGD with momentum mu and (coupled) weight decay lambda, the h = 1 network with
V = h W trained at learning rate h^2 lr and weight decay lambda / h^2 on V, the rest unchanged: the velocity
b_W = mu b_W + h grad_V + lambda V / h gives h b_W / h^2 = mu (h b_W / h^2) + grad_V + (lambda / h^2) V, so
V - h^2 lr (h b_W / h^2) = h (W - lr b_W) step for step. docs/models.md uses this to read what h changes in
training; the test checks it on whole networks in float64, and that the h^2 is needed.
"""
from __future__ import annotations

import pytest
import torch
from torch import nn

import nets

torch.set_num_threads(1)

LR, MOMENTUM, WEIGHT_DECAY, STEPS = 0.1, 0.9, 5e-4, 6


def _last_convolutions(model: nn.Module) -> list[nn.Conv2d]:
    """The last convolution of every residual branch: the weight that h multiplies."""
    return [[m for m in block.branch.modules() if isinstance(m, nn.Conv2d)][-1] for block in model.blocks]


def _train(model: nn.Module, optimizer: torch.optim.Optimizer, images: torch.Tensor,
           labels: torch.Tensor) -> list[torch.Tensor]:
    """STEPS SGD steps on one batch (training mode, noise drawn from a fixed seed per step); the logits."""
    logits = []
    for step in range(STEPS):
        torch.manual_seed(100 + step)
        out = model(images)
        logits.append(out.detach().clone())
        optimizer.zero_grad()
        nn.functional.cross_entropy(out, labels).backward()
        optimizer.step()
    return logits


def _pair(name: str, h: float, options: dict) -> tuple[nn.Module, nn.Module]:
    torch.manual_seed(0)
    stepped = nets.build_model(name, h=h, **options).double()
    plain = nets.build_model(name, h=1.0, **options).double()
    plain.load_state_dict(stepped.state_dict())
    with torch.no_grad():
        for conv in _last_convolutions(plain):
            conv.weight.mul_(h)
    return stepped, plain


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return (torch.randn(16, 3, 8, 8, generator=generator, dtype=torch.float64),
            torch.randint(0, 10, (16,), generator=generator))


def _optimizers(stepped: nn.Module, plain: nn.Module, h: float, lr_power: int):
    sgd = torch.optim.SGD(stepped.parameters(), lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)
    last = {id(conv.weight) for conv in _last_convolutions(plain)}
    groups = [{"params": [p for p in plain.parameters() if id(p) not in last]},
              {"params": [p for p in plain.parameters() if id(p) in last],
               "lr": LR * h**lr_power, "weight_decay": WEIGHT_DECAY / h**lr_power}]
    return sgd, torch.optim.SGD(groups, lr=LR, momentum=MOMENTUM, weight_decay=WEIGHT_DECAY)


@pytest.mark.parametrize("name,options", [
    ("preresnet8", {}),
    ("preresnet8", {"noise": "bernoulli", "p": 0.8}),
    ("preresnet", {"depth": 11, "block": "bottleneck"}),
])
@pytest.mark.parametrize("h", [0.1, 2.0, 8.0])
def test_h_is_init_times_h_and_learning_rate_times_h_squared_on_the_last_convolution(name, options, h):
    stepped, plain = _pair(name, h, options)
    images, labels = _batch()
    sgd_stepped, sgd_plain = _optimizers(stepped, plain, h, lr_power=2)
    logits_stepped = _train(stepped, sgd_stepped, images, labels)
    logits_plain = _train(plain, sgd_plain, images, labels)
    for a, b in zip(logits_stepped, logits_plain):
        torch.testing.assert_close(b, a, rtol=1e-9, atol=1e-9)
    assert (logits_stepped[-1] - logits_stepped[0]).abs().max() > 1e-2  # the steps moved the network
    for conv_stepped, conv_plain in zip(_last_convolutions(stepped), _last_convolutions(plain)):
        torch.testing.assert_close(conv_plain.weight, h * conv_stepped.weight, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("h", [0.5, 4.0])
def test_without_the_h_squared_learning_rate_the_two_networks_part(h):
    stepped, plain = _pair("preresnet8", h, {})
    images, labels = _batch()
    sgd_stepped, sgd_plain = _optimizers(stepped, plain, h, lr_power=0)
    logits_stepped = _train(stepped, sgd_stepped, images, labels)
    logits_plain = _train(plain, sgd_plain, images, labels)
    torch.testing.assert_close(logits_plain[0], logits_stepped[0], rtol=1e-9, atol=1e-9)  # same start
    assert (logits_plain[-1] - logits_stepped[-1]).abs().max() > 1e-3
