"""Results-driven tables and figures on FIXTURE runs written by the tests (tests/fixtures_results.py).

Expected numbers are computed here from the arrays the fixtures wrote, independently of figures/.
"""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest

from fixtures_results import curves, fake_grad_norms, grid, write_metrics
from figures import fig6, fig7, fig8, lm_coefficients, lm_curves, lm_parameters, lm_table, noise_kinds, robust_cifar, table1
from figures.output import MissingResults
from figures.results import collect_runs, read_run

RESULT_FIGURES = (table1, fig6, fig7, fig8, noise_kinds, lm_table, lm_coefficients, lm_curves, lm_parameters, robust_cifar)
MODELS = ["preresnet20", "preresnet56", "preresnet110"]
PS = [0.85, 0.9, 0.95, 1.0]


def final_error(entry) -> float:
    return 100.0 * (1.0 - entry["test_acc"][-1])


@pytest.fixture(scope="module")
def table_results(tmp_path_factory):
    root = tmp_path_factory.mktemp("results")
    written = grid(root / "table1", MODELS, PS, seeds=3, epochs=6, seed=7)
    return root, written


def test_collect_runs_reads_the_contract_and_filters_unfinished(tmp_path):
    write_metrics(tmp_path / "a", model="preresnet20", seed=1, p=0.9, test_acc=[0.4, 0.7], train_loss=[1.5, 0.6])
    write_metrics(tmp_path / "b", model="preresnet20", seed=2, p=0.9, test_acc=[0.4], train_loss=[1.5], finished=False)
    write_metrics(tmp_path / "c" / "nested", model="lm_preresnet20", seed=0, noise=None, p=None,
                  test_acc=[0.3, 0.5, 0.6], train_loss=[2, 1, 0.5], lm_k=np.zeros((3, 9)), stochastic_depth=0.5)
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "metrics.h5").write_bytes(b"garbage")
    with pytest.warns(UserWarning, match="unreadable"):
        records = collect_runs(tmp_path)
    assert [r.name for r in records] == ["a", "nested"]
    a, lm = records
    assert a.survival_p == 0.9 and a.seed == 1 and a.h == 1.0 and a.stochastic_depth is None
    assert a.final_test_error == pytest.approx(30.0) and a.final_train_loss == pytest.approx(0.6)
    assert lm.survival_p == 1.0 and lm.is_lm and lm.depth == 20 and lm.stochastic_depth == 0.5 and lm.lm_k.shape == (3, 9)
    with pytest.warns(UserWarning):
        assert len(collect_runs(tmp_path, finished_only=False)) == 3
    assert collect_runs(tmp_path / "absent") == []


def test_read_run_truncates_to_completed_epochs(tmp_path):
    path = write_metrics(tmp_path / "r", model="preresnet20", seed=0, test_acc=[0.1, 0.2, 0.3], train_loss=[3, 2, 1])
    with h5py.File(path, "a") as h5:
        h5["summary"].attrs["epochs_completed"] = 2
    record = read_run(path)
    assert len(record.curves["test_acc"]) == 2 and record.final_test_error == pytest.approx(80.0)


def test_table1_cells_are_the_fixture_means_with_best_run_and_bold_minimum(table_results, tmp_path):
    root, written = table_results
    table = table1.compute(root)
    assert table.row_labels == ["PreResNet-20", "PreResNet-56", "PreResNet-110"]
    assert table.col_labels == ["85%", "90%", "95%", "100%"]
    for r, model in enumerate(MODELS):
        errors = {p: [final_error(written[(model, p, s)]) for s in range(3)] for p in PS}
        for c, p in enumerate(PS):
            cell = table.cells[(r, c)]
            assert cell.n == 3
            assert cell.mean == pytest.approx(sum(errors[p]) / 3, abs=1e-12)
            assert cell.best == pytest.approx(min(errors[p]), abs=1e-12)
            assert cell.std == pytest.approx(np.std(errors[p], ddof=1), abs=1e-12)
        assert table.best_in_row(r) == {int(np.argmin([np.mean(errors[p]) for p in PS]))}
    paths = table1.make(tmp_path, results=root)
    assert [p.name for p in paths] == ["table1.md", "table1.tex", "table1.h5"]
    markdown = paths[0].read_text()
    row20 = next(line for line in markdown.splitlines() if line.startswith("| PreResNet-20 |"))
    errors20 = {p: [final_error(written[("preresnet20", p, s)]) for s in range(3)] for p in PS}
    best_p = min(PS, key=lambda p: np.mean(errors20[p]))
    for p in PS:
        text = f"{np.mean(errors20[p]):.2f} ({min(errors20[p]):.2f})"
        assert (f"**{text}**" if p == best_p else f" {text} ") in row20
    assert "JPEG re-encoding" in markdown and "mean of 3 runs per cell" in markdown
    latex = paths[1].read_text()
    assert latex.count(r"\textbf{") == 3 and r"\begin{tabular}{lcccc}" in latex and "100\\%" in latex
    with h5py.File(paths[2], "r") as h5:
        assert np.allclose(h5["PreResNet-20/mean_error_percent"][()], [np.mean(errors20[p]) for p in PS])


def test_table1_plain_runs_count_as_p1_and_other_recipes_are_left_out(tmp_path):
    written = grid(tmp_path / "a", ["preresnet20"], [0.9, 1.0], seeds=2, noise_for_p1=None, dataset="cifar10: 50000 train", data="cifar10.h5", seed=3)
    # a shorter, different recipe must not be mixed into the table
    write_metrics(tmp_path / "quick", model="preresnet20", seed=0, p=0.9, test_acc=[0.1], train_loss=[2.0], epochs=1)
    table = table1.compute(tmp_path)
    assert table.col_labels == ["90%", "100%"]
    expected = np.mean([final_error(written[("preresnet20", 1.0, s)]) for s in range(2)])
    assert table.cells[(0, 1)].mean == pytest.approx(expected)
    assert table.cells[(0, 0)].n == 2
    assert "1 run(s) with another recipe left out" in table.note and "JPEG" not in table.note
    assert table.note.startswith("trained on cifar10;")


def test_runs_on_two_data_sets_of_one_file_name_are_two_recipes(tmp_path):
    # original CIFAR-10 and its JPEG re-encoding, each converted to a file named cifar10.h5: not one cell
    grid(tmp_path / "a", ["preresnet20"], [0.9, 1.0], seeds=2, dataset="cifar10: 50000 train", data="cifar10.h5",
         seed=3)
    jpeg = grid(tmp_path / "b", ["preresnet20"], [1.0], seeds=1, dataset="cifar10-jpeg: 50000 train",
                data="cifar10.h5", seed=4)
    table = table1.compute(tmp_path)
    assert table.col_labels == ["90%", "100%"] and table.cells[(0, 1)].n == 2
    assert "1 run(s) with another recipe left out" in table.note
    assert "JPEG" not in table.note and len(jpeg) == 1  # the one JPEG run is the one left out


