"""The trainer on a CUDA device: augmentation, noise masks, training, resume, fp32 and bf16 numerics.

Marked `cuda` and deselected by default (setup.cfg addopts `-m "not cuda"`); run them with
`python -m pytest -m cuda tests/test_cuda.py` on a machine with a GPU (benchmarks/gpu_session.py does).
Each test is also skipped when torch sees no CUDA device, so `-m cuda` on a CPU machine collects
them and reports them skipped.

What is checked against what:
- nets.augment: the same seed gives bit-identical uint8 crops, flips and order on CUDA and on CPU (the
  random numbers come from one CPU generator), equal to numpy's pad-and-slice definition; the
  normalized floats agree to float32 rounding.
- Noise masks m_k of (3.1), (3.13), (3.14) as the network draws them on CUDA (channels_last, fp32 and
  bf16 autocast): mean 1 and variance (1-p)/p, nu^2, beta^2/3 within 6 standard errors computed from
  the exact fourth central moment; eval mode is the deterministic network.
- nets.trainer.train on CUDA (bf16 autocast, channels_last, optionally torch.compile) learns the
  synthetic data far beyond chance (0.1) and records the GPU's name in metrics.h5.
- A CUDA run SIGKILLed after its first checkpoint resumes and finishes (not bit-identical on CUDA: cuDNN
  autotuning and atomics reorder sums; the CPU test tests/test_train_resume.py checks bit-identity).
- fp32 forward of preresnet20 on CUDA (TF32 off) equals the CPU's to 1e-4 relative; bf16 autocast stays
  within 5e-2 relative of fp32 (observed on CPU: 3e-3 to 5e-3).
- nets.noise_response on CUDA (both estimators): J_0 equal to the CPU's to 1e-4 relative, J_eps within 5
  combined standard errors (other draws), the GPU recorded as the device.
"""
from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

import nets
from nets.augment import Augmenter, Normalizer, crop_flip, random_crop_flip
from nets.checkpoint import load_checkpoint
from nets.metrics import read_metrics
from nets.models.noise import MultiplicativeNoise, NoiseSpec

CUDA_AVAILABLE = torch.cuda.is_available()
pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not CUDA_AVAILABLE, reason="needs a CUDA device")]

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CUDA = torch.device("cuda")
NOISE_CASES = [("bernoulli", 0.9), ("bernoulli", 0.5), ("gaussian", 0.3), ("uniform", 0.5)]


@pytest.fixture
def exact_fp32():
    """True fp32 on the GPU for comparisons with the CPU: no TF32 in cuDNN or cuBLAS, fixed cuDNN algorithms."""
    saved = (torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic,
             torch.backends.cuda.matmul.allow_tf32)
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        (torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic,
         torch.backends.cuda.matmul.allow_tf32) = saved


def _relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """||actual - expected|| / ||expected|| in float64, on the CPU."""
    a, e = actual.detach().double().cpu(), expected.detach().double().cpu()
    return float((a - e).norm() / e.norm())


# ---------------------------------------------------------------- augmentation


def test_augmentation_is_bit_identical_on_cuda_and_cpu():
    n, batch, pad = 300, 128, 4
    images = torch.from_numpy(np.random.default_rng(0).integers(0, 256, size=(n, 3, 32, 32), dtype=np.uint8))
    images_gpu = images.to(CUDA)
    normalizer = Normalizer((0.49, 0.48, 0.45), (0.25, 0.24, 0.26))
    cpu, gpu = Augmenter(normalizer, pad=pad, seed=7), Augmenter(normalizer, pad=pad, seed=7)
    flips_seen = 0
    for _epoch in range(2):
        plan_cpu, plan_gpu = cpu.plan_epoch(n, "cpu"), gpu.plan_epoch(n, CUDA)
        for name in ("order", "dy", "dx", "flips"):
            assert getattr(plan_gpu, name).device.type == "cuda"
            assert torch.equal(getattr(plan_cpu, name), getattr(plan_gpu, name).cpu()), name
        for start in range(0, n, batch):
            stop = min(start + batch, n)
            window = slice(start, stop)
            crops_cpu = crop_flip(images[plan_cpu.order[window]], pad, plan_cpu.dy[window], plan_cpu.dx[window],
                                  plan_cpu.flips[window])
            crops_gpu = crop_flip(images_gpu[plan_gpu.order[window]], pad, plan_gpu.dy[window], plan_gpu.dx[window],
                                  plan_gpu.flips[window])
            assert crops_gpu.dtype == torch.uint8 and crops_gpu.device.type == "cuda"
            assert torch.equal(crops_cpu, crops_gpu.cpu())
            for k in (0, stop - start - 1):  # the definition: zero-pad, slice, mirror
                i = int(plan_cpu.order[start + k])
                dy, dx, flip = int(plan_cpu.dy[start + k]), int(plan_cpu.dx[start + k]), bool(plan_cpu.flips[start + k])
                padded = np.pad(images[i].numpy(), ((0, 0), (pad, pad), (pad, pad)))
                expected = padded[:, dy:dy + 32, dx:dx + 32]
                expected = expected[:, :, ::-1] if flip else expected
                assert np.array_equal(crops_gpu[k].cpu().numpy(), expected)
                flips_seen += flip
            x_cpu, x_gpu = cpu.apply(images, plan_cpu, start, stop), gpu.apply(images_gpu, plan_gpu, start, stop)
            assert x_gpu.dtype == torch.float32 and x_gpu.device.type == "cuda"
            torch.testing.assert_close(x_gpu.cpu(), x_cpu, rtol=1e-6, atol=1e-6)
        assert torch.equal(cpu.get_state(), gpu.get_state())
    assert 0 < flips_seen < 12  # both branches of the flip were exercised
    g_cpu, g_gpu = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    assert torch.equal(random_crop_flip(images, pad, True, g_cpu), random_crop_flip(images_gpu, pad, True, g_gpu).cpu())
    torch.testing.assert_close(normalizer(images_gpu).cpu(), normalizer(images), rtol=1e-6, atol=1e-6)


