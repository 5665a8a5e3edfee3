"""The LM-ResNets' starting value u_{-1} as a training option (nets.lm_start): trainer, command lines, sweep names,
and figures that keep the two starts apart."""
from __future__ import annotations

import hashlib
import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from cli_checks import assert_one_line_exit_2
from fixtures_results import write_metrics
from nets.lm_start import LM_STARTS, check_lm_start
from nets.sweep import RunSpec, SweepConfig, check_trainer_accepts, expand
from nets.trainer import RunConflictError, TrainConfig, train

FAST = dict(model="lm_preresnet8", data="synthetic:256:128", epochs=2, batch_size=64, milestones=(2,), device="cpu",
            seed=3, weight_decay=0.0)


def test_the_torch_free_check_matches_the_model():
    from nets.models.lm import LMPreResNetConfig

    assert LM_STARTS == ("zero", "rest")
    for start in LM_STARTS:
        assert check_lm_start(start) == start
        assert LMPreResNetConfig(depth=8, lm_start=start).lm_start == start
    for bad in ("euler", None, 0):
        with pytest.raises(ValueError, match=r"^lm_start must be one of zero, rest; got"):
            check_lm_start(bad)
    with pytest.raises(ValueError, match="^lm_start must be one of zero, rest; got 'euler'"):
        TrainConfig(model="lm_preresnet8", lm_start="euler")


def test_the_option_reaches_the_model_only_when_given():
    assert "lm_start" not in TrainConfig(model="lm_preresnet8").model_options()
    assert TrainConfig(model="lm_preresnet8", lm_start="rest").model_options()["lm_start"] == "rest"
    # a configuration recorded before the field existed means the model's default
    recorded = TrainConfig(model="lm_preresnet8").to_dict()
    recorded.pop("lm_start")
    assert TrainConfig.from_recorded(recorded).lm_start is None


def test_rest_start_trains_the_first_block_as_an_euler_step(tmp_path):
    """With u_{-1} = u_0 the first block's k_0 gets no gradient: without weight decay it ends where it began,
    while every other k_n moves; the default start moves k_0 too. The choice is recorded and a resume with the
    other start is refused."""
    from nets.metrics import read_metrics

    torch.set_num_threads(1)
    rest = read_metrics(train(TrainConfig(**FAST, lm_start="rest"), tmp_path / "rest", progress=False).metrics_path)
    zero = read_metrics(train(TrainConfig(**FAST), tmp_path / "zero", progress=False).metrics_path)
    assert rest.config["lm_start"] == "rest" and zero.config["lm_start"] is None
    assert rest.lm_k[0, 0] == rest.lm_k[1, 0]
    assert np.all(rest.lm_k[0, 1:] != rest.lm_k[1, 1:])
    assert zero.lm_k[0, 0] != zero.lm_k[1, 0]
    with pytest.raises(RunConflictError, match=r"lm_start: 'rest' -> None"):
        train(TrainConfig(**FAST), tmp_path / "rest", progress=False)


@pytest.mark.parametrize("command, argv, expect", [
    ("train", ["--model", "lm_preresnet8", "--lm-start", "euler"],
     "--lm-start: invalid choice: 'euler' (choose from 'zero', 'rest')"),
    ("train", ["--model", "preresnet8", "--lm-start", "rest"],
     "--lm-start needs an LM model (lm_preresnet...); got model 'preresnet8'"),  # was build_model's option list
    ("sweep", ["--models", "lm_preresnet8", "--lm-start", "euler"], "--lm-start: invalid choice: 'euler'"),
    ("sweep", ["--models", "preresnet8", "--lm-start", "rest", "--dry-run"],
     "--lm-start rest needs an LM model (lm_preresnet...) among models; got preresnet8"),
])
def test_cli_bad_start_exits_2_with_one_line(tmp_path, capsys, command, argv, expect):
    from nets import sweep_cli
    from nets import train as train_cli

    main = {"train": train_cli.main, "sweep": sweep_cli.main}[command]
    assert_one_line_exit_2(capsys, main, [*argv, "--data", "synthetic", "--out", str(tmp_path / "o")], expect)
    assert not (tmp_path / "o").exists()


