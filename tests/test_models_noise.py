"""Mask statistics against the exact moments of (3.1), (3.13), (3.14) and stochastic depth."""
from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
import torch

from nets.models.noise import (DropPath, MultiplicativeNoise, NoiseSpec, linear_decay_survival, mask_like,
                               sample_mask)

torch.set_num_threads(1)

N_SAMPLES = 400_000


def _exact_moments(kind: str, value: float) -> tuple[float, float]:
    """Exact variance and fourth central moment of the mask m (mean 1)."""
    if kind == "bernoulli":
        p = value
        return (1 - p) / p, p * (1 / p - 1) ** 4 + (1 - p)
    if kind == "gaussian":
        return value**2, 3 * value**4
    return value**2 / 3, value**4 / 5


@pytest.mark.parametrize("kind,value", [("bernoulli", 0.5), ("bernoulli", 0.9), ("gaussian", 0.3),
                                        ("gaussian", 1.5), ("uniform", 0.5), ("uniform", 0.99)])
def test_mask_mean_and_variance_within_sampling_tolerance(kind, value):
    torch.manual_seed(10)
    spec = NoiseSpec(kind, value)
    var, mu4 = _exact_moments(kind, value)
    assert spec.variance == pytest.approx(var, rel=1e-14)
    mask = sample_mask(spec, (N_SAMPLES,), dtype=torch.float64)
    mean = mask.mean().item()
    sample_var = (mask - 1.0).square().mean().item()  # unbiased for the variance: the mean is known
    assert abs(mean - 1.0) < 6 * math.sqrt(var / N_SAMPLES)
    assert abs(sample_var - var) <= 6 * math.sqrt((mu4 - var**2) / N_SAMPLES)


def test_mask_supports():
    torch.manual_seed(11)
    bern = sample_mask(NoiseSpec("bernoulli", 0.25), (10_000,))
    assert set(torch.unique(bern).tolist()) == {0.0, 4.0}
    uni = sample_mask(NoiseSpec("uniform", 0.4), (10_000,), dtype=torch.float64)
    assert uni.min().item() >= 0.6 and uni.max().item() <= 1.4


def test_noise_layer_multiplies_by_a_fresh_mask_in_training_only():
    torch.manual_seed(12)
    layer = MultiplicativeNoise(NoiseSpec("gaussian", 0.5))
    ones = torch.ones(50_000, dtype=torch.float64)
    first, second = layer(ones), layer(ones)
    assert not torch.equal(first, second)
    assert abs(first.var().item() - 0.25) < 6 * math.sqrt(2 * 0.25**2 / 50_000)
    layer.eval()
    assert layer(ones) is ones


def test_drop_path_drops_whole_samples_and_keeps_the_mean():
    torch.manual_seed(13)
    layer = DropPath(0.7)
    x = torch.ones(20_000, 3, 2, 2, dtype=torch.float64)
    out = layer(x)
    per_sample = out.flatten(1)
    assert bool((per_sample == per_sample[:, :1]).all()), "one decision per sample"
    assert set(torch.unique(per_sample).tolist()) == pytest.approx([0.0, 1 / 0.7])
    kept = (per_sample[:, 0] > 0).double().mean().item()
    assert abs(kept - 0.7) < 6 * math.sqrt(0.7 * 0.3 / 20_000)
    layer.eval()
    assert layer(x) is x


def test_linear_decay_rule():
    assert linear_decay_survival(None, 4) == [1.0] * 4
    assert linear_decay_survival(0.5, 4) == pytest.approx([0.875, 0.75, 0.625, 0.5], rel=1e-15)
    with pytest.raises(ValueError, match="stochastic_depth"):
        linear_decay_survival(0.0, 4)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("kind,value", [("bernoulli", 0.9), ("gaussian", 0.5), ("uniform", 0.6)])
def test_sample_mask_refuses_half_precision(kind, value, dtype):
    """A half-precision mask would not have mean 1 (bf16 1/0.9 = 1.109375): draw in float32, apply_mask."""
    with pytest.raises(ValueError, match=r"^dtype must be .*float32.*apply_mask.*got torch\.(bfloat16|float16)$"):
        sample_mask(NoiseSpec(kind, value), (10,), dtype=dtype)


