"""figures.noise_kinds: noise kinds at a matched noise level eps, on FIXTURE runs these tests write themselves."""
from __future__ import annotations

import math
from pathlib import Path

import h5py
import numpy as np
import pytest

from fixtures_results import curves, grid, write_metrics
from figures import noise_kinds, registry, table1
from figures.output import MissingResults

# FIXTURE final test errors (fractions) per (kind, parameter): invented, chosen so that differences are known
ERRORS = {("bernoulli", 0.9): [0.080, 0.084, 0.088], ("gaussian", 1 / 3): [0.090, 0.092, 0.097],
          ("uniform", 3 ** 0.5 / 3): [0.081, 0.083], ("bernoulli", 0.8): [0.10, 0.11], ("none", None): [0.085, 0.087]}
LOSSES = {("bernoulli", 0.9): 0.30, ("gaussian", 1 / 3): 0.32, ("uniform", 3 ** 0.5 / 3): 0.31,
          ("bernoulli", 0.8): 0.45, ("none", None): 0.20}


def write_kinds(root, model="preresnet20", errors=ERRORS):
    rng = np.random.default_rng(3)
    for (kind, value), finals in errors.items():
        for seed, final in enumerate(finals):
            test_acc, train_loss = curves(rng, 5, final, LOSSES[(kind, value)] + 0.01 * seed)
            params = {"bernoulli": dict(p=value), "gaussian": dict(p=None, nu=value), "uniform": dict(p=None, beta=value),
                      "none": dict(noise=None, p=None)}[kind]
            noise = {} if kind == "none" else {"noise": kind}
            write_metrics(root / f"{model}-{kind}-{value}-s{seed}", model=model, seed=seed, test_acc=test_acc,
                          train_loss=train_loss, **noise, **params)


def test_blocks_are_the_built_models():
    # 3n blocks for the basic-block depth 6n + 2; PreResNet-164 is a bottleneck network of depth 9n + 2, n = 18
    assert [noise_kinds.residual_blocks(m) for m in ("preresnet8", "preresnet20", "preresnet110", "preresnet164")] \
        == [3, 9, 54, 54]
    with pytest.raises(ValueError, match="nosuch"):
        noise_kinds.residual_blocks("nosuch")


def test_eps_is_the_one_the_trainer_recorded():
    # real runs kept in the repository: the trainer recorded model.epsilon() (eq. 3.2 with K = 3 for PreResNet-8)
    from figures.results import collect_runs

    runs = collect_runs(Path(__file__).resolve().parents[1] / "results" / "cpu_cifar10_preresnet8")
    # the four p of section 6 with four seeds each; other p may join (Table 1's missing columns, trained later)
    ps = [r.survival_p for r in runs]
    assert all(ps.count(p) == 4 for p in (0.85, 0.9, 0.95, 1.0))
    for run in runs:
        assert math.isclose(noise_kinds.eps_of(run), float(run.attrs["epsilon"]), rel_tol=1e-12, abs_tol=1e-15)
        assert math.isclose(noise_kinds.eps_of(run), math.sqrt((1 - run.survival_p) / (3 * run.survival_p)),
                            rel_tol=1e-12, abs_tol=1e-15)


@pytest.mark.parametrize("folder,parameter,formula", [
    ("cpu_cifar10_preresnet8_gaussian", "nu", lambda nu: nu / math.sqrt(3)),            # eq. (3.13), K = 3
    ("cpu_cifar10_preresnet8_uniform", "beta", lambda beta: beta / math.sqrt(3 * 3)),  # eq. (3.14), K = 3
])
def test_eps_of_the_committed_gaussian_and_uniform_runs(folder, parameter, formula):
    from figures.results import collect_runs

    runs = collect_runs(Path(__file__).resolve().parents[1] / "results" / folder)
    assert len(runs) >= 2
    for run in runs:
        expected = formula(float(run.attrs[parameter]))
        assert math.isclose(noise_kinds.eps_of(run), float(run.attrs["epsilon"]), rel_tol=1e-12)
        assert math.isclose(noise_kinds.eps_of(run), expected, rel_tol=1e-12)
        # the mask variance of Bernoulli p = 0.85, to the 5 digits the parameter was typed with
        assert math.isclose(expected, math.sqrt(0.15 / 0.85 / 3), rel_tol=2e-5)


