"""Runs trained on noisy inputs (robust-ResNet Fig. 8) in the results layer: FIXTURE runs written by the tests.

The clean-data tables and figures must ignore them; figures/robust_noise_cifar.py draws them. Expected numbers
are computed here from the arrays the fixtures wrote, independently of figures/.
"""
from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest

from fixtures_results import curves, grid, write_metrics
from figures import fig6, fig7, fig8, lm_coefficients, lm_curves, lm_parameters, lm_table, registry, robust_cifar, robust_noise_cifar, table1
from figures.output import MissingResults
from figures.results import collect_runs, select, summary_rows, tidy_rows

CLEAN_FIGURES = (table1, fig6, fig7, fig8, lm_table, lm_coefficients, lm_curves, lm_parameters, robust_cifar)


def clean_tree(root):
    """FIXTURE runs for every clean-data figure: a Table-1 grid, LM runs, an h sweep (no input_noise recorded)."""
    grid(root / "t1", ["preresnet20", "preresnet56", "preresnet110"], [0.9, 1.0], seeds=2, epochs=4, seed=3)
    rng = np.random.default_rng(4)
    for model in ("preresnet56", "lm_preresnet56"):
        for sd in (None, 0.8):
            for seed in range(2):
                test_acc, train_loss = curves(rng, 4, float(rng.uniform(0.05, 0.1)), 0.1)
                write_metrics(root / "lm" / f"{model}-{sd}-{seed}", model=model, seed=seed, noise=None, p=None,
                              stochastic_depth=sd, test_acc=test_acc, train_loss=train_loss,
                              lm_k=rng.uniform(-1, 0, (4, 27)) if model.startswith("lm") else None)
    for seed in range(2):  # a second LM depth, for lm_parameters
        test_acc, train_loss = curves(rng, 4, float(rng.uniform(0.05, 0.1)), 0.1)
        write_metrics(root / "lm" / f"lm_preresnet20-{seed}", model="lm_preresnet20", seed=seed, noise=None, p=None,
                      test_acc=test_acc, train_loss=train_loss, lm_k=rng.uniform(-1, 0, (4, 9)))
    for h in (0.1, 2.0):
        for seed in range(2):
            test_acc, train_loss = curves(rng, 4, float(rng.uniform(0.05, 0.3)), 0.2)
            write_metrics(root / "h" / f"h{h}-{seed}", model="preresnet20", seed=seed, noise=None, p=None, h=h,
                          test_acc=test_acc, train_loss=train_loss)


def noisy_twin(source, target, sigma: float) -> None:
    """Copy a FIXTURE run and make it a run trained with input noise sigma, with other (worse) numbers."""
    target.mkdir(parents=True)
    shutil.copy(source / "metrics.h5", target / "metrics.h5")
    with h5py.File(target / "metrics.h5", "a") as h5:
        h5.attrs["input_noise"] = sigma
        config = json.loads(h5.attrs["config_json"])
        h5.attrs["config_json"] = json.dumps({**config, "input_noise": sigma})
        h5["test_acc"][...] = 0.5 * h5["test_acc"][()]
        h5["train_loss"][...] = 2.0 * h5["train_loss"][()]
        if "lm_k" in h5:
            h5["lm_k"][...] = -h5["lm_k"][()]


@pytest.fixture(scope="module")
def trees(tmp_path_factory):
    """(clean, mixed, noisy_only): mixed holds the clean runs and a noisy twin of each, noisy_only the twins."""
    base = tmp_path_factory.mktemp("trees")
    clean_tree(base / "clean")
    shutil.copytree(base / "clean", base / "mixed")
    for i, path in enumerate(sorted((base / "clean").rglob("metrics.h5"))):
        sigma = (0.1, 0.5)[i % 2]
        noisy_twin(path.parent, base / "mixed" / "noisy" / f"{path.parent.name}-{i}", sigma)
        noisy_twin(path.parent, base / "noisy_only" / f"{path.parent.name}-{i}", sigma)
    return base / "clean", base / "mixed", base / "noisy_only"


def h5_content(path) -> dict:
    """Every dataset and attribute of an HDF5 file, by name."""
    content = {}
    with h5py.File(path, "r") as h5:
        content["/"] = dict(h5.attrs)
        h5.visititems(lambda name, obj: content.__setitem__(name, (obj[()] if isinstance(obj, h5py.Dataset) else None,
                                                                    dict(obj.attrs))))
    return content