def test_cpu_analogue_runs_never_displace_cifar_runs(tmp_path):
    """Runs on the built-in digits data render when alone, but a root that also holds CIFAR runs shows
    the CIFAR runs even when the digits runs outnumber them."""
    digits = grid(tmp_path / "digits_table1", ["preresnet20"], [0.9, 1.0], seeds=3, data="digits",
                  dataset="digits: 1437 train / 360 test", seed=5)
    alone = table1.compute(tmp_path)
    assert alone.note.startswith("trained on digits") and "JPEG" not in alone.note
    assert alone.cells[(0, 0)].n == 3
    cifar = grid(tmp_path / "table1", ["preresnet20"], [1.0], seeds=1, seed=6)
    table = table1.compute(tmp_path)
    assert table.col_labels == ["100%"] and table.cells[(0, 0)].n == 1
    assert table.cells[(0, 0)].mean == pytest.approx(final_error(cifar[("preresnet20", 1.0, 0)]))
    assert "JPEG re-encoding" in table.note and "6 run(s) with another recipe left out" in table.note
    assert len(digits) == 6


def test_bold_compares_the_means_as_printed_and_needs_two_cells(tmp_path):
    # means 15.586 and 15.594 both print 15.59: a tie, both bold (only the lower was); a row of one cell: none
    for p, error in ((0.9, 0.15586), (1.0, 0.15594)):
        write_metrics(tmp_path / "a" / f"p{p}", model="preresnet20", seed=0, p=p, test_acc=[0.5, 1 - error],
                      train_loss=[1.0, 0.1])
    table = table1.compute(tmp_path / "a")
    assert table.best_in_row(0) == {0, 1} and table1.to_markdown(table).count("**15.59 (15.59)**") == 2
    write_metrics(tmp_path / "b" / "p1.0", model="preresnet20", seed=0, p=1.0, test_acc=[0.5, 0.9],
                  train_loss=[1.0, 0.1])
    alone = table1.compute(tmp_path / "b")
    assert alone.best_in_row(0) == set() and "**" not in table1.to_markdown(alone).split("\n", 1)[1]


def test_tied_best_means_are_all_bold(tmp_path):
    for p, errors in ((0.9, (0.05, 0.07)), (0.95, (0.07, 0.05)), (1.0, (0.08, 0.08))):  # means 6%, 6%, 8%
        for s, error in enumerate(errors):
            write_metrics(tmp_path / f"p{p}-s{s}", model="preresnet20", seed=s, p=p, test_acc=[0.5, 1 - error],
                          train_loss=[1.0, 0.1])
    table = table1.compute(tmp_path)
    assert table.best_in_row(0) == {0, 1}
    markdown, latex = table1.to_markdown(table), table1.to_latex(table)
    assert markdown.count("**6.00 (5.00)**") == 2 and "**8.00" not in markdown
    assert latex.count(r"\textbf{6.00 (5.00)}") == 2


def test_table1_says_when_cells_hold_different_numbers_of_runs(tmp_path):
    grid(tmp_path, ["preresnet20"], [0.9, 1.0], seeds=2, seed=4)
    (tmp_path / "preresnet20-p0.9-s1" / "metrics.h5").unlink()
    table = table1.compute(tmp_path)
    assert [table.cells[(0, c)].n for c in range(2)] == [1, 2]
    assert table.cells[(0, 0)].std == 0.0
    assert table.counts_note() == "mean of 2 runs per cell, except PreResNet-20 90%: 1 run"


def test_table1_names_only_the_cells_off_the_usual_run_count(tmp_path):
    grid(tmp_path, ["preresnet8", "preresnet20"], [0.9, 0.95, 1.0], seeds=3, seed=5)
    for name in ("preresnet20-p0.95-s2", "preresnet20-p0.95-s1", "preresnet8-p1-s2"):
        (tmp_path / name / "metrics.h5").unlink()
    table = table1.compute(tmp_path)
    assert table.counts_note() == ("mean of 3 runs per cell, except PreResNet-8 100%: 2 runs, "
                                   "PreResNet-20 95%: 1 run")
    grid(tmp_path / "even", ["preresnet20"], [0.9, 1.0], seeds=1, seed=6)
    assert table1.compute(tmp_path / "even").counts_note() == "mean of 1 run per cell"


def test_fig6_data_are_mean_and_std_of_final_values(table_results, tmp_path):
    root, written = table_results
    paths = fig6.make(tmp_path, results=root)
    assert {p.suffix for p in paths} == {".png", ".pdf", ".h5"} and all(p.stat().st_size > 0 for p in paths)
    with h5py.File(tmp_path / "fig6.h5", "r") as h5:
        for model in MODELS:
            assert np.allclose(h5[f"{model}/p"][()], PS)
            loss = [[written[(model, p, s)]["train_loss"][-1] for s in range(3)] for p in PS]
            errors = [[final_error(written[(model, p, s)]) for s in range(3)] for p in PS]
            assert np.allclose(h5[f"{model}/train_loss_mean"][()], np.mean(loss, axis=1))
            assert np.allclose(h5[f"{model}/train_loss_std"][()], np.std(loss, axis=1, ddof=1))
            assert np.allclose(h5[f"{model}/test_error_mean"][()], np.mean(errors, axis=1))
            assert np.allclose(h5[f"{model}/test_error_std"][()], np.std(errors, axis=1, ddof=1))
            removed = np.repeat([100 * (1 - p) for p in PS], 3)
            for key, values in (("test_error", errors), ("train_loss", loss)):
                slope, stderr, pvalue = _line_by_hand(removed, np.ravel(values))
                attrs = h5[model].attrs
                assert attrs[f"{key}_slope"] == pytest.approx(slope, rel=1e-9)
                assert attrs[f"{key}_slope_stderr"] == pytest.approx(stderr, rel=1e-9)
                assert attrs[f"{key}_slope_p"] == pytest.approx(pvalue, rel=1e-6)


def test_fig6_legend_gives_the_slope_only_where_there_is_one():
    d = {"n_runs": np.array([2, 2]), "test_error_slope": 0.0286, "test_error_slope_stderr": 0.01,
         "test_error_slope_p": 0.024}
    assert fig6.trend_label("PreResNet-20", d, "test_error", " pts") == (
        "PreResNet-20: +0.029 pts per point of p removed (p = 0.024, 4 runs)")
    assert fig6.trend_label("PreResNet-20", d, "train_loss", "") == "PreResNet-20"


def test_fig6_title_says_what_a_point_and_its_error_bar_are():
    assert fig6.spread_phrase([1, 1, 1]) == "One run per point (no error bars)"
    assert fig6.spread_phrase([4, 4]) == "Mean $\\pm$ std over 4 seeds per point"
    assert fig6.spread_phrase([1, 3, 2]) == "Mean $\\pm$ std over 1-3 seeds per point"