def sha256_prefix(configuration: dict) -> str:
    """The sweep's hash written out: SHA-256 of the canonical JSON (sorted keys, no spaces), first 8 hex digits."""
    return hashlib.sha256(json.dumps(configuration, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:8]


def test_sweep_names_the_start_only_when_given_and_only_for_lm_models(tmp_path):
    run = RunSpec(model="lm_preresnet8", noise="bernoulli", p=1.0, nu=None, beta=None, stochastic_depth=None, h=None,
                  epochs=24, batch_size=None, seed=0, data="data/cifar10-jpeg.h5", schedule=(12, 18))
    configuration = dict(data="cifar10-jpeg.h5", epochs=24, model="lm_preresnet8", noise="bernoulli", p=1.0,
                         schedule=[12, 18])
    assert run.name == f"lm_preresnet8-bernoulli-p1-e24-s0-{sha256_prefix(configuration)}"
    assert run.name.endswith("-7b1652c5")  # a run of results/cpu_cifar10_lm keeps its name
    assert "--lm-start" not in run.train_args(Path("o"))
    rest = replace(run, lm_start="rest")
    assert rest.config_hash == sha256_prefix({**configuration, "lm_start": "rest"})
    assert rest.name == f"lm_preresnet8-bernoulli-p1-lmrest-e24-s0-{rest.config_hash}"
    argv = rest.train_args(Path("o"))
    assert argv[argv.index("--lm-start") + 1] == "rest"
    runs = expand(SweepConfig(models=("preresnet8", "lm_preresnet8"), lm_start="rest", data="synthetic", out=tmp_path))
    plain = expand(SweepConfig(models=("preresnet8", "lm_preresnet8"), data="synthetic", out=tmp_path))
    assert [r.lm_start for r in runs] == [None, "rest"]
    assert runs[0].name == plain[0].name and runs[1].name != plain[1].name
    with pytest.raises(ValueError, match="lm_start rest needs an LM model"):
        expand(SweepConfig(models=("preresnet8",), lm_start="rest", data="synthetic", out=tmp_path))


def test_sweep_checks_each_run_against_its_model(tmp_path):
    """A run whose options its model does not take is refused before anything trains (the registry's check)."""
    config = SweepConfig(models=("preresnet8",), data="synthetic:64:32", out=tmp_path)
    bad = replace(expand(config)[0], lm_start="rest")
    with pytest.raises(ValueError, match=r"lm_start needs an LM model \(lm_preresnet...\); got model 'preresnet8'"):
        check_trainer_accepts(config, [bad])


def test_figures_show_the_two_starts_apart(tmp_path):
    from figures import lm_coefficients, lm_table
    from figures.results import collect_runs, select, welch_difference

    k_final = {None: np.array([0.8, 0.4, 0.9]), "rest": np.array([-0.05, 0.6, 0.7])}
    errors = {}
    for start in (None, "rest"):  # None: recorded without the field, i.e. started from zero
        for seed in range(2):
            acc = 0.80 - 0.01 * seed - (0.02 if start else 0.0)
            lm_k = np.vstack([np.zeros(3), k_final[start] + 0.01 * seed])
            write_metrics(tmp_path / f"lm-{start}-{seed}", model="lm_preresnet8", seed=seed, test_acc=[0.5, acc],
                          train_loss=[1.0, 0.6 - 0.01 * seed], lm_k=lm_k, lm_start=start)
            errors.setdefault(start, []).append(100 * (1 - acc))
    for seed in range(2):
        write_metrics(tmp_path / f"resnet-{seed}", model="preresnet8", seed=seed, test_acc=[0.5, 0.79 - 0.005 * seed],
                      train_loss=[1.0, 0.62 + 0.01 * seed])
        errors.setdefault("resnet", []).append(100 * (1 - (0.79 - 0.005 * seed)))
    assert sorted(str(r.lm_start) for r in collect_runs(tmp_path)) == ["None"] * 2 + ["rest"] * 2 + ["zero"] * 2
    assert len(select(tmp_path, lambda r: True).records) == 6  # same seeds, yet not duplicates of each other
    table = lm_table.compute(tmp_path)
    assert table.col_labels == ["ResNet", "LM-ResNet", "LM-ResNet, Euler first step (u_{-1} = u_0)"]
    assert table.cells[(0, 1)].mean == pytest.approx(np.mean(errors[None]))
    assert table.cells[(0, 2)].mean == pytest.approx(np.mean(errors["rest"]))
    # each LM column against ResNet: the difference of the means and Welch's p (welch_difference, tested alone),
    # and the paired t over seeds 0 and 1 (1 degree of freedom) written out
    from scipy import stats

    euler = "LM-ResNet, Euler first step (u_{-1} = u_0)"
    for start, baseline, label in ((None, "resnet", "LM-ResNet minus ResNet"),
                                   ("rest", "resnet", f"{euler} minus ResNet"),
                                   ("rest", None, f"{euler} minus LM-ResNet")):
        difference, p = welch_difference(errors[start], errors[baseline])
        assert difference == pytest.approx(np.mean(errors[start]) - np.mean(errors[baseline]))
        d = np.array(errors[start]) - np.array(errors[baseline])
        paired_p = 2 * stats.t.sf(abs(d.mean() / (d.std(ddof=1) / np.sqrt(2))), 1)  # the fixture's d vary
        assert (f"{label} at depth 8 (2 against 2 runs): test error {difference:+.2f} points "
                f"(Welch p = {p:.2g}, paired over 2 seeds p = {paired_p:.2g}), final training loss ") in table.note
    assert table.note.count(" minus ") == 3
    data, _ = lm_coefficients.compute(tmp_path)
    assert np.allclose(data["lm_preresnet8"]["k_mean"], k_final[None] + 0.005)
    assert np.allclose(data["lm_preresnet8, u_{-1} = u_0"]["k_mean"], k_final["rest"] + 0.005)
    assert data["lm_preresnet8, u_{-1} = u_0"]["lm_start"] == "rest"
    assert data["trajectory"]["run"].startswith("lm-None-")  # the default start is the one drawn over epochs
    assert all(path.exists() for path in lm_coefficients.make(tmp_path / "out", results=tmp_path))
    fig = lm_coefficients.draw(data, "note")  # panel (a): the Euler-first-step curve has no point at block 1
    points = {bars.get_label().split(" (")[0]: list(bars.lines[0].get_xdata()) for bars in fig.axes[0].containers}
    assert points == {"lm_preresnet8": [1, 2, 3], "lm_preresnet8, u_{-1} = u_0": [2, 3]}
