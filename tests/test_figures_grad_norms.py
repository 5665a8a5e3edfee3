"""figures.robust_grad_norms_cifar (robust-ResNet Fig. 2 on CIFAR) from FIXTURE runs written by the tests.

The expected numbers are computed here from the arrays the fixtures wrote, independently of figures/.
"""
from __future__ import annotations

import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from fixtures_results import curves, fake_grad_norms, write_metrics
from figures import registry, robust_grad_norms_cifar as fig
from figures.output import MissingResults
from figures.results import collect_runs, read_run

BLOCKS = ["stem", "blocks.0", "blocks.1", "blocks.2", "blocks.3", "blocks.4", "blocks.5"]  # preresnet14-like


def records(seed: int, scale: float, steps: int = 1200, every: int = 10) -> dict:
    """FIXTURE norms: 120 records of 7 blocks."""
    rng = np.random.default_rng(seed)
    step = np.arange(0, steps, every)
    return {"step": step, "grad_norm": scale * rng.uniform(0.1, 3.0, (len(step), len(BLOCKS))),
            "weight_norm": scale * rng.uniform(2.0, 9.0, (len(step), len(BLOCKS))), "block_names": BLOCKS,
            "every": every}


def run(root: Path, name: str, *, h: float, seed: int, norms: dict | None, model: str = "preresnet110", **extra):
    rng = np.random.default_rng(seed)
    test_acc, train_loss = curves(rng, 4, 0.1, 0.2)
    write_metrics(root / name, model=model, seed=seed, noise=extra.pop("noise", None), p=extra.pop("p", None), h=h,
                  test_acc=test_acc, train_loss=train_loss, grad_norms=norms, **extra)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """h = 1.0 (seeds 1 and 0) and h = 0.1 (seed 0) with norms; distractors the figure must not draw."""
    root = tmp_path_factory.mktemp("results")
    written = {(1.0, 0): records(10, 20.0), (1.0, 1): records(11, 30.0), (0.1, 0): records(12, 1.0)}
    run(root, "a-h1-s1", h=1.0, seed=1, norms=written[(1.0, 1)])  # listed first by path: still not the first seed
    run(root, "b-h1-s0", h=1.0, seed=0, norms=written[(1.0, 0)])
    run(root, "c-h0.1-s0", h=0.1, seed=0, norms=written[(0.1, 0)])
    run(root, "d-noisy", h=1.0, seed=0, norms=records(13, 99.0), noise="bernoulli", p=0.9)  # branch noise
    run(root, "e-h0.5", h=0.5, seed=0, norms=records(14, 99.0))  # not a paper h
    run(root, "f-no-norms", h=0.1, seed=2, norms=None)  # an h sweep run without records
    run(root, "g-shallow-h1", h=1.0, seed=0, norms=records(15, 99.0), model="preresnet20")  # only one h
    run(root, "h-noisy-inputs", h=0.1, seed=0, norms=records(16, 99.0), input_noise=0.3)
    return root, written


def expected(norms: dict) -> dict:
    step, grad, weight = norms["step"], np.asarray(norms["grad_norm"], np.float32), np.asarray(norms["weight_norm"],
                                                                                                np.float32)
    early = step < 500
    return {"step_early": step[early], "grad_norm_block2_early": grad[early, 2], "step": step,
            "weight_norm_block2": weight[:, 2], "grad_norm_last": grad[:, -1], "block": np.arange(len(BLOCKS)),
            "max_grad_norm": grad.max(axis=0)}


def test_run_record_exposes_the_norms_or_none(tree):
    root, written = tree
    record = read_run(root / "b-h1-s0" / "metrics.h5")
    np.testing.assert_array_equal(record.grad_norm_step, written[(1.0, 0)]["step"])
    np.testing.assert_array_equal(record.grad_norm, np.float32(written[(1.0, 0)]["grad_norm"]))
    assert record.grad_norm_blocks == tuple(BLOCKS)
    bare = read_run(root / "f-no-norms" / "metrics.h5")
    assert (bare.grad_norm_step, bare.grad_norm, bare.weight_norm, bare.grad_norm_blocks) == (None,) * 4