@pytest.mark.parametrize("module", CLEAN_FIGURES, ids=lambda m: m.__name__)
def test_clean_figures_ignore_runs_trained_on_noisy_inputs(module, trees, tmp_path):
    clean, mixed, noisy_only = trees
    a = module.make(tmp_path / "a", results=clean)
    b = module.make(tmp_path / "b", results=mixed)
    assert [p.name for p in a] == [p.name for p in b]
    h5_name = next(p.name for p in a if p.suffix == ".h5")
    ca, cb = h5_content(tmp_path / "a" / h5_name), h5_content(tmp_path / "b" / h5_name)
    assert ca.keys() == cb.keys()
    for key in ca:
        if key == "/":
            assert {k: str(v) for k, v in ca[key].items()} == {k: str(v) for k, v in cb[key].items()}
            continue
        (da, aa), (db, ab) = ca[key], cb[key]
        assert (da is None) == (db is None) and {k: str(v) for k, v in aa.items()} == {k: str(v) for k, v in ab.items()}
        if da is not None:
            np.testing.assert_array_equal(da, db, err_msg=key)
    with pytest.raises(MissingResults):
        module.make(tmp_path / "c", results=noisy_only)
    assert not (tmp_path / "c").exists()


def test_record_input_noise_selection_and_tidy_rows(trees):
    clean, mixed, _ = trees
    records = collect_runs(mixed)
    assert {r.input_noise for r in records} == {0.0, 0.1, 0.5}
    assert all("input_noise" not in r.attrs for r in records if r.input_noise == 0.0)  # written before the field
    assert len(select(mixed, lambda r: True).records) + select(mixed, lambda r: True).left_out == len(collect_runs(clean))
    everything = select(mixed, lambda r: True, noisy_inputs=True)
    assert len(everything.records) + everything.left_out == len(records)
    assert {row["input_noise"] for row in tidy_rows(records)} == {0.0, 0.1, 0.5}
    summary = summary_rows(records)
    assert sum(row["n_runs"] for row in summary) == len(records)
    # a configuration trained clean and with noise gives separate rows: the clean rows are the clean tree's
    clean_rows = summary_rows(collect_runs(clean))
    assert all(row["input_noise"] == 0.0 for row in clean_rows)
    assert [row for row in summary if row["input_noise"] == 0.0] == clean_rows
    assert len(summary) > len(clean_rows)


H = (0.1, 1.0)
LEVELS = (0.0, 0.3, 0.8)


@pytest.fixture(scope="module")
def noise_sweep(tmp_path_factory):
    """FIXTURE results of the input-noise sweep: preresnet20 and 56, h 0.1 / 1.0, three levels, three seeds,
    plus runs the figure must leave out."""
    root = tmp_path_factory.mktemp("noise")
    rng = np.random.default_rng(8)
    accuracy = {}
    for model in ("preresnet56", "preresnet20"):
        for h in H:
            for sigma in LEVELS:
                for seed in range(3):
                    test_acc, train_loss = curves(rng, 4, float(rng.uniform(0.05, 0.4)), 0.2)
                    # level 0: one run says input_noise = 0.0, the others do not record it (an older trainer)
                    recorded = sigma if (sigma > 0 or seed == 0) else None
                    write_metrics(root / "sweep" / f"{model}-h{h}-n{sigma}-s{seed}", model=model, seed=seed,
                                  noise=None, p=None, h=h, input_noise=recorded, test_acc=test_acc,
                                  train_loss=train_loss, epochs=80)
                    accuracy.setdefault((model, h, sigma), []).append(100.0 * test_acc[-1])
    # left out: another recipe, branch noise, stochastic depth, an LM model, another h, unfinished
    bad = dict(seed=0, test_acc=[0.1, 0.2, 0.3, 0.99], train_loss=[2, 1, 0.5, 0.1], epochs=80, input_noise=0.3)
    write_metrics(root / "x" / "lr", model="preresnet20", noise=None, p=None, h=0.1, lr=0.05, **bad)
    write_metrics(root / "x" / "bern", model="preresnet20", noise="bernoulli", p=0.9, h=0.1, **bad)
    write_metrics(root / "x" / "sd", model="preresnet20", noise=None, p=None, h=0.1, stochastic_depth=0.5, **bad)
    write_metrics(root / "x" / "lm", model="lm_preresnet20", noise=None, p=None, h=0.1, lm_k=np.zeros((4, 9)), **bad)
    write_metrics(root / "x" / "h2", model="preresnet20", noise=None, p=None, h=2.0, **bad)
    write_metrics(root / "x" / "unfinished", model="preresnet20", noise=None, p=None, h=0.1, finished=False, **bad)
    # the same configuration and seed twice (e.g. found in the h sweep's directory as well): counted once
    shutil.copytree(root / "sweep" / "preresnet20-h0.1-n0.0-s1", root / "z_robust_h" / "preresnet20-h0.1-s1")
    return root, accuracy


