"""nets.noise_response: J_eps of one trained network under each noise kind at one eps (main paper (4.2))."""
from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from nets import build_model
from nets.noise_response import KINDS, noise_response, options_at, run_noise_response


@pytest.mark.parametrize("model_name", ["preresnet8", "preresnet20", "lm_preresnet8"])
@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_is_built_at_the_asked_eps(model_name, kind):
    blocks = build_model(model_name).num_blocks
    options = options_at(kind, blocks, 0.15)
    model = build_model(model_name, **{k: v for k, v in options.items() if v is not None})
    level = model.stochastic_depth_epsilon() if kind == "stochastic_depth" else model.epsilon()
    assert math.isclose(level, 0.15, rel_tol=1e-9)
    # the closed forms (3.2), (3.13), (3.14) at K blocks
    expected = {"bernoulli": ("p", 1 / (1 + blocks * 0.0225)), "gaussian": ("nu", 0.15 * math.sqrt(blocks)),
                "uniform": ("beta", 0.15 * math.sqrt(3 * blocks))}.get(kind)
    if expected:
        assert math.isclose(options[expected[0]], expected[1], rel_tol=1e-12)


def test_refusals():
    with pytest.raises(ValueError, match="kind must be one of"):
        options_at("dropout", 3, 0.1)
    with pytest.raises(ValueError, match="beta must be in"):
        options_at("uniform", 3, 0.5)  # beta = 0.5 sqrt(9) = 1.5


def _tiny_setup(seed=0):
    torch.manual_seed(seed)
    model = build_model("preresnet8", num_classes=4)
    images, labels = torch.randn(40, 3, 8, 8), torch.randint(0, 4, (40,))
    return model, images, labels


def test_clean_loss_is_the_eval_cross_entropy_and_draws_are_seeded():
    model, images, labels = _tiny_setup()
    model.eval()
    with torch.no_grad():
        expected = float(F.cross_entropy(model(images).double(), labels))
    state = model.state_dict()
    clean, _, first = noise_response("preresnet8", state, {}, images, labels, 0.2, draws=3, batch_size=16,
                                     num_classes=4)
    assert math.isclose(clean, expected, rel_tol=1e-12)
    _, _, again = noise_response("preresnet8", state, {}, images, labels, 0.2, draws=3, batch_size=16, num_classes=4)
    assert [r.loss for r in first] == [r.loss for r in again]
    assert [r.kind for r in first] == list(KINDS) and all(r.loss_stderr > 0 for r in first)


def test_vanishing_eps_gives_the_clean_objective():
    model, images, labels = _tiny_setup(1)
    clean, _, responses = noise_response("preresnet8", model.state_dict(), {}, images, labels, 1e-5, draws=2,
                                         num_classes=4)
    for response in responses:  # J_eps - J_0 = O(eps^2) for the masks; stochastic depth drops with prob. O(eps^2)
        # the draws' scatter is O(eps): measured within 3e-7 here, and noise ten times too strong gives 3e-6
        assert abs(response.excess(clean)) < 2e-6, (response.kind, response.excess(clean))


def test_several_eps_give_what_each_gives_alone_and_the_eps_squared_coefficient():
    model, images, labels = _tiny_setup(2)
    state = model.state_dict()
    clean, _, both = noise_response("preresnet8", state, {}, images, labels, [0.1, 0.3], kinds=("gaussian", "uniform"),
                                    draws=2, num_classes=4)
    assert [(r.eps, r.kind) for r in both] == [(0.1, "gaussian"), (0.1, "uniform"), (0.3, "gaussian"), (0.3, "uniform")]
    for level in (0.1, 0.3):
        _, _, alone = noise_response("preresnet8", state, {}, images, labels, level, kinds=("gaussian", "uniform"),
                                     draws=2, num_classes=4)
        assert [r.loss for r in alone] == [r.loss for r in both if r.eps == level]
    for r in both:
        assert math.isclose(r.curvature(clean), (r.loss - clean) / r.eps ** 2, rel_tol=1e-12)


@pytest.mark.parametrize("eps, draws, match", [(0.0, 3, "eps must be"), (float("nan"), 3, "eps must be"),
                                               ([0.1, 0.1], 3, "eps lists a value twice"), ([], 3, "at least one"),
                                               (0.1, 1, "draws must be")])
def test_bad_settings_are_refused(eps, draws, match):
    model, images, labels = _tiny_setup()
    with pytest.raises(ValueError, match=match):
        noise_response("preresnet8", model.state_dict(), {}, images, labels, eps, draws=draws, num_classes=4)


