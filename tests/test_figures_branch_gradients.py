"""figures.branch_gradients: saved nets.branch_gradients measurements (fixtures written here with to_json) drawn
per block at each run's start and end."""
from __future__ import annotations

import shlex
from pathlib import Path

import h5py
import numpy as np
import pytest

from figures import branch_gradients as figure
from figures.output import MissingResults
from figures.registry import figure_names
from nets.branch_gradients import (BranchGradient, LayerInputGradient, RunBranchGradients, TensorGradient,
                                   to_json)

BLOCKS = ("blocks.0", "blocks.1")
LAYERS = ("conv1", "bn2", "conv2")


def measured_block(name: str, scale: float) -> BranchGradient:
    """A block whose numbers are all multiples of `scale`, distinct per field."""
    return BranchGradient(block=name, h=0.5, stream_rms=2.0 * scale, upstream=3.0 * scale, branch_grad=5.0 * scale,
                          tensors=(TensorGradient(f"{name}.branch.conv1.weight", 4.0 * scale, 1.0),),
                          layer_inputs=tuple(LayerInputGradient(f"{name}.branch.{layer}", (i + 7.0) * scale)
                                             for i, layer in enumerate(LAYERS)))


def measured_run(run: str, setting: str, seed: int, moments=("start", "end")) -> RunBranchGradients:
    scales = {"start": 1.0 + seed, "end": 10.0 * (1.0 + seed)}
    return RunBranchGradients(run=Path(run), model="preresnet8", epoch=3, n_images=64, batch_size=32,
                              moments=moments,
                              blocks=tuple(tuple(measured_block(b, scales[m] * (k + 1)) for k, b in enumerate(BLOCKS))
                                           for m in moments),
                              settings={"code_version": "abc1234"}, trained_with=setting, seed=seed)


def write(results: Path, name: str, runs: list[RunBranchGradients]) -> Path:
    path = results / "branch_gradients" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(to_json(runs))
    return path


def test_without_measurements_it_names_the_command_that_makes_them(tmp_path):
    with pytest.raises(MissingResults) as missing:
        figure.compute(tmp_path)
    assert "python -m nets.branch_gradients" in missing.value.command
    sweep, measure = missing.value.command.split(" && ")
    from nets.branch_gradients import build_parser
    from nets.sweep_cli import build_parser as sweep_parser

    sweep_parser().parse_args(shlex.split(sweep)[3:])
    args = build_parser().parse_args(shlex.split(measure)[3:])
    assert args.save == str(tmp_path / "branch_gradients" / "digits_preresnet8.json")
    write(tmp_path, "end_only.json", [measured_run("runs/a", "no noise", 0, moments=("end",))])
    with pytest.raises(MissingResults, match="both the start and the end"):
        figure.compute(tmp_path)


def test_the_saved_numbers_are_drawn_per_setting_and_run(tmp_path):
    write(tmp_path, "one.json", [measured_run("runs/b1", "no noise, h=0.01", 1), measured_run("runs/a0", "no noise", 0)])
    write(tmp_path, "sub/two.json", [measured_run("runs/b0", "no noise, h=0.01", 0)])
    data, note = figure.compute(tmp_path)
    assert list(data) == ["preresnet8: no noise", "preresnet8: no noise, h=0.01"]
    small_h = data["preresnet8: no noise, h=0.01"]
    assert small_h["seeds"].tolist() == [0, 1] and small_h["runs"] == ["runs/b0", "runs/b1"]
    assert small_h["blocks"] == list(BLOCKS) and small_h["layers"] == list(LAYERS)
    # seed s, block k: start scale (1 + s)(k + 1), end ten times that
    scale = np.array([[1.0, 2.0], [2.0, 4.0]])
    np.testing.assert_array_equal(small_h["upstream_start"], 3.0 * scale)
    np.testing.assert_array_equal(small_h["branch_grad_end"], 50.0 * scale)
    np.testing.assert_array_equal(small_h["transfer_end"], np.full((2, 2), 5.0 / 3.0))
    np.testing.assert_array_equal(small_h["scale_free_upstream_start"], 6.0 * scale ** 2)
    # the first block's gains: conv1 7/8, bn2 8/9, conv2 9/3 (its input gradient over U)
    np.testing.assert_allclose(small_h["first_block_gains_end"], np.tile([7 / 8, 8 / 9, 9 / 3], (2, 1)))
    assert "3 runs from 2 file(s)" in note and "64 training images in batches of 32" in note and "abc1234" in note

    written = figure.make(tmp_path / "out", results=tmp_path)
    assert sorted(p.suffix for p in written) == [".h5", ".pdf", ".png"]
    with h5py.File(tmp_path / "out" / "branch_gradients.h5") as saved:
        np.testing.assert_array_equal(saved["preresnet8: no noise, h=0.01"]["upstream_start"][()], 3.0 * scale)
        assert "3 runs" in saved.attrs["note"]


def test_a_run_measured_twice_or_a_foreign_file_is_refused(tmp_path):
    write(tmp_path, "one.json", [measured_run("runs/a", "no noise", 0)])
    write(tmp_path, "two.json", [measured_run("runs/a", "no noise", 0)])
    with pytest.raises(ValueError, match="measured twice"):
        figure.compute(tmp_path)
    (tmp_path / "branch_gradients" / "two.json").write_text('{"not": "it"}')
    with pytest.raises(ValueError, match="two.json: not the JSON of nets.branch_gradients"):
        figure.compute(tmp_path)


def test_registered():
    assert "branch_gradients" in figure_names()
