"""nets.trainer / nets.train input guards: finite, bounded numbers; the seed's range; --out checked up front;
nothing written to the run directory before the run is known to start; a config.json that is not an object."""
from __future__ import annotations

import json
import math

import pytest

import nets
import nets.data
from nets import trainer
from nets.trainer import RunConflictError, TrainConfig, train
from nets.train import main
from cli_checks import assert_one_line_exit_2

TINY = dict(model="preresnet8", data="synthetic:64:32", epochs=1, batch_size=32, milestones=(1,), device="cpu")
ARGS = ["--model", "preresnet8", "--epochs", "1", "--no-progress", "--device", "cpu", "--data", "synthetic:64:32"]


@pytest.mark.parametrize("field, value", [("lr", math.inf), ("weight_decay", math.inf), ("lr", 1e300),
                                          ("weight_decay", 1e39), ("p", math.inf),
                                          ("nu", math.nan), ("beta", math.nan), ("h", math.inf),
                                          ("stochastic_depth", math.inf)])
def test_non_finite_or_huge_numbers_are_refused_by_name(field, value):
    with pytest.raises(ValueError, match=rf"^{field} must"):
        TrainConfig(**{**TINY, field: value})


def test_largest_allowed_values_are_accepted():
    config = TrainConfig(**TINY, lr=100, weight_decay=1, seed=2**32 - 1)
    assert config.lr == 100.0 and isinstance(config.lr, float) and config.seed == 2**32 - 1


@pytest.mark.parametrize("seed", [-1, 2**32, 10**20, 1.5, True])
def test_seed_outside_numpy_range_is_refused(seed):
    with pytest.raises(ValueError, match=r"^seed must be an integer in \[0, 2\*\*32 - 1"):
        TrainConfig(**{**TINY, "seed": seed})


@pytest.mark.parametrize("flag, value", [("--lr", "inf"), ("--weight-decay", "inf"), ("--lr", "1e300"),
                                         ("--seed", "4294967296"), ("--seed", "-1")])
def test_cli_refuses_bad_numbers_naming_the_flag_and_writes_nothing(tmp_path, capsys, flag, value):
    out = tmp_path / "r" / "q"
    err = assert_one_line_exit_2(capsys, main, [*ARGS, "--out", str(out), flag, value])
    assert f"error: {flag} must" in err
    assert not (tmp_path / "r").exists()


def test_a_model_that_takes_no_images_is_refused_by_what_it_takes(tmp_path, capsys):
    """mlp_resnet said "unknown option(s) ['in_channels']", an option the user never gave."""
    err = assert_one_line_exit_2(capsys, main, [*ARGS[2:], "--model", "mlp_resnet", "--out", str(tmp_path / "r")])
    assert "model 'mlp_resnet' takes feature vectors, not images" in err and "preresnet8" in err
    assert "in_channels" not in err and not (tmp_path / "r").exists()


def test_a_sweep_over_a_model_that_takes_no_images_is_refused_up_front(tmp_path, capsys):
    """Was accepted (also in --dry-run), and then every run of the model failed."""
    from nets.sweep_cli import main as sweep_main

    err = assert_one_line_exit_2(capsys, sweep_main, ["--models", "preresnet8", "mlp_resnet", "--data",
                                                     "synthetic:64:32", "--out", str(tmp_path / "o"), "--dry-run"])
    assert "model 'mlp_resnet' takes feature vectors, not images" in err and not (tmp_path / "o").exists()


@pytest.mark.parametrize("flags, expect", [(["--noise", "gaussian", "--nu", "-1"], "--nu must be >= 0"),
                                           (["--noise", "uniform", "--beta", "1"], "--beta must be in [0, 1)"),
                                           (["--model", "nope"], "--model must be one of"),
                                           # these three began with prose, so the field was not turned into a flag
                                           (["--noise", "gaussian"], "--nu is needed by noise='gaussian' (nu >= 0)"),
                                           (["--p", "0.5"], "--p needs noise in ['bernoulli', 'gaussian', 'uniform']"),
                                           (["--noise", "bernoulli", "--p", "0.9", "--nu", "0.3"],
                                            "--nu does not apply to noise='bernoulli'; its parameter is p")])
def test_cli_names_the_flag_also_for_the_model_checks_in_train(tmp_path, capsys, flags, expect):
    """The model's own checks (run in train()) said "nu must be >= 0", a field name and not the flag."""
    err = assert_one_line_exit_2(capsys, main, [*ARGS, "--out", str(tmp_path / "r"), *flags])
    assert f"error: {expect}" in err and not (tmp_path / "r").exists()


