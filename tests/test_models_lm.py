"""LM-ResNet (LM-ResNet paper eq. (1)): the two-step recurrence in closed form, k = 0, k_n readout."""
from __future__ import annotations

import math

import pytest
import torch

import nets

torch.set_num_threads(1)


def _count(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("depth", [20, 56, 110, 164])
def test_lm_adds_one_scalar_per_block(depth):
    torch.manual_seed(0)
    plain, lm = nets.build_model(f"preresnet{depth}"), nets.build_model(f"lm_preresnet{depth}")
    assert lm.num_blocks == plain.num_blocks
    assert _count(lm) == _count(plain) + plain.num_blocks
    k = lm.lm_coefficients()
    assert k.shape == (plain.num_blocks,)
    assert bool((k >= -0.1).all() and (k <= 0.0).all()), "k_n ~ U[-0.1, 0]"


def test_lm_coefficients_is_a_detached_copy():
    lm = nets.build_model("lm_preresnet8")
    k = lm.lm_coefficients()
    assert not k.requires_grad
    k.fill_(5.0)
    assert bool((lm.lm_k.detach() <= 0).all())


def _zero_branches_and_embed_projections(model) -> None:
    """F_n = 0 and S = channel embedding + stride-2 subsampling (a linear map with a known action)."""
    with torch.no_grad():
        for block in model.blocks:
            last = [m for m in block.branch.modules() if isinstance(m, torch.nn.Conv2d)][-1]
            last.weight.zero_()
            if isinstance(block.shortcut, torch.nn.Conv2d):
                weight = block.shortcut.weight
                weight.zero_()
                for c in range(weight.shape[1]):
                    weight[c, c, 0, 0] = 1.0


@pytest.mark.parametrize("k", [-0.6, -0.05, 0.3])
def test_recurrence_matches_its_closed_form(k):
    """F = 0, k_n = k: u_{n+1} = (1-k) u_n + k u_{n-1}, u_{-1} = 0 gives u_n = u_0 (1 + k(-k)^n)/(1 + k)."""
    torch.manual_seed(1)
    model = nets.build_model("lm_preresnet", depth=14).double()  # K = 6 blocks, two stage transitions
    _zero_branches_and_embed_projections(model)
    with torch.no_grad():
        model.lm_k.fill_(k)
    u0 = torch.randn(2, 16, 8, 8, dtype=torch.float64)
    subsampled = torch.zeros(2, 64, 2, 2, dtype=torch.float64)
    subsampled[:, :16] = u0[:, :, ::4, ::4]
    n = model.num_blocks
    expected = subsampled * (1 + k * (-k) ** n) / (1 + k)
    assert torch.allclose(model.flow(u0), expected, rtol=1e-13, atol=1e-13)


def test_rest_start_keeps_a_state_at_rest():
    """u_{-1} = u_0 and F = 0: the two-step recurrence stays at u_0 whatever the k_n."""
    torch.manual_seed(2)
    model = nets.build_model("lm_preresnet8", lm_start="rest").double()
    _zero_branches_and_embed_projections(model)
    with torch.no_grad():
        model.lm_k.uniform_(-0.9, 0.9)
    u0 = torch.randn(2, 16, 8, 8, dtype=torch.float64)
    expected = torch.zeros(2, 64, 2, 2, dtype=torch.float64)
    expected[:, :16] = u0[:, :, ::4, ::4]
    assert torch.allclose(model.flow(u0), expected, rtol=1e-13, atol=1e-13)


def _reference_flow(model, u0: torch.Tensor) -> torch.Tensor:
    """Eq. (1) with every past state projected separately: (1-k) S u_n + k S u_{n-1} + F(u_n)."""
    previous, current = torch.zeros_like(u0), u0
    for n, block in enumerate(model.blocks):
        k = model.lm_k[n]
        new = (1 - k) * block.shortcut(current) + k * block.shortcut(previous) + block.h * block.branch(current)
        previous, current = block.shortcut(current), new
    return current


@pytest.mark.parametrize("depth,block", [(8, "basic"), (11, "bottleneck")])
def test_flow_is_eq_1_with_projected_past_states(depth, block):
    torch.manual_seed(3)
    model = nets.build_model("lm_preresnet", depth=depth, block=block, h=0.7).double().eval()
    with torch.no_grad():
        model.lm_k.uniform_(-1.0, 0.5)
        u0 = torch.randn(2, 16, 8, 8, dtype=torch.float64)
        assert torch.allclose(model.flow(u0), _reference_flow(model, u0), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("lm_start", ["zero", "rest"])
@pytest.mark.parametrize("depth,block", [(8, "basic"), (11, "bottleneck")])
def test_k_zero_is_exactly_the_plain_network(depth, block, lm_start):
    torch.manual_seed(4)
    plain = nets.build_model("preresnet", depth=depth, block=block)
    lm = nets.build_model("lm_preresnet", depth=depth, block=block, lm_start=lm_start,
                          noise="bernoulli", p=1.0, stochastic_depth=1.0, h=1.0)
    missing, unexpected = lm.load_state_dict(plain.state_dict(), strict=False)
    assert missing == ["lm_k"] and unexpected == []
    with torch.no_grad():
        lm.lm_k.zero_()
    x = torch.randn(4, 3, 16, 16)
    assert torch.equal(plain(x), lm(x))


def test_gradients_reach_every_parameter_including_every_k():
    torch.manual_seed(5)
    model = nets.build_model("lm_preresnet8", noise="uniform", beta=0.5)
    loss = torch.nn.functional.cross_entropy(model(torch.randn(4, 3, 16, 16)), torch.tensor([0, 1, 2, 3]))
    loss.backward()
    for name, param in model.named_parameters():
        assert param.grad is not None and bool(param.grad.abs().sum() > 0), name
    assert bool((model.lm_k.grad != 0).all())


def test_rest_start_leaves_k0_without_effect():
    torch.manual_seed(6)
    model = nets.build_model("lm_preresnet8", lm_start="rest")
    model(torch.randn(4, 3, 16, 16)).square().sum().backward()
    assert model.lm_k.grad[0].item() == 0.0
    assert bool((model.lm_k.grad[1:] != 0).all())


def test_noise_epsilon_eval_and_stochastic_depth():
    torch.manual_seed(7)
    model = nets.build_model("lm_preresnet20", noise="gaussian", nu=0.3, stochastic_depth=0.5)
    assert model.epsilon() == pytest.approx(0.3 / math.sqrt(9), rel=1e-12)
    assert [b.drop_path.survival for b in model.blocks] == pytest.approx([1 - l / 18 for l in range(1, 10)])
    x = torch.randn(4, 3, 16, 16)
    assert not torch.equal(model(x), model(x))
    model.eval()
    assert torch.equal(model(x), model(x))


@pytest.mark.parametrize("num_classes,in_channels,size", [(10, 3, 32), (100, 3, 32), (10, 1, 28)])
def test_output_shapes(num_classes, in_channels, size):
    model = nets.build_model("lm_preresnet8", num_classes=num_classes, in_channels=in_channels)
    assert model(torch.randn(2, in_channels, size, size)).shape == (2, num_classes)


@pytest.mark.parametrize("options,needle", [(dict(lm_start="euler"), "lm_start"), (dict(depth=20), "depth"),
                                            (dict(noise="uniform", beta=1.0), "beta")])
def test_bad_options(options, needle):
    with pytest.raises(ValueError, match=needle):
        nets.build_model("lm_preresnet8", **options)