def test_figure_draws_and_stores_exactly_the_first_seeds_numbers(tree, tmp_path, monkeypatch):
    root, written = tree
    drawn = {}

    def capture(figure, out_dir, name, groups, attrs=None):
        drawn["axes"] = [[(line.get_label(), np.asarray(line.get_xdata()), np.asarray(line.get_ydata()))
                          for line in ax.get_lines()] for ax in figure.axes]
        return save_outputs(figure, out_dir, name, groups, attrs=attrs)

    from figures.output import save_outputs
    monkeypatch.setattr(fig, "save_outputs", capture)
    paths = fig.make(tmp_path, results=root)
    assert sorted(p.name for p in paths) == sorted(f"{fig.NAME}.{ext}" for ext in ("png", "pdf", "h5"))
    assert all(p.stat().st_size > 0 for p in paths)
    panels = (("step_early", "grad_norm_block2_early"), ("step", "weight_norm_block2"), ("step", "grad_norm_last"),
              ("block", "max_grad_norm"))
    with h5py.File(tmp_path / f"{fig.NAME}.h5") as h5:
        assert sorted(h5) == ["h0.1", "h1"]
        note = h5.attrs["note"]
        for i, h in enumerate((1.0, 0.1)):
            group = h5[f"h{h:g}"]
            want = expected(written[(h, 0)])  # seed 0 for both h, although h = 1 seed 1 comes first by path
            for key, value in want.items():
                np.testing.assert_allclose(group[key][()], value, rtol=1e-6, err_msg=key)
            assert group.attrs["seed"] == 0 and group.attrs["model"] == "preresnet110"
            assert group.attrs["block2_name"] == "blocks.1" and group.attrs["last_name"] == "blocks.5"
            assert group.attrs["mean_weight_norm_block2"] == pytest.approx(float(np.mean(want["weight_norm_block2"])))
            for ax, (x, y) in zip(drawn["axes"], panels):  # the plotted lines are the stored numbers
                label, xs, ys = ax[i]
                assert label.startswith(f"h = {h:g}")
                np.testing.assert_array_equal(xs, group[x][()])
                np.testing.assert_array_equal(ys, group[y][()])
    assert len(want["step_early"]) == 50 and len(want["step"]) == 120
    assert note.startswith("trained on the JPEG re-encoding (quality 75) of CIFAR-10 (cifar10-jpeg)")
    assert len(note) < 400
    assert "first seed per h" in note and "h = 1: seed 0 of 2 seeds" in note
    assert "preresnet20" in note  # recorded at one h only: named, not drawn


def test_missing_results_name_the_sweep_with_grad_norm_every(tree, tmp_path):
    root, _ = tree
    with pytest.raises(MissingResults) as empty:
        fig.compute(tmp_path / "nothing")
    assert "--grad-norm-every 10" in empty.value.command and "--h 0.1 1.0" in empty.value.command
    assert empty.value.command.startswith("python -m nets.sweep --models preresnet110")
    only_one_h = tmp_path / "one_h"
    run(only_one_h, "h1", h=1.0, seed=0, norms=records(1, 1.0))
    run(only_one_h, "h01-bare", h=0.1, seed=0, norms=None)
    with pytest.raises(MissingResults, match="--grad-norm-every"):
        fig.compute(only_one_h)


def test_registered_and_the_command_is_accepted_by_the_sweep_cli(tmp_path, capsys):
    from nets.sweep_cli import main as sweep_main

    assert registry.load("robust_grad_norms_cifar") is fig
    argv = fig.command(tmp_path / "r").split()[3:]  # after "python -m nets.sweep"
    data = argv.index("--data")
    argv[data + 1] = "synthetic"
    trainer = f"{sys.executable} {Path(__file__).with_name('fixtures_results.py')}"
    assert sweep_main([*argv, "--dry-run", "--trainer", trainer]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2 and all("--grad-norm-every 10" in line and "--epochs 80" in line for line in lines)


def test_sweep_with_fake_trainer_then_figure(tmp_path):
    """The figure reads what a sweep with --grad-norm-every wrote (fake trainer: FIXTURE norms)."""
    from nets import sweep
    from nets.sweep import SweepConfig

    config = SweepConfig(models=("preresnet8",), h=(0.1, 1.0), grad_norm_every=3, seeds=1, epochs=(2,),
                         data="synthetic", out=tmp_path / "s",
                         trainer=(sys.executable, str(Path(__file__).with_name("fixtures_results.py"))))
    assert all(o.ok for o in sweep.run_sweep(config, progress=False))
    runs = collect_runs(tmp_path / "s")
    assert len(runs) == 2 and all(r.grad_norm_step.tolist() == list(range(0, 20, 3)) for r in runs)
    assert all(int(r.attrs["grad_norm_every"]) == 3 for r in runs)
    data, _ = fig.compute(tmp_path / "s")
    expect = fake_grad_norms(3, 20, 4)
    np.testing.assert_allclose(data["h1"]["grad_norm_last"], expect["grad_norm"][:, -1], rtol=1e-6)