def test_fig7_pairs_the_mildest_and_the_best_noisy_p_with_mean_curves(table_results, tmp_path):
    root, written = table_results
    fig7.make(tmp_path, results=root)
    noisy = [p for p in PS if p < 1.0]
    mean_error = {p: np.mean([final_error(written[("preresnet20", p, s)]) for s in range(3)]) for p in noisy}
    best = min(noisy, key=mean_error.get)
    shown = [0.95, best if best != 0.95 else 0.85]  # the paper's Fig. 8: 97.5% (mildest) against the best
    with h5py.File(tmp_path / "fig7.h5", "r") as h5:
        assert sorted(h5["preresnet20"].keys()) == sorted(f"p{p:g}" for p in shown)
        for p in shown:
            group = h5[f"preresnet20/p{p:g}"]
            test_error = np.array([100 * (1 - written[("preresnet20", p, s)]["test_acc"]) for s in range(3)])
            assert np.allclose(group["test_error_mean"][()], test_error.mean(0))
            assert np.allclose(group["test_error_std"][()], test_error.std(0, ddof=1))
            assert group.attrs["one_run_seed"] == 0
            assert np.allclose(group["one_run_train_loss"][()], written[("preresnet20", p, 0)]["train_loss"])


@pytest.mark.parametrize("errors, shown", [
    ({0.85: 7.0, 0.9: 6.0, 0.975: 7.5, 1.0: 8.0}, [0.975, 0.9]),   # best in between
    ({0.85: 9.0, 0.9: 8.0, 0.975: 7.0, 1.0: 8.0}, [0.975, 0.85]),  # the mildest is best: pair it with the strongest
    ({0.9: 6.0, 1.0: 8.0}, [0.9, 1.0]),                             # one p < 1: against the plain network
    ({1.0: 8.0}, [1.0]),
])
def test_choose_ps_follows_the_papers_pairing(errors, shown):
    from figures.results import RunRecord

    def run(p, error):
        return RunRecord(path=Path(f"/x/{p}"), attrs={"model": "preresnet56", "noise": "bernoulli", "p": p}, summary={},
                         curves={"test_acc": np.array([1 - error / 100])})

    assert fig7.choose_ps({p: [run(p, e)] for p, e in errors.items()}) == shown


def test_table1_prefers_the_p_sweep_over_p1_runs_of_other_sweeps(tmp_path):
    """The h = 1 runs of a robust-ResNet h sweep (more of them, another recipe) do not make a Table 1."""
    for s in range(5):
        write_metrics(tmp_path / "robust" / f"h1-s{s}", model="preresnet20", seed=s, noise=None, p=None, h=1.0,
                      test_acc=np.linspace(0.5, 0.9, 8), train_loss=np.linspace(2, 0.1, 8), epochs=8)
    written = grid(tmp_path / "table1", ["preresnet20"], [0.9, 1.0], seeds=2, seed=7)
    table = table1.compute(tmp_path)
    assert table.col_labels == ["90%", "100%"] and table.cells[(0, 1)].n == 2
    assert table.cells[(0, 0)].mean == pytest.approx(np.mean([final_error(written[("preresnet20", 0.9, s)]) for s in range(2)]))
    assert "5 run(s) with another recipe left out" in table.note
    assert "6 epochs, batch 128, SGD lr 0.1" in table.note  # the recipe is stated


def test_fig8_draws_the_depths_present(tmp_path):
    grid(tmp_path / "r", ["preresnet56"], [0.9, 1.0], seeds=2, seed=5)
    paths = fig8.make(tmp_path / "out", results=tmp_path / "r")
    with h5py.File(paths[-1], "r") as h5:
        assert list(h5.keys()) == ["preresnet56"] and h5.attrs["models"] == "preresnet56"


def test_fig7_draws_every_table1_depth_but_fig8s_shallowest_first(tmp_path):
    """A PreResNet-8 sweep (a CPU run of the recipe) gets fig7's curves; 56 and 110 stay fig8's."""
    written = grid(tmp_path / "r", ["preresnet56", "preresnet20", "preresnet8"], [0.9, 1.0], seeds=2, seed=3)
    paths = fig7.make(tmp_path / "out", results=tmp_path / "r")
    with h5py.File(paths[-1], "r") as h5:
        assert h5.attrs["models"] == "preresnet8,preresnet20"
        assert sorted(h5.keys()) == ["preresnet20", "preresnet8"]
        test_error = np.array([100 * (1 - written[("preresnet8", 0.9, s)]["test_acc"]) for s in range(2)])
        assert np.allclose(h5["preresnet8/p0.9/test_error_mean"][()], test_error.mean(0))
    deep = fig8.make(tmp_path / "out8", results=tmp_path / "r")
    with h5py.File(deep[-1], "r") as h5:
        assert list(h5.keys()) == ["preresnet56"]


def test_fig7_keeps_table1s_recipe_when_a_shallower_recipe_check_sits_beside_it(tmp_path):
    """A PreResNet-8 sweep with another recipe (more runs of fig7's depths than the Table 1 sweep's
    PreResNet-20 row) does not push PreResNet-20 out of fig7: the recipe is table1's, over every depth."""
    all_p = [0.85, 0.875, 0.9, 0.925, 0.95, 0.975, 1.0]
    written = grid(tmp_path / "r" / "table1", ["preresnet20", "preresnet56", "preresnet110"], all_p, seeds=1, seed=5)
    grid(tmp_path / "r" / "check8", ["preresnet8"], all_p, seeds=2, seed=6, lr=0.05)
    paths = fig7.make(tmp_path / "out", results=tmp_path / "r")
    with h5py.File(paths[-1], "r") as h5:
        assert h5.attrs["models"] == "preresnet20"
        assert "14 run(s) with another recipe left out" in h5.attrs["note"]
        p = [key for key in h5["preresnet20"].keys()][0]
        run = written[("preresnet20", float(p[1:]), 0)]
        assert np.allclose(h5[f"preresnet20/{p}/test_error_mean"][()], 100 * (1 - run["test_acc"]))
    # with only the recipe check present, fig7 draws it (its recipe has fig7's depth)
    alone = fig7.make(tmp_path / "out2", results=tmp_path / "r" / "check8")
    with h5py.File(alone[-1], "r") as h5:
        assert h5.attrs["models"] == "preresnet8"


def test_fig7_and_fig8_name_their_own_sweep_when_nothing_is_there(tmp_path):
    grid(tmp_path / "r", ["preresnet110"], [0.9, 1.0], seeds=1, seed=3)
    with pytest.raises(MissingResults) as missing:
        fig7.make(tmp_path / "out", results=tmp_path / "r")
    assert "--models preresnet20 " in str(missing.value.command)
    grid(tmp_path / "s", ["preresnet8"], [0.9, 1.0], seeds=1, seed=3)
    with pytest.raises(MissingResults) as missing:
        fig8.make(tmp_path / "out", results=tmp_path / "s")
    assert "--models preresnet56 preresnet110 " in str(missing.value.command)


