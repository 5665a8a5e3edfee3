"""nets.two_point_masks: a mean-one mask of fixed variance whose jump size runs from small moves to dropout."""
from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from nets import build_model
from nets.two_point_masks import (check_jump, default_jumps, draw_two_point_mask, from_json, jump_probability,
                                  jump_response, to_json)

V = 3 * 0.06 ** 2  # K eps^2 for K = 3, eps = 0.06


@pytest.mark.parametrize("jump", [math.sqrt(V), 0.3, 0.7, 1.0])
def test_the_two_values_have_mean_one_and_variance_v_exactly(jump):
    q = jump_probability(jump, V)
    low, high = 1.0 - jump, 1.0 + V / jump
    mean = q * low + (1 - q) * high
    variance = q * (low - mean) ** 2 + (1 - q) * (high - mean) ** 2
    assert math.isclose(mean, 1.0, rel_tol=1e-14) and math.isclose(variance, V, rel_tol=1e-12)


@pytest.mark.parametrize("jump", [math.sqrt(V), 0.5, 1.0])
def test_drawn_masks_have_those_moments(jump):
    """Over 4e6 draws: mean 1 and variance v within 6 standard errors (from the exact fourth moment)."""
    torch.manual_seed(0)
    m = draw_two_point_mask(torch.zeros(2000, 2000, dtype=torch.float64), jump, V)
    q = jump_probability(jump, V)
    values = {round(float(x), 12) for x in m.unique()}
    assert values == {round(1.0 - jump, 12), round(1.0 + V / jump, 12)}
    n = m.numel()
    fourth = q * jump ** 4 + (1 - q) * (V / jump) ** 4
    assert abs(float(m.mean()) - 1.0) < 6 * math.sqrt(V / n)
    # the sample variance: the spread of (m - 1)^2 (zero for the fair coin) plus the sample mean's own error
    assert abs(float(m.var()) - V) < 6 * math.sqrt((fourth - V ** 2) / n) + 36 * V / n


def test_the_smallest_jump_is_a_fair_coin_and_the_largest_is_the_bernoulli_mask_of_the_same_draws():
    assert jump_probability(math.sqrt(V), V) == pytest.approx(0.5)
    from nets.models.noise import NoiseSpec, mask_like

    p = 1.0 / (1.0 + V)  # Bernoulli p of eps^2 = (1 - p) / (p K), eq. (3.2)
    torch.manual_seed(3)
    bernoulli = mask_like(NoiseSpec("bernoulli", p), torch.zeros(64, 16, 8, 8))
    torch.manual_seed(3)
    two_point = draw_two_point_mask(torch.zeros(64, 16, 8, 8), 1.0, V)
    assert torch.equal(bernoulli == 0, two_point == 0)
    torch.testing.assert_close(two_point, bernoulli, rtol=1e-6, atol=0)


def test_jumps_outside_the_family_are_refused():
    assert check_jump(1, V) == 1.0 and check_jump(math.sqrt(V), V) == math.sqrt(V)
    for bad in (0.1, 1.01, 0.0, True, "0.5", float("nan")):
        with pytest.raises(ValueError, match=r"jump must be a number in \[sqrt\(K eps\^2\), 1\] = \[0\.103923, 1\]"):
            check_jump(bad, V)
    assert default_jumps(3, 0.06) == (math.sqrt(V), 0.25, 0.5, 0.75, 1.0)
    assert default_jumps(3, 0.2)[0] == pytest.approx(math.sqrt(0.12)) and default_jumps(3, 0.2)[1] == 0.5  # no 0.25


def _tiny_trained_state():
    torch.manual_seed(0)
    model = build_model("preresnet8", num_classes=4)
    images, labels = torch.randn(40, 3, 8, 8), torch.randint(0, 4, (40,))
    return model.state_dict(), images, labels


def test_the_largest_jump_measures_what_noise_response_measures_for_the_bernoulli_mask():
    """a = 1 draws the Bernoulli masks from the same numbers, so its J_eps equals nets.noise_response's
    control-variate Bernoulli J_eps at the same eps and seed."""
    from nets.noise_response import noise_response

    state, images, labels = _tiny_trained_state()
    clean, _, (bernoulli,) = noise_response("preresnet8", state, {}, images, labels, 0.06, kinds=("bernoulli",),
                                            draws=3, batch_size=16, seed=5, num_classes=4,
                                            estimator="control-variate")
    j0, _, (dropout,) = jump_response("preresnet8", state, {}, images, labels, 0.06, [1.0], draws=3,
                                      batch_size=16, seed=5, num_classes=4)
    assert j0 == clean
    assert math.isclose(dropout.loss, bernoulli.loss, rel_tol=1e-12)
    assert math.isclose(dropout.loss_stderr, bernoulli.loss_stderr, rel_tol=1e-9)


