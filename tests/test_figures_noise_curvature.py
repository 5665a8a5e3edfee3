"""figures.noise_curvature: the eps^2 law from saved nets.noise_response measurements (fixtures written here)."""
from __future__ import annotations

import math
from pathlib import Path

import h5py
import numpy as np
import pytest

from figures import noise_curvature, registry
from figures.output import MissingResults
from nets.noise_response import KindResponse, RunNoiseResponse, to_json


def _run(name: str, trained_with: str, clean: float, excess: dict) -> RunNoiseResponse:
    """A made-up measurement: J_0 = clean, and J_eps = clean + excess[(eps, kind)]."""
    kinds = tuple(KindResponse(kind=kind, options={}, eps=eps, loss=clean + value, loss_stderr=1e-4, error=0.1)
                  for (eps, kind), value in excess.items())
    return RunNoiseResponse(run=Path(name), model="preresnet20", trained_with=trained_with, clean_loss=clean,
                            clean_error=0.05, kinds=kinds)


def _write(root: Path, runs: list[RunNoiseResponse], name: str = "m.json") -> Path:
    folder = root / "noise_response"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(to_json(runs))
    return folder / name


FIXTURE = [
    _run("a", "no noise", 0.1, {(0.1, "gaussian"): 0.002, (0.2, "gaussian"): 0.010, (0.1, "stochastic_depth"): 0.5,
                                 (0.2, "stochastic_depth"): 2.0}),
    _run("b", "no noise", 0.2, {(0.1, "gaussian"): 0.004, (0.2, "gaussian"): 0.014, (0.1, "stochastic_depth"): 0.3,
                                 (0.2, "stochastic_depth"): 1.0}),
    _run("c", "bernoulli p=0.9", 0.1, {(0.1, "gaussian"): -0.001, (0.2, "gaussian"): 0.002,
                                        (0.1, "stochastic_depth"): 0.2, (0.2, "stochastic_depth"): 0.8}),
]


def test_registered():
    assert "noise_curvature" in registry.figure_names()


def test_missing_measurements_name_the_commands_and_write_nothing(tmp_path):
    (tmp_path / "res" / "noise_response").mkdir(parents=True)
    with pytest.raises(MissingResults) as raised:
        noise_curvature.make(tmp_path / "out", results=tmp_path / "res")
    command = raised.value.command
    assert command.startswith("python -m nets.sweep --models preresnet20 --p 1.0 0.9 --seeds 4 --data digits")
    assert f"--save {tmp_path / 'res' / 'noise_response' / 'digits_preresnet20.json'}" in command
    assert not (tmp_path / "out").exists()


def test_curvature_is_the_mean_and_sample_std_over_runs_and_the_excess_follows(tmp_path):
    _write(tmp_path, FIXTURE)
    data, note = noise_curvature.compute(tmp_path)
    assert list(data) == ["preresnet20, no noise, gaussian", "preresnet20, no noise, stochastic_depth",
                          "preresnet20, bernoulli p=0.9, gaussian", "preresnet20, bernoulli p=0.9, stochastic_depth"]
    sd = data["preresnet20, no noise, stochastic_depth"]
    c_at_02 = [2.0 / 0.04, 1.0 / 0.04]
    assert list(sd["eps"]) == [0.1, 0.2] and list(sd["runs"]) == [2, 2]
    assert math.isclose(sd["c_mean"][1], np.mean(c_at_02)) and math.isclose(sd["c_std"][1], np.std(c_at_02, ddof=1))
    np.testing.assert_allclose(sd["excess_mean"], sd["c_mean"] * sd["eps"] ** 2, rtol=1e-12)
    alone = data["preresnet20, bernoulli p=0.9, gaussian"]
    assert alone["c_std"][0] == 0.0 and math.isclose(alone["c_mean"][0], -0.1)
    assert "no noise (2 runs, plain estimator)" in note and "bernoulli p=0.9 (1 run, plain estimator)" in note
    assert list(sd["controlled_eps"]) == []
    assert "from m.json" in note
    assert "1 point(s) with a mean <= 0 left out" in note


def test_make_writes_the_plotted_numbers(tmp_path):
    _write(tmp_path / "res", FIXTURE[:2])
    written = noise_curvature.make(tmp_path / "out", results=tmp_path / "res")
    assert sorted(p.suffix for p in written) == [".h5", ".pdf", ".png"]
    with h5py.File(tmp_path / "out" / "noise_curvature.h5") as f:
        group = f["preresnet20, no noise, gaussian"]
        np.testing.assert_allclose(group["c_mean"][:], [np.mean([0.2, 0.4]), np.mean([0.25, 0.35])], rtol=1e-12)
        assert "2 runs" in f.attrs["note"]