@pytest.mark.parametrize("figure", [fig6, fig7])
def test_a_long_data_note_is_wrapped_not_widening_the_image(tmp_path, figure):
    """The note (data, recipe, runs left out) is one long line; drawn unwrapped it ran past the axes and
    bbox_inches='tight' widened the PNG around it, shrinking the panels."""
    from PIL import Image
    import matplotlib.pyplot as plt

    root = tmp_path / "results"
    grid(root / "table1", ["preresnet20"], [0.9, 1.0], seeds=2, seed=4)
    for s in range(3):  # another recipe (8 epochs), left out and counted in the note
        write_metrics(root / "other" / f"r{s}", model="preresnet20", seed=s, p=0.9, test_acc=np.linspace(0.5, 0.9, 8),
                      train_loss=np.linspace(2, 0.1, 8), epochs=8, dataset="cifar10-jpeg")
    sizes = []
    real_subplots = plt.subplots

    def recording_subplots(*args, **kwargs):
        fig, axes = real_subplots(*args, **kwargs)
        sizes.append(fig.get_size_inches())
        return fig, axes

    plt.subplots = recording_subplots
    try:
        paths = figure.make(tmp_path / "out", results=root)
    finally:
        plt.subplots = real_subplots
    with h5py.File(paths[-1], "r") as h5:
        assert "3 run(s) with another recipe left out" in h5.attrs["note"]
        assert len(h5.attrs["note"]) > 160  # about as long as a 10-inch-wide figure holds at 8-9 pt
    width_px = Image.open(paths[0]).size[0]
    assert width_px <= 1.02 * sizes[0][0] * 150  # save_figure's dpi


def test_lm_table_and_coefficients(tmp_path):
    rng = np.random.default_rng(11)
    written = {}
    for model in ("preresnet56", "lm_preresnet56"):
        for sd in (None, 0.8):
            for seed in range(2):
                test_acc, train_loss = curves(rng, 4, float(rng.uniform(0.05, 0.1)), 0.1)
                lm_k = rng.uniform(-1, 0, (4, 27)) if model.startswith("lm") else None
                write_metrics(tmp_path / "lm" / f"{model}-{sd}-{seed}", model=model, seed=seed, noise=None, p=None,
                              stochastic_depth=sd, test_acc=test_acc, train_loss=train_loss, lm_k=lm_k)
                written[(model, sd, seed)] = dict(test_acc=test_acc, lm_k=lm_k)
    table = lm_table.compute(tmp_path)
    assert table.row_labels == ["56, pre-act"]
    assert table.col_labels == ["ResNet", "LM-ResNet", "ResNet + SD (p_L = 0.8)", "LM-ResNet + SD (p_L = 0.8)"]
    for c, (model, sd) in enumerate([("preresnet56", None), ("lm_preresnet56", None), ("preresnet56", 0.8), ("lm_preresnet56", 0.8)]):
        assert table.cells[(0, c)].mean == pytest.approx(np.mean([final_error(written[(model, sd, s)]) for s in range(2)]))
    assert [p.name for p in lm_table.make(tmp_path / "out", results=tmp_path)] == ["lm_table.md", "lm_table.tex", "lm_table.h5"]
    sentence = ("all columns share one recipe (stated above); the LM-ResNet paper trained its stochastic-depth "
                "columns 500 epochs (lr divided by 10 at epochs 250 and 375)")
    assert sentence in (tmp_path / "out" / "lm_table.md").read_text()
    assert sentence in (tmp_path / "out" / "lm_table.tex").read_text()
    lm_coefficients.make(tmp_path / "out", results=tmp_path)
    with h5py.File(tmp_path / "out" / "lm_coefficients.h5", "r") as h5:
        final = np.array([written[("lm_preresnet56", None, s)]["lm_k"][-1] for s in range(2)])
        assert np.allclose(h5["lm_preresnet56/k_mean"][()], final.mean(0))
        assert np.allclose(h5["lm_preresnet56/k_std"][()], final.std(0, ddof=1))
        assert np.array_equal(h5["lm_preresnet56/block"][()], np.arange(1, 28))
        assert h5["trajectory/lm_k"].shape == (4, 27)


def test_lm_coefficients_leave_out_lm_runs_with_noise_or_another_h(tmp_path):
    """Only lm_table's runs (p = 1, h = 1): LM runs trained with dropout or h = 0.1 learn other k_n and were
    pooled into the same line."""
    rng = np.random.default_rng(7)
    test_acc, train_loss = curves(rng, 4, 0.2, 0.1)
    plain = [rng.uniform(-1, 0, (4, 3)) for _ in range(2)]
    for seed, lm_k in enumerate(plain):
        write_metrics(tmp_path / f"plain-{seed}", model="lm_preresnet8", seed=seed, noise=None, p=None,
                      test_acc=test_acc, train_loss=train_loss, lm_k=lm_k)
    write_metrics(tmp_path / "dropout-0", model="lm_preresnet8", seed=0, p=0.5, test_acc=test_acc,
                  train_loss=train_loss, lm_k=np.ones((4, 3)))
    write_metrics(tmp_path / "h-0", model="lm_preresnet8", seed=0, noise=None, p=None, h=0.1, test_acc=test_acc,
                  train_loss=train_loss, lm_k=np.ones((4, 3)))
    data, _ = lm_coefficients.compute(tmp_path)
    assert data["lm_preresnet8"]["n_runs"] == 2
    assert np.allclose(data["lm_preresnet8"]["k_mean"], np.mean([k[-1] for k in plain], axis=0))


def test_lm_coefficients_block_ticks_are_whole_numbers_for_a_shallow_network(tmp_path):
    """A three-block LM network (lm_preresnet8): panel (a)'s block axis and panel (b)'s colour bar tick 1, 2, 3,
    never 1.25 (matplotlib's default locators put fractional block numbers there)."""
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(5)
    for seed in range(2):
        test_acc, train_loss = curves(rng, 4, 0.2, 0.1)
        write_metrics(tmp_path / f"lm8-{seed}", model="lm_preresnet8", seed=seed, noise=None, p=None,
                      test_acc=test_acc, train_loss=train_loss, lm_k=rng.uniform(-1, 1, (4, 3)))
    fig = lm_coefficients.draw(*lm_coefficients.compute(tmp_path))
    try:
        ax_final, ax_path, colorbar = fig.axes
        fig.canvas.draw()
        for ticks, (low, high) in ((ax_final.get_xticks(), ax_final.get_xlim()),
                                   (colorbar.get_yticks(), colorbar.get_ylim())):
            shown = [tick for tick in ticks if low <= tick <= high]
            assert shown and all(float(tick).is_integer() for tick in shown), shown
            assert {1.0, 2.0, 3.0} <= set(shown)
    finally:
        plt.close(fig)


