"""nets.control_variate: the noise's linear term (exact gradient, mean zero) and the estimator built on it."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from nets import build_model
from nets.control_variate import (control_variate_draws, draw_training_mask, first_order_weights, injected_loss,
                                  injection_modules, linear_term, shared_control_variate_draws)
from nets.noise_response import noise_response, options_at


def _double_model(seed=0, **noise):
    torch.manual_seed(seed)
    model = build_model("preresnet8", num_classes=4, **noise).double().eval()
    images, labels = torch.randn(12, 3, 8, 8, dtype=torch.float64), torch.randint(0, 4, (12,))
    return model, images, labels


def test_the_injections_are_the_active_noise_modules_in_forward_order():
    assert len(injection_modules(build_model("preresnet8", noise="gaussian", nu=0.3))) == 3
    assert len(injection_modules(build_model("preresnet20", stochastic_depth=0.8))) == 9
    assert injection_modules(build_model("preresnet8")) == []  # no noise, p = 1, no stochastic depth
    assert injection_modules(build_model("preresnet8", noise="bernoulli", p=1.0)) == []


@pytest.mark.parametrize("block", [0, 1, 2])
def test_the_linear_term_is_the_directional_derivative(block):
    """(loss(1 + d z) - loss(1 - d z)) / 2 = L1(1 + d z) + O(d^3), block by block: central differences in float64."""
    model, images, labels = _double_model(1, noise="gaussian", nu=0.5)
    modules = injection_modules(model)
    _, _, weights = first_order_weights(model, modules, images, labels)
    _, _, z = injected_loss(model, modules, images, labels, lambda module, y: torch.randn_like(y))
    step = 1e-5
    ones = [torch.ones_like(t) for t in z]
    plus = [1 + step * t if k == block else o for k, (t, o) in enumerate(zip(z, ones))]
    minus = [1 - step * t if k == block else o for k, (t, o) in enumerate(zip(z, ones))]
    central = (injected_loss(model, modules, images, labels, plus)[0]
               - injected_loss(model, modules, images, labels, minus)[0]) / 2
    assert math.isclose(central, linear_term(weights, plus), rel_tol=1e-6)
    assert abs(central) > 1e-7  # a real slope, not 0 = 0


def test_unit_masks_leave_the_clean_network():
    model, images, labels = _double_model(2, noise="uniform", beta=0.4)
    modules = injection_modules(model)
    clean, wrong, weights = first_order_weights(model, modules, images, labels)
    same, same_wrong, _ = injected_loss(model, modules, images, labels, [torch.ones(1, dtype=torch.float64)] * 3)
    assert same == clean and same_wrong == wrong
    assert linear_term(weights, [torch.ones(1, dtype=torch.float64)] * 3) == 0.0
    with pytest.raises(ValueError, match="3 injections, 2 applied"):
        injected_loss(model, modules[:2] + [torch.nn.Identity()], images, labels, [torch.ones(1)] * 3)


@pytest.mark.parametrize("options, expected_shape", [({"noise": "bernoulli", "p": 0.7}, (5, 16, 8, 8)),
                                                     ({"stochastic_depth": 0.5}, (5, 1, 1, 1)),
                                                     ({"stochastic_depth": 0.5, "stochastic_depth_mode": "batch"},
                                                      (1, 1, 1, 1))])
def test_training_masks_have_mean_one_and_the_modules_shape(options, expected_shape):
    module = injection_modules(build_model("preresnet8", **options))[-1]
    y = torch.zeros(5, 16, 8, 8)
    torch.manual_seed(0)
    assert draw_training_mask(module, y).shape == expected_shape
    many = torch.stack([draw_training_mask(module, y).mean() for _ in range(4000)])
    assert abs(float(many.mean()) - 1.0) < 4 * float(many.std()) / math.sqrt(many.numel())
    with pytest.raises(ValueError, match="MultiplicativeNoise or DropPath"):
        draw_training_mask(torch.nn.Identity(), y)


def test_the_linear_term_has_mean_zero_over_draws():
    model, images, labels = _double_model(3, stochastic_depth=0.6)
    modules = injection_modules(model)
    _, _, weights = first_order_weights(model, modules, images, labels)
    outputs = []  # the branch outputs the masks multiply (their shapes decide the masks')
    handles = [m.register_forward_hook(lambda module, args, out: outputs.append(out)) for m in modules]
    with torch.no_grad():
        model(images)
    for handle in handles:
        handle.remove()
    torch.manual_seed(5)
    terms = np.array([linear_term(weights, [draw_training_mask(m, y) for m, y in zip(modules, outputs)])
                      for _ in range(20000)])
    assert terms.std() > 0 and abs(terms.mean()) < 4 * terms.std() / math.sqrt(terms.size)


def test_same_expectation_as_the_plain_estimator_and_a_smaller_error_at_small_eps():
    torch.manual_seed(0)
    model = build_model("preresnet8", num_classes=4)
    images, labels = torch.randn(200, 3, 8, 8), torch.randint(0, 4, (200,))
    state = model.state_dict()
    for eps, draws in ((0.3, 48), (0.02, 16)):
        plain_clean, _, plain = noise_response("preresnet8", state, {}, images, labels, eps, draws=draws,
                                               num_classes=4, kinds=("gaussian", "uniform", "bernoulli"))
        clean, _, controlled = noise_response("preresnet8", state, {}, images, labels, eps, draws=draws,
                                              num_classes=4, kinds=("gaussian", "uniform", "bernoulli"),
                                              estimator="control-variate")
        assert clean == plain_clean
        for p, c in zip(plain, controlled):
            assert abs(p.loss - c.loss) < 4 * math.hypot(p.loss_stderr, c.loss_stderr), (eps, p.kind)
            if eps == 0.02:  # the linear term is most of the plain estimate's scatter
                assert c.loss_stderr < p.loss_stderr / 2.5, p.kind


def test_without_injections_every_draw_is_the_clean_loss():
    torch.manual_seed(0)
    model = build_model("preresnet8", num_classes=4).eval()
    images, labels = torch.randn(10, 3, 8, 8), torch.randint(0, 4, (10,))
    losses, errors = control_variate_draws(model, images, labels, draws=2, batch_size=4)
    # The same batches (4, 4, 2) give the same float32 logits; one pass of all 10 may not (oneDNN picks kernels
    # by batch shape on some processors), so that comparison is to float32 rounding only.
    batches = [first_order_weights(model, [], images[s:s + 4], labels[s:s + 4]) for s in range(0, 10, 4)]
    clean, wrong = sum(batch[0] for batch in batches), sum(batch[1] for batch in batches)
    assert all(math.isclose(loss, clean / 10, rel_tol=1e-12) for loss in losses) and errors == [wrong / 10] * 2
    one_pass, _, _ = first_order_weights(model, [], images, labels)
    assert math.isclose(clean, one_pass, rel_tol=1e-5)


def test_stochastic_depth_is_estimated_plain_under_either_estimator():
    torch.manual_seed(0)
    model = build_model("preresnet8", num_classes=4)
    images, labels = torch.randn(30, 3, 8, 8), torch.randint(0, 4, (30,))
    _, _, plain = noise_response("preresnet8", model.state_dict(), {}, images, labels, 0.2, draws=3, num_classes=4,
                                 kinds=("stochastic_depth", "gaussian"))
    _, _, controlled = noise_response("preresnet8", model.state_dict(), {}, images, labels, 0.2, draws=3,
                                      num_classes=4, kinds=("stochastic_depth", "gaussian"),
                                      estimator="control-variate")
    assert plain[0].loss == controlled[0].loss and plain[1].loss != controlled[1].loss


def test_kinds_and_eps_measured_together_draw_as_if_each_were_measured_alone():
    """noise_response shares the clean backward pass between all mask cells; each cell's numbers are, bit for bit,
    those of control_variate_draws on that cell alone after torch.manual_seed(seed)."""
    torch.manual_seed(0)
    state = build_model("preresnet8", num_classes=4).state_dict()
    images, labels = torch.randn(10, 3, 8, 8), torch.randint(0, 4, (10,))
    cells = [(0.05, "gaussian"), (0.05, "bernoulli"), (0.1, "gaussian"), (0.1, "bernoulli"), (0.1, "uniform")]
    _, _, together = noise_response("preresnet8", state, {}, images, labels, [0.05, 0.1], draws=3, num_classes=4,
                                    kinds=("gaussian", "bernoulli", "uniform"), seed=7, batch_size=4,
                                    estimator="control-variate")
    measured = {(r.eps, r.kind): r for r in together}
    for eps, kind in cells:
        model = build_model("preresnet8", num_classes=4, **{k: v for k, v in options_at(kind, 3, eps).items()
                                                             if v is not None})
        model.load_state_dict(state)
        torch.manual_seed(7)
        losses, errors = control_variate_draws(model.eval(), images, labels, draws=3, batch_size=4)
        assert measured[eps, kind].loss == float(np.mean(losses)), (eps, kind)
        assert measured[eps, kind].loss_stderr == float(np.std(losses, ddof=1) / math.sqrt(3))


def test_shared_draws_refuse_models_whose_injections_differ():
    images, labels = torch.randn(4, 3, 8, 8), torch.randint(0, 4, (4,))
    models = [build_model("preresnet8", num_classes=4, noise="gaussian", nu=0.2).eval(),
              build_model("preresnet20", num_classes=4, noise="gaussian", nu=0.2).eval()]
    with pytest.raises(ValueError, match="models must share their injections' places"):
        shared_control_variate_draws(models, images, labels, 2, 4, torch.get_rng_state())