def test_robust_noise_cifar_writes_the_aggregated_numbers(noise_sweep, tmp_path):
    root, accuracy = noise_sweep
    paths = robust_noise_cifar.make(tmp_path / "out", results=root)
    assert [p.name for p in paths] == ["robust_noise_cifar.png", "robust_noise_cifar.pdf", "robust_noise_cifar.h5"]
    assert all(p.stat().st_size > 0 for p in paths)
    with h5py.File(paths[-1], "r") as h5:
        assert sorted(h5.keys()) == ["preresnet20", "preresnet56"]
        assert sorted(h5["preresnet20"].keys()) == ["h0.1", "h1"]
        for model in ("preresnet20", "preresnet56"):
            for h in H:
                group = h5[f"{model}/h{h:g}"]
                values = [accuracy[(model, h, s)] for s in LEVELS]
                assert group.attrs["h"] == h and group.attrs["model"] == model
                np.testing.assert_array_equal(group["input_noise"][()], LEVELS)
                np.testing.assert_array_equal(group["n_runs"][()], [3, 3, 3])
                np.testing.assert_allclose(group["accuracy_mean"][()], [np.mean(v) for v in values], rtol=0, atol=1e-12)
                np.testing.assert_allclose(group["accuracy_std"][()], [np.std(v, ddof=1) for v in values], rtol=0, atol=1e-12)
                np.testing.assert_allclose(group["accuracy_median"][()], [np.median(v) for v in values], rtol=0, atol=1e-12)
        note = h5.attrs["note"]
    assert "1 run(s) with another recipe left out" in note and "1 duplicate run(s)" in note


def test_robust_noise_cifar_missing_results_name_the_sweep(noise_sweep, tmp_path):
    expected = ("python -m nets.sweep --models preresnet20 --h 0.1 1.0 --input-noise 0 0.1 0.3 0.5 0.8 --epochs 80 "
                f"--schedule 40 60 --seeds 3 --data cifar10.h5 --out {tmp_path / 'res' / 'robust_noise'}")
    write_metrics(tmp_path / "res" / "one", model="preresnet20", seed=0, noise=None, p=None, h=0.1, input_noise=0.3,
                  test_acc=[0.2, 0.3], train_loss=[2.0, 1.0])  # a single noise level draws no line
    write_metrics(tmp_path / "res" / "clean", model="preresnet20", seed=0, noise=None, p=None, h=1.0,
                  test_acc=[0.2, 0.3], train_loss=[2.0, 1.0])
    with pytest.raises(MissingResults) as raised:
        robust_noise_cifar.make(tmp_path / "out", results=tmp_path / "res")
    assert raised.value.command == expected and "--input-noise" in str(raised.value)
    assert not (tmp_path / "out").exists()
    # the printed command is one the sweep CLI accepts, for the grid the figure reads
    from nets.sweep_cli import build_parser, config_from_args
    from nets.sweep import expand

    runs = expand(config_from_args(build_parser().parse_args(expected.split()[3:])))
    assert len(runs) == 2 * 5 * 3 and {r.input_noise for r in runs} == {0.0, 0.1, 0.3, 0.5, 0.8}
    assert registry.load("robust_noise_cifar") is robust_noise_cifar


def test_figures_cli_lists_and_runs_robust_noise_cifar(noise_sweep, tmp_path, capsys):
    from figures import cli

    root, _ = noise_sweep
    assert cli.main(["list"]) == 0
    assert any(line.split()[0] == "robust_noise_cifar" for line in capsys.readouterr().out.splitlines())
    assert cli.main(["robust_noise_cifar", "--results", str(root), "--out-dir", str(tmp_path / "o")]) == 0
    assert (tmp_path / "o" / "robust_noise_cifar.h5").is_file()