def test_robust_cifar_median_accuracy_and_training_loss_against_h(tmp_path):
    rng = np.random.default_rng(2)
    accuracy, loss = {}, {}
    for h in (0.1, 1.0, 2.0):
        for seed in range(3):
            test_acc, train_loss = curves(rng, 3, float(rng.uniform(0.05, 0.3)), 0.2)
            write_metrics(tmp_path / f"h{h}-{seed}", model="preresnet20", seed=seed, noise=None, p=None, h=h,
                          test_acc=test_acc, train_loss=train_loss, epochs=3)
            accuracy.setdefault(h, []).append(100 * test_acc[-1])
            loss.setdefault(h, []).append(train_loss[-1])
    robust_cifar.make(tmp_path / "out", results=tmp_path)
    with h5py.File(tmp_path / "out" / "robust_cifar.h5", "r") as h5:
        assert np.allclose(h5["preresnet20/h"][()], [0.1, 1.0, 2.0])
        assert np.allclose(h5["preresnet20/accuracy_median"][()], [np.median(accuracy[h]) for h in (0.1, 1.0, 2.0)])
        assert np.allclose(h5["preresnet20/accuracy_std"][()], [np.std(accuracy[h], ddof=1) for h in (0.1, 1.0, 2.0)])
        assert np.allclose(h5["preresnet20/train_loss_median"][()], [np.median(loss[h]) for h in (0.1, 1.0, 2.0)])
        assert np.allclose(h5["preresnet20/train_loss_std"][()], [np.std(loss[h], ddof=1) for h in (0.1, 1.0, 2.0)])


def test_robust_cifar_command_uses_the_papers_fig9_depths(tmp_path):
    """The printed h sweep: the robust-ResNet paper's Fig. 9 on CIFAR-10 (ResNet-20, 110, 218, h 0.001..20,
    80 epochs, lr divided at 40 and 60, 5 seeds); with no runs, make raises MissingResults with it."""
    expected = ("python -m nets.sweep --models preresnet20 preresnet110 preresnet218 --h 0.001 0.01 0.1 0.5 1.0 2.0 "
                f"5.0 20.0 --epochs 80 --schedule 40 60 --seeds 5 --data cifar10.h5 --out {tmp_path / 'robust_h'}")
    assert robust_cifar.command(tmp_path) == expected
    with pytest.raises(MissingResults) as raised:
        robust_cifar.make(tmp_path / "out", results=tmp_path)
    assert raised.value.command == expected


def test_robust_cifar_draws_every_depth_present(tmp_path):
    rng = np.random.default_rng(3)
    for model in ("preresnet20", "preresnet56", "preresnet218"):
        for h in (0.1, 1.0):
            test_acc, train_loss = curves(rng, 3, float(rng.uniform(0.05, 0.3)), 0.2)
            write_metrics(tmp_path / f"{model}-h{h}-0", model=model, seed=0, noise=None, p=None, h=h,
                          test_acc=test_acc, train_loss=train_loss, epochs=3)
    robust_cifar.make(tmp_path / "out", results=tmp_path)
    with h5py.File(tmp_path / "out" / "robust_cifar.h5", "r") as h5:
        assert list(h5) == ["preresnet20", "preresnet218", "preresnet56"]  # h5 lists groups by name
        assert h5["preresnet218/h"][()].tolist() == [0.1, 1.0]


def test_a_repeated_experiment_counts_once(tmp_path):
    """The same configuration and seed found twice (here the h sweep's run and a --grad-norm-every rerun of it in
    another directory, with other numbers) is one seed: the first by path is kept and the note says so."""
    rng = np.random.default_rng(5)
    first = {}
    for h in (0.1, 1.0):
        for seed in range(2):
            test_acc, train_loss = curves(rng, 3, float(rng.uniform(0.05, 0.3)), 0.2)
            write_metrics(tmp_path / "a_sweep" / f"h{h}-{seed}", model="preresnet20", seed=seed, noise=None, p=None,
                          h=h, test_acc=test_acc, train_loss=train_loss, epochs=3)
            first.setdefault(h, []).append(100 * test_acc[-1])
    test_acc, train_loss = curves(rng, 3, 0.6, 0.2)  # far from the others: counting it would move the median
    write_metrics(tmp_path / "b_recorded" / "h1.0-0", model="preresnet20", seed=0, noise=None, p=None, h=1.0,
                  test_acc=test_acc, train_loss=train_loss, epochs=3,
                  grad_norms=fake_grad_norms(every=2, steps=6, blocks=4))
    robust_cifar.make(tmp_path / "out", results=tmp_path)
    with h5py.File(tmp_path / "out" / "robust_cifar.h5", "r") as h5:
        assert h5["preresnet20/n_runs"][()].tolist() == [2, 2]
        assert np.allclose(h5["preresnet20/accuracy_median"][()], [np.median(first[h]) for h in (0.1, 1.0)])
        assert "1 duplicate run(s) (same configuration and seed) counted once" in h5.attrs["note"]


@pytest.mark.parametrize("module", RESULT_FIGURES, ids=lambda m: m.__name__)
def test_missing_results_name_the_sweep_command_and_write_nothing(module, tmp_path):
    # unfinished runs are not results either
    write_metrics(tmp_path / "res" / "x", model="lm_preresnet20", seed=0, test_acc=[0.2], train_loss=[2.0],
                  lm_k=np.zeros((1, 9)), finished=False)
    with pytest.raises(MissingResults) as raised:
        module.make(tmp_path / "out", fast=True, results=tmp_path / "res")
    assert raised.value.command.startswith("python -m nets.sweep --models ")
    assert f"--out {tmp_path / 'res'}" in raised.value.command and "--data " in raised.value.command
    assert not (tmp_path / "out").exists()


def test_missing_table1_command_reproduces_the_paper_grid(tmp_path):
    with pytest.raises(MissingResults) as raised:
        table1.make(tmp_path / "out", results=tmp_path)
    assert raised.value.command == ("python -m nets.sweep --models preresnet20 preresnet56 preresnet110 --p 0.85 0.875 "
                                    f"0.9 0.925 0.95 0.975 1.0 --seeds 4 --data cifar10.h5 --out {tmp_path / 'table1'}")


def test_figures_cli_table1_with_and_without_results(table_results, tmp_path):
    root, _ = table_results
    run = [sys.executable, "-m", "figures", "table1", "--out-dir", str(tmp_path / "out")]
    (tmp_path / "none").mkdir()  # a --results directory without runs: skipped (a missing one is an error)
    missing = subprocess.run(run + ["--results", str(tmp_path / "none")], capture_output=True, text=True)
    assert missing.returncode == 0 and "python -m nets.sweep --models preresnet20" in missing.stdout
    assert not (tmp_path / "out").exists()
    present = subprocess.run(run + ["--results", str(root)], capture_output=True, text=True)
    assert present.returncode == 0, present.stderr
    assert (tmp_path / "out" / "table1.md").is_file() and (tmp_path / "out" / "table1.tex").is_file()


