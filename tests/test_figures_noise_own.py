"""figures.noise_own: networks trained with different masks, each under its own noise, paired by seed, from saved
measurements (fixtures written here, with every J_0 and J_eps chosen so that each compared number is known by hand)."""
from __future__ import annotations

import dataclasses
import shlex
from pathlib import Path

import h5py
import numpy as np
import pytest
from scipy import stats

from figures import noise_own, registry
from figures.output import MissingResults
from nets.noise_response import KindResponse, RunNoiseResponse, to_json

EPS = 0.1
PARAMETER = {"bernoulli": ("p", 0.97), "gaussian": ("nu", 0.3), "uniform": ("beta", 0.52)}


def _options(kind: str, value: float | None = None) -> dict:
    name, default = PARAMETER[kind]
    return {"noise": kind, name: default if value is None else value, "stochastic_depth": None}


def _network(trained: str, seed: int, clean: float, cost: dict, stderr: float = 1e-3, eps: float = EPS,
             trained_with: str | None = None, name: str | None = None, batchnorm: str = "recorded",
             estimator: str = "control-variate") -> RunNoiseResponse:
    """A made-up measurement of one network: J_0 = clean, J_eps = clean + cost[kind] under each kind."""
    parameter, value = PARAMETER[trained]
    kinds = tuple(KindResponse(kind=kind, options=_options(kind), eps=eps, loss=clean + c, loss_stderr=stderr,
                               error=0.1) for kind, c in cost.items())
    return RunNoiseResponse(run=Path(f"runs/{name or f'preresnet8-{trained}-s{seed}-0123abcd'}"), model="preresnet8",
                            trained_with=trained_with or f"{trained} {parameter}={value:g}", clean_loss=clean,
                            clean_error=0.1, kinds=kinds, batchnorm=batchnorm, estimator=estimator,
                            data="cifar10-jpeg")


# per seed: (J_0, cost under bernoulli / gaussian / uniform) of the Bernoulli- and the uniform-trained network
BERNOULLI = {0: (0.50, (0.020, 0.027, 0.030)), 1: (0.52, (0.022, 0.025, 0.031)), 2: (0.51, (0.018, 0.024, 0.026))}
UNIFORM = {0: (0.51, (0.025, 0.013, 0.012)), 1: (0.525, (0.030, 0.016, 0.015)), 2: (0.515, (0.021, 0.012, 0.019))}
KINDS = ("bernoulli", "gaussian", "uniform")


def _fixture() -> list[RunNoiseResponse]:
    runs = [_network("bernoulli", seed, clean, dict(zip(KINDS, cost))) for seed, (clean, cost) in BERNOULLI.items()]
    runs += [_network("uniform", seed, clean, dict(zip(KINDS, cost)), stderr=2e-3)
             for seed, (clean, cost) in UNIFORM.items()]
    return runs


def _write(root: Path, runs: list[RunNoiseResponse], name: str = "cifar10/own.json") -> None:
    path = root / "noise_response" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_json(runs))


@pytest.mark.parametrize("label, expected", [("bernoulli p=0.85", ("bernoulli", 0.85)),
                                             ("uniform beta=0.72761", ("uniform", 0.72761)),
                                             ("gaussian nu=0.42008", ("gaussian", 0.42008)), ("no noise", None),
                                             ("stochastic depth p_L=0.78124", None),
                                             ("bernoulli p=0.9, stochastic depth p_L=0.5", None)])
def test_the_mask_a_network_trained_with(label, expected):
    assert noise_own.trained_mask(label) == expected


@pytest.mark.parametrize("name, seed", [("preresnet8-uniform-beta0.72761-e24-s3-549542c4", 3),
                                        ("preresnet8-bernoulli-p0.85-e24-s12-05afd09d", 12),
                                        ("my-run", None), ("preresnet8-s1-short", None)])
def test_the_seed_in_a_sweep_runs_name(name, seed):
    assert noise_own.training_seed(Path("/tmp") / name) == seed