def test_eps_of_the_committed_stochastic_depth_runs():
    # SD runs kept in the repository: p_L typed to 5 digits so that the rms level of the linear decay over
    # K = 3 blocks (LM-ResNet paper 3.2, kolmogorov.stochastic_depth_epsilon) is Bernoulli p = 0.85's eps
    from figures.results import collect_runs
    from kolmogorov import stochastic_depth_epsilon

    runs = [run for run in collect_runs(Path(__file__).resolve().parents[1] / "results" / "cpu_cifar10_lm")
            if run.stochastic_depth is not None]
    assert {run.model for run in runs} == {"preresnet8", "lm_preresnet8"}
    for run in runs:
        eps = stochastic_depth_epsilon(run.stochastic_depth, 3)
        assert noise_kinds.kind_of(run) == "stochastic_depth"
        assert math.isclose(noise_kinds.eps_of(run), eps, rel_tol=1e-12)
        assert math.isclose(eps, math.sqrt(0.15 / 0.85 / 3), rel_tol=2e-5)
        if "stochastic_depth_epsilon" in run.attrs:  # recorded by the trainer since 2026-12-03
            assert math.isclose(float(run.attrs["stochastic_depth_epsilon"]), eps, rel_tol=1e-12)
    assert sum("stochastic_depth_epsilon" in run.attrs for run in runs) >= 2


def test_levels_match_eps_and_aggregate_each_kind(tmp_path):
    write_kinds(tmp_path / "res")
    data, note = noise_kinds.compute(tmp_path / "res")
    levels = data["preresnet20"]
    by_kind = {(level.kind, level.parameter): level for level in levels}
    assert math.isclose(by_kind[("bernoulli", 0.9)].eps, math.sqrt(0.1 / 0.9 / 9))
    assert math.isclose(by_kind[("gaussian", 1 / 3)].eps, (1 / 3) / 3)
    assert math.isclose(by_kind[("uniform", 3 ** 0.5 / 3)].eps, (3 ** 0.5 / 3) / math.sqrt(27))
    # the three masks of variance 1/9 share one eps = 1/9; Bernoulli p = 0.8 is a larger one
    assert all(math.isclose(by_kind[key].eps, 1 / 9) for key in [("bernoulli", 0.9), ("gaussian", 1 / 3),
                                                               ("uniform", 3 ** 0.5 / 3)])
    assert math.isclose(by_kind[("bernoulli", 0.8)].eps, math.sqrt(0.25 / 9))
    assert by_kind[("none", None)].eps == 0.0 and levels[0].kind == "none"
    assert [level.eps for level in levels] == sorted(level.eps for level in levels)
    gauss = by_kind[("gaussian", 1 / 3)]
    assert gauss.test_error.n == 3 and math.isclose(gauss.test_error.mean, 100 * np.mean([0.090, 0.092, 0.097]))
    assert math.isclose(gauss.test_error.std, 100 * np.std([0.090, 0.092, 0.097], ddof=1))
    assert math.isclose(gauss.train_loss.mean, 0.33)
    assert "JPEG" in note


def test_welch_against_bernoulli_at_the_same_eps(tmp_path):
    write_kinds(tmp_path / "res")
    levels, _ = noise_kinds.compute(tmp_path / "res")
    levels = levels["preresnet20"]
    gauss = next(level for level in levels if level.kind == "gaussian")
    difference, pvalue = noise_kinds.versus_bernoulli(levels, gauss)
    a, b = 100 * np.array([0.090, 0.092, 0.097]), 100 * np.array([0.080, 0.084, 0.088])
    assert math.isclose(difference, a.mean() - b.mean())
    # Welch's t and Welch-Satterthwaite degrees of freedom written out, not taken from scipy's ttest
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    t = (a.mean() - b.mean()) / math.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    from scipy.special import stdtr
    assert math.isclose(pvalue, 2 * stdtr(dof, -abs(t)), rel_tol=1e-9)
    assert noise_kinds.versus_bernoulli(levels, next(level for level in levels if level.kind == "bernoulli")) is None
    assert noise_kinds.versus_bernoulli(levels, next(level for level in levels if level.kind == "none")) is None


