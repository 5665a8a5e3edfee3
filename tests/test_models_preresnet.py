"""PreResNet family: sizes, shapes, the noise layer's place, switched-off injections, eps, errors."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import nets
from nets.models.blocks import ResidualBlock

torch.set_num_threads(1)


def _basic_count(n: int, in_channels: int, num_classes: int) -> int:
    """Closed-form parameter count of a BasicBlock PreResNet (convs, BN affine, projections, fc)."""
    total = 9 * in_channels * 16
    c_in = 16
    for width in (16, 32, 64):
        for _ in range(n):
            total += 2 * c_in + 9 * c_in * width + 2 * width + 9 * width * width
            if c_in != width:
                total += c_in * width
            c_in = width
    return total + 2 * 64 + 64 * num_classes + num_classes


def _bottleneck_count(n: int, in_channels: int, num_classes: int) -> int:
    total = 9 * in_channels * 16
    c_in = 16
    for width in (16, 32, 64):
        for _ in range(n):
            out = 4 * width
            total += 2 * c_in + c_in * width + 2 * width + 9 * width * width + 2 * width + width * out
            if c_in != out:
                total += c_in * out
            c_in = out
    return total + 2 * 256 + 256 * num_classes + num_classes


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("depth,expected_m", [(20, 0.27), (32, None), (44, None), (56, 0.85), (110, 1.73),
                                              (218, 3.48)])
def test_basic_parameter_counts(depth, expected_m):
    model = nets.build_model(f"preresnet{depth}")
    n = (depth - 2) // 6
    assert _count(model) == _basic_count(n, 3, 10)
    assert model.num_blocks == 3 * n
    if expected_m is not None:
        assert abs(_count(model) / 1e6 - expected_m) < 0.01


def test_bottleneck_parameter_count_and_cifar100_head():
    model = nets.build_model("preresnet164")
    assert model.num_blocks == 54
    assert _count(model) == _bottleneck_count(18, 3, 10)
    assert abs(_count(model) / 1e6 - 1.70) < 0.01
    wide_head = nets.build_model("preresnet", depth=164, block="bottleneck", num_classes=100, in_channels=1)
    assert _count(wide_head) == _bottleneck_count(18, 1, 100)


@pytest.mark.parametrize("options", [dict(noise="bernoulli", p=0.5), dict(noise="gaussian", nu=0.3),
                                     dict(noise="uniform", beta=0.5), dict(stochastic_depth=0.5), dict(h=0.1)])
def test_noise_adds_no_parameters_and_plain_state_dict_loads(options):
    torch.manual_seed(0)
    plain = nets.build_model("preresnet8")
    noisy = nets.build_model("preresnet8", **options)
    assert _count(noisy) == _count(plain)
    noisy.load_state_dict(plain.state_dict(), strict=True)
    for key, value in plain.state_dict().items():
        assert torch.equal(noisy.state_dict()[key], value)


@pytest.mark.parametrize("num_classes,in_channels,size", [(10, 3, 32), (100, 3, 32), (10, 1, 28)])
def test_output_shapes(num_classes, in_channels, size):
    model = nets.build_model("preresnet8", num_classes=num_classes, in_channels=in_channels,
                             noise="bernoulli", p=0.8)
    x = torch.randn(4, in_channels, size, size)
    assert model(x).shape == (4, num_classes)
    model.eval()
    assert model(x).shape == (4, num_classes)


def test_bottleneck_forward_shape_small():
    model = nets.build_model("preresnet", depth=11, block="bottleneck")
    assert model.num_blocks == 3
    assert model(torch.randn(2, 3, 16, 16)).shape == (2, 10)


@pytest.mark.parametrize("options", [dict(noise="bernoulli", p=0.5), dict(noise="gaussian", nu=0.5),
                                     dict(noise="uniform", beta=0.9), dict(stochastic_depth=0.3)])
def test_eval_is_deterministic_and_training_is_not(options):
    torch.manual_seed(1)
    model = nets.build_model("preresnet8", **options)
    x = torch.randn(4, 3, 16, 16)
    first = model(x)
    second = model(x)
    assert not torch.equal(first, second), "masks must be drawn fresh at every forward"
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
    # eval: the noisy net is the plain net with the same weights (ensemble prediction, sec. 3.2)
    plain = nets.build_model("preresnet8")
    plain.load_state_dict(model.state_dict())
    plain.eval()
    with torch.no_grad():
        assert torch.equal(model(x), plain(x))


@pytest.mark.parametrize("options", [dict(noise="bernoulli", p=1.0), dict(noise="gaussian", nu=0.0),
                                     dict(noise="uniform", beta=0.0), dict(h=1.0), dict(stochastic_depth=1.0),
                                     dict(noise="bernoulli", p=1.0, stochastic_depth=1.0, h=1.0)])
@pytest.mark.parametrize("name", ["preresnet8", "preresnet", ])
def test_switched_off_injection_is_exactly_the_plain_network(options, name):
    extra = {"depth": 11, "block": "bottleneck"} if name == "preresnet" else {}
    torch.manual_seed(2)
    plain = nets.build_model(name, **extra)
    variant = nets.build_model(name, **extra, **options)
    variant.load_state_dict(plain.state_dict())
    x = torch.randn(4, 3, 16, 16)
    assert torch.equal(plain(x), variant(x))  # training mode: batch statistics, masks would act here


def test_noise_layer_sits_after_the_last_convolution_elementwise():
    torch.manual_seed(3)
    model = nets.build_model("preresnet8", noise="bernoulli", p=0.5, h=0.3)
    block = model.blocks[0]
    assert isinstance(block, ResidualBlock)
    x = torch.randn(3, 16, 8, 8)
    block.eval()
    with torch.no_grad():
        clean = block.branch(x)
        assert torch.allclose(block(x), x + 0.3 * clean)
    block.train()
    block.branch.eval()  # keep BN in eval so that the branch is the same function
    with torch.no_grad():
        inc = block.increment(x)
    ratio = inc / (0.3 * clean)
    dropped = ratio.abs() < 1e-6
    kept = (ratio - 2.0).abs() < 1e-5
    assert bool((dropped | kept).all()), "mask entries must be 0 or 1/p, element by element"
    assert 0.4 < dropped.float().mean().item() < 0.6
    per_channel = dropped.float().mean(dim=(0, 2, 3))
    assert bool((per_channel > 0).all() and (per_channel < 1).all()), "masks are element-wise, not per channel"


@pytest.mark.parametrize("name,options,k,formula", [
    ("preresnet20", dict(noise="bernoulli", p=0.8), 9, lambda k: math.sqrt(0.2 / (0.8 * k))),
    ("preresnet110", dict(noise="gaussian", nu=0.4), 54, lambda k: 0.4 / math.sqrt(k)),
    ("preresnet8", dict(noise="uniform", beta=0.6, h=0.1), 3, lambda k: 0.6 / math.sqrt(3 * k)),
    ("preresnet164", dict(noise="bernoulli", p=0.5), 54, lambda k: math.sqrt(0.5 / (0.5 * k))),
    ("preresnet56", dict(stochastic_depth=0.5), 27, lambda k: 0.0),
])
def test_epsilon_is_the_formula(name, options, k, formula):
    model = nets.build_model(name, **options)
    assert model.num_blocks == k
    assert model.epsilon() == pytest.approx(formula(k), rel=1e-12, abs=0.0)
    assert model.lm_coefficients() is None


def test_stochastic_depth_linear_decay_survival():
    model = nets.build_model("preresnet20", stochastic_depth=0.5)
    survival = [block.drop_path.survival for block in model.blocks]
    assert survival == pytest.approx([1.0 - (l / 9) * 0.5 for l in range(1, 10)], rel=1e-15)


def test_gradients_reach_every_parameter():
    torch.manual_seed(4)
    model = nets.build_model("preresnet8", noise="gaussian", nu=0.2, h=0.5)
    loss = torch.nn.functional.cross_entropy(model(torch.randn(4, 3, 16, 16)), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and bool(param.grad.abs().sum() > 0), name


@pytest.mark.parametrize("name,options,needle", [
    ("preresnet21", {}, "name"),
    ("preresnet", dict(depth=21), "depth"),
    ("preresnet", dict(depth=32, block="bottleneck"), "depth"),
    ("preresnet", dict(depth=20, block="wide"), "block"),
    ("preresnet20", dict(depth=32), "depth"),
    ("preresnet20", dict(dropout=0.1), "dropout"),
    ("preresnet20", dict(noise="bernoulli", p=0.0), "p"),
    ("preresnet20", dict(noise="bernoulli", p=1.5), "p"),
    ("preresnet20", dict(noise="bernoulli"), "p"),
    ("preresnet20", dict(noise="gaussian", nu=-0.1), "nu"),
    ("preresnet20", dict(noise="uniform", beta=1.0), "beta"),
    ("preresnet20", dict(noise="uniform", beta=-0.1), "beta"),
    ("preresnet20", dict(noise="gaussian", p=0.5), "p"),
    ("preresnet20", dict(p=0.5), "noise"),
    ("preresnet20", dict(noise="dropout", p=0.5), "noise"),
    ("preresnet20", dict(h=0.0), "h"),
    ("preresnet20", dict(h=-1.0), "h"),
    ("preresnet20", dict(stochastic_depth=0.0), "stochastic_depth"),
    ("preresnet20", dict(stochastic_depth=1.2), "stochastic_depth"),
    ("preresnet20", dict(num_classes=0), "num_classes"),
    ("preresnet20", dict(in_channels=2.5), "in_channels"),
    ("preresnet", dict(block=["basic"]), r"^block must be one of \['basic', 'bottleneck'\]; got \['basic'\]$"),
    ("preresnet", dict(depth=20, block=None), r"^block must be one of"),
    ("preresnet20", dict(h="0.1"), r"^h must be a finite float > 0; got '0.1'$"),
    ("preresnet20", dict(h=np.True_), r"^h must be a finite float > 0"),
    ("preresnet20", dict(noise="gaussian", nu=False), r"^nu must be a real number \(nu >= 0\), not a bool"),
    ("preresnet20", dict(noise="gaussian", nu=True), r"^nu must be a real number"),
    ("preresnet20", dict(noise="bernoulli", p=True), r"^p must be a real number \(p in \(0, 1\]\), not a bool"),
    ("preresnet20", dict(noise="uniform", beta=np.False_), r"^beta must be a real number"),
])
def test_bad_options_raise_value_error_naming_the_option(name, options, needle):
    with pytest.raises(ValueError, match=needle):
        nets.build_model(name, **options)


def test_list_models_contains_the_contract_names():
    names = set(nets.list_models())
    for depth in (8, 20, 32, 44, 56, 110, 164, 218):
        assert f"preresnet{depth}" in names
    assert "preresnet" in names


@pytest.mark.parametrize("options", [dict(noise="gaussian", nu=0.6), dict(noise="bernoulli", p=0.7),
                                     dict(noise="uniform", beta=0.8)])
def test_increment_variance_is_eps_squared_g_squared_dt(options):
    """X_{k+1} - X_k = f dt + eps g dW with dt = 1/K, g = F/dt (3.2)-(3.4): Var = eps^2 F^2 / dt."""
    torch.manual_seed(9)
    model = nets.build_model("preresnet8", **options).double()
    block = model.blocks[0]
    block.branch.eval()  # the branch F is a fixed function; only the mask is random
    x = torch.randn(1, 16, 6, 6, dtype=torch.float64).expand(1500, -1, -1, -1)
    with torch.no_grad():
        f = block.branch(x[:1])
        increments = block.increment(x)
    dt = 1.0 / model.num_blocks
    ratio = increments.var(dim=0) / (f[0] ** 2 / dt)  # one estimate of eps^2 per element
    assert ratio.mean().item() == pytest.approx(model.epsilon() ** 2, rel=0.04)
    assert increments.mean(dim=0).sub(f[0]).abs().max().item() < 6 * math.sqrt(
        model.epsilon() ** 2 / dt / 1500) * f.abs().max().item()


def test_stochastic_depth_increments_have_the_per_block_eps_and_a_rank_one_diffusion():
    """Stochastic depth (LM-ResNet paper 3.2): block l's increment F eta_l / p_l has Var = eps_l^2 F^2 / dt with
    eps_l^2 = (1 - p_l)/(p_l K) (kolmogorov.stochastic_depth_epsilons), one draw for the whole branch: the
    increments of two units are perfectly correlated (g = f), where dropout's are uncorrelated (g = diag f)."""
    import kolmogorov

    torch.manual_seed(11)
    p_L = 0.78124
    model = nets.build_model("preresnet8", stochastic_depth=p_L).double()
    dropout = nets.build_model("preresnet8", noise="bernoulli", p=0.85).double()
    dt = 1.0 / model.num_blocks
    expected = kolmogorov.stochastic_depth_epsilons(p_L, model.num_blocks)
    ratios = []
    for block, eps_l in zip(model.blocks, expected):
        block.branch.eval()
        x = torch.randn(1, block.branch.bn1.num_features, 8, 8, dtype=torch.float64).expand(4000, -1, -1, -1)
        with torch.no_grad():
            f = block.branch(x[:1])
            increments = block.increment(x)
        ratio = (increments.var(dim=0) / (f[0] ** 2 / dt)).mean().item()
        assert ratio == pytest.approx(eps_l ** 2, rel=0.1)
        ratios.append(ratio)
        flat = increments.flatten(1)
        two = flat[:, torch.argsort(f[0].flatten().abs(), descending=True)[:2]]
        assert abs(torch.corrcoef(two.T)[0, 1].item()) > 0.999  # +-1: the sign of f_i f_j
    # the rms level: the mean of the blocks' eps_l^2, equal to dropout p = 0.85's eps^2 at this p_L
    assert model.stochastic_depth_epsilon() ** 2 == pytest.approx(float(np.mean(expected ** 2)), rel=1e-12)
    assert model.stochastic_depth_epsilon() == pytest.approx(dropout.epsilon(), rel=1e-5)
    assert model.epsilon() == 0.0 and dropout.stochastic_depth_epsilon() == 0.0
    block = dropout.blocks[0]
    block.branch.eval()
    x = torch.randn(1, 16, 8, 8, dtype=torch.float64).expand(4000, -1, -1, -1)
    with torch.no_grad():
        f = block.branch(x[:1])
        increments = block.increment(x).flatten(1)
    two = increments[:, torch.argsort(f[0].flatten().abs(), descending=True)[:2]]
    assert abs(torch.corrcoef(two.T)[0, 1].item()) < 0.1


def test_stochastic_depth_drops_whole_branches_per_sample_in_a_block():
    torch.manual_seed(10)
    model = nets.build_model("preresnet8", stochastic_depth=0.4, h=0.5)
    block = model.blocks[-1]  # survival p_L = 0.4
    block.branch.eval()
    x = torch.randn(400, 32, 4, 4)
    with torch.no_grad():
        f = block.branch(x)
        inc = block.increment(x)
    dropped = inc.flatten(1).abs().amax(dim=1) == 0
    kept = ~dropped
    assert torch.allclose(inc[kept], 0.5 * f[kept] / 0.4, rtol=1e-5, atol=1e-6)
    assert abs(kept.double().mean().item() - 0.4) < 6 * math.sqrt(0.24 / 400)


def test_numpy_integers_are_accepted_and_stored_as_int():
    import numpy as np
    model = nets.build_model("preresnet", depth=np.int64(8), num_classes=np.int32(5))
    assert model.config.depth == 8 and type(model.config.depth) is int
    assert type(model.config.num_classes) is int and model(torch.randn(1, 3, 8, 8)).shape == (1, 5)