@pytest.mark.parametrize("layer", [MultiplicativeNoise(NoiseSpec("bernoulli", 0.9)),
                                   MultiplicativeNoise(NoiseSpec("bernoulli", 0.85)),
                                   MultiplicativeNoise(NoiseSpec("gaussian", 0.5)),
                                   MultiplicativeNoise(NoiseSpec("uniform", 0.6)), DropPath(0.8)],
                         ids=["bern0.9", "bern0.85", "gauss", "uniform", "droppath"])
def test_bfloat16_noise_keeps_the_mean_of_the_branch(layer):
    """Under bf16 autocast the layers still satisfy E[x m] = x (3.1): with the mask in bf16, 1/0.9 would be
    rounded to 1.109375 and every branch scaled by 0.9984 (about 8 standard errors here)."""
    torch.manual_seed(16)
    n = 4_000_000
    x = torch.randn(n // 8, 8).mul(0.7).exp().to(torch.bfloat16)  # positive, spread over several binades
    y = layer.train()(x)
    assert y.dtype == torch.bfloat16
    xd, yd = x.double(), y.double()
    m = layer.spec.variance if isinstance(layer, MultiplicativeNoise) else (1 - layer.survival) / layer.survival
    rows = n if isinstance(layer, MultiplicativeNoise) else n // 8  # DropPath draws one mask per row
    std_error = math.sqrt(m * xd.square().mean().item() / rows) / xd.mean().item()
    assert abs(yd.mean().item() / xd.mean().item() - 1.0) < 5 * std_error


_RANGES = {"bernoulli": ("p", lambda v: 0 < v <= 1, lambda v, k: math.sqrt(1 - v) / math.sqrt(v) / math.sqrt(k)),
           "gaussian": ("nu", lambda v: v >= 0, lambda v, k: v / math.sqrt(k)),
           "uniform": ("beta", lambda v: 0 <= v < 1, lambda v, k: v / math.sqrt(3 * k))}


@settings(max_examples=60, deadline=None)
@given(kind=st.sampled_from(sorted(_RANGES)), value=st.floats(-1.5, 2.5), depth=st.integers(1, 6))
def test_options_are_accepted_exactly_on_their_range_and_eps_is_the_formula(kind, value, depth):
    import nets

    name, valid, eps = _RANGES[kind]
    if not valid(value):
        with pytest.raises(ValueError, match=name):
            nets.build_model("mlp_resnet", depth=depth, noise=kind, **{name: value})
        return
    model = nets.build_model("mlp_resnet", depth=depth, noise=kind, **{name: value})
    assert model.epsilon() == pytest.approx(eps(value, depth), rel=1e-12, abs=1e-15)


@pytest.mark.parametrize("kind,value", [("bernoulli", 0.8), ("gaussian", 0.7), ("uniform", 0.6)])
def test_mask_like_keeps_layout_and_moments(kind, value):
    torch.manual_seed(15)
    x = torch.ones(50, 8, 25, 40, dtype=torch.float64).to(memory_format=torch.channels_last)
    mask = mask_like(NoiseSpec(kind, value), x)
    assert mask.shape == x.shape and mask.dtype == x.dtype
    assert mask.is_contiguous(memory_format=torch.channels_last)
    var, mu4 = _exact_moments(kind, value)
    n = mask.numel()
    assert abs(mask.mean().item() - 1.0) < 6 * math.sqrt(var / n)
    assert abs((mask - 1).square().mean().item() - var) <= 6 * math.sqrt((mu4 - var**2) / n)
    half = mask_like(NoiseSpec(kind, value), x.to(torch.bfloat16))
    assert half.dtype == torch.bfloat16


@pytest.mark.parametrize("value", [0, 0.0, -0.5, 1.5, math.inf, math.nan, True, "x"])
def test_survival_message_says_what_to_do_and_not_none(value):
    """Was "stochastic_depth must be None or a float in (0, 1]", and None means nothing on a command line."""
    from nets.models.noise import check_survival

    with pytest.raises(ValueError) as error:
        check_survival(value)
    message = str(error.value)
    assert message.startswith("stochastic_depth must be in (0, 1] (the survival probability p_L of the last block; "
                              "leave it unset for no stochastic depth); got ")
    assert "None" not in message
    with pytest.raises(ValueError, match=r"^survival must be in \(0, 1\] \(.*kept.*\); got 0$"):
        DropPath(0)