# ---------------------------------------------------------------- noise masks


def _fourth_central_moment(spec: NoiseSpec) -> float:
    """E[(m - 1)^4] of one mask entry: Bernoulli (1-p)^4/p^3 + (1-p), Gaussian 3 nu^4, uniform beta^4/5."""
    v = spec.value
    if spec.kind == "bernoulli":
        return (1 - v) ** 4 / v**3 + (1 - v)
    if spec.kind == "gaussian":
        return 3 * v**4
    return v**4 / 5


def _assert_moments(m: torch.Tensor, spec: NoiseSpec) -> None:
    """Sample mean within 6 standard errors of 1, sample variance within 6 of spec.variance.

    The variance's standard error is sqrt((mu4 - sigma^4) / n); the term 36 sigma^2 / n covers the bias
    (mean_hat - 1)^2 of the plug-in variance, which dominates where mu4 = sigma^4 (Bernoulli p = 1/2).
    """
    m = m.double().flatten()
    n = m.numel()
    var = spec.variance
    mean_hat, var_hat = float(m.mean()), float(m.var(correction=0))
    assert abs(mean_hat - 1.0) <= 6 * math.sqrt(var / n) + 1e-12, (mean_hat, n)
    bound = 6 * math.sqrt((_fourth_central_moment(spec) - var**2) / n) + 36 * var / n
    assert abs(var_hat - var) <= bound, (var_hat, var, n)


@pytest.mark.parametrize("kind, value", NOISE_CASES)
def test_noise_layer_masks_on_cuda_have_the_right_moments(kind, value):
    spec = NoiseSpec(kind, value)
    torch.manual_seed(0)
    layer = MultiplicativeNoise(spec).train()
    x = torch.ones(16, 64, 64, 64, device=CUDA).contiguous(memory_format=torch.channels_last)  # 4.2M entries
    m = layer(x)
    assert m.device.type == "cuda" and m.is_contiguous(memory_format=torch.channels_last)
    _assert_moments(m, spec)
    if kind == "bernoulli":  # exactly the two values 0 and 1/p, as float32 division by p gives it on the device
        assert set(torch.unique(m).tolist()) == {0.0, float(torch.ones(8, device=CUDA).div_(value)[0])}
    elif kind == "uniform":
        assert float(m.min()) >= 1 - value and float(m.max()) <= 1 + value
    assert not torch.equal(m, layer(x))  # a fresh mask at every call
    layer.eval()
    assert torch.equal(layer(x), x)


def _branch_multipliers(model, x, amp: bool) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """(input, output) of every MultiplicativeNoise layer in one forward pass of model on x."""
    seen = []
    hooks = [mod.register_forward_hook(lambda _m, inp, out: seen.append((inp[0].detach(), out.detach())))
             for mod in model.modules() if isinstance(mod, MultiplicativeNoise)]
    try:
        with torch.no_grad(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=amp):
            model(x)
    finally:
        for hook in hooks:
            hook.remove()
    return seen


