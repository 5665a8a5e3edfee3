"""lm_parameters (LM-ResNet paper Fig. 2) on FIXTURE runs written here (tests/fixtures_results.py).

Expected points are the recorded parameter counts and the means / sample standard deviations of the final
test errors the fixtures wrote, computed here with numpy, independently of figures/.
"""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from fixtures_results import curves, write_metrics
from figures import lm_parameters, registry
from figures.output import MissingResults

#: FIXTURE parameter counts per (family, depth): invented, distinct per depth and family
PARAMETERS = {(None, 20): 270_000, ("zero", 20): 270_009, (None, 56): 850_000, ("zero", 56): 850_027}


def write_runs(root, depths=(20, 56), starts=(None, "zero"), seeds=3, sds=(None,), seed=0):
    """ResNet and LM-ResNet FIXTURE runs; returns (start, sd, depth) -> final test errors (%)."""
    rng = np.random.default_rng(seed)
    errors = {}
    for depth in depths:
        for start in starts:
            model = f"preresnet{depth}" if start is None else f"lm_preresnet{depth}"
            for sd in sds:
                for s in range(seeds):
                    test_acc, train_loss = curves(rng, 4, float(rng.uniform(0.05, 0.1)), 0.2)
                    write_metrics(root / f"{model}-{sd}-{s}", model=model, seed=s, noise=None, p=None, stochastic_depth=sd,
                                  test_acc=test_acc, train_loss=train_loss, num_parameters=PARAMETERS[(start, depth)],
                                  lm_k=rng.uniform(-1, 0, (4, 3)) if start else None)
                    errors.setdefault((start, sd, depth), []).append(100.0 * (1.0 - test_acc[-1]))
    return errors


def test_points_are_parameter_counts_against_mean_and_std_of_the_final_error(tmp_path):
    errors = write_runs(tmp_path, sds=(None, 0.5))
    data, _ = lm_parameters.compute(tmp_path)
    assert list(data) == ["ResNet", "LM-ResNet", "ResNet + SD (p_L = 0.5)", "LM-ResNet + SD (p_L = 0.5)"]
    for label, d in data.items():
        start, sd = d["lm_start"], d["stochastic_depth"]
        assert d["depth"].tolist() == [20, 56]
        assert d["num_parameters"].tolist() == [PARAMETERS[(start, 20)], PARAMETERS[(start, 56)]]
        expected = [errors[(start, sd, depth)] for depth in (20, 56)]
        np.testing.assert_allclose(d["error_mean"], [np.mean(e) for e in expected])
        np.testing.assert_allclose(d["error_std"], [np.std(e, ddof=1) for e in expected])
        assert d["n_runs"].tolist() == [3, 3]


def test_make_writes_figure_and_numbers_with_depth_labels(tmp_path):
    import matplotlib.pyplot as plt

    write_runs(tmp_path / "runs")
    data, note = lm_parameters.compute(tmp_path / "runs")
    fig = lm_parameters.draw(data, note)
    try:
        ax = fig.axes[0]
        assert ax.get_xscale() == "log"
        assert sorted(t.get_text() for t in ax.texts) == ["20", "20", "56", "56"]
    finally:
        plt.close(fig)
    paths = lm_parameters.make(tmp_path / "out", results=tmp_path / "runs")
    assert [p.name for p in paths] == ["lm_parameters.png", "lm_parameters.pdf", "lm_parameters.h5"]
    with h5py.File(paths[-1], "r") as h5:
        assert h5["LM-ResNet/num_parameters"][()].tolist() == [270_009, 850_027]


def test_one_depth_is_not_a_size_comparison(tmp_path):
    """LM runs at a single depth (as the CPU runs of docs/experiments.md section 9): the sweep over the paper's
    depths is printed and nothing is written; a ResNet column at one depth beside LM runs at two is left out."""
    write_runs(tmp_path / "one", depths=(20,))
    with pytest.raises(MissingResults) as missing:
        lm_parameters.make(tmp_path / "out", results=tmp_path / "one")
    assert "depth 20 only" in str(missing.value)
    assert "lm_preresnet32" in missing.value.command and "--epochs 160 --schedule 80 120" in missing.value.command
    assert not (tmp_path / "out").exists()
    write_runs(tmp_path / "mixed", depths=(20, 56), starts=("zero",))
    write_runs(tmp_path / "mixed" / "resnet", depths=(20,), starts=(None,), seed=1)
    data, _ = lm_parameters.compute(tmp_path / "mixed")
    assert list(data) == ["LM-ResNet"]


def test_disagreeing_parameter_counts_within_a_depth_are_refused(tmp_path):
    write_runs(tmp_path)
    rng = np.random.default_rng(9)
    test_acc, train_loss = curves(rng, 4, 0.08, 0.2)
    write_metrics(tmp_path / "odd", model="preresnet56", seed=7, noise=None, p=None, test_acc=test_acc,
                  train_loss=train_loss, num_parameters=1)
    with pytest.raises(ValueError, match="preresnet56 record 2 parameter counts"):
        lm_parameters.compute(tmp_path)


def test_registered_for_figures_all():
    assert registry.load("lm_parameters") is lm_parameters