def test_tidy_rows_summary_and_csv_export(table_results, tmp_path, capsys):
    import csv

    from figures.results import main as results_main
    from figures.results import summary_rows, tidy_rows

    root, written = table_results
    records = collect_runs(root)
    rows = tidy_rows(records)
    assert len(rows) == len(written) == 36
    row = next(r for r in rows if r["model"] == "preresnet56" and r["p"] == 0.9 and r["seed"] == 2)
    assert row["final_test_error"] == pytest.approx(final_error(written[("preresnet56", 0.9, 2)]))
    assert row["best_test_error"] == pytest.approx(100 * (1 - written[("preresnet56", 0.9, 2)]["test_acc"].max()))
    summary = summary_rows(records)
    assert [(r["model"], r["p"]) for r in summary][:5] == [("preresnet20", p) for p in PS] + [("preresnet56", 0.85)]
    cell = next(r for r in summary if r["model"] == "preresnet110" and r["p"] == 0.95)
    errors = [final_error(written[("preresnet110", 0.95, s)]) for s in range(3)]
    assert cell["n_runs"] == 3 and cell["test_error_mean"] == pytest.approx(np.mean(errors))
    assert cell["test_error_std"] == pytest.approx(np.std(errors, ddof=1)) and cell["test_error_best"] == pytest.approx(min(errors))

    assert results_main([str(root), "--csv", str(tmp_path / "runs.csv"), "--summary-csv", str(tmp_path / "sum.csv")]) == 0
    out = capsys.readouterr().out
    assert f"{np.mean(errors):.2f} +- {np.std(errors, ddof=1):.2f}, {min(errors):.2f}" in out
    with open(tmp_path / "runs.csv", newline="") as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == 36 and table[0]["nu"] == ""
    assert sorted(float(r["final_test_error"]) for r in table) == pytest.approx(sorted(final_error(w) for w in written.values()))
    with open(tmp_path / "sum.csv", newline="") as handle:
        assert len(list(csv.DictReader(handle))) == 12
    for argv in ([str(tmp_path / "absent")], [str(tmp_path)]):
        with pytest.raises(SystemExit) as exited:
            results_main(argv)
        assert exited.value.code == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 2


def _bad_output_paths(tmp_path):
    """Where no CSV can be written, as root too: under a regular file, a directory, under /proc."""
    (tmp_path / "afile").write_text("x")
    (tmp_path / "dir.csv").mkdir()
    return [tmp_path / "afile" / "x.csv", tmp_path / "dir.csv", Path("/proc/resnet_sde_test/x.csv")]


@pytest.mark.parametrize("flag", ["--csv", "--summary-csv"])
def test_results_unwritable_csv_is_exit_2_one_line_before_any_output(tmp_path, capsys, flag):
    from figures.results import main as results_main

    root = tmp_path / "r"
    grid(root, ["preresnet20"], [0.9], seeds=1, epochs=2)
    before = sorted(p.name for p in tmp_path.iterdir())
    for bad in _bad_output_paths(tmp_path):
        with pytest.raises(SystemExit) as exited:
            results_main([str(root), flag, str(bad)])
        assert exited.value.code == 2, bad
        captured = capsys.readouterr()
        assert captured.out == "", bad  # checked before the table is printed
        assert captured.err.count("\n") == 1 and f"error: {flag} '{bad}'" in captured.err, captured.err
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(set(before) | {"afile", "dir.csv"})
    assert list((tmp_path / "dir.csv").iterdir()) == []


def test_results_csv_and_summary_csv_may_not_be_one_file(tmp_path, capsys):
    from figures.results import main as results_main

    root = tmp_path / "r"
    grid(root, ["preresnet20"], [0.9], seeds=1, epochs=2)
    with pytest.raises(SystemExit) as exited:
        results_main([str(root), "--csv", str(tmp_path / "s.csv"), "--summary-csv", str(tmp_path / "." / "s.csv")])
    assert exited.value.code == 2
    assert "--csv and --summary-csv" in capsys.readouterr().err
    assert not (tmp_path / "s.csv").exists()


def test_results_csv_write_failure_is_one_line_naming_the_flag(tmp_path, capsys, monkeypatch):
    import errno

    from figures import results

    root = tmp_path / "r"
    grid(root, ["preresnet20"], [0.9], seeds=1, epochs=2)

    def full(rows, path):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr(results, "write_csv", full)
    with pytest.raises(SystemExit) as exited:
        results.main([str(root), "--summary-csv", str(tmp_path / "s.csv")])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--summary-csv" in err and "No space left" in err


@pytest.mark.parametrize("figure", [fig7, fig8])
def test_fig7_and_fig8_read_each_metrics_file_once(tmp_path, monkeypatch, figure):
    """Also when fig8's depths are not in Table 1's recipe and its runs are selected a second time."""
    import figures.results as results

    written = grid(tmp_path / "r" / "table1", ["preresnet20"], [0.85, 0.9, 0.95, 1.0], seeds=2, seed=5)
    written.update(grid(tmp_path / "r" / "deep", ["preresnet56"], [0.9, 1.0], seeds=2, seed=6, lr=0.05))
    reads = []
    real_read_run = results.read_run
    monkeypatch.setattr(results, "read_run", lambda path: reads.append(Path(path)) or real_read_run(path))
    paths = figure.make(tmp_path / "out", results=tmp_path / "r")
    assert sorted(reads) == sorted((tmp_path / "r").rglob("metrics.h5")) and len(reads) == 12
    model = "preresnet20" if figure is fig7 else "preresnet56"
    with h5py.File(paths[-1], "r") as h5:
        assert h5.attrs["models"] == model
        p = sorted(key for key in h5[model].keys())[0]
        test_error = np.array([100 * (1 - written[(model, float(p[1:]), s)]["test_acc"]) for s in range(2)])
        assert np.allclose(h5[f"{model}/{p}/test_error_mean"][()], test_error.mean(0))


def test_tidy_rows_list_each_runs_code_threads_and_processor(tmp_path):
    """provenance_json's distinct values per run (FIXTURE segments); None for a run recorded before it."""
    from figures.results import RUN_COLUMNS, tidy_rows

    segment = {"code_version": "abc1234", "torch": "2.13.0", "numpy": "2.4", "python": "3.11", "threads": 1,
               "cpu": "Xeon; AVX512; flags 01234567", "device": "cpu"}
    segments = [dict(segment, first_epoch=1), dict(segment, first_epoch=4, threads=2),
                dict(segment, first_epoch=6, code_version="def5678")]
    acc, loss = np.linspace(0.5, 0.8, 6), np.linspace(1.5, 0.5, 6)
    write_metrics(tmp_path / "a", model="preresnet20", seed=0, test_acc=acc, train_loss=loss, provenance=segments)
    write_metrics(tmp_path / "b", model="preresnet20", seed=1, test_acc=acc, train_loss=loss)
    rows = {row["seed"]: row for row in tidy_rows(collect_runs(tmp_path))}
    assert (rows[0]["code_version"], rows[0]["threads"]) == ("abc1234 | def5678", "1 | 2")
    assert rows[0]["cpu"] == "Xeon; AVX512; flags 01234567"
    assert rows[1]["code_version"] is rows[1]["threads"] is rows[1]["cpu"] is None
    assert list(rows[0]) == list(RUN_COLUMNS)