def test_a_trained_run_and_the_command(tmp_path):
    from nets.trainer import TrainConfig, train

    torch.set_num_threads(1)
    config = TrainConfig(model="preresnet8", data="synthetic:128:64", epochs=1, batch_size=64, milestones=(1,),
                         device="cpu", seed=2, noise="bernoulli", p=0.9)
    run = train(config, tmp_path / "run", progress=False).out_dir
    result = run_noise_response(run, 0.1, kinds=("bernoulli", "stochastic_depth"), n_images=64, draws=2, seed=3,
                                split="test")
    assert result.trained_with == "bernoulli p=0.9" and [k.kind for k in result.kinds] == ["bernoulli",
                                                                                           "stochastic_depth"]
    # what was measured is recorded: the data set's name, split, images (all 64 test images), draws, seed
    assert (result.data, result.split, result.images, result.draws, result.seed) == ("synthetic", "test", 64, 2, 3)
    # and where: the settings its draws depend on (the trainer's provenance fields), here one thread
    from nets.provenance import EXECUTION_SETTINGS, SETTINGS, cpu_description

    assert set(result.settings) == set(SETTINGS) - set(EXECUTION_SETTINGS) and result.settings["threads"] == 1
    assert result.settings["cpu"] == cpu_description() and result.settings["torch"] == torch.__version__
    done = subprocess.run([sys.executable, "-m", "nets.noise_response", str(run), "--eps", "0.1", "--images", "32",
                           "--draws", "2", "--split", "test", "--batchnorm", "clean"], capture_output=True, text=True)
    assert done.returncode == 0 and "| stochastic depth: J_eps - J_0 (c) |" in done.stdout.splitlines()[0]
    assert "| bernoulli p=0.9, BatchNorm statistics re-estimated clean | 0.1 |" in done.stdout.splitlines()[2]
    # data the trained weights do not take (1 channel where the run trained on 3): one line, exit status 2
    other = subprocess.run([sys.executable, "-m", "nets.noise_response", str(run), "--eps", "0.1", "--data", "digits"],
                           capture_output=True, text=True)
    assert other.returncode == 2 and len(other.stderr.strip().splitlines()) == 1 and "Traceback" not in other.stderr
    assert "data 'digits' does not fit run_dir" in other.stderr and "1 channel(s) and 10 classes" in other.stderr
    # the progress bar, labelled by the run, over its 4 kinds (its first render: later ones depend on timing)
    assert f"{Path(run).name}:   0%|" in done.stderr and "| 0/4 [" in done.stderr
    saved = tmp_path / "saved" / "m.json"
    two = subprocess.run([sys.executable, "-m", "nets.noise_response", str(run), "--eps", "0.1", "0.2", "--images",
                          "32", "--draws", "2", "--kinds", "gaussian", "--save", str(saved), "--no-progress",
                          "--estimator", "control-variate"],
                         capture_output=True, text=True)
    rows = two.stdout.splitlines()[2:]
    assert two.returncode == 0 and [row.split(" | ")[2] for row in rows] == ["0.1", "0.2"] and two.stderr == ""
    from nets.noise_response import from_json

    (measured,) = from_json(saved.read_text())
    assert [(k.eps, k.kind) for k in measured.kinds] == [(0.1, "gaussian"), (0.2, "gaussian")]
    assert (measured.data, measured.split, measured.images, measured.draws, measured.seed) == ("synthetic", "train",
                                                                                               32, 2, 0)
    assert measured.estimator == "control-variate"
    assert [p.name for p in saved.parent.iterdir()] == ["m.json"]  # no temporary file left
    (tmp_path / "blocker").write_text("a file where --save needs a folder")
    refused = subprocess.run([sys.executable, "-m", "nets.noise_response", str(run), "--eps", "0.1", "--save",
                              str(tmp_path / "blocker" / "m.json")], capture_output=True, text=True)
    assert refused.returncode == 2 and "--save" in refused.stderr and len(refused.stderr.strip().splitlines()) == 1
    missing = subprocess.run([sys.executable, "-m", "nets.noise_response", str(tmp_path), "--eps", "0.1"],
                             capture_output=True, text=True)
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1
    assert "no checkpoint.pt" in missing.stderr and "Traceback" not in missing.stderr