@pytest.mark.parametrize("amp", [False, True], ids=["fp32", "bf16"])
@pytest.mark.parametrize("kind, value", NOISE_CASES)
def test_branch_multiplier_of_the_network_on_cuda(kind, value, amp):
    spec = NoiseSpec(kind, value)
    torch.manual_seed(1)
    model = nets.build_model("preresnet8", noise=kind, **{spec.parameter: value}).to(CUDA)
    model = model.to(memory_format=torch.channels_last).train()
    x = torch.randn(128, 3, 32, 32, device=CUDA).contiguous(memory_format=torch.channels_last)
    pairs = _branch_multipliers(model, x, amp)
    assert len(pairs) == model.num_blocks
    ratios, kept, total = [], 0, 0
    for inp, out in pairs:
        channels_last = inp.is_contiguous(memory_format=torch.channels_last)
        assert out.is_contiguous(memory_format=torch.channels_last) == channels_last
        assert out.dtype == (torch.bfloat16 if amp else torch.float32)
        nonzero = inp != 0
        ratio = out.float()[nonzero] / inp.float()[nonzero]
        ratios.append(ratio)
        kept += int((ratio != 0).sum())
        total += ratio.numel()
    ratio = torch.cat(ratios)
    assert total > 3_000_000
    if kind == "bernoulli":
        # gamma / p with gamma ~ Bern(p): the fraction kept is Binomial(total, p) / total
        assert abs(kept / total - value) <= 6 * math.sqrt(value * (1 - value) / total)
        survivors = ratio[ratio != 0]
        tol = 1e-2 if amp else 1e-5  # bf16 rounds the product x * (1/p) to 8 bits
        assert float((survivors - 1 / value).abs().max()) <= tol / value
        # and without bias: 1/p is applied in float32 and only the product is rounded (a bf16 mask would
        # make every survivor round(1/p), 0.9984 / p at p = 0.9)
        assert abs(float(survivors.double().mean()) * value - 1.0) <= 5e-4
    if not amp:  # in bf16 the product's rounding blurs the variance; fp32 ratios are the masks to 1e-6
        _assert_moments(ratio, spec)
    else:
        assert abs(float(ratio.double().mean()) - 1.0) <= 6 * math.sqrt(spec.variance / total) + 1e-2


def test_eval_mode_is_the_deterministic_network(exact_fp32):
    torch.manual_seed(2)
    noisy = nets.build_model("preresnet20", noise="bernoulli", p=0.9).to(CUDA)
    plain = nets.build_model("preresnet20").to(CUDA)
    x = torch.randn(64, 3, 32, 32, device=CUDA)
    noisy.train()
    with torch.no_grad():
        assert not torch.equal(noisy(x), noisy(x))  # training: a fresh mask per pass
    plain.load_state_dict(noisy.state_dict())  # weights and the running statistics those passes updated
    noisy.eval()
    plain.eval()
    with torch.no_grad():
        first = noisy(x)
        assert torch.equal(first, noisy(x))
        assert torch.equal(first, plain(x))


# ---------------------------------------------------------------- numerics against the CPU


@pytest.mark.parametrize("mode", ["eval", "train"])
def test_fp32_forward_on_cuda_matches_cpu(mode, exact_fp32):
    torch.manual_seed(3)
    model = nets.build_model("preresnet20")
    model.train(mode == "train")
    x = torch.randn(32, 3, 32, 32)
    with torch.no_grad():
        expected = model(x)
        gpu_model = model.to(CUDA)
        contiguous = gpu_model(x.to(CUDA))
        gpu_model = gpu_model.to(memory_format=torch.channels_last)
        channels_last = gpu_model(x.to(CUDA).contiguous(memory_format=torch.channels_last))
    assert contiguous.dtype == torch.float32 and float(expected.abs().max()) > 0.1
    assert _relative_error(contiguous, expected) <= 1e-4
    assert _relative_error(channels_last, expected) <= 1e-4


def test_bf16_autocast_forward_is_close_to_fp32(exact_fp32):
    torch.manual_seed(4)
    model = nets.build_model("preresnet20").to(CUDA).eval()
    x = torch.randn(64, 3, 32, 32, device=CUDA)
    with torch.no_grad():
        reference = model(x)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            low = model(x)
    assert low.dtype == torch.bfloat16
    error = _relative_error(low, reference)
    assert 0 < error <= 5e-2  # not zero: autocast did change the arithmetic


# ---------------------------------------------------------------- training


def _gpu_name() -> str:
    return torch.cuda.get_device_name(0)


def test_short_training_run_on_cuda_beats_chance(tmp_path):
    from nets.trainer import TrainConfig, train

    config = TrainConfig(model="preresnet8", data="synthetic:2048:512", epochs=3, device="cuda", amp=True,
                         channels_last=True)
    result = train(config, tmp_path / "run", progress=False)
    assert result.finished and result.epochs_completed == 3 and not result.already_finished
    m = read_metrics(tmp_path / "run")
    assert m.summary["finished"] and m.summary["device_name"] == _gpu_name()
    assert np.all(np.isfinite(m.train_loss)) and m.train_loss[-1] < m.train_loss[0]
    assert m.test_acc[-1] >= 0.6, m.test_acc  # chance is 0.1; fp32 on CPU reaches 1.0 in these 3 epochs
    assert train(config, tmp_path / "run", progress=False).already_finished