def test_welch_difference_is_welchs_t_test():
    """Against Welch's t statistic and Welch-Satterthwaite degrees of freedom written out, not scipy's ttest_ind."""
    from scipy import stats

    from figures.results import welch_difference

    a, b = [20.39, 19.48, 19.9, 20.1], [20.28, 21.0, 20.9, 20.9, 21.3]
    va, vb = np.var(a, ddof=1) / len(a), np.var(b, ddof=1) / len(b)
    t = (np.mean(a) - np.mean(b)) / np.sqrt(va + vb)
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    difference, p = welch_difference(a, b)
    assert difference == pytest.approx(np.mean(a) - np.mean(b), rel=1e-12)
    assert p == pytest.approx(2 * stats.t.sf(abs(t), df), rel=1e-9)
    assert welch_difference([1.0], b) is None and welch_difference(a, [2.0]) is None
    assert welch_difference([1.0, 1.0], [1.0, 1.0]) == (0.0, 1.0)
    assert welch_difference([1.0, 1.0], [2.0, 2.0]) == (-1.0, 0.0)


def _line_by_hand(x, y):
    """Least-squares slope, its standard error and two-sided p-value written out (normal equations)."""
    from scipy import stats

    x, y = np.asarray(x, float), np.asarray(y, float)
    sxx = np.sum((x - x.mean()) ** 2)
    slope = np.sum((x - x.mean()) * (y - y.mean())) / sxx
    residual = y - (y.mean() + slope * (x - x.mean()))
    stderr = np.sqrt(np.sum(residual ** 2) / (len(x) - 2) / sxx)
    return slope, stderr, 2 * stats.t.sf(abs(slope / stderr), len(x) - 2)


def test_noise_trend_is_the_least_squares_line_against_the_percent_removed():
    from figures.results import Trend, noise_trend

    p = [0.85, 0.85, 0.9, 0.9, 0.95, 1.0, 1.0]
    error = [16.08, 16.29, 15.51, 16.2, 15.9, 15.81, 15.5]
    slope, stderr, pvalue = _line_by_hand([15, 15, 10, 10, 5, 0, 0], error)
    trend = noise_trend(p, error)
    assert trend.n == 7
    assert trend.slope == pytest.approx(slope, rel=1e-10) and trend.stderr == pytest.approx(stderr, rel=1e-10)
    assert trend.pvalue == pytest.approx(pvalue, rel=1e-8)
    exact = noise_trend([0.8, 0.9, 1.0], [3.0 + 2 * 0.5 * 20, 3.0 + 2 * 0.5 * 10, 3.0])  # slope 1 per point
    assert exact.slope == pytest.approx(1.0, rel=1e-12) and exact.stderr == pytest.approx(0.0, abs=1e-12)
    assert exact.pvalue < 1e-9  # scipy guards 1 - r^2 = 0 with 1e-20: t is huge, not infinite
    assert noise_trend([0.9, 1.0, 1.0], [5.0, 5.0, 5.0]) == Trend(0.0, 0.0, 1.0, 3)
    assert noise_trend([0.9, 1.0], [5.0, 4.0]) is None  # two runs: no residual
    assert noise_trend([0.9, 0.9, 0.9], [5.0, 4.0, 4.5]) is None  # one p: no line
    with pytest.raises(ValueError, match="survival_p and values"):
        noise_trend([0.9, 1.0, 1.0], [1.0, 2.0])


def test_a_slope_that_is_only_rounding_error_is_reported_as_zero():
    """Values symmetric about the middle p have slope exactly 0; least squares gives about -1e-17 (the digits row
    of results/digits_table1 printed 'test error -9.5e-19 points per point of p removed'). A real slope, however
    small against the data, stays."""
    from scipy import stats
    from figures.results import noise_trend, without_roundoff

    p = np.array([0.85, 0.875, 0.9, 0.925, 0.95, 0.975, 1.0])
    symmetric = np.array([2, 1, 3, 5, 3, 1, 2]) * 100 / 360  # test errors of 360 images
    removed = 100 * (1 - p)
    assert stats.linregress(removed, symmetric).slope != 0.0  # the rounding error this guards against
    trend = noise_trend(p, symmetric)
    assert trend.slope == 0.0 and trend.pvalue == 1.0 and trend.stderr > 0.0
    tilted = symmetric + 1e-9 * removed  # a slope of 1e-9 on data of scale 1
    assert noise_trend(p, tilted).slope == pytest.approx(1e-9, rel=1e-4)
    assert without_roundoff(1e-15, removed, symmetric) == 0.0
    assert without_roundoff(1e-10, removed, symmetric) == 1e-10


def test_table1_note_gives_each_rows_trend_and_each_p_against_p1(table_results):
    """The slope over all runs of a row (pooled and within seeds) and Welch's and the paired difference of each
    p < 1 against p = 1, all recomputed here from the fixture arrays by the formulas written out (_line_by_hand,
    Welch-Satterthwaite, the centred within-seed line, the t of the mean per-seed difference)."""
    from scipy import stats

    root, written = table_results
    note = table1.compute(root).note
    for model in MODELS:
        label = f"PreResNet-{model.removeprefix('preresnet')}"
        keys = [(p, s) for p in PS for s in range(3)]
        removed = [100 * (1 - p) for p, _ in keys]
        slope, _, pvalue = _line_by_hand(removed, [final_error(written[(model, p, s)]) for p, s in keys])
        loss_slope, _, loss_p = _line_by_hand(removed, [written[(model, p, s)]["train_loss"][-1] for p, s in keys])
        # within seeds: the line with one intercept per seed, written out for this balanced grid (every seed at
        # every p): centre x and y within each seed, slope = sum(xy) / sum(x^2), n - 3 seeds - 1 = 8 residual df
        def within_seeds(values):
            x = np.array(removed).reshape(len(PS), 3)
            y = np.array(values).reshape(len(PS), 3)
            x, y = x - x.mean(axis=0), y - y.mean(axis=0)
            b = np.sum(x * y) / np.sum(x * x)
            se = np.sqrt(np.sum((y - b * x) ** 2) / 8 / np.sum(x * x))
            return b, 2 * stats.t.sf(abs(b / se), 8)

        errors = [final_error(written[(model, p, s)]) for p, s in keys]
        within, within_p = within_seeds(errors)
        loss_within, loss_within_p = within_seeds([written[(model, p, s)]["train_loss"][-1] for p, s in keys])
        assert (f"{label} over 12 runs: test error {slope:+.2g} points per point of p removed (p = {pvalue:.2g}; "
                f"within seeds {within:+.2g}, p = {within_p:.2g}), final training loss {loss_slope:+.2g} "
                f"(p = {loss_p:.2g}; within seeds {loss_within:+.2g}, p = {loss_within_p:.2g})") in note
        def welch_by_hand(noisy, plain):
            va, vb = np.var(noisy, ddof=1) / 3, np.var(plain, ddof=1) / 3
            t = (np.mean(noisy) - np.mean(plain)) / np.sqrt(va + vb)
            df = (va + vb) ** 2 / (va ** 2 / 2 + vb ** 2 / 2)
            return np.mean(noisy) - np.mean(plain), 2 * stats.t.sf(abs(t), df)

        def last_two(entry):  # the fixture runs have 6 epochs: the last quarter is ceil(6 / 4) = 2 of them
            return float(np.mean(100 * (1 - np.asarray(entry["test_acc"])[-2:])))

        plain = [final_error(written[(model, 1.0, s)]) for s in range(3)]
        plain_late = [last_two(written[(model, 1.0, s)]) for s in range(3)]
        def paired_by_hand(noisy, plain):  # seed s against seed s: t of the mean difference, 2 df
            d = np.array(noisy) - np.array(plain)
            return d.mean(), 2 * stats.t.sf(abs(d.mean() / (d.std(ddof=1) / np.sqrt(3))), 2)

        for p in PS[:-1]:
            noisy = [final_error(written[(model, p, s)]) for s in range(3)]
            noisy_late = [last_two(written[(model, p, s)]) for s in range(3)]
            difference, pvalue = welch_by_hand(noisy, plain)
            late, late_p = welch_by_hand(noisy_late, plain_late)
            paired, paired_p = paired_by_hand(noisy, plain)
            late_paired, late_paired_p = paired_by_hand(noisy_late, plain_late)
            assert (f"{label} {100 * p:g}% minus 100%: {difference:+.2f} points (Welch p = {pvalue:.2g}; "
                    f"paired over 3 seeds: {paired:+.2f}, p = {paired_p:.2g}; "
                    f"mean of the last 2 epochs: {late:+.2f}, p = {late_p:.2g}, "
                    f"paired {late_paired:+.2f}, p = {late_paired_p:.2g})") in note
        assert f"{label} 100% minus 100%" not in note