def _fixture_results():
    """Two seeds trained without noise and one with, two kinds at two eps (clearly made-up losses)."""
    from nets.noise_response import KindResponse, RunNoiseResponse

    def run(name, trained_with, clean, losses):
        kinds = tuple(KindResponse(kind=kind, options={}, eps=eps, loss=loss, loss_stderr=0.01, error=0.1)
                      for (eps, kind), loss in losses.items())
        return RunNoiseResponse(run=Path(name), model="preresnet20", trained_with=trained_with, clean_loss=clean,
                                clean_error=0.05, kinds=kinds)

    return [run("a", "no noise", 0.5, {(0.1, "gaussian"): 0.51, (0.1, "stochastic_depth"): 0.9,
                                        (0.2, "gaussian"): 0.54, (0.2, "stochastic_depth"): 2.1}),
            run("b", "no noise", 0.4, {(0.1, "gaussian"): 0.43, (0.1, "stochastic_depth"): 0.6,
                                        (0.2, "gaussian"): 0.46, (0.2, "stochastic_depth"): 1.0}),
            run("c", "bernoulli p=0.9", 0.6, {(0.1, "gaussian"): 0.605, (0.1, "stochastic_depth"): 0.7,
                                               (0.2, "gaussian"): 0.62, (0.2, "stochastic_depth"): 1.0})]


def test_curvature_summary_is_mean_and_sample_std_of_c_over_the_runs_of_a_setting():
    import numpy as np

    from nets.noise_response import curvature_summary, format_summary

    summary = curvature_summary(_fixture_results())
    assert [(s.setting, s.eps, s.kind) for s in summary][:2] == [("no noise", 0.1, "gaussian"),
                                                                       ("no noise", 0.1, "stochastic_depth")]
    cell = next(s for s in summary if s.setting == "no noise" and s.eps == 0.2 and s.kind == "stochastic_depth")
    values = [(2.1 - 0.5) / 0.04, (1.0 - 0.4) / 0.04]
    assert cell.runs == 2 and math.isclose(cell.mean, np.mean(values)) and math.isclose(cell.std, np.std(values, ddof=1))
    alone = next(s for s in summary if s.setting == "bernoulli p=0.9" and s.eps == 0.1 and s.kind == "gaussian")
    assert alone.runs == 1 and alone.std == 0.0 and math.isclose(alone.mean, 0.005 / 0.01)
    table = format_summary(summary).splitlines()
    assert table[0] == "| data | model | trained with | estimator | eps | runs | gaussian: c | stochastic depth: c |"
    assert len(table) == 2 + 4 and table[2].startswith("| - | preresnet20 | no noise | plain | 0.1 | 2 | 2 +- 1.4 |")


def test_summaries_keep_data_sets_apart():
    import dataclasses

    from nets.noise_response import curvature_summary, format_summary

    a, b, _ = _fixture_results()
    measured = [dataclasses.replace(a, data="digits"), dataclasses.replace(b, data="cifar10-jpeg")]
    summary = curvature_summary(measured)
    assert {(s.data, s.runs) for s in summary} == {("digits", 1), ("cifar10-jpeg", 1)}
    assert [row.split(" | ")[0] for row in format_summary(summary).splitlines()[2:]] == ["| digits"] * 2 + [
        "| cifar10-jpeg"] * 2


def test_summaries_keep_splits_apart_and_refuse_a_run_measured_twice():
    """A summary is over runs: the same run measured on the training and the test images is two rows of one run,
    and measured twice in one group (here, with another noise seed) is refused rather than counted as two runs."""
    import dataclasses

    from nets.noise_response import curvature_summary, format_summary

    a, b, _ = _fixture_results()
    measured = [dataclasses.replace(r, data="digits", split=split) for split in ("train", "test") for r in (a, b)]
    summary = curvature_summary(measured)
    assert {(s.split, s.runs) for s in summary} == {("train", 2), ("test", 2)}
    assert [row.split(" | ")[0] for row in format_summary(summary).splitlines()[2:]] == (
        ["| digits"] * 2 + ["| digits (test)"] * 2)
    with pytest.raises(ValueError, match="a is measured twice .gaussian at eps 0.1, plain estimator."):
        curvature_summary([a, b, dataclasses.replace(a, seed=1)])


def test_trained_with_names_every_option_that_sets_a_network_apart():
    from nets.noise_response import trained_with

    assert trained_with({"noise": "bernoulli", "p": 1.0}) == "no noise"
    assert trained_with({"noise": "bernoulli", "p": 0.9, "h": 1.0, "lm_start": "zero"}) == "bernoulli p=0.9"
    assert trained_with({"noise": "bernoulli", "p": 1.0, "h": 0.1}) == "no noise, h=0.1"
    assert trained_with({"noise": "uniform", "beta": 0.5, "lm_start": "rest"}, 0.3) == (
        "uniform beta=0.5, LM start rest, input noise 0.3")
    assert trained_with({"stochastic_depth": 0.8, "stochastic_depth_mode": "batch"}) == (
        "stochastic depth p_L=0.8, stochastic depth per batch")