def test_welch_on_the_training_loss_against_bernoulli(tmp_path):
    write_kinds(tmp_path / "res")
    levels = noise_kinds.compute(tmp_path / "res")[0]["preresnet20"]
    uniform = next(level for level in levels if level.kind == "uniform")
    difference, pvalue = noise_kinds.versus_bernoulli(levels, uniform, "train_loss")
    # FIXTURE final training losses: LOSSES + 0.01 * seed
    a, b = 0.31 + 0.01 * np.arange(2), 0.30 + 0.01 * np.arange(3)
    assert math.isclose(difference, a.mean() - b.mean(), abs_tol=1e-12)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    t = (a.mean() - b.mean()) / math.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    from scipy.special import stdtr
    assert math.isclose(pvalue, 2 * stdtr(dof, -abs(t)), rel_tol=1e-9)
    with pytest.raises(ValueError, match="metric must be one of test_error, train_loss"):
        noise_kinds.versus_bernoulli(levels, uniform, "accuracy")
    paired = noise_kinds.versus_bernoulli_paired(levels, uniform, "train_loss")
    table = noise_kinds.to_markdown({"preresnet20": levels}, "note")
    row = next(line for line in table.splitlines() if line.startswith("| uniform"))
    assert row.endswith(f"| {a.mean() - b.mean():+.4f} (p = {pvalue:.2g}, paired {paired.pvalue:.2g}) |")
    assert "| training loss vs Bernoulli |" in table


def test_paired_against_bernoulli_is_the_t_test_of_the_per_seed_differences(tmp_path):
    """Gaussian seeds 0-2 against Bernoulli's seeds 0-2 at the same eps, the t of the mean difference written out;
    uniform holds seeds 0-1 only, so only those pair."""
    from scipy import stats

    write_kinds(tmp_path / "res")
    levels = noise_kinds.compute(tmp_path / "res")[0]["preresnet20"]
    by_kind = {level.kind: level for level in levels if level.kind != "bernoulli" or level.parameter == 0.9}
    d = 100 * (np.array([0.090, 0.092, 0.097]) - np.array([0.080, 0.084, 0.088]))  # FIXTURE ERRORS, seed by seed
    paired = noise_kinds.versus_bernoulli_paired(levels, by_kind["gaussian"])
    assert paired.n == 3 and math.isclose(paired.difference, d.mean(), rel_tol=1e-12)
    t = d.mean() / (d.std(ddof=1) / math.sqrt(3))
    assert math.isclose(paired.pvalue, 2 * stats.t.sf(abs(t), 2), rel_tol=1e-9)
    uniform = noise_kinds.versus_bernoulli_paired(levels, by_kind["uniform"])
    assert uniform.n == 2
    assert math.isclose(uniform.difference, 100 * np.mean([0.081 - 0.080, 0.083 - 0.084]), abs_tol=1e-9)
    for kind in ("bernoulli", "none"):
        assert noise_kinds.versus_bernoulli_paired(levels, by_kind[kind]) is None
    row = next(line for line in noise_kinds.to_markdown({"preresnet20": levels}, "note").splitlines()
               if line.startswith("| gaussian"))
    welch = noise_kinds.versus_bernoulli(levels, by_kind["gaussian"])
    assert f"| {welch[0]:+.2f} (p = {welch[1]:.2g}, paired {paired.pvalue:.2g}) |" in row
    with pytest.raises(ValueError, match="metric must be one of test_error, train_loss"):
        noise_kinds.versus_bernoulli_paired(levels, by_kind["gaussian"], "accuracy")


def test_make_writes_figure_data_and_table(tmp_path):
    write_kinds(tmp_path / "res")
    written = noise_kinds.make(tmp_path / "out", results=tmp_path / "res")
    assert sorted(p.name for p in written) == sorted(["noise_kinds.png", "noise_kinds.pdf", "noise_kinds.h5",
                                                     "noise_kinds.md"])
    with h5py.File(tmp_path / "out" / "noise_kinds.h5", "r") as h5:
        assert np.allclose(h5["preresnet20/bernoulli/eps"][()], [1 / 9, math.sqrt(0.25 / 9)])
        assert h5["preresnet20/bernoulli/n_runs"][()].tolist() == [3, 2]
        assert np.allclose(h5["preresnet20/uniform/test_error_mean"][()], [8.2])
    table = (tmp_path / "out" / "noise_kinds.md").read_text()
    assert "PreResNet-20 (K = 9 blocks)" in table
    row = next(line for line in table.splitlines() if line.startswith("| gaussian"))
    assert f"{100 * np.mean([0.090, 0.092, 0.097]) - 100 * np.mean([0.080, 0.084, 0.088]):+.2f} (p = " in row
    assert "| 0.1111 | 3 |" in row


