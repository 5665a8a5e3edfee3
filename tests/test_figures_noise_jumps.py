"""figures.noise_jumps: c against the jump of two-point masks, from saved measurements (fixtures written here)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import h5py
import numpy as np
import pytest

from figures import noise_jumps, registry
from figures.output import MissingResults
from nets.two_point_masks import JumpResponse, RunJumpResponse, to_json


def _run(name: str, trained_with: str, clean: float, excess: dict, eps: float = 0.1) -> RunJumpResponse:
    """A made-up measurement: J_0 = clean and J_eps = clean + excess[jump] at each jump."""
    jumps = tuple(JumpResponse(jump=a, loss=clean + value, loss_stderr=1e-4, error=0.1) for a, value in excess.items())
    return RunJumpResponse(run=Path(name), model="preresnet8", trained_with=trained_with, eps=eps, clean_loss=clean,
                           clean_error=0.05, jumps=jumps, data="cifar10-jpeg")


FIXTURE = [_run("a", "no noise", 0.5, {0.2: 0.010, 1.0: 0.012}),
           _run("b", "no noise", 0.4, {0.2: 0.014, 1.0: 0.012}),
           _run("c", "bernoulli p=0.85", 0.6, {0.2: 0.004, 0.5: 0.003, 1.0: 0.002})]


def _write(root: Path, runs: list[RunJumpResponse], name: str = "m.json") -> None:
    folder = root / "noise_response" / "jumps"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(to_json(runs))


def test_registered_and_missing_measurements_name_the_command(tmp_path):
    assert "noise_jumps" in registry.figure_names()
    with pytest.raises(MissingResults) as raised:
        noise_jumps.make(tmp_path / "out", results=tmp_path)
    assert raised.value.command.startswith("python -m nets.sweep --models preresnet20 --p 1.0 0.9 --seeds 4")
    assert "python -m nets.two_point_masks runs/digits_nr/preresnet20-*/ --eps 0.04" in raised.value.command
    assert not (tmp_path / "out").exists()


def test_c_is_the_mean_and_sample_std_over_runs_at_each_jump(tmp_path):
    _write(tmp_path, FIXTURE)
    data, note = noise_jumps.compute(tmp_path)
    free = data["preresnet8 on cifar10-jpeg, no noise"]
    assert list(free["jump"]) == [0.2, 1.0] and list(free["runs"]) == [2, 2]
    np.testing.assert_allclose(free["c_mean"], [np.mean([1.0, 1.4]), 1.2], rtol=1e-12)
    np.testing.assert_allclose(free["c_std"], [np.std([1.0, 1.4], ddof=1), 0.0], atol=1e-12)
    trained = data["preresnet8 on cifar10-jpeg, bernoulli p=0.85"]
    np.testing.assert_allclose(trained["c_mean"], [0.4, 0.3, 0.2], rtol=1e-12)
    assert list(trained["runs"]) == [1, 1, 1] and list(trained["c_std"]) == [0.0, 0.0, 0.0]
    assert "no noise (2 runs, eps 0.1)" in note and "from m.json" in note


def test_a_family_measured_at_two_eps_is_refused(tmp_path):
    _write(tmp_path, FIXTURE[:1] + [dataclasses.replace(FIXTURE[1], eps=0.2)])
    with pytest.raises(ValueError, match=r"cifar10-jpeg: measured at several eps \(\[0\.1, 0\.2\]\)"):
        noise_jumps.compute(tmp_path)


def test_a_panel_holds_one_eps_one_split_and_each_run_once(tmp_path):
    # the no-noise runs at 0.2 beside the Bernoulli run at 0.1 would share a panel titled by one eps
    _write(tmp_path, [dataclasses.replace(r, eps=0.2) for r in FIXTURE[:2]] + FIXTURE[2:])
    with pytest.raises(ValueError, match=r"preresnet8 on cifar10-jpeg: measured at several eps \(\[0\.1, 0\.2\]\)"):
        noise_jumps.compute(tmp_path)
    # the same runs measured on the test images are a family of their own, not twice the runs
    _write(tmp_path, FIXTURE + [dataclasses.replace(r, split="test") for r in FIXTURE])
    data, note = noise_jumps.compute(tmp_path)
    assert list(data["preresnet8 on cifar10-jpeg, no noise"]["runs"]) == [2, 2]
    assert list(data["preresnet8 on cifar10-jpeg (test split), no noise"]["runs"]) == [2, 2]
    _write(tmp_path, FIXTURE + FIXTURE[:1])
    with pytest.raises(ValueError, match="no noise: a is measured twice"):
        noise_jumps.compute(tmp_path)


def test_make_writes_the_plotted_numbers(tmp_path):
    _write(tmp_path / "res", FIXTURE)
    written = noise_jumps.make(tmp_path / "out", results=tmp_path / "res")
    assert sorted(p.suffix for p in written) == [".h5", ".pdf", ".png"]
    with h5py.File(tmp_path / "out" / "noise_jumps.h5") as f:
        np.testing.assert_allclose(f["preresnet8 on cifar10-jpeg, bernoulli p=0.85"]["c_mean"][:], [0.4, 0.3, 0.2])
        assert "2 runs" in f.attrs["note"]


def test_the_committed_measurements_render():
    # results/noise_response/jumps holds what nets.two_point_masks measured (docs/experiments.md section 7)
    data, _ = noise_jumps.compute(Path(__file__).resolve().parents[1] / "results")
    assert {d["family"] for d in data.values()} == {"preresnet8 on cifar10-jpeg", "preresnet20 on digits",
                                                    "preresnet20 on cifar10-jpeg"}
    for d in data.values():
        # at least two runs per setting (the stochastic-depth setting has the two runs whose checkpoints were kept;
        # every other setting has three or four)
        assert d["jump"][-1] == 1.0 and np.all(np.diff(d["jump"]) > 0) and np.all(d["runs"] >= 2)


def test_every_line_of_a_panel_looks_different(tmp_path):
    looks = [noise_jumps.line_look(i) for i in range(32)]
    assert len(set(looks)) == 32
    # five training settings in one panel (as the CIFAR-10 PreResNet-20 has): five colour-and-style pairs
    settings = ["no noise", "bernoulli p=0.975", "bernoulli p=0.95", "bernoulli p=0.9", "bernoulli p=0.85"]
    _write(tmp_path, [_run(str(i), setting, 0.5, {0.2: 0.01 * (i + 1), 1.0: 0.01 * (i + 1)})
                      for i, setting in enumerate(settings)])
    ax = noise_jumps.draw(*noise_jumps.compute(tmp_path)).axes[0]
    handles, labels = ax.get_legend_handles_labels()
    drawn = {(h.lines[0].get_color(), h.lines[0].get_linestyle()) for h in handles}
    assert len(labels) == 5 and len(drawn) == 5


def test_axis_starts_at_zero_unless_a_measured_c_is_negative(tmp_path):
    _write(tmp_path, FIXTURE)
    assert noise_jumps.draw(*noise_jumps.compute(tmp_path)).axes[0].get_ylim()[0] == 0.0
    lower = [*FIXTURE, _run("d", "gaussian nu=0.42", 0.6, {0.2: 0.001, 1.0: -0.003})]  # c(1) = -0.3
    _write(tmp_path, lower)
    assert noise_jumps.draw(*noise_jumps.compute(tmp_path)).axes[0].get_ylim()[0] < -0.3