def test_summaries_keep_estimators_apart():
    """The same runs measured with both estimators are two rows of their number of runs, not one of twice."""
    import dataclasses

    from nets.noise_response import curvature_summary, format_summary

    a, b, _ = _fixture_results()  # two seeds of the noise-free setting
    measured = [a, b] + [dataclasses.replace(r, estimator="control-variate") for r in (a, b)]
    summary = curvature_summary(measured)
    assert {(s.estimator, s.runs) for s in summary} == {("plain", 2), ("control-variate", 2)}
    assert [row.split(" | ")[3] for row in format_summary(summary).splitlines()[2:]] == (
        ["plain"] * 2 + ["control-variate"] * 2)


def test_saved_json_reads_back_and_the_command_summarizes_it(tmp_path):
    from nets.noise_response import from_json, to_json

    results = _fixture_results()
    assert from_json(to_json(results)) == results
    saved = tmp_path / "saved.json"
    saved.write_text(to_json(results))
    done = subprocess.run([sys.executable, "-m", "nets.noise_response", "--from-json", str(saved), "--summary"],
                          capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.splitlines()[0].startswith(
        "| data | model | trained with | estimator | eps | runs |")
    for argv, said in [([], "either run directories"), ([str(tmp_path), "--from-json", str(saved)], "not both"),
                       ([str(tmp_path)], "--eps is required"), (["--from-json", str(tmp_path / "no.json")], "cannot read"),
                       (["--from-json", str(tmp_path / "bad.json")], "not the JSON of nets.noise_response"),
                       (["--from-json", str(tmp_path / "empty.json")], "empty.json: no measurements in it")]:
        (tmp_path / "bad.json").write_text('{"a": 1}')
        (tmp_path / "empty.json").write_text("[]")
        bad = subprocess.run([sys.executable, "-m", "nets.noise_response", *argv], capture_output=True, text=True)
        assert bad.returncode == 2 and said in bad.stderr and len(bad.stderr.strip().splitlines()) == 1, argv
        assert "Traceback" not in bad.stderr
    with pytest.raises(ValueError, match="not the JSON"):
        from_json("[1, 2]")
    twice = subprocess.run([sys.executable, "-m", "nets.noise_response", "--from-json", str(saved), str(saved),
                            "--summary"], capture_output=True, text=True)
    assert twice.returncode == 2 and twice.stderr.count("\n") == 1 and "is measured twice" in twice.stderr


def test_measurement_settings_round_trip_and_older_files_without_them_still_read():
    import dataclasses
    import json

    from nets.noise_response import from_json, to_json

    run = dataclasses.replace(_fixture_results()[0], data="digits", split="train", images=1437, draws=8, seed=0,
                              settings={"threads": 1, "cpu": "AMD EPYC; AVX512; flags fb86c92f"})
    assert from_json(to_json([run])) == [run]
    older = json.loads(to_json([run]))
    for field in ("data", "split", "images", "draws", "seed", "settings"):
        del older[0][field]
    (read,) = from_json(json.dumps(older))
    assert (read.data, read.split, read.images, read.draws, read.seed, read.settings) == (None,) * 6
    listed = json.loads(to_json([run]))
    listed[0]["settings"] = [run.settings]
    with pytest.raises(ValueError, match="settings must be an object"):
        from_json(json.dumps(listed))
    del older[0]["estimator"]
    assert from_json(json.dumps(older))[0].estimator == "plain"  # files from before the estimator was an option
    with pytest.raises(ValueError, match="estimator must be one of plain, control-variate"):
        from_json(to_json([run]).replace('"estimator": "plain"', '"estimator": "fancy"'))
    assert read.kinds == run.kinds and read.clean_loss == run.clean_loss
    for field, bad in (("images", "1437"), ("draws", True), ("data", 3)):
        with pytest.raises(ValueError, match=f"not the JSON of nets.noise_response .*{field} must be"):
            from_json(to_json([run]).replace(f'"{field}": {json.dumps(getattr(run, field))}', f'"{field}": '
                                             f'{json.dumps(bad)}', 1))


def test_clean_batchnorm_statistics_are_the_clean_activations_mean_and_variance():
    from torch import nn

    from nets.noise_response import clean_batchnorm_statistics

    model, images, _ = _tiny_setup(3)
    first = next(m for m in model.modules() if isinstance(m, nn.BatchNorm2d))
    with torch.no_grad():  # garbage statistics, as a noisy training might leave far-off ones
        first.running_mean.fill_(5.0)
        first.running_var.fill_(9.0)
    clean_batchnorm_statistics(model, images, batch_size=len(images))  # one batch: exact statistics
    assert not model.training and first.momentum == 0.1  # eval mode and the momentum restored
    seen = []
    handle = first.register_forward_hook(lambda module, args, out: seen.append(args[0].detach()))
    with torch.no_grad():
        model(images)
    handle.remove()
    inputs = seen[0].transpose(0, 1).reshape(first.num_features, -1).double()  # channel x (N H W)
    torch.testing.assert_close(first.running_mean.double(), inputs.mean(dim=1), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(first.running_var.double(), inputs.var(dim=1, unbiased=True), rtol=1e-5, atol=1e-6)
    assert int(first.num_batches_tracked) == 1


def test_clean_batchnorm_statistics_of_shake_shake_are_those_of_its_deterministic_eval_network():
    """Shake-shake draws its branch weights in training mode; the clean statistics are those of the network as
    evaluated (weights 1/2), so two re-estimations under different torch seeds agree exactly."""
    from torch import nn

    from nets.noise_response import clean_batchnorm_statistics

    torch.manual_seed(0)
    model = build_model("shake_preresnet26", num_classes=4)
    images = torch.randn(16, 3, 8, 8)
    means = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        clean_batchnorm_statistics(model, images, batch_size=len(images))
        means.append([m.running_mean.clone() for m in model.modules() if isinstance(m, nn.BatchNorm2d)])
    assert not model.training and all(torch.equal(a, b) for a, b in zip(*means))


def test_noise_response_with_clean_batchnorm_uses_the_reestimated_network():
    from torch import nn

    from nets.noise_response import clean_batchnorm_statistics

    model, images, labels = _tiny_setup(4)
    for m in model.modules():  # recorded statistics far from the clean activations'
        if isinstance(m, nn.BatchNorm2d):
            m.running_var.fill_(25.0)
    state = model.state_dict()
    recorded, _, _ = noise_response("preresnet8", state, {}, images, labels, 0.1, kinds=("gaussian",), draws=2,
                                    num_classes=4)
    clean, _, responses = noise_response("preresnet8", state, {}, images, labels, 0.1, kinds=("gaussian",), draws=2,
                                         num_classes=4, batchnorm="clean", batch_size=500)
    reference = build_model("preresnet8", num_classes=4)
    reference.load_state_dict(state)
    clean_batchnorm_statistics(reference, images, batch_size=500)
    with torch.no_grad():
        expected = float(F.cross_entropy(reference(images).double(), labels))
    assert math.isclose(clean, expected, rel_tol=1e-12) and not math.isclose(clean, recorded, rel_tol=1e-3)
    with pytest.raises(ValueError, match="batchnorm must be one of recorded, clean"):
        noise_response("preresnet8", state, {}, images, labels, 0.1, draws=2, num_classes=4, batchnorm="fresh")
    with pytest.raises(ValueError, match="estimator must be one of plain, control-variate"):
        noise_response("preresnet8", state, {}, images, labels, 0.1, draws=2, num_classes=4, estimator="fancy")


def test_the_setting_names_clean_batchnorm_and_keeps_it_apart_in_summaries():
    import dataclasses

    from nets.noise_response import curvature_summary, from_json, to_json

    runs = _fixture_results()[:2]
    both = runs + [dataclasses.replace(r, batchnorm="clean") for r in runs]
    assert from_json(to_json(both)) == both
    settings = {s.setting for s in curvature_summary(both)}
    assert settings == {"no noise", "no noise, BatchNorm statistics re-estimated clean"}
    with pytest.raises(ValueError, match="batchnorm must be one of"):
        from_json(to_json(runs).replace('"batchnorm": "recorded"', '"batchnorm": "other"', 1))


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="checks the refusal where CUDA is absent")
def test_a_cuda_device_without_cuda_is_one_line_and_exit_2(tmp_path):
    done = subprocess.run([sys.executable, "-m", "nets.noise_response", str(tmp_path), "--eps", "0.1",
                           "--device", "cuda"], capture_output=True, text=True)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines() == [
        "python -m nets.noise_response: error: device 'cuda' needs CUDA, which this torch build or machine does not "
        "have (torch.cuda.is_available() is False); use cpu"]


def test_tf32_is_off_inside_a_measurement_and_restored_after():
    import torch

    from nets.trained_run import full_float32

    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    try:
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = True
        with full_float32():
            assert not torch.backends.cudnn.allow_tf32 and not torch.backends.cuda.matmul.allow_tf32
        assert torch.backends.cudnn.allow_tf32 and torch.backends.cuda.matmul.allow_tf32
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved
