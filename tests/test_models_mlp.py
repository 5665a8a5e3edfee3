"""mlp_resnet: eqs. (7) and (8) of the smooth-propagation paper, Prop. 2, features, options."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.autograd.functional import jacobian

import nets

torch.set_num_threads(1)


def test_features_are_the_states_y0_to_yK_and_y0_is_x():
    torch.manual_seed(0)
    model = nets.build_model("mlp_resnet", depth=7)
    x = torch.randn(16, 2)
    logits, features = model(x, return_features=True)
    assert logits.shape == (16, 2)
    assert len(features) == 8 and all(f.shape == (16, 2) for f in features)
    assert torch.equal(features[0], x)
    assert torch.equal(logits, model.fc(features[-1]))
    assert torch.equal(model(x), logits)
    assert model.num_blocks == 7


def test_width_adds_a_linear_opening_layer():
    torch.manual_seed(1)
    model = nets.build_model("mlp_resnet", in_features=13, num_classes=3, width=8, depth=4)
    x = torch.randn(5, 13)
    logits, features = model(x, return_features=True)
    assert logits.shape == (5, 3) and len(features) == 5
    assert all(f.shape == (5, 8) for f in features)
    assert torch.allclose(features[0], x @ model.opening.weight.T + model.opening.bias)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_residual_block_is_eq_7(activation):
    torch.manual_seed(2)
    model = nets.build_model("mlp_resnet", depth=3, width=4, h=0.3, activation=activation).double()
    sigma = torch.relu if activation == "relu" else torch.tanh
    _, features = model(torch.randn(6, 2, dtype=torch.float64), return_features=True)
    for i, block in enumerate(model.blocks):
        k1, b1 = block.branch.linear1.weight, block.branch.linear1.bias
        k2, b2 = block.branch.linear2.weight, block.branch.linear2.bias
        y = features[i]
        expected = y + 0.3 * (sigma(y @ k1.T + b1) @ k2.T + b2)
        assert torch.allclose(features[i + 1], expected, rtol=1e-14, atol=1e-14)


@pytest.mark.parametrize("activation", ["relu", "tanh"])
def test_shrinkage_block_is_eq_8(activation):
    torch.manual_seed(3)
    model = nets.build_model("mlp_resnet", depth=3, width=4, h=0.5, block="shrinkage",
                             activation=activation).double()
    with torch.no_grad():
        for block in model.blocks:
            block.branch.bias2.normal_()
    sigma = torch.relu if activation == "relu" else torch.tanh
    _, features = model(torch.randn(6, 2, dtype=torch.float64), return_features=True)
    for i, block in enumerate(model.blocks):
        k1, b1, b2 = block.branch.linear1.weight, block.branch.linear1.bias, block.branch.bias2
        y = features[i]
        expected = y - 0.5 * (sigma(y @ k1.T + b1) @ k1 + b2)
        assert torch.allclose(features[i + 1], expected, rtol=1e-14, atol=1e-14)


def _residual_jacobian(block, y: torch.Tensor) -> torch.Tensor:
    """J_i of Prop. 2: the Jacobian of the residual map (y_{i+1} - y_i) / h at one point y."""
    return jacobian(lambda v: (block(v[None])[0] - v) / block.h, y)


@pytest.mark.parametrize("activation,batch_norm", [("relu", False), ("tanh", False), ("tanh", True)])
def test_shrinkage_jacobian_eigenvalues_are_real_and_nonpositive(activation, batch_norm):
    torch.manual_seed(4)
    model = nets.build_model("mlp_resnet", in_features=3, width=6, depth=4, h=0.7, block="shrinkage",
                             activation=activation, batch_norm=batch_norm).double()
    if batch_norm:  # eval-mode BN with non-trivial running statistics and positive scales
        model.train()
        model(torch.randn(64, 3, dtype=torch.float64) * 3)
        with torch.no_grad():
            for block in model.blocks:
                block.branch.norm.weight.uniform_(0.2, 2.0)
    model.eval()
    _, features = model(torch.randn(8, 3, dtype=torch.float64), return_features=True)
    for i, block in enumerate(model.blocks):
        for y in features[i]:
            jac = _residual_jacobian(block, y.detach())
            assert torch.allclose(jac, jac.T, atol=1e-12), "J_i = -K1^T diag(sigma') K1 is symmetric"
            eig = torch.linalg.eigvals(jac)
            assert eig.imag.abs().max().item() < 1e-10
            assert eig.real.max().item() <= 1e-10 * max(1.0, eig.real.abs().max().item())
            if not batch_norm:
                k1, b1 = block.branch.linear1.weight, block.branch.linear1.bias
                pre = k1 @ y + b1
                slope = (pre > 0).double() if activation == "relu" else 1 - torch.tanh(pre) ** 2
                assert torch.allclose(jac, -(k1.T * slope) @ k1, atol=1e-12)


def test_the_residual_block_has_no_such_guarantee():
    """Control for the test above: eq. (7) blocks do produce eigenvalues with positive real part."""
    torch.manual_seed(5)
    model = nets.build_model("mlp_resnet", in_features=3, width=6, depth=8, activation="tanh").double()
    _, features = model(torch.randn(4, 3, dtype=torch.float64), return_features=True)
    largest = max(torch.linalg.eigvals(_residual_jacobian(block, y.detach())).real.max().item()
                  for i, block in enumerate(model.blocks) for y in features[i])
    assert largest > 1e-3


@pytest.mark.parametrize("options", [dict(noise="bernoulli", p=1.0), dict(noise="gaussian", nu=0.0),
                                     dict(noise="uniform", beta=0.0), dict(stochastic_depth=1.0), dict(h=1.0)])
@pytest.mark.parametrize("block", ["residual", "shrinkage"])
def test_switched_off_injection_is_exactly_plain(options, block):
    torch.manual_seed(6)
    plain = nets.build_model("mlp_resnet", width=5, depth=6, block=block, batch_norm=True)
    variant = nets.build_model("mlp_resnet", width=5, depth=6, block=block, batch_norm=True, **options)
    variant.load_state_dict(plain.state_dict(), strict=True)
    x = torch.randn(10, 2)
    _, f_plain = plain(x, return_features=True)
    _, f_variant = variant(x, return_features=True)
    assert all(torch.equal(a, b) for a, b in zip(f_plain, f_variant))


def test_noisy_mlp_in_training_and_eval():
    torch.manual_seed(7)
    model = nets.build_model("mlp_resnet", depth=5, noise="uniform", beta=0.5, stochastic_depth=0.5)
    x = torch.randn(32, 2)
    assert not torch.equal(model(x), model(x))
    model.eval()
    assert torch.equal(model(x), model(x))
    assert model.epsilon() == pytest.approx(0.5 / math.sqrt(3 * 5), rel=1e-12)


def test_gradients_reach_every_parameter():
    torch.manual_seed(8)
    for block in ("residual", "shrinkage"):
        model = nets.build_model("mlp_resnet", in_features=3, num_classes=4, width=6, depth=3, block=block,
                                 batch_norm=True, activation="tanh", noise="gaussian", nu=0.1)
        with torch.no_grad():
            for blk in model.blocks:
                blk.branch.norm.bias.normal_()
        loss = torch.nn.functional.cross_entropy(model(torch.randn(16, 3)), torch.randint(0, 4, (16,)))
        loss.backward()
        for name, param in model.named_parameters():
            assert param.grad is not None and bool(param.grad.abs().sum() > 0), (block, name)


@pytest.mark.parametrize("batch_norm", [np.True_, np.False_])
def test_numpy_bool_batch_norm_is_accepted(batch_norm):
    model = nets.build_model("mlp_resnet", batch_norm=batch_norm)
    plain = nets.build_model("mlp_resnet", batch_norm=bool(batch_norm))
    assert str(model) == str(plain)


@pytest.mark.parametrize("options,needle", [
    (dict(block="dense"), "block"), (dict(activation="gelu"), "activation"), (dict(width=0), "width"),
    (dict(depth=0), "depth"), (dict(in_features=-1), "in_features"), (dict(batch_norm=1), "batch_norm"),
    (dict(h=0.0), "h"), (dict(noise="bernoulli", p=0.0), "p"), (dict(channels=3), "channels"),
    (dict(in_channels=3), "in_channels"),
    (dict(activation=["relu"]), r"^activation must be one of relu, tanh; got \['relu'\]$"),
    (dict(block=["residual"]), r"^block must be one of"), (dict(batch_norm="yes"), r"^batch_norm must be True or False"),
    (dict(h="0.1"), r"^h must be a finite float > 0; got '0.1'$"), (dict(h=np.True_), r"^h must be"),
    (dict(noise="gaussian", nu=False), r"^nu must be a real number \(nu >= 0\), not a bool"),
])
def test_bad_options(options, needle):
    with pytest.raises(ValueError, match=needle):
        nets.build_model("mlp_resnet", **options)


def test_wrong_input_width_is_refused():
    model = nets.build_model("mlp_resnet", in_features=3)
    with pytest.raises(ValueError, match="x must have shape"):
        model(torch.randn(4, 2))