def test_fixed_seed_after_a_refused_one_trains(tmp_path, capsys):
    out = tmp_path / "s8"
    assert_one_line_exit_2(capsys, main, [*ARGS, "--out", str(out), "--seed", "4294967296"])
    assert main([*ARGS, "--out", str(out), "--seed", "1"]) == 0
    assert json.loads((out / "config.json").read_text())["seed"] == 1


def test_failure_while_building_the_model_leaves_nothing(tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise ValueError("model cannot be built")

    monkeypatch.setattr(nets, "build_model", broken)
    out = tmp_path / "run"
    with pytest.raises(ValueError, match="cannot be built"):
        train(TrainConfig(**TINY), out, progress=False)
    assert not out.exists()
    out.mkdir()  # an existing, empty directory stays empty
    with pytest.raises(ValueError, match="cannot be built"):
        train(TrainConfig(**TINY), out, progress=False)
    assert list(out.iterdir()) == []


def test_config_json_that_is_not_an_object(tmp_path, capsys):
    out = tmp_path / "c1"
    out.mkdir()
    (out / "config.json").write_text("[]")
    with pytest.raises(ValueError, match="config.json: not a JSON object"):
        train(TrainConfig(**TINY), out, progress=False)
    err = assert_one_line_exit_2(capsys, main, [*ARGS, "--out", str(out)])
    assert "config.json: not a JSON object" in err
    assert (out / "config.json").read_text() == "[]"


def test_config_json_only_conflict_says_nothing_was_saved(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.json").write_text(json.dumps(TrainConfig(**TINY).to_dict()))
    with pytest.raises(RunConflictError, match=r"seed: 0 -> 1\) \(config.json only: no epoch was saved; delete it"):
        train(TrainConfig(**{**TINY, "seed": 1}), out, progress=False)


def test_empty_out_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="^out must be a non-empty path"):
        train(TrainConfig(**TINY), "", progress=False)
    err = assert_one_line_exit_2(capsys, main, [*ARGS, "--out", ""])
    assert "error: --out must be a non-empty path" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("where", ["afile", "afile/x", "/proc/x"])
def test_out_that_cannot_be_a_directory_is_refused_before_the_data(tmp_path, capsys, monkeypatch, where):
    (tmp_path / "afile").write_text("")
    monkeypatch.chdir(tmp_path)
    loaded = []
    real = nets.data.load_dataset
    monkeypatch.setattr(nets.data, "load_dataset", lambda *a, **k: loaded.append(a) or real(*a, **k))
    err = assert_one_line_exit_2(capsys, main, [*ARGS, "--out", where])
    assert f"error: --out '{where}'" in err and "Errno" not in err
    assert loaded == []
    with pytest.raises(ValueError, match=f"^out '{where}'"):
        trainer.check_out_dir(where)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


@pytest.mark.parametrize("value", ["0", "1.5", "-1"])
def test_cli_stochastic_depth_out_of_range_says_what_to_do(tmp_path, capsys, value):
    """Said "--stochastic-depth must be None or a float in (0, 1]": None is nothing a user can type."""
    err = assert_one_line_exit_2(capsys, main, [*ARGS, "--out", str(tmp_path / "r"), "--stochastic-depth", value])
    assert "error: --stochastic-depth must be in (0, 1]" in err and "leave it unset" in err
    assert "None" not in err and not (tmp_path / "r").exists()


def test_sweep_cli_stochastic_depth_out_of_range_names_the_range_not_none(tmp_path, capsys):
    from nets.sweep_cli import main as sweep_main

    err = assert_one_line_exit_2(capsys, sweep_main, ["--models", "preresnet8", "--data", "synthetic:64:32", "--out",
                                                     str(tmp_path / "o"), "--dry-run", "--stochastic-depth", "0"])
    assert "--stochastic-depth values" in err and "(0, 1]" in err and "None" not in err and not (tmp_path / "o").exists()


@pytest.mark.parametrize("args,flag", [
    (["--p", "0"], "--p must be in (0, 1]"),
    (["--noise", "gaussian", "--eps", "-1"], "--eps values must be"),
    (["--seeds", "0"], "--seeds must be positive integers"),
    (["--p", "0.9", "--shard", "3/2"], "--shard must be I/N"),
    (["--p", "0.9", "--schedule", "-1"], "--schedule"),
])
def test_sweep_cli_messages_name_the_flag_not_the_config_field(tmp_path, capsys, args, flag):
    from nets.sweep_cli import main as sweep_main

    err = assert_one_line_exit_2(capsys, sweep_main, ["--models", "preresnet8", "--data", "synthetic:64:32", "--out",
                                                     str(tmp_path / "o"), "--dry-run", *args])
    assert flag in err and not (tmp_path / "o").exists()