def test_registered_and_missing_measurements_name_a_command_the_tools_accept(tmp_path):
    from nets.noise_response import build_parser as measure_parser
    from nets.sweep_cli import build_parser as sweep_parser

    assert "noise_own" in registry.figure_names()
    with pytest.raises(MissingResults) as raised:
        noise_own.make(tmp_path / "out", results=tmp_path)
    sweep, measure = raised.value.command.split(" && ")
    sweep_args = sweep_parser().parse_args(shlex.split(sweep)[3:])
    measure_args = measure_parser().parse_args(shlex.split(measure)[3:])
    assert sweep_args.eps == measure_args.eps == [0.111111] and sweep_args.noise == ["bernoulli", "uniform"]
    assert not (tmp_path / "out").exists()


def test_each_network_its_cost_and_its_own_objective(tmp_path):
    _write(tmp_path, _fixture())
    data, note = noise_own.compute(tmp_path)
    (label, d), = data.items()
    assert label == "preresnet8 on cifar10-jpeg, control-variate, eps 0.1"
    assert [(n.seed, n.trained) for n in d["networks"]] == [(s, k) for s in range(3) for k in ("bernoulli", "uniform")]
    assert d["kinds"] == list(KINDS)
    uniform_seed_2 = d["networks"][5]
    assert uniform_seed_2.cost == pytest.approx(dict(zip(KINDS, UNIFORM[2][1])))
    assert uniform_seed_2.own_loss == pytest.approx(0.515 + 0.019)
    # seed 2's uniform-trained network pays less for Gaussian masks than for its own: not cheapest
    assert [n.own_cheapest for n in d["networks"]] == [True, True, True, True, True, False]
    assert "0 measured network(s)" in note


def test_the_pairs_per_seed_and_the_paired_tests_over_seeds(tmp_path):
    _write(tmp_path, _fixture())
    (d,) = noise_own.compute(tmp_path)[0].values()
    (comparison,) = d["comparisons"]
    assert (comparison.mine, comparison.theirs) == ("uniform", "bernoulli")
    own_u = np.array([UNIFORM[s][0] + UNIFORM[s][1][2] for s in range(3)])
    own_b = np.array([BERNOULLI[s][0] + BERNOULLI[s][1][0] for s in range(3)])
    assert [s.own_loss for s in comparison.seeds] == pytest.approx(own_u - own_b)
    assert [s.own_loss_stderr for s in comparison.seeds] == pytest.approx([np.hypot(1e-3, 2e-3)] * 3)
    assert [s.clean_loss for s in comparison.seeds] == pytest.approx([0.01, 0.005, 0.005])
    assert [s.own_cost for s in comparison.seeds] == pytest.approx([-0.008, -0.007, 0.001])
    expected = stats.ttest_rel(own_u, own_b)
    assert comparison.own_loss.difference == pytest.approx(np.mean(own_u - own_b))
    assert comparison.own_loss.pvalue == pytest.approx(expected.pvalue) and comparison.own_loss.n == 3
    assert comparison.own_cost.pvalue == pytest.approx(stats.ttest_rel([0.012, 0.015, 0.019],
                                                                       [0.020, 0.022, 0.018]).pvalue)


def test_networks_that_cannot_be_compared_are_left_out_and_counted(tmp_path):
    runs = _fixture()
    runs += [
        # measured at another eps than it trained at: its own kind's parameter differs
        _network("bernoulli", 3, 0.5, {"bernoulli": 0.01, "uniform": 0.02}, trained_with="bernoulli p=0.85"),
        # no sweep seed in its name, re-estimated BatchNorm statistics, no mask, a lone Gaussian seed 0 (kept)
        _network("uniform", 3, 0.5, {"bernoulli": 0.01, "uniform": 0.02}, name="hand-made-run"),
        _network("uniform", 4, 0.5, {"bernoulli": 0.01, "uniform": 0.02}, batchnorm="clean"),
        _network("uniform", 5, 0.5, {"bernoulli": 0.01}, trained_with="no noise"),
        _network("gaussian", 0, 0.5, {"bernoulli": 0.03, "gaussian": 0.01, "uniform": 0.02}),
    ]
    _write(tmp_path, runs)
    data, note = noise_own.compute(tmp_path)
    (d,) = data.values()
    assert "4 measured network(s)" in note
    assert [c.theirs + "/" + c.mine for c in d["comparisons"]] == ["bernoulli/gaussian", "bernoulli/uniform",
                                                                   "gaussian/uniform"]
    gaussian = d["comparisons"][0]
    assert [s.seed for s in gaussian.seeds] == [0] and gaussian.own_loss is None  # one seed: no paired test
    assert len(d["networks"]) == 7


