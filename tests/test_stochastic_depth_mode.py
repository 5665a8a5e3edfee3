"""Stochastic depth per sample ("sample", the default) or per mini-batch ("batch", Huang et al. 2016 and the
LM-ResNet reference code): the draws, the skipped branch, the plumbing into the trainer, the sweep and the
figures' records, and that the default keeps every existing run's behaviour, name and hash."""
from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from torch import nn

from nets.models import build_model
from nets.models.base import ResidualOptions
from nets.models.blocks import ResidualBlock
from nets.models.noise import STOCHASTIC_DEPTH_MODES, DropPath, linear_decay_survival
from nets.sweep import RunSpec, SweepConfig, expand
from nets.trainer import STOCHASTIC_DEPTH_MODES as TRAINER_MODES
from nets.trainer import RunConflictError, TrainConfig, train

FAST = dict(model="preresnet8", data="synthetic:256:128", epochs=1, batch_size=64, milestones=(1,), device="cpu",
            seed=5, stochastic_depth=0.5)


def tolerance(p: float, n: int, sigmas: float = 5.0) -> float:
    """sigmas binomial standard deviations of a frequency of n Bernoulli(p) draws."""
    return sigmas * math.sqrt(p * (1.0 - p) / n)


class CountingBranch(nn.Module):
    """F(x) = 2 BN(x) (BN without affine), counting its calls."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.norm = nn.BatchNorm1d(width, affine=False)
        self.calls = 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        return 2.0 * self.norm(x)


def test_modes_are_the_same_in_the_models_and_the_torch_free_trainer():
    assert STOCHASTIC_DEPTH_MODES == TRAINER_MODES == ("sample", "batch")
    assert DropPath(0.5).mode == "sample" and ResidualOptions().stochastic_depth_mode == "sample"
    assert TrainConfig().stochastic_depth_mode == "sample"


def test_batch_mode_keeps_or_drops_the_whole_mini_batch_at_rate_p():
    """N = 4000 forwards of p = 0.7: every output is all 1/p or all 0; keep rate within 5 sigma
    (sigma = sqrt(p (1 - p) / N) = 0.0072)."""
    torch.manual_seed(0)
    layer = DropPath(0.7, mode="batch")
    x = torch.ones(16, 3, 2, 2, dtype=torch.float64)
    n, kept = 4000, 0
    for _ in range(n):
        values = torch.unique(layer(x)).tolist()
        assert len(values) == 1 and values[0] in (0.0, pytest.approx(1 / 0.7)), values
        kept += values[0] != 0.0
    assert abs(kept / n - 0.7) < tolerance(0.7, n)


def test_batch_mode_does_not_call_a_dropped_branch_nor_update_its_batch_norm():
    """In a ResidualBlock, a dropped block is the input itself (identity shortcut), its branch is not called and
    its BN statistics are not updated; a kept one is x + h F(x) / p. Keep rate within 5 sigma of p (N = 2000)."""
    torch.manual_seed(1)
    branch = CountingBranch(4)
    block = ResidualBlock(branch, nn.Identity(), survival=0.6, h=0.5, stochastic_depth_mode="batch")
    x = torch.randn(8, 4, dtype=torch.float64)
    branch.double()
    n, kept = 2000, 0
    for _ in range(n):
        out = block(x)
        if out is x or torch.equal(out, x):
            continue
        kept += 1
        torch.testing.assert_close(out, x + 0.5 * 2.0 * nn.functional.batch_norm(x, None, None, training=True) / 0.6)
    assert branch.calls == kept == int(branch.norm.num_batches_tracked)
    assert abs(kept / n - 0.6) < tolerance(0.6, n)
    # "sample" (default) computes the branch at every forward
    sample = ResidualBlock(CountingBranch(4).double(), nn.Identity(), survival=0.6)
    for _ in range(10):
        sample(x)
    assert sample.branch.calls == 10


def test_eval_is_the_deterministic_identity_and_draws_nothing():
    x = torch.randn(6, 3)
    for mode in STOCHASTIC_DEPTH_MODES:
        layer = DropPath(0.3, mode=mode).eval()
        state = torch.get_rng_state()
        assert layer(x) is x
        assert torch.equal(torch.get_rng_state(), state)
        block = ResidualBlock(CountingBranch(3), nn.Identity(), survival=0.3, stochastic_depth_mode=mode).eval()
        outs = [block(x) for _ in range(5)]
        assert block.branch.calls == 5 and all(torch.equal(o, outs[0]) for o in outs)
        assert torch.equal(torch.get_rng_state(), state)


def test_default_mode_is_the_old_per_sample_formula_under_the_same_seed():
    """x * eta / p with eta ~ Bern(p) drawn per sample by bernoulli_ on a (N, 1, ..., 1) float tensor."""
    x = torch.randn(64, 3, 4, 4)
    torch.manual_seed(7)
    out = DropPath(0.7)(x)
    torch.manual_seed(7)
    eta = torch.empty(64, 1, 1, 1).bernoulli_(0.7)
    assert torch.equal(out, x * eta.div_(0.7))
    # and in a block, the branch computed for every sample
    block = ResidualBlock(CountingBranch(5), nn.Identity(), survival=0.8, h=0.5)
    y = torch.randn(32, 5)
    torch.manual_seed(8)
    got = block(y)
    torch.manual_seed(8)
    eta = torch.empty(32, 1).bernoulli_(0.8)
    expected = y + 0.5 * (2.0 * nn.functional.batch_norm(y, None, None, training=True) * eta.div_(0.8))
    assert torch.equal(got, expected)


@pytest.mark.parametrize("name, options, shape", [
    ("preresnet8", {}, (2, 3, 8, 8)),
    ("lm_preresnet8", {}, (2, 3, 8, 8)),
    ("shake_preresnet26", {"width": 2}, (2, 3, 8, 8)),
    ("mlp_resnet", {"depth": 4}, (2, 2)),
])
def test_every_family_drops_whole_blocks_at_the_linear_decay_rates(name, options, shape):
    """Branch calls per block over N = 300 training forwards within 5 sigma of the block's p_l (p_L = 0.5)."""
    torch.manual_seed(2)
    model = build_model(name, stochastic_depth=0.5, stochastic_depth_mode="batch", **options).train()
    calls = [0] * model.num_blocks
    for i, block in enumerate(model.blocks):
        assert block.drop_path.mode == "batch"
        block.branch.register_forward_hook(lambda *_, i=i: calls.__setitem__(i, calls[i] + 1))
    x = torch.randn(*shape)
    n = 300
    with torch.no_grad():
        for _ in range(n):
            model(x)
    for count, p in zip(calls, linear_decay_survival(0.5, model.num_blocks)):
        assert abs(count / n - p) < tolerance(p, n), (count, p)