def test_one_noise_kind_is_missing_results_with_a_matched_sweep(tmp_path):
    # a Table 1 sweep (Bernoulli only) is not a comparison of kinds
    grid(tmp_path / "res", ["preresnet20"], [0.9, 1.0], seeds=2)
    with pytest.raises(MissingResults) as raised:
        noise_kinds.make(tmp_path / "out", results=tmp_path / "res")
    command = raised.value.command
    assert "--p 0.9 1.0 --nu 0.33333 --beta 0.57735" in command and f"--out {tmp_path / 'res' / 'noise_kinds'}" in command
    assert not (tmp_path / "out").exists()
    # the command's parameters are the ones of p = 0.9's variance (1 - p) / p = 1/9, to the 5 digits typed
    assert math.isclose(0.33333 ** 2, (1 - 0.9) / 0.9, rel_tol=1e-4)
    assert math.isclose(0.57735 ** 2 / 3, (1 - 0.9) / 0.9, rel_tol=1e-4)


def test_table1_ignores_the_other_kinds(tmp_path):
    write_kinds(tmp_path / "res")
    table = table1.compute(tmp_path / "res")
    assert table.col_labels == ["80%", "90%", "100%"]
    assert table.cells[(0, 1)].n == 3  # Bernoulli p = 0.9 only, not the Gaussian and uniform runs of its eps


def test_other_architectures_and_stochastic_depth_are_left_out(tmp_path):
    write_kinds(tmp_path / "res")
    write_metrics(tmp_path / "res" / "sd", model="preresnet20", seed=0, test_acc=[0.5], train_loss=[1.0],
                  noise="gaussian", p=None, nu=1 / 3, stochastic_depth=0.5)
    write_metrics(tmp_path / "res" / "lm", model="lm_preresnet20", seed=0, test_acc=[0.5], train_loss=[1.0],
                  noise="gaussian", p=None, nu=1 / 3)
    levels, _ = noise_kinds.compute(tmp_path / "res")
    gauss = next(level for level in levels["preresnet20"] if level.kind == "gaussian")
    assert gauss.test_error.n == 3 and list(levels) == ["preresnet20"]


def test_registered():
    assert registry.load("noise_kinds") is noise_kinds


# FIXTURE PreResNet-8 (K = 3) runs: Bernoulli p = 0.85, stochastic depth p_L = 0.78124 (the same eps to 1e-5,
# kolmogorov.stochastic_depth_survival_for), no injection, and one run with a mask and stochastic depth at once
SD_ERRORS = {"bernoulli": [0.219, 0.220, 0.218], "stochastic_depth": [0.225, 0.229], "none": [0.207, 0.209],
             "both": [0.30]}
SD_LOSSES = {"bernoulli": [0.620, 0.621, 0.619], "stochastic_depth": [0.600, 0.604], "none": [0.557, 0.556],
             "both": [0.9]}


def write_stochastic_depth_runs(root):
    rng = np.random.default_rng(4)
    options = {"bernoulli": dict(p=0.85), "stochastic_depth": dict(p=1.0, stochastic_depth=0.78124),
               "none": dict(p=1.0), "both": dict(p=0.85, stochastic_depth=0.78124)}
    for kind, finals in SD_ERRORS.items():
        for seed, (final, loss) in enumerate(zip(finals, SD_LOSSES[kind])):
            test_acc, train_loss = curves(rng, 5, final, loss)
            write_metrics(root / f"preresnet8-{kind}-s{seed}", model="preresnet8", seed=seed, test_acc=test_acc,
                          train_loss=train_loss, **options[kind])


