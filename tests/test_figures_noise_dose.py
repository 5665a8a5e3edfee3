"""figures.noise_dose: c at one eps against the p the networks trained with, from saved measurements (fixtures
written here, with J_eps - J_0 = c eps^2 chosen so that every drawn number is known by hand)."""
from __future__ import annotations

import dataclasses
from pathlib import Path

import h5py
import numpy as np
import pytest

from figures import noise_dose, registry
from figures.output import MissingResults, survival_of
from figures.table1_forecast import cell_forecast, line_forecast
from fixtures_results import write_metrics
from nets.noise_response import KindResponse, RunNoiseResponse, to_json

KINDS = ("bernoulli", "gaussian", "uniform")


def _run(name: str, trained_with: str, curvature: dict, clean: float = 0.3, eps: float = 0.1,
         estimator: str = "control-variate", batchnorm: str = "recorded", data: str = "cifar10-jpeg") -> RunNoiseResponse:
    """A made-up measurement: J_0 = clean and J_eps = clean + c eps^2 for each kind's c in `curvature`."""
    kinds = tuple(KindResponse(kind=kind, options={}, eps=eps, loss=clean + c * eps ** 2, loss_stderr=1e-4,
                               error=0.1) for kind, c in curvature.items())
    return RunNoiseResponse(run=Path(f"runs/{name}"), model="preresnet20", trained_with=trained_with,
                            clean_loss=clean, clean_error=0.1, kinds=kinds, batchnorm=batchnorm,
                            estimator=estimator, data=data)


def _setting(p: float) -> str:
    return "no noise" if p == 1.0 else f"bernoulli p={p:g}"


# two runs at each of three p; per run the three kinds' c (their mean is what 1/c averages)
C_RUNS = {1.0: [(4.0, 5.0, 6.0), (4.5, 4.5, 4.5)], 0.9: [(2.0, 2.5, 3.0), (2.0, 2.0, 2.0)],
          0.8: [(1.0, 1.5, 2.0), (1.25, 1.25, 1.25)]}
CLEAN = {1.0: (0.30, 0.32), 0.9: (0.33, 0.35), 0.8: (0.36, 0.40)}
FIXTURE = [_run(f"p{p:g}-s{seed}", _setting(p), dict(zip(KINDS, c)), clean=CLEAN[p][seed])
           for p, runs in C_RUNS.items() for seed, c in enumerate(runs)]


def _write(root: Path, runs: list[RunNoiseResponse], name: str = "cifar10/m.json") -> None:
    path = root / "noise_response" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_json(runs))


def test_registered_and_missing_measurements_name_the_command(tmp_path):
    assert "noise_dose" in registry.figure_names()
    with pytest.raises(MissingResults) as raised:
        noise_dose.make(tmp_path / "out", results=tmp_path)
    assert raised.value.command.startswith("python -m nets.sweep --models preresnet20 --p 1.0 0.95 0.9 0.85")
    assert "--estimator control-variate" in raised.value.command
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("label, expected", [("no noise", 1.0), ("bernoulli p=0.925", 0.925), ("bernoulli p=1", 1.0),
                                             ("gaussian nu=0.42008", None), ("stochastic depth p_L=0.78124", None),
                                             ("bernoulli p=0.9, stochastic depth p_L=0.5", None)])
def test_survival_of_reads_only_bernoulli_and_noise_free_labels(label, expected):
    assert survival_of(label) == expected