def test_lm_recurrence_with_dropped_blocks():
    """A dropped LM block is u_{n+1} = S((1 - k_n) u_n + k_n u_{n-1}): replay the draws by hand."""
    model = build_model("lm_preresnet8", stochastic_depth=0.3, stochastic_depth_mode="batch").double().train()
    with torch.no_grad():
        model.lm_k.copy_(torch.tensor([-0.3, -0.2, -0.4]))
    survival = linear_decay_survival(0.3, 3)
    x = torch.randn(4, 16, 8, 8, dtype=torch.float64)
    patterns = set()
    for seed in range(12):
        torch.manual_seed(seed)
        got = model.flow(x)
        torch.manual_seed(seed)
        current, previous, pattern = x, torch.zeros_like(x), []
        for n, block in enumerate(model.blocks):
            keep = bool(torch.empty((), dtype=torch.float64).bernoulli_(survival[n]))
            pattern.append(keep)
            k = model.lm_k[n]
            mixed = (1 - k) * current + k * previous
            step = block.shortcut(mixed)
            if keep:
                step = step + block.branch(current) / survival[n]
            previous, current = block.shortcut(current), step
        patterns.add(tuple(pattern))
        torch.testing.assert_close(got, current)
    assert any(not all(p) for p in patterns) and any(p[0] for p in patterns), patterns


def test_options_refuse_a_bad_mode_and_batch_without_stochastic_depth():
    for make in (lambda **kw: ResidualOptions(**kw), lambda **kw: TrainConfig(**kw)):
        with pytest.raises(ValueError, match=r"^stochastic_depth_mode must be one of sample, batch; got 'Batch'$"):
            make(stochastic_depth=0.5, stochastic_depth_mode="Batch")
        with pytest.raises(ValueError, match=r"^stochastic_depth_mode.*batch.*needs.*stochastic_depth") as error:
            make(stochastic_depth_mode="batch")
        assert "\n" not in str(error.value)
        make(stochastic_depth_mode="sample")  # the default is accepted alone, as h is
    with pytest.raises(ValueError, match="stochastic_depth_mode"):
        build_model("preresnet8", stochastic_depth_mode="batch")


