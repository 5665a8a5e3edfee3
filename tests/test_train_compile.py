"""nets.trainer with compile=True on the CPU: torch.compile (inductor) trains, and what it saves is the plain model.

The compiled path runs on CUDA in the real runs; here it runs with inductor's CPU backend, which needs the
C++ compiler this machine has. One compile of the training and the evaluation graphs costs about half a
minute, so this file holds a single run and several checks on it.
"""
from __future__ import annotations

import math

import pytest
import torch

import nets
from nets.augment import Normalizer
from nets.checkpoint import load_checkpoint
from nets.data import load_dataset
from nets.epoch import evaluate
from nets.metrics import read_metrics
from nets.trainer import TrainConfig, train

DATA = "synthetic:256:128"


@pytest.fixture(scope="module")
def compiled_run(tmp_path_factory):
    torch.set_num_threads(1)
    out = tmp_path_factory.mktemp("compiled") / "run"
    config = TrainConfig(model="preresnet8", noise="bernoulli", p=0.9, data=DATA, epochs=2, batch_size=64,
                         milestones=(2,), device="cpu", compile=True)
    return config, train(config, out, progress=False)


def test_compiled_training_learns_and_records_compile(compiled_run):
    config, result = compiled_run
    m = read_metrics(result.metrics_path)
    assert result.finished and m.epochs_completed == 2 and m.finished
    assert m.train_loss[0] < math.log(10) + 0.5 and m.train_loss[1] < m.train_loss[0]
    assert m.test_acc[-1] > 0.25  # chance is 0.1
    assert m.config["compile"] is True


def test_checkpoint_holds_the_plain_model_and_reproduces_the_recorded_test_loss(compiled_run):
    """The saved state_dict is the uncompiled module's (no `_orig_mod.` prefix) and loads strictly into a
    freshly built model whose eager evaluation gives the test loss the compiled run recorded."""
    config, result = compiled_run
    ckpt = load_checkpoint(result.checkpoint_path)
    assert not any(key.startswith("_orig_mod.") for key in ckpt["model"])
    dataset = load_dataset(DATA)
    model = nets.build_model(config.model, num_classes=dataset.num_classes, in_channels=dataset.in_channels,
                             **config.model_options())
    model.load_state_dict(ckpt["model"], strict=True)
    normalizer = Normalizer.from_stats(*dataset.channel_stats())
    loss, acc = evaluate(model, normalizer, torch.from_numpy(dataset.test_images),
                         torch.from_numpy(dataset.test_labels), batch_size=config.eval_batch_size)
    recorded = read_metrics(result.metrics_path)
    assert loss == pytest.approx(recorded.test_loss[-1], rel=1e-4)
    assert abs(acc - recorded.test_acc[-1]) <= 2 / len(dataset.test_labels)  # at most a borderline image or two


def test_a_finished_compiled_run_is_reported_finished_without_compiling(compiled_run, monkeypatch):
    """Running the same command again returns at once; compile is an execution field, so eager may ask too."""
    config, result = compiled_run
    monkeypatch.setattr(torch, "compile", lambda *a, **k: pytest.fail("a finished run must not compile"))
    again = train(TrainConfig(**{**config.to_dict(), "compile": False, "milestones": config.milestones}),
                  result.out_dir, progress=False)
    assert again.already_finished and again.epochs_completed == 2
    assert again.final_test_acc == result.final_test_acc