def test_a_file_that_is_not_the_measurements_is_named(tmp_path):
    folder = tmp_path / "noise_response"
    folder.mkdir()
    (folder / "other.json").write_text('{"not": "a list"}')
    with pytest.raises(ValueError, match=r"other\.json: not the JSON of nets.noise_response"):
        noise_curvature.compute(tmp_path)


def test_the_committed_measurements_render(tmp_path):
    # results/noise_response holds what nets.noise_response measured (docs/experiments.md section 7)
    root = Path(__file__).resolve().parents[1] / "results"
    data, note = noise_curvature.compute(root)
    kinds = {d["kind"] for d in data.values()}
    assert kinds == {"bernoulli", "gaussian", "uniform", "stochastic_depth"} and "(4 runs, " in note
    assert {d["family"] for d in data.values()} == {"preresnet20 on digits", "preresnet8 on cifar10-jpeg"}
    assert all(list(d["controlled_eps"]) == list(d["eps"]) for d in data.values() if d["model"] == "preresnet20")
    for d in data.values():  # four digits seeds per setting, at least two CIFAR-10 seeds
        assert np.all(np.diff(d["eps"]) > 0)
        assert np.all(d["runs"] == 4) if d["model"] == "preresnet20" else np.all(d["runs"] >= 2)


def test_each_data_set_and_model_gets_its_own_row(tmp_path):
    import dataclasses

    import matplotlib

    matplotlib.use("Agg")
    digits = [dataclasses.replace(r, data="digits") for r in FIXTURE]
    cifar = [dataclasses.replace(r, data="cifar10-jpeg", model="preresnet8") for r in FIXTURE[:2]]
    _write(tmp_path, digits, "digits.json")
    _write(tmp_path, cifar, "cifar.json")
    data, note = noise_curvature.compute(tmp_path)
    assert {d["family"] for d in data.values()} == {"preresnet20 on digits", "preresnet8 on cifar10-jpeg"}
    assert "preresnet8 on cifar10-jpeg no noise (2 runs, plain" in note
    assert "preresnet20 on digits bernoulli p=0.9 (1 run, plain" in note
    cifar_c = data["preresnet8 on cifar10-jpeg, no noise, gaussian"]["c_mean"]
    np.testing.assert_allclose(cifar_c, [np.mean([0.2, 0.4]), np.mean([0.25, 0.35])], rtol=1e-12)
    fig = noise_curvature.draw(data, note)
    titles = [ax.get_title() for ax in fig.axes]
    assert len(fig.axes) == 4 and titles[0].startswith("(a) preresnet8 on cifar10-jpeg")
    assert titles[2].startswith("(a) preresnet20 on digits")
    # the digits row draws only the digits lines: 2 settings x 2 kinds, plus the slope-2 guide
    assert len(fig.axes[2].get_legend_handles_labels()[1]) == 2 * 2 + 1
    matplotlib.pyplot.close(fig)


def test_a_point_measured_with_both_estimators_is_drawn_from_the_control_variate(tmp_path):
    import dataclasses

    # the noise-free runs again, with the control variate at eps 0.1 only (0.001 higher, to tell them apart)
    controlled = [dataclasses.replace(r, estimator="control-variate",
                                      kinds=tuple(dataclasses.replace(k, loss=k.loss + 0.001) for k in r.kinds
                                                  if k.eps == 0.1 and k.kind == "gaussian"))
                  for r in FIXTURE[:2]]
    _write(tmp_path, FIXTURE, "plain.json")
    _write(tmp_path, controlled, "controlled.json")
    data, note = noise_curvature.compute(tmp_path)
    free = data["preresnet20, no noise, gaussian"]
    assert list(free["controlled_eps"]) == [0.1] and list(free["runs"]) == [2, 2]
    np.testing.assert_allclose(free["c_mean"], [np.mean([0.3, 0.5]), np.mean([0.25, 0.35])], rtol=1e-12)
    assert list(data["preresnet20, no noise, stochastic_depth"]["controlled_eps"]) == []
    assert "no noise (2 runs, control variate at eps 0.1)" in note
    assert "bernoulli p=0.9 (1 run, plain estimator)" in note


def test_the_noise_free_networks_are_drawn_solid_in_every_row(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    _write(tmp_path, FIXTURE[2:] + FIXTURE[:2])  # the noise-trained run first in the file
    fig = noise_curvature.draw(*noise_curvature.compute(tmp_path))
    handles, labels = fig.axes[0].get_legend_handles_labels()
    styles = {label: getattr(handle, "lines", [handle])[0].get_linestyle() for handle, label in zip(handles, labels)}
    assert styles["gaussian, no noise"] == "-" and styles["gaussian, bernoulli p=0.9"] == "--"
    matplotlib.pyplot.close(fig)
