"""shake_preresnet26: the shake-shake combination (3.15), its statistics, backward modes, eps."""
from __future__ import annotations

import math

import pytest
import torch

import nets
from nets.models.shake import ShakePreResNetConfig, shake

torch.set_num_threads(1)

N = 200_000


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _closed_form_count(width: int, in_channels: int, num_classes: int) -> int:
    total = 9 * in_channels * 16
    c_in = 16
    for stage in range(3):
        w = width * 2**stage
        for _ in range(4):
            total += 2 * (2 * c_in + 9 * c_in * w + 2 * w + 9 * w * w)
            if c_in != w:
                total += c_in * w
            c_in = w
    return total + 2 * c_in + c_in * num_classes + num_classes


def test_parameter_count_and_blocks():
    model = nets.build_model("shake_preresnet26")
    assert model.num_blocks == 12
    assert _count(model) == _closed_form_count(32, 3, 10)
    assert abs(_count(model) / 1e6 - 2.9) < 0.05  # Gastaldi's 26 2x32d
    small = nets.build_model("shake_preresnet26", width=8, num_classes=100, in_channels=1)
    assert _count(small) == _closed_form_count(8, 1, 100)


def test_alpha_is_uniform_per_sample_and_one_half_at_test():
    torch.manual_seed(0)
    x1 = torch.ones(N, 3, dtype=torch.float64)
    x2 = torch.zeros(N, 3, dtype=torch.float64)
    alpha = shake(x1, x2, training=True)
    assert bool((alpha == alpha[:, :1]).all()), "one alpha per sample"
    a = alpha[:, 0]
    assert a.min().item() >= 0.0 and a.max().item() <= 1.0
    assert abs(a.mean().item() - 0.5) < 6 * math.sqrt(1 / 12 / N)
    assert abs((a - 0.5).square().mean().item() - 1 / 12) < 6 * math.sqrt((1 / 80 - 1 / 144) / N)
    assert torch.equal(shake(x1, x2, training=False), torch.full_like(x1, 0.5))


@pytest.mark.parametrize("backward", ["same", "independent"])
def test_backward_coefficient(backward):
    torch.manual_seed(1)
    x1 = torch.ones(N, 2, dtype=torch.float64, requires_grad=True)
    x2 = torch.zeros(N, 2, dtype=torch.float64, requires_grad=True)
    out = shake(x1, x2, training=True, backward=backward)
    out.sum().backward()
    assert torch.allclose(x1.grad + x2.grad, torch.ones_like(x1.grad))
    beta = x1.grad[:, 0]
    alpha = out.detach()[:, 0]
    if backward == "same":
        assert torch.equal(beta, alpha)
    else:
        assert abs(beta.mean().item() - 0.5) < 6 * math.sqrt(1 / 12 / N)
        correlation = torch.corrcoef(torch.stack([alpha, beta]))[0, 1].item()
        assert abs(correlation) < 6 / math.sqrt(N), "beta is drawn independently of alpha"


def _spread_bf16(n: int) -> torch.Tensor:
    return torch.randn(n, 1).mul(0.7).exp().to(torch.bfloat16)  # positive, spread over several binades


def test_bfloat16_shake_weights_the_branches_one_half_on_average():
    """Under bf16 autocast the training combination has the mean of the test one, 0.5 (x1 + x2): alpha drawn
    in bf16 has mean 0.498, which weights F2 more (about 9 standard errors here)."""
    torch.manual_seed(7)
    n = 4_000_000  # one alpha per row (sample)
    x1, x2 = _spread_bf16(n), _spread_bf16(n).mul(0.25)  # different branches, so that a biased alpha shows
    out = shake(x1, x2, training=True)
    assert out.dtype == torch.bfloat16
    d = (x1.double() - x2.double()).sum(1)
    std_error = math.sqrt(d.square().sum().item() / 12) / n
    expected = 0.5 * (x1.double() + x2.double()).mean().item()
    assert abs(out.double().mean().item() - expected) < 5 * std_error


@pytest.mark.parametrize("backward", ["same", "independent"])
def test_bfloat16_backward_weights_are_one_half_on_average(backward):
    torch.manual_seed(8)
    n = 4_000_000
    x1 = torch.zeros(n, 1, dtype=torch.bfloat16, requires_grad=True)
    x2 = torch.zeros(n, 1, dtype=torch.bfloat16, requires_grad=True)
    grad = _spread_bf16(n)
    shake(x1, x2, training=True, backward=backward).backward(grad)
    assert x1.grad.dtype == torch.bfloat16 and x2.grad.dtype == torch.bfloat16
    g = grad.double()
    std_error = math.sqrt(g.sum(1).square().sum().item() / 12) / n
    for part in (x1.grad, x2.grad):
        assert abs(part.double().mean().item() - 0.5 * g.mean().item()) < 5 * std_error