def test_c_per_kind_mean_and_std_over_runs_at_each_p(tmp_path):
    _write(tmp_path, FIXTURE)
    data, note = noise_dose.compute(tmp_path)
    d = data["preresnet20 on cifar10-jpeg"]
    assert list(d["p"]) == [1.0, 0.9, 0.8] and list(d["runs"]) == [2, 2, 2] and d["kinds"] == list(KINDS)
    assert d["eps"] == 0.1 and d["estimator"] == "control-variate"
    for row, p in enumerate(d["p"]):
        runs = np.array(C_RUNS[p])
        np.testing.assert_allclose(d["c_mean"][row], runs.mean(axis=0), rtol=1e-9)
        np.testing.assert_allclose(d["c_std"][row], runs.std(axis=0, ddof=1), rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(d["clean_mean"][row], np.mean(CLEAN[p]), rtol=1e-12)
        np.testing.assert_allclose(d["clean_std"][row], np.std(CLEAN[p], ddof=1), rtol=1e-9)
    assert "6 runs at p = 1, 0.9, 0.8, eps 0.1, control-variate estimator" in note
    assert "0 measured network(s) trained with other noise or with re-estimated BatchNorm statistics left out" in note and "from cifar10/m.json" in note


def test_mask_averaged_inverse_c_and_its_line(tmp_path):
    """Each run's 1/c is 1 / the mean of its kinds' c; the line is least squares over the runs (checked against
    numpy's polyfit on the same points) and recovers a line the runs lie on exactly."""
    _write(tmp_path, FIXTURE)
    d = noise_dose.compute(tmp_path)[0]["preresnet20 on cifar10-jpeg"]
    expected = [1 / np.mean(c) for runs in C_RUNS.values() for c in runs]
    np.testing.assert_allclose(d["run_inverse_c"], expected, rtol=1e-9)
    slope, intercept = np.polyfit(100 * (1 - d["run_p"]), expected, 1)
    assert d["line_slope"] == pytest.approx(slope, rel=1e-9) and d["line_intercept"] == pytest.approx(intercept, rel=1e-9)
    exact = [_run(f"e{p:g}", _setting(p), {"bernoulli": 1 / (0.2 + 0.03 * 100 * (1 - p))})
             for p in (1.0, 0.95, 0.9, 0.85)]
    _write(tmp_path, exact, name="cifar10/m.json")
    line = noise_dose.compute(tmp_path)[0]["preresnet20 on cifar10-jpeg"]
    assert line["line_intercept"] == pytest.approx(0.2, rel=1e-9) and line["line_slope"] == pytest.approx(0.03, rel=1e-9)
    assert line["line_r2"] == pytest.approx(1.0, abs=1e-12)


def test_other_noise_and_reestimated_batchnorm_are_left_out_and_counted(tmp_path):
    extra = [_run("g", "gaussian nu=0.42", dict(zip(KINDS, (9.0, 9.0, 9.0)))),
             dataclasses.replace(FIXTURE[0], run=Path("runs/bn"), batchnorm="clean")]
    _write(tmp_path, FIXTURE + extra)
    data, note = noise_dose.compute(tmp_path)
    assert list(data["preresnet20 on cifar10-jpeg"]["runs"]) == [2, 2, 2]
    assert "2 measured network(s) trained with other noise or with re-estimated BatchNorm statistics left out" in note


def test_a_run_measured_twice_at_one_eps_is_refused_naming_it(tmp_path):
    # two copies that disagree: which one the figure draws is not for it to guess (as noise_jumps and noise_own)
    again = _run("p1-s0", "no noise", dict(zip(KINDS, (100.0, 100.0, 100.0))), clean=CLEAN[1.0][0])
    _write(tmp_path, FIXTURE)
    _write(tmp_path, [again], "cifar10/again.json")
    with pytest.raises(ValueError, match=r"preresnet20 on cifar10-jpeg: runs/p1-s0 is measured twice "
                                         r"\(control-variate estimator, eps 0.1\); one measurement per run"):
        noise_dose.compute(tmp_path)


def test_a_run_measured_on_both_splits_or_with_both_estimators_is_not_measured_twice(tmp_path):
    on_test = [dataclasses.replace(r, split="test") for r in FIXTURE]
    plain = [dataclasses.replace(r, estimator="plain") for r in FIXTURE]
    _write(tmp_path, FIXTURE + on_test + plain)
    data = noise_dose.compute(tmp_path)[0]
    assert sorted(data) == ["preresnet20 on cifar10-jpeg", "preresnet20 on cifar10-jpeg (test split)"]
    assert all(list(d["runs"]) == [2, 2, 2] for d in data.values())


def test_the_measurement_with_most_p_is_drawn_the_control_variate_first(tmp_path):
    plain_same = [dataclasses.replace(r, estimator="plain", run=Path(str(r.run) + "-plain")) for r in FIXTURE]
    plain_more = plain_same + [_run("p0.7", "bernoulli p=0.7", dict(zip(KINDS, (0.5, 0.5, 0.5))), estimator="plain")]
    _write(tmp_path, FIXTURE + plain_same)
    assert noise_dose.compute(tmp_path)[0]["preresnet20 on cifar10-jpeg"]["estimator"] == "control-variate"
    _write(tmp_path, FIXTURE + plain_more)
    d = noise_dose.compute(tmp_path)[0]["preresnet20 on cifar10-jpeg"]
    assert d["estimator"] == "plain" and list(d["p"]) == [1.0, 0.9, 0.8, 0.7]


def test_fewer_than_three_p_is_missing_and_jumps_files_are_not_read(tmp_path):
    _write(tmp_path, [r for r in FIXTURE if "p0.8" not in str(r.run)])
    (tmp_path / "noise_response" / "jumps").mkdir()
    (tmp_path / "noise_response" / "jumps" / "j.json").write_text('[{"not": "a noise_response record"}]')
    with pytest.raises(MissingResults, match="at 3 or more survival probabilities"):
        noise_dose.compute(tmp_path)


def test_a_file_that_is_not_noise_response_json_is_named(tmp_path):
    _write(tmp_path, FIXTURE)
    (tmp_path / "noise_response" / "bad.json").write_text("[1, 2]")
    with pytest.raises(ValueError, match="bad.json"):
        noise_dose.compute(tmp_path)


def test_make_writes_the_figure_and_its_numbers(tmp_path):
    _write(tmp_path, FIXTURE)
    written = noise_dose.make(tmp_path / "out", results=tmp_path)
    assert sorted(p.suffix for p in written) == [".h5", ".md", ".pdf", ".png"]
    with h5py.File(tmp_path / "out" / "noise_dose.h5", "r") as h5:
        group = h5["preresnet20 on cifar10-jpeg"]
        np.testing.assert_allclose(group["c_mean"][0], np.mean(C_RUNS[1.0], axis=0), rtol=1e-9)
        assert "6 runs at p = 1, 0.9, 0.8" in h5.attrs["note"]


# FIXTURE final test accuracies of the six runs' training (metrics.h5), by run name
TEST_ACC = {"p1-s0": 0.84, "p1-s1": 0.845, "p0.9-s0": 0.83, "p0.9-s1": 0.838, "p0.8-s0": 0.82, "p0.8-s1": 0.815}


def _write_trained(root: Path, names=TEST_ACC, p_of=None) -> None:
    for seed, name in enumerate(names):
        p = float(name.split("-")[0][1:]) if p_of is None else p_of(name)
        write_metrics(root / "cpu" / name, model="preresnet20", seed=seed, test_acc=[0.5, TEST_ACC[name]],
                      train_loss=[1.0, 0.5], p=p)


def test_test_error_against_c_over_runs_and_within_each_p(tmp_path):
    """Over runs: scipy's Pearson r. Within each p: checked as the slope of y on x with one intercept per p, by
    least squares by hand: its t test is the partial correlation's (same t, same df)."""
    from scipy import stats

    _write(tmp_path, FIXTURE)
    _write_trained(tmp_path)
    data, note = noise_dose.compute(tmp_path)
    d = data["preresnet20 on cifar10-jpeg"]
    error = np.array([100 * (1 - TEST_ACC[Path(str(r.run)).name]) for r in FIXTURE])
    np.testing.assert_allclose(d["run_test_error"], error, rtol=1e-12)
    mean_c = np.array([np.mean(c) for runs in C_RUNS.values() for c in runs])
    across = stats.pearsonr(mean_c, error)
    assert d["matched"] == 6 and "6 with their training run found" in note
    assert d["error_r"] == pytest.approx(across.statistic, rel=1e-9)
    assert d["error_pvalue"] == pytest.approx(across.pvalue, rel=1e-9)
    run_p = d["run_p"]
    design = np.column_stack([mean_c] + [(run_p == p).astype(float) for p in np.unique(run_p)])
    coef, residual, *_ = np.linalg.lstsq(design, error, rcond=None)
    df = len(error) - design.shape[1]
    se = np.sqrt(residual[0] / df * np.linalg.inv(design.T @ design)[0, 0])
    assert d["error_within_df"] == df == 2
    assert d["error_within_pvalue"] == pytest.approx(2 * stats.t.sf(abs(coef[0] / se), df), rel=1e-9)
    assert np.sign(d["error_within_r"]) == np.sign(coef[0])


def test_a_training_run_of_another_p_or_an_ambiguous_name_is_not_matched(tmp_path):
    _write(tmp_path, FIXTURE)
    _write_trained(tmp_path, p_of=lambda name: 0.5 if name == "p1-s1" else float(name.split("-")[0][1:]))
    write_metrics(tmp_path / "elsewhere" / "p0.8-s0", model="preresnet20", seed=0, test_acc=[0.5, 0.9],
                  train_loss=[1.0, 0.5], p=0.8)
    d = noise_dose.compute(tmp_path)[0]["preresnet20 on cifar10-jpeg"]
    names = [Path(str(r.run)).name for r in FIXTURE]
    unmatched = {name for name, e in zip(names, d["run_test_error"]) if np.isnan(e)}
    assert unmatched == {"p1-s1", "p0.8-s0"} and d["matched"] == 4


def test_without_training_runs_the_figure_is_still_drawn(tmp_path):
    _write(tmp_path, FIXTURE)
    data, note = noise_dose.compute(tmp_path)
    d = data["preresnet20 on cifar10-jpeg"]
    assert d["matched"] == 0 and np.isnan(d["error_r"]) and np.all(np.isnan(d["run_test_error"]))
    assert "0 with their training run found" in note
    assert (tmp_path / "out" / "noise_dose.png") in noise_dose.make(tmp_path / "out", results=tmp_path)


def test_within_p_correlation_is_plain_pearson_with_one_p_and_nan_without_residual():
    from scipy import stats

    x, y = np.array([1.0, 2.0, 3.0, 4.0]), np.array([2.0, 1.0, 4.0, 3.0])
    r, pvalue, df = noise_dose.within_p_correlation(np.ones(4), x, y)
    plain = stats.pearsonr(x, y)
    assert df == 2 and r == pytest.approx(plain.statistic) and pvalue == pytest.approx(plain.pvalue)
    r, pvalue, df = noise_dose.within_p_correlation(np.array([1.0, 1.0, 0.9]), x[:3], y[:3])  # 3 runs, 2 p: df 0
    assert df == 0 and np.isnan(r) and np.isnan(pvalue)
    assert np.isnan(noise_dose.within_p_correlation(np.ones(4), x, np.full(4, 2.0))[0])  # y has no spread


def test_a_run_whose_noise_lowers_the_loss_has_no_inverse_c_and_stays_out_of_the_line(tmp_path):
    lowered = _run("neg", "bernoulli p=0.8", dict(zip(KINDS, (-0.5, -0.2, 0.1))))
    _write(tmp_path, FIXTURE + [lowered])
    d = noise_dose.compute(tmp_path)[0]["preresnet20 on cifar10-jpeg"]
    assert np.isnan(d["run_inverse_c"][-1]) and d["line_runs"] == 6
    expected = [1 / np.mean(c) for runs in C_RUNS.values() for c in runs]
    slope, intercept = np.polyfit(100 * (1 - d["run_p"][:6]), expected, 1)
    assert d["line_slope"] == pytest.approx(slope, rel=1e-9) and d["line_intercept"] == pytest.approx(intercept, rel=1e-9)
    assert list(d["runs"]) == [2, 2, 3]  # its c still counts in panel (a)
    only_two_positive = [_run(f"q{p:g}", _setting(p), {"bernoulli": c}) for p, c in ((1.0, 2.0), (0.9, 1.0), (0.8, -1.0))]
    _write(tmp_path, only_two_positive)
    d = noise_dose.compute(tmp_path)[0]["preresnet20 on cifar10-jpeg"]
    assert d["line_runs"] == 0 and np.isnan(d["line_slope"])
    noise_dose.make(tmp_path / "out", results=tmp_path)  # drawn without a line


def test_markdown_table_rows_are_the_computed_means(tmp_path):
    _write(tmp_path, FIXTURE)
    _write_trained(tmp_path, names=[n for n in TEST_ACC if n != "p0.8-s1"])
    written = noise_dose.make(tmp_path / "out", results=tmp_path)
    text = (tmp_path / "out" / "noise_dose.md").read_text()
    assert tmp_path / "out" / "noise_dose.md" in written
    c1 = np.array(C_RUNS[1.0])
    first = (f"| 1 | 2 | {c1[:, 0].mean():.3g} +- {c1[:, 0].std(ddof=1):.2g} | {c1[:, 1].mean():.3g} +- "
             f"{c1[:, 1].std(ddof=1):.2g} | {c1[:, 2].mean():.3g} +- {c1[:, 2].std(ddof=1):.2g} | "
             f"{np.mean([1 / np.mean(c) for c in c1]):.3f} | {np.mean(CLEAN[1.0]):.4f} +- "
             f"{np.std(CLEAN[1.0], ddof=1):.2g} | {np.mean([100 * (1 - TEST_ACC[n]) for n in ('p1-s0', 'p1-s1')]):.2f} |")
    assert first in text
    assert f"| {100 * (1 - TEST_ACC['p0.8-s0']):.2f} (1 run) |" in text  # one of the two p = 0.8 runs found
    assert "least squares over 6 runs: 1/c = " in text and "Pearson r = " in text and "over 5 runs" in text


def test_markdown_without_training_runs_has_dashes_and_no_correlation(tmp_path):
    _write(tmp_path, FIXTURE)
    text = noise_dose.to_markdown(*noise_dose.compute(tmp_path))
    assert text.count("| – |") == 3 and "Pearson" not in text


def test_inverse_c_forecasts_are_table1_forecasts_of_each_short_p_inside_the_range():
    run_p = np.array([1.0, 1.0, 1.0, 0.9, 0.9, 0.9, 0.85, 0.8])
    inverse_c = np.array([0.20, 0.22, 0.21, 0.66, 0.70, 0.64, 0.90, np.nan])  # the p = 0.8 run has c <= 0
    f = noise_dose.inverse_c_forecasts(run_p, inverse_c)
    # the range is 0.85 to 1 (the p = 0.8 run is left out), and 0.85 holds one run of the fullest p's three
    np.testing.assert_array_equal(f["forecast_p"], [0.85, 0.875, 0.925, 0.95, 0.975])
    np.testing.assert_array_equal(f["forecast_runs"], [1, 0, 0, 0, 0])
    np.testing.assert_array_equal(f["forecast_missing"], [2, 3, 3, 3, 3])
    kept = ~np.isnan(inverse_c)
    line = line_forecast(100 * (1 - run_p[kept]), inverse_c[kept], 12.5, 3)
    np.testing.assert_allclose(f["forecast_line"][1], [line.centre, line.low, line.high], rtol=1e-12)
    cell = cell_forecast([inverse_c[:3], inverse_c[3:6], inverse_c[6:7]], inverse_c[6:7], 2)
    np.testing.assert_allclose(f["forecast_cell"][0], [cell.centre, cell.low, cell.high], rtol=1e-12)
    assert np.isnan(f["forecast_cell"][1:]).all()  # no run measured at those p
    short = noise_dose.inverse_c_forecasts(run_p[1:6], inverse_c[1:6], ps=(0.9, 1.0))  # two runs at p = 1, three at 0.9
    np.testing.assert_array_equal(short["forecast_p"], [1.0])
    assert (short["forecast_runs"][0], short["forecast_missing"][0]) == (2, 1)
    cell = cell_forecast([inverse_c[1:3], inverse_c[3:6]], inverse_c[1:3], 1)
    np.testing.assert_allclose(short["forecast_cell"][0], [cell.centre, cell.low, cell.high], rtol=1e-12)


def test_markdown_gives_the_forecasts(tmp_path):
    _write(tmp_path, FIXTURE)
    data, note = noise_dose.compute(tmp_path)
    d = data["preresnet20 on cifar10-jpeg"]
    assert list(d["forecast_p"]) == [0.85, 0.875, 0.925, 0.95, 0.975]
    text = noise_dose.to_markdown(data, note)
    centre, low, high = d["forecast_line"][1]
    assert (f"forecast of the mask-averaged 1/c of the 2 runs still to come at p = 0.875 (0 measured): line "
            f"{centre:.3f} ({low:.3f} to {high:.3f}), the p's own runs –") in text