def test_every_jump_estimates_the_plain_monte_carlo_mean():
    """The control variate is unbiased for any mean-one mask: each jump's J_eps agrees with a plain average of
    the noisy loss over many draws within 4 combined standard errors."""
    from nets.control_variate import injected_loss, injection_modules
    from nets.noise_response import options_at

    state, images, labels = _tiny_trained_state()
    eps = 0.15
    variance = 3 * eps ** 2
    jumps = [math.sqrt(variance), 0.6, 1.0]
    clean, _, measured = jump_response("preresnet8", state, {}, images, labels, eps, jumps, draws=12, batch_size=40,
                                       num_classes=4)
    model = build_model("preresnet8", num_classes=4, **{k: v for k, v in options_at("gaussian", 3, eps).items()
                                                        if v is not None})
    model.load_state_dict(state)
    modules = injection_modules(model.eval())
    torch.manual_seed(11)
    for jump, response in zip(jumps, measured):
        drawer = lambda module, y: draw_two_point_mask(y, jump, variance)  # noqa: E731
        plain = [injected_loss(model, modules, images, labels, drawer)[0] / images.shape[0] for _ in range(400)]
        plain_error = float(np.std(plain, ddof=1) / math.sqrt(len(plain)))
        assert abs(response.loss - np.mean(plain)) < 4 * math.hypot(response.loss_stderr, plain_error), jump


def test_bad_settings_are_refused():
    state, images, labels = _tiny_trained_state()
    for eps, jumps, draws, match in [(0.06, [0.05], 2, "jump must be"), (0.06, [0.5, 0.5], 2, "distinct"),
                                     (0.06, [], 2, "distinct"), (0.7, [1.0], 2, r"eps must be at most 1/sqrt\(K\)"),
                                     (-1.0, [1.0], 2, "eps must be a finite number"), (0.06, [1.0], 1, "draws")]:
        with pytest.raises(ValueError, match=match):
            jump_response("preresnet8", state, {}, images, labels, eps, jumps, draws=draws, num_classes=4)


def test_the_command_measures_a_trained_run_saves_and_summarizes(tmp_path):
    from nets.trainer import TrainConfig, train

    torch.set_num_threads(1)
    config = TrainConfig(model="preresnet8", data="synthetic:128:64", epochs=1, batch_size=64, milestones=(1,),
                         device="cpu", seed=2, noise="bernoulli", p=0.9)
    run = train(config, tmp_path / "run", progress=False).out_dir
    saved = tmp_path / "jumps.json"
    done = subprocess.run([sys.executable, "-m", "nets.two_point_masks", str(run), "--eps", "0.1", "--jumps", "0.5",
                           "1", "--images", "32", "--draws", "2", "--split", "test", "--save", str(saved),
                           "--no-progress"], capture_output=True, text=True)
    assert done.returncode == 0 and done.stderr == ""
    assert done.stdout.splitlines()[0] == "| run | trained with | eps | J_0 | c at a = 0.5 | c at a = 1 |"
    (measured,) = from_json(saved.read_text())
    assert from_json(to_json([measured])) == [measured]
    assert [j.jump for j in measured.jumps] == [0.5, 1.0] and measured.trained_with == "bernoulli p=0.9"
    assert (measured.images, measured.draws, measured.split) == (32, 2, "test")
    assert measured.settings["cpu"] and measured.settings["threads"] >= 1  # where it was measured
    summary = subprocess.run([sys.executable, "-m", "nets.two_point_masks", "--from-json", str(saved), "--summary"],
                             capture_output=True, text=True)
    assert summary.returncode == 0 and "| synthetic (test) | preresnet8 | bernoulli p=0.9 | 0.1 | 1 |" in summary.stdout
    for argv, said in [([str(run), "--eps", "0.1", "--jumps", "0.01"], "--jumps must be a number in"),
                       ([str(run)], "--eps is required"), ([], "either run directories"),
                       (["--from-json", str(tmp_path / "none.json")], "--from-json")]:
        bad = subprocess.run([sys.executable, "-m", "nets.two_point_masks", *argv], capture_output=True, text=True)
        assert bad.returncode == 2 and said in bad.stderr and "Traceback" not in bad.stderr, argv