def test_table1_note_leaves_out_the_late_mean_when_it_is_the_last_epoch_alone(tmp_path):
    """Runs of 4 epochs: the last quarter is the last epoch, so the note states the final difference only."""
    grid(tmp_path, ["preresnet20"], [0.9, 1.0], seeds=2, epochs=4, seed=5)
    note = table1.compute(tmp_path).note
    assert "PreResNet-20 90% minus 100%" in note and "mean of the last" not in note


def test_late_window_is_the_last_quarter_rounded_up_and_refuses_what_is_not_a_count():
    from figures.results import late_window

    assert [late_window(n) for n in (1, 4, 5, 6, 24, 164)] == [1, 1, 2, 2, 6, 41]
    for bad in (0, -3, 2.5, True, "24"):
        with pytest.raises(ValueError, match="n_epochs must be an integer >= 1"):
            late_window(bad)


def test_late_test_error_averages_the_last_epochs_of_the_recorded_accuracy(tmp_path):
    accuracy = np.array([0.5, 0.7, 0.80, 0.84, 0.86])
    write_metrics(tmp_path / "run", model="preresnet20", seed=0, test_acc=accuracy, train_loss=np.linspace(2, 0.3, 5))
    run = read_run(tmp_path / "run" / "metrics.h5")
    assert run.epochs == 5
    assert run.late_test_error(1) == pytest.approx(run.final_test_error) == pytest.approx(14.0)
    assert run.late_test_error(3) == pytest.approx(100 - (80 + 84 + 86) / 3)
    assert run.late_test_error(5) == pytest.approx(100 - 100 * accuracy.mean())
    for bad in (0, 6, 2.0, True):
        with pytest.raises(ValueError, match="epochs must be an integer from 1 to the 5 epochs of run"):
            run.late_test_error(bad)


def test_table1_note_leaves_out_what_it_cannot_compute(tmp_path):
    """Two runs at two p: no slope (no residual); no p = 1 column: no difference."""
    grid(tmp_path / "a", ["preresnet20"], [0.9, 1.0], seeds=1, seed=2)
    assert "over" not in table1.compute(tmp_path).note and "minus" not in table1.compute(tmp_path).note
    grid(tmp_path / "b", ["preresnet56"], [0.85, 0.9], seeds=2, seed=3)
    note = table1.compute(tmp_path / "b").note
    assert "PreResNet-56 over 4 runs" in note and "minus" not in note


def test_welch_difference_with_one_constant_sample_is_quiet_and_exact():
    """One sample of equal values: Welch's t uses the other's variance alone; no scipy precision warning."""
    import warnings

    from scipy import stats

    from figures.results import welch_difference

    constant, varied = [20.77] * 3, [20.39, 19.48, 19.9]
    t = (np.mean(varied) - 20.77) / np.sqrt(np.var(varied, ddof=1) / 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        difference, p = welch_difference(varied, constant)
    assert difference == pytest.approx(np.mean(varied) - 20.77)
    assert p == pytest.approx(2 * stats.t.sf(abs(t), 2), rel=1e-6)  # Welch-Satterthwaite df = n - 1 = 2


def test_in_noise_order_puts_no_noise_first_then_bernoulli_by_decreasing_p_then_the_rest_in_order():
    from figures.output import NOISE_FREE, in_noise_order

    settings = ["gaussian nu=0.4", "bernoulli p=0.85", NOISE_FREE, "bernoulli p=0.975", "stochastic depth p_L=0.5",
                "bernoulli p=0.9"]
    assert in_noise_order(settings) == [NOISE_FREE, "bernoulli p=0.975", "bernoulli p=0.9", "bernoulli p=0.85",
                                        "gaussian nu=0.4", "stochastic depth p_L=0.5"]
    rows = [{"setting": "b"}, {"setting": NOISE_FREE}, {"setting": "a"}]
    assert in_noise_order(rows, lambda row: row["setting"]) == [rows[1], rows[0], rows[2]]
    assert in_noise_order([]) == []


def test_count_of_runs_is_singular_for_one():
    from figures.output import count_of_runs

    assert [count_of_runs(n) for n in (0, 1, 2, 4)] == ["0 runs", "1 run", "2 runs", "4 runs"]


def test_runs_with_a_rescaled_stem_are_never_pooled_with_their_h(tmp_path):
    """nets.train --stem-init-scale runs (FIXTURE) at h = 1 must not join the h = 1 cell of robust_cifar, table1."""
    from figures.results import config_value, select

    rng = np.random.default_rng(0)
    for seed in range(2):
        acc, loss = curves(rng, 4, 20.0, 0.5)
        write_metrics(tmp_path / f"plain{seed}", model="preresnet8", seed=seed, test_acc=acc, train_loss=loss, h=1.0)
    acc, loss = curves(rng, 4, 30.0, 0.9)
    write_metrics(tmp_path / "stem10", model="preresnet8", seed=0, test_acc=acc, train_loss=loss, h=1.0,
                  stem_init_scale=10.0)
    records = {r.path.name: r for r in collect_runs(tmp_path)}
    assert records["stem10"].stem_init_scale == 10.0 and records["plain0"].stem_init_scale == 1.0
    assert config_value(records["plain0"], "stem_init_scale") == 1.0
    kept = select(tmp_path, lambda r: True).records
    assert sorted(r.path.name for r in kept) == ["plain0", "plain1"]