def test_a_network_saved_twice_is_refused_naming_it(tmp_path):
    _write(tmp_path, _fixture(), "a.json")
    _write(tmp_path, _fixture()[:1], "cifar10/b.json")  # seed 0's Bernoulli network again
    with pytest.raises(ValueError, match=r"preresnet8 on cifar10-jpeg: runs/preresnet8-bernoulli-s0-0123abcd is "
                                         r"measured twice \(control-variate estimator, eps 0.1\)"):
        noise_own.compute(tmp_path)


def test_groups_split_by_estimator_eps_and_split(tmp_path):
    _write(tmp_path, _fixture(), "a.json")
    _write(tmp_path, [dataclasses.replace(r, split="test") for r in _fixture()], "cifar10/b.json")
    plain = [_network("bernoulli", 0, 0.5, {"bernoulli": 0.02, "uniform": 0.03}, estimator="plain"),
             _network("uniform", 0, 0.5, {"bernoulli": 0.02, "uniform": 0.01}, estimator="plain")]
    _write(tmp_path, plain, "plain.json")
    _write(tmp_path, [_network("uniform", 0, 0.5, {"bernoulli": 0.02, "uniform": 0.01})], "jumps/x.json")
    data, _ = noise_own.compute(tmp_path)
    assert set(data) == {"preresnet8 on cifar10-jpeg, control-variate, eps 0.1",
                         "preresnet8 on cifar10-jpeg (test split), control-variate, eps 0.1",
                         "preresnet8 on cifar10-jpeg, plain, eps 0.1"}
    assert len(data["preresnet8 on cifar10-jpeg, control-variate, eps 0.1"]["networks"]) == 6
    assert len(data["preresnet8 on cifar10-jpeg (test split), control-variate, eps 0.1"]["networks"]) == 6


def test_two_networks_of_one_kind_and_seed_are_refused_naming_both(tmp_path):
    # e.g. seed 0 re-trained on another processor and measured again: the pairs and the table would disagree
    again = _network("bernoulli", 0, 0.49, {"bernoulli": 0.019, "gaussian": 0.026, "uniform": 0.029},
                     name="preresnet8-bernoulli-s0-fedcba98")
    _write(tmp_path, _fixture() + [again])
    with pytest.raises(ValueError, match=r"two bernoulli-trained networks of seed 0 measured at eps 0.1 "
                                         r"\(preresnet8-bernoulli-s0-0123abcd, preresnet8-bernoulli-s0-fedcba98\)"):
        noise_own.compute(tmp_path)


def test_one_training_kind_alone_has_nothing_to_compare(tmp_path):
    _write(tmp_path, [_network("bernoulli", s, 0.5, {"bernoulli": 0.02, "uniform": 0.03}) for s in range(3)])
    with pytest.raises(MissingResults, match="no two networks trained with different masks"):
        noise_own.compute(tmp_path)


def test_make_writes_the_table_the_figure_and_its_numbers(tmp_path):
    _write(tmp_path, _fixture())
    written = noise_own.make(tmp_path / "out", results=tmp_path)
    assert sorted(p.name for p in written) == ["noise_own.h5", "noise_own.md", "noise_own.pdf", "noise_own.png"]
    markdown = (tmp_path / "out" / "noise_own.md").read_text()
    assert "| 2 | uniform | 0.5150 | 0.0210 +- 0.0020 | 0.0120 +- 0.0020 | 0.0190 +- 0.0020 | 0.5340 | no |" in markdown
    assert "Own kind cheapest: 5 of 6 networks." in markdown
    assert "| 0 | +0.0020 +- 0.0022 | +0.0100 | -0.0080 |" in markdown
    with h5py.File(tmp_path / "out" / "noise_own.h5") as h5:
        group = h5["preresnet8 on cifar10-jpeg, control-variate, eps 0.1"]
        assert list(group["seed"][:]) == [0, 0, 1, 1, 2, 2]
        assert group["cost"].shape == (6, 3) and group["cost"][5, 1] == pytest.approx(0.012)
        assert group.attrs["trained"].startswith("bernoulli, uniform")