def test_stochastic_depth_is_a_kind_at_its_rms_eps(tmp_path):
    write_stochastic_depth_runs(tmp_path / "res")
    data, _ = noise_kinds.compute(tmp_path / "res")
    levels = data["preresnet8"]
    assert [level.kind for level in levels] == ["none", "bernoulli", "stochastic_depth"]  # by eps: 0.2425356 < 0.2425359
    sd = levels[2]
    survival = [1 - (l / 3) * (1 - 0.78124) for l in (1, 2, 3)]  # Huang et al. eq. (4)
    assert math.isclose(sd.eps, math.sqrt(np.mean([(1 - p) / (p * 3) for p in survival])), rel_tol=1e-12)
    assert sd.parameter == 0.78124 and sd.test_error.n == 2  # the run with a mask as well is left out
    assert noise_kinds.same_eps(sd.eps, math.sqrt(0.15 / 0.85 / 3))
    difference, pvalue = noise_kinds.versus_bernoulli(levels, sd, "train_loss")
    a, b = np.array(SD_LOSSES["stochastic_depth"]), np.array(SD_LOSSES["bernoulli"])
    assert math.isclose(difference, a.mean() - b.mean(), abs_tol=1e-12)
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    t = (a.mean() - b.mean()) / math.sqrt(va + vb)
    dof = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    from scipy.special import stdtr
    assert math.isclose(pvalue, 2 * stdtr(dof, -abs(t)), rel_tol=1e-9)
    table = noise_kinds.to_markdown(data, "note")
    assert "| stochastic depth | p_L = 0.78124 | 0.2425 | 2 |" in table
    assert "rms eps" in table


def test_stochastic_depth_alone_with_no_injection_is_not_two_kinds(tmp_path):
    errors = {kind: SD_ERRORS[kind] for kind in ("stochastic_depth", "none")}
    rng = np.random.default_rng(5)
    for kind, finals in errors.items():
        for seed, final in enumerate(finals):
            test_acc, train_loss = curves(rng, 5, final, 0.6)
            write_metrics(tmp_path / "res" / f"{kind}-s{seed}", model="preresnet8", seed=seed, test_acc=test_acc,
                          train_loss=train_loss, p=1.0, stochastic_depth=0.78124 if kind != "none" else None)
    with pytest.raises(MissingResults, match="stochastic depth"):
        noise_kinds.compute(tmp_path / "res")


def test_the_figure_draws_stochastic_depth(tmp_path):
    write_stochastic_depth_runs(tmp_path / "res")
    noise_kinds.make(tmp_path / "out", results=tmp_path / "res")
    with h5py.File(tmp_path / "out" / "noise_kinds.h5") as f:
        group = f["preresnet8/stochastic_depth"]
        assert group["parameter"][()].tolist() == [0.78124]
        assert group["n_runs"][()].tolist() == [2]
        assert math.isclose(group["train_loss_mean"][0], np.mean(SD_LOSSES["stochastic_depth"]))


def test_the_printed_command_also_trains_stochastic_depth_at_the_masks_eps(tmp_path):
    # The second sweep of the command trains stochastic depth at p = 0.9's rms level in PreResNet-20, so that
    # the figure's four kinds meet at one eps (to EPS_RTOL, the tolerance the figure matches levels with).
    import shlex

    from kolmogorov import stochastic_depth_epsilon
    from nets import sweep
    from nets.sweep_cli import build_parser, config_from_args

    masks, depth = noise_kinds.command(tmp_path).split(" && ")
    runs = []
    for line in (masks, depth):
        words = shlex.split(line)
        assert words[:3] == ["python", "-m", "nets.sweep"]
        runs += sweep.expand(config_from_args(build_parser().parse_args(words[3:])))
    eps = math.sqrt((1 - 0.9) / (0.9 * 9))  # Bernoulli p = 0.9 in K = 9 blocks
    depth_runs = [run for run in runs if run.stochastic_depth is not None]
    assert len(depth_runs) == 4 and {run.model for run in depth_runs} == {"preresnet20"}
    for run in depth_runs:
        assert math.isclose(stochastic_depth_epsilon(run.stochastic_depth, 9), eps, rel_tol=noise_kinds.EPS_RTOL)
    masks = {(run.noise, run.p) for run in runs if run.stochastic_depth is None}
    assert masks == {("bernoulli", 0.9), ("bernoulli", 1.0), ("gaussian", None), ("uniform", None)}