class _TinyNet(torch.nn.Module):
    """Two 2-unit layers, each output multiplied by an injection (4 masked units per image): few enough units to
    enumerate every mask of a two-point law."""

    def __init__(self):
        super().__init__()
        from nets.models.noise import MultiplicativeNoise, NoiseSpec

        torch.manual_seed(4)
        self.first, self.second, self.head = torch.nn.Linear(3, 2), torch.nn.Linear(2, 2), torch.nn.Linear(2, 3)
        self.noise1 = MultiplicativeNoise(NoiseSpec("gaussian", 0.1))  # places only: hooks supply the masks
        self.noise2 = MultiplicativeNoise(NoiseSpec("gaussian", 0.1))

    def forward(self, x):
        h = torch.tanh(self.noise1(self.first(x)))
        return self.head(torch.tanh(self.noise2(self.second(h))) + h)


@pytest.mark.parametrize("jump", [0.3, 1.0])
def test_the_estimate_agrees_with_the_exact_expectation_over_all_masks(jump):
    """E[loss(m)] by enumerating the 2^4 two-point masks of each image (exact, float64) against the control
    variate over 600 draws: within 4 standard errors, and the plain average of the same draws too."""
    import itertools

    from nets.control_variate import injected_loss, injection_modules, shared_control_variate_draws

    variance = 0.05
    model = _TinyNet().double().eval()
    modules = injection_modules(model)
    images, labels = torch.randn(3, 3, dtype=torch.float64), torch.tensor([0, 2, 1])
    q = jump_probability(jump, variance)
    values = {1.0 - jump: q, 1.0 + variance / jump: 1.0 - q}
    exact = 0.0
    for image, label in zip(images, labels):
        for config in itertools.product(values, repeat=4):
            masks = [torch.tensor([config[:2]], dtype=torch.float64), torch.tensor([config[2:]], dtype=torch.float64)]
            weight = math.prod(values[v] for v in config)
            exact += weight * injected_loss(model, modules, image[None], label[None], masks)[0] / len(images)
    drawer = lambda module, y: draw_two_point_mask(y, jump, variance)  # noqa: E731
    torch.manual_seed(0)
    (controlled, _), = shared_control_variate_draws([model], images, labels, 600, 3, torch.get_rng_state(),
                                                    drawers=[drawer])
    torch.manual_seed(0)
    plain = [injected_loss(model, modules, images, labels, drawer)[0] / len(images) for _ in range(600)]
    for estimates in (controlled, plain):
        error = float(np.std(estimates, ddof=1) / math.sqrt(len(estimates)))
        assert abs(float(np.mean(estimates)) - exact) < 4 * error, (jump, np.mean(estimates), exact, error)
    assert np.std(controlled) < np.std(plain)  # the linear term is most of the scatter


def test_saved_records_check_how_they_were_measured_as_noise_response_does():
    import json
    from pathlib import Path

    from nets.two_point_masks import JumpResponse, RunJumpResponse

    run = RunJumpResponse(run=Path("r"), model="preresnet8", trained_with="no noise", eps=0.06, clean_loss=0.5,
                          clean_error=0.1, jumps=(JumpResponse(jump=1.0, loss=0.51, loss_stderr=1e-3, error=0.1),),
                          data="digits", split="train", images=1437, draws=8, seed=0, settings={"threads": 1})
    assert from_json(to_json([run])) == [run]
    for field, bad, message in (("images", "1437", "images must be a int"), ("seed", True, "seed must be a int"),
                                ("settings", [1], "settings must be an object")):
        saved = json.loads(to_json([run]))
        saved[0][field] = bad
        with pytest.raises(ValueError, match=message):
            from_json(json.dumps(saved))
    older = json.loads(to_json([run]))
    for field in ("data", "split", "images", "draws", "seed", "settings"):
        del older[0][field]
    (read,) = from_json(json.dumps(older))
    assert (read.data, read.split, read.images, read.draws, read.seed, read.settings) == (None,) * 6


def test_the_summary_keeps_data_sets_apart_and_refuses_a_run_measured_twice():
    """Made-up records: a digits run and a CIFAR run of one model, setting and eps are two rows, not "2 runs"."""
    from pathlib import Path

    from nets.two_point_masks import JumpResponse, RunJumpResponse, format_summary

    def record(run, data, loss):
        return RunJumpResponse(run=Path(run), model="preresnet20", trained_with="no noise", eps=0.1, clean_loss=0.5,
                               clean_error=0.1, data=data, split="train",
                               jumps=(JumpResponse(jump=1.0, loss=loss, loss_stderr=0.001, error=0.1),))

    rows = format_summary([record("a", "digits", 0.51), record("b", "cifar10-jpeg", 0.52)]).splitlines()[2:]
    assert rows == ["| digits | preresnet20 | no noise | 0.1 | 1 | 1 +- 0 |",
                    "| cifar10-jpeg | preresnet20 | no noise | 0.1 | 1 | 2 +- 0 |"]
    with pytest.raises(ValueError, match="a is measured twice at eps 0.1"):
        format_summary([record("a", "digits", 0.51), record("a", "digits", 0.515)])