@pytest.mark.parametrize("module, argv, words", [
    ("nets.train", ["--model", "preresnet8", "--stochastic-depth", "0.5", "--stochastic-depth-mode", "bogus"],
     ("--stochastic-depth-mode", "'sample', 'batch'")),
    ("nets.train", ["--model", "preresnet8", "--stochastic-depth-mode", "batch"],
     ("--stochastic-depth-mode batch needs stochastic_depth",)),
    ("nets.sweep", ["--models", "preresnet8", "--stochastic-depth", "0.5", "--stochastic-depth-mode", "bogus"],
     ("--stochastic-depth-mode", "'sample', 'batch'")),
    ("nets.sweep", ["--models", "preresnet8", "--stochastic-depth-mode", "batch", "--dry-run"],
     ("--stochastic-depth-mode batch needs stochastic_depth",)),
])
def test_cli_bad_mode_exits_2_with_one_line(tmp_path, module, argv, words):
    result = subprocess.run([sys.executable, "-m", module, *argv, "--data", "synthetic", "--out",
                             str(tmp_path / "o")], capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr
    assert all(word in result.stderr for word in words) and "Traceback" not in result.stderr, result.stderr
    assert not (tmp_path / "o").exists()


def test_sweep_name_and_hash_unchanged_by_the_default_and_changed_by_batch(tmp_path):
    run = RunSpec(model="lm_preresnet20", noise=None, p=None, nu=None, beta=None, stochastic_depth=0.5, h=None,
                  epochs=160, batch_size=None, seed=0, data="digits", schedule=(80, 120))
    canonical = ('{"data":"digits","epochs":160,"model":"lm_preresnet20","schedule":[80,120],'
                 '"stochastic_depth":0.5}')
    assert run.config_hash == hashlib.sha256(canonical.encode()).hexdigest()[:8]
    assert run.name == "lm_preresnet20-plain-sd0.5-e160-s0-8783b625"  # a run of results/digits_lm
    assert "--stochastic-depth-mode" not in run.train_args(Path("o"))
    batch = replace(run, stochastic_depth_mode="batch")
    assert batch.config_hash != run.config_hash
    assert batch.config_hash == hashlib.sha256(
        canonical.replace("}", ',"stochastic_depth_mode":"batch"}').encode()).hexdigest()[:8]
    assert batch.name == f"lm_preresnet20-plain-sd0.5-sdbatch-e160-s0-{batch.config_hash}"
    argv = batch.train_args(Path("o"))
    assert argv[argv.index("--stochastic-depth-mode") + 1] == "batch"
    # a sweep in batch mode: the runs without stochastic depth keep "sample" and their names
    runs = expand(SweepConfig(models=("preresnet8",), stochastic_depth=(None, 0.5), stochastic_depth_mode="batch",
                              data="synthetic", out=tmp_path))
    default = expand(SweepConfig(models=("preresnet8",), stochastic_depth=(None, 0.5), data="synthetic", out=tmp_path))
    assert [r.stochastic_depth_mode for r in runs] == ["sample", "batch"]
    assert runs[0].name == default[0].name and runs[1].name != default[1].name
    with pytest.raises(ValueError, match="stochastic_depth_mode batch needs stochastic_depth"):
        expand(SweepConfig(models=("preresnet8",), stochastic_depth_mode="batch", data="synthetic", out=tmp_path))


def test_batch_mode_is_recorded_and_resume_refuses_another_mode(tmp_path):
    import h5py

    torch.set_num_threads(1)
    batch = TrainConfig(**FAST, stochastic_depth_mode="batch")
    result = train(batch, tmp_path / "batch", progress=False)
    assert result.finished
    with h5py.File(result.metrics_path) as f:
        assert f.attrs["stochastic_depth_mode"] == "batch"
        assert json.loads(f.attrs["config_json"])["stochastic_depth_mode"] == "batch"
        # the rms noise level of stochastic depth (LM-ResNet paper 3.2): p_L = 0.5 over preresnet8's 3 blocks,
        # p_l = 5/6, 2/3, 1/2: eps^2 = (1/3)(1/5 + 1/2 + 1)/3 = 17/90
        assert f.attrs["stochastic_depth_epsilon"] == pytest.approx(math.sqrt(17 / 90), rel=1e-14)
        assert f.attrs["epsilon"] == 0.0
    with pytest.raises(RunConflictError, match=r"stochastic_depth_mode: 'batch' -> 'sample'"):
        train(TrainConfig(**FAST), tmp_path / "batch", progress=False)
    # a run recorded before the field existed (config.json without it) means "sample"
    old = tmp_path / "old"
    old.mkdir()
    recorded = TrainConfig(**FAST).to_dict()
    recorded.pop("stochastic_depth_mode")
    (old / "config.json").write_text(json.dumps(recorded))
    with pytest.raises(RunConflictError, match=r"stochastic_depth_mode: 'sample' -> 'batch'"):
        train(batch, old, progress=False)
    assert train(TrainConfig(**FAST), old, progress=False).finished


def test_batch_mode_run_is_seeded(tmp_path):
    """Two runs of one seed in batch mode train identically (the draws come from the seeded generator)."""
    from nets.metrics import read_metrics

    torch.set_num_threads(1)
    config = TrainConfig(**{**FAST, "stochastic_depth": 0.2}, stochastic_depth_mode="batch")
    a, b = (read_metrics(train(config, tmp_path / name, progress=False).out_dir) for name in ("a", "b"))
    assert list(a.train_loss) == list(b.train_loss) and list(a.test_acc) == list(b.test_acc)


def _patch_mode(path: Path, mode: str) -> None:
    import h5py

    with h5py.File(path / "metrics.h5", "r+") as h5:
        h5.attrs["stochastic_depth_mode"] = mode
        h5.attrs["config_json"] = json.dumps({**json.loads(h5.attrs["config_json"]), "stochastic_depth_mode": mode})


def test_figures_never_pool_the_two_modes(tmp_path):
    sys.path.insert(0, str(Path(__file__).parent))
    from fixtures_results import write_metrics

    from figures.results import CONFIG_FIELDS, collect_runs, select, summary_rows

    assert "stochastic_depth_mode" in CONFIG_FIELDS
    for seed in range(3):  # recorded before the field existed: "sample"
        write_metrics(tmp_path / f"old{seed}", model="lm_preresnet20", seed=seed, noise=None, p=None,
                      stochastic_depth=0.5, test_acc=[0.5, 0.8], train_loss=[1.0, 0.5])
    for seed in range(2):
        write_metrics(tmp_path / f"batch{seed}", model="lm_preresnet20", seed=seed, noise=None, p=None,
                      stochastic_depth=0.5, test_acc=[0.5, 0.6], train_loss=[1.0, 0.7])
        _patch_mode(tmp_path / f"batch{seed}", "batch")
    write_metrics(tmp_path / "plain", model="lm_preresnet20", seed=0, noise=None, p=None, test_acc=[0.5, 0.7],
                  train_loss=[1.0, 0.6])
    records = collect_runs(tmp_path)
    assert sorted(r.stochastic_depth_mode for r in records) == ["batch"] * 2 + ["sample"] * 4
    rows = {(row["stochastic_depth"], row["stochastic_depth_mode"]): row["n_runs"] for row in summary_rows(records)}
    assert rows == {(0.5, "sample"): 3, (0.5, "batch"): 2, (None, "sample"): 1}
    selection = select(tmp_path, lambda r: True)
    assert sorted(r.path.name for r in selection.records) == ["old0", "old1", "old2", "plain"]
    assert selection.other_mode == 2 and "2 run(s) of the other mode left out" in selection.note()


@pytest.mark.parametrize("model, options", [
    ("shake_preresnet26", {}),
    ("preresnet8", {"noise": "bernoulli", "p": 0.9}),
    ("preresnet8", {"stochastic_depth": 0.5, "stochastic_depth_mode": "batch"}),
])
def test_every_block_calls_its_shortcut_before_its_branch(model, options):
    """Autograd sums the gradients of x's consumers in the order they were used: a block that ran its branch
    before its shortcut gave shake-shake gradients that differ in the last bits from every run recorded
    before stochastic_depth_mode existed, so those runs no longer reproduced or resumed bit-identically."""
    torch.manual_seed(0)
    net = build_model(model, **options).train()
    calls: list[tuple[int, str]] = []
    blocks = [m for m in net.modules() if isinstance(m, ResidualBlock)]
    for index, block in enumerate(blocks):
        block.shortcut.register_forward_pre_hook(lambda *_, i=index: calls.append((i, "shortcut")))
        block.branch.register_forward_pre_hook(lambda *_, i=index: calls.append((i, "branch")))
    net(torch.randn(4, 3, 32, 32))
    for index in range(len(blocks)):
        order = [what for i, what in calls if i == index]
        assert order[0] == "shortcut" and set(order) <= {"shortcut", "branch"}