def _train_command(out) -> list[str]:
    # preresnet20 at batch 16 on 8192 images: 512 steps, seconds per epoch even on a fast GPU, so that
    # the kill lands inside the second epoch
    return [sys.executable, "-m", "nets.train", "--model", "preresnet20", "--noise", "bernoulli", "--p", "0.9",
            "--data", "synthetic:8192:256", "--epochs", "2", "--batch-size", "16", "--schedule", "1",
            "--device", "cuda", "--seed", "5", "--out", str(out), "--no-progress"]


def test_cuda_run_killed_after_first_checkpoint_resumes_and_finishes(tmp_path):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [REPO_ROOT, os.environ.get("PYTHONPATH")])))
    out = tmp_path / "run"
    ckpt = out / "checkpoint.pt"
    log = tmp_path / "victim.log"
    with open(log, "w") as fh:
        victim = subprocess.Popen(_train_command(out), env=env, cwd=REPO_ROOT, stdout=fh, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 240
        while not ckpt.exists() and victim.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        victim.send_signal(signal.SIGKILL)
        victim.wait()
    assert victim.returncode == -signal.SIGKILL, f"the run ended before it could be killed: {log.read_text()[-2000:]}"
    first = load_checkpoint(ckpt)
    assert first["epoch"] == 1 and not first["finished"]
    assert first["rng"]["cuda"], "the CUDA generator states must be in the checkpoint"

    resumed = subprocess.run(_train_command(out), env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "finished 2 epochs" in resumed.stdout
    m = read_metrics(out)
    assert m.summary["finished"] and m.epochs_completed == 2 and m.summary["device_name"] == _gpu_name()
    assert list(m.epoch) == [1, 2]
    np.testing.assert_allclose(m.lr, [0.1, 0.01])  # the scheduler's milestone survived the restart
    # epoch 1 comes from the checkpoint, not from a second training from scratch
    assert m.train_loss[0] == first["history"]["train_loss"][0]
    assert m.epoch_time[0] == first["history"]["epoch_time"][0]
    payload = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert payload["epoch"] == 2 and payload["finished"]
    assert all(torch.isfinite(t).all() for t in payload["model"].values() if t.is_floating_point())
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]  # no temporaries left behind


# ---------------------------------------------------------------- noise response at fixed weights


@pytest.mark.parametrize("estimator", ["plain", "control-variate"])
def test_noise_response_on_cuda_agrees_with_the_cpu(tmp_path, estimator):
    """J_0 equal to float32 rounding (TF32 off inside run_noise_response), J_eps within 5 combined standard
    errors (CUDA draws other masks), and the measurement records the GPU."""
    from nets.noise_response import run_noise_response
    from nets.trainer import TrainConfig, train

    config = TrainConfig(model="preresnet8", data="synthetic:512:256", epochs=2, device="cpu", milestones=(1,),
                         noise="bernoulli", p=0.9)
    run = train(config, tmp_path / "run", progress=False).out_dir
    common = dict(kinds=("bernoulli", "gaussian", "stochastic_depth"), n_images=256, draws=8, estimator=estimator)
    on_cpu = run_noise_response(run, [0.05, 0.2], device="cpu", **common)
    on_gpu = run_noise_response(run, [0.05, 0.2], device="cuda", **common)
    assert math.isclose(on_gpu.clean_loss, on_cpu.clean_loss, rel_tol=1e-4)
    for c, g in zip(on_cpu.kinds, on_gpu.kinds):
        assert (c.kind, c.eps) == (g.kind, g.eps)
        assert abs(c.loss - g.loss) <= 5 * math.hypot(c.loss_stderr, g.loss_stderr) + 1e-6, (c, g)
    assert on_gpu.settings["device"] == _gpu_name() and torch.backends.cudnn.allow_tf32  # restored after


# Last in the file (pytest runs them in file order): a cold torch.compile on a fresh machine is the slowest test,
# and the session's tests step stops pytest at its cap, which should cut this one rather than the resume test.
def test_compiled_training_epoch_on_cuda(tmp_path):
    from nets.trainer import TrainConfig, train

    config = TrainConfig(model="preresnet8", noise="bernoulli", p=0.9, data="synthetic:2048:512", epochs=1,
                         device="cuda", amp=True, channels_last=True, compile=True)
    result = train(config, tmp_path / "run", progress=False)
    m = read_metrics(tmp_path / "run")
    assert result.finished and m.summary["device_name"] == _gpu_name()
    assert np.isfinite(m.train_loss[0])
    assert m.test_acc[0] >= 0.3, m.test_acc  # chance 0.1; one fp32 CPU epoch gives 0.65