def test_block_combines_its_two_branches():
    torch.manual_seed(2)
    model = nets.build_model("shake_preresnet26", width=4, h=0.5)
    block = model.blocks[1]
    x = torch.randn(5, 4, 6, 6)
    block.eval()
    with torch.no_grad():
        f1, f2 = block.branch.branch1(x), block.branch.branch2(x)
        assert torch.allclose(block(x), x + 0.5 * (0.5 * f1 + 0.5 * f2), atol=1e-6)
        block.train()
        block.branch.branch1.eval()
        block.branch.branch2.eval()
        inc = block.increment(x) / 0.5
    for i in range(5):  # inc_i = alpha_i f1_i + (1 - alpha_i) f2_i with one scalar alpha_i in [0, 1]
        d = (f1[i] - f2[i]).flatten()
        alpha = torch.dot((inc[i] - f2[i]).flatten(), d) / torch.dot(d, d)
        assert 0.0 <= alpha.item() <= 1.0
        assert torch.allclose(inc[i], alpha * f1[i] + (1 - alpha) * f2[i], atol=1e-5)


def test_epsilon_is_one_over_sqrt_3k_and_the_mask_has_its_own():
    assert nets.build_model("shake_preresnet26", width=4).epsilon() == pytest.approx(1 / math.sqrt(36), rel=1e-14)
    model = nets.build_model("shake_preresnet26", width=4, noise="bernoulli", p=0.75)
    assert model.epsilon() == pytest.approx(1 / 6, rel=1e-14)
    assert model.noise_epsilon() == pytest.approx(math.sqrt(0.25 / (0.75 * 12)), rel=1e-14)


@pytest.mark.parametrize("num_classes,in_channels,size", [(10, 3, 32), (100, 3, 32), (10, 1, 28)])
def test_shapes_and_eval_determinism(num_classes, in_channels, size):
    torch.manual_seed(3)
    model = nets.build_model("shake_preresnet26", width=4, num_classes=num_classes, in_channels=in_channels)
    x = torch.randn(3, in_channels, size, size)
    out = model(x)
    assert out.shape == (3, num_classes)
    assert not torch.equal(out, model(x))
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))


def test_switched_off_extra_injections_are_exact():
    torch.manual_seed(4)
    plain = nets.build_model("shake_preresnet26", width=4).eval()
    variant = nets.build_model("shake_preresnet26", width=4, noise="gaussian", nu=0.0, stochastic_depth=1.0)
    variant.load_state_dict(plain.state_dict(), strict=True)
    x = torch.randn(2, 3, 16, 16)
    torch.manual_seed(5)
    reference = plain.train()(x)
    torch.manual_seed(5)
    assert torch.equal(variant(x), reference)


@pytest.mark.parametrize("backward", ["same", "independent"])
def test_gradients_reach_every_parameter(backward):
    torch.manual_seed(6)
    model = nets.build_model("shake_preresnet26", width=4, shake_backward=backward, noise="uniform", beta=0.3)
    loss = torch.nn.functional.cross_entropy(model(torch.randn(4, 3, 16, 16)), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and bool(param.grad.abs().sum() > 0), name


@pytest.mark.parametrize("options,needle", [(dict(shake_backward="even"), "^shake_backward must be one of"),
                                            (dict(width=0), "width"),
                                            (dict(depth=32), r"unknown option\(s\) \['depth'\]"),
                                            (dict(block="bottleneck"), r"unknown option\(s\) \['block'\]")])
def test_bad_options(options, needle):
    with pytest.raises(ValueError, match=needle):
        nets.build_model("shake_preresnet26", **options)


@pytest.mark.parametrize("options,needle", [
    (dict(depth=29, block="bottleneck"), r"^block must be 'basic' for shake-shake; got 'bottleneck'$"),
    (dict(depth=27), r"^depth must be 6n\+2 with n >= 1 for block='basic' \(8, 14, 20, \.\.\.\); got 27$"),
])
def test_bad_config_options(options, needle):
    """The registry fixes depth and block (unknown options above); the config itself checks them too."""
    with pytest.raises(ValueError, match=needle):
        ShakePreResNetConfig(**options)
