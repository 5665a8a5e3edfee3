"""Images/s of nets.trainer's epoch loop against a plain PyTorch reference loop, on the same device.

    python benchmarks/bench_train.py [--model preresnet20] [--batch-size 128] [--images N] [--device auto]
                                     [--workers W] [--compile] [--repeats R] [--p P] [--json PATH]

This trainer: the data set on the device as uint8, batched crop/flip/normalize (nets.augment), bf16 autocast +
channels_last on CUDA, optional torch.compile: exactly nets.trainer.train_epoch. Reference: fp32, contiguous,
a torch DataLoader (W worker processes, pinned memory on CUDA) whose Dataset pads, crops, flips and normalizes
each image on the CPU with numpy, the loop of bearpaw's pytorch-classification. Same model (with --p P < 1,
Bernoulli dropout p = P after each branch, eq. (3.1), as the noisy runs train it: its masks are a few kernels
more per block), batch size, optimizer and number of images. Each figure is the best of R timed passes after
one warm-up pass, the two loops interleaved so that both see the same load; the CPU time of this process per
image is printed too (with reference workers > 0 it misses the workers' time, so compare it only with
--workers 0). Prints a table with machine, date and the ratio, and a projected time for the paper's full run
(164 epochs of 50,000 images) at the measured rate.
--json PATH also writes these figures (and the settings that produced them) as one JSON object, atomically,
for scripts such as benchmarks/gpu_session.py.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import nets  # noqa: E402
from kolmogorov._atomic import atomic_output, check_writable  # noqa: E402
from kolmogorov._cli import OneLineArgumentParser, checked_type, fail, positive_int  # noqa: E402
from nets.augment import Augmenter, Normalizer  # noqa: E402
from nets.data import make_synthetic  # noqa: E402
from nets.device import thread_count  # noqa: E402
from nets.models.mlp import MLPResNet  # noqa: E402
from nets.models.noise import check_survival  # noqa: E402
from nets.trainer import resolve_device, train_epoch  # noqa: E402


class CpuAugmentedImages(torch.utils.data.Dataset):
    """Per-image CPU augmentation as torchvision's RandomCrop(32, 4) + RandomHorizontalFlip + Normalize do."""

    def __init__(self, images: np.ndarray, labels: np.ndarray, mean: np.ndarray, std: np.ndarray, pad: int = 4):
        self.images, self.labels, self.pad = images, labels, pad
        self.mean = mean.astype(np.float32)[:, None, None]
        self.std = std.astype(np.float32)[:, None, None]

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        img = self.images[i]
        c, h, w = img.shape
        padded = np.zeros((c, h + 2 * self.pad, w + 2 * self.pad), dtype=np.uint8)
        padded[:, self.pad:self.pad + h, self.pad:self.pad + w] = img
        dy, dx = np.random.randint(0, 2 * self.pad + 1, size=2)
        crop = padded[:, dy:dy + h, dx:dx + w]
        if np.random.rand() < 0.5:
            crop = crop[:, :, ::-1]
        x = (crop.astype(np.float32) / 255.0 - self.mean) / self.std
        return torch.from_numpy(np.ascontiguousarray(x)), int(self.labels[i])


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_model(name: str, device: torch.device, channels_last: bool, p: float = 1.0):
    torch.manual_seed(0)
    model = nets.build_model(name, **({"noise": "bernoulli", "p": p} if p < 1.0 else {})).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9, weight_decay=1e-4)
    return model, opt


def trainer_pass(args, ds, device):
    """A closure running one nets.trainer.train_epoch pass over ds (the code the trainer runs)."""
    cuda = device.type == "cuda"
    model, opt = make_model(args.model, device, channels_last=cuda, p=args.p)
    forward = torch.compile(model) if args.compile else model
    aug = Augmenter(Normalizer.from_stats(*ds.channel_stats()), pad=4, flip=True, seed=0)
    x = torch.from_numpy(ds.train_images).to(device)
    y = torch.from_numpy(ds.train_labels).to(device)
    fmt = torch.channels_last if cuda else None
    amp = torch.bfloat16 if cuda else None
    return lambda: train_epoch(forward, opt, aug, x, y, args.batch_size, amp_dtype=amp, memory_format=fmt)


def reference_pass(args, ds, device):
    """A closure running one pass of the plain loop: DataLoader with CPU transforms, fp32."""
    model, opt = make_model(args.model, device, channels_last=False, p=args.p)
    mean, std = ds.channel_stats()
    loader = torch.utils.data.DataLoader(CpuAugmentedImages(ds.train_images, ds.train_labels, mean, std),
                                         batch_size=args.batch_size, shuffle=True, num_workers=args.workers,
                                         pin_memory=device.type == "cuda", persistent_workers=args.workers > 0)

    def run() -> None:
        model.train()
        for xb, yb in loader:
            xb, yb = xb.to(device, non_blocking=True), yb.to(device, non_blocking=True)
            loss = F.cross_entropy(model(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return run


def timed(run, device) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one call."""
    sync(device)
    wall, cpu = time.perf_counter(), time.process_time()
    run()
    sync(device)
    return time.perf_counter() - wall, time.process_time() - cpu


#: Most reference DataLoader workers (--workers): each is a process holding a copy of the data set; far more
#: than any machine benefits from, and a typo such as 4000 would otherwise fork until memory runs out.
MAX_WORKERS = 64


def _worker_count(value: int) -> int:
    if not 0 <= value <= MAX_WORKERS:
        raise ValueError(f"workers must be in [0, {MAX_WORKERS}]; got {value}")
    return value


worker_count = checked_type(int, _worker_count, f"an integer in [0, {MAX_WORKERS}]")


#: --p's argparse type: the models' own check of a survival probability in (0, 1]
survival_probability = checked_type(float, lambda p: check_survival(p, "p"), "a survival probability in (0, 1]")


def json_path(text: str) -> str:
    """--json's argparse type: a file that can be written (its folder exists or can be created), checked
    before anything is timed rather than after the whole benchmark."""
    try:
        check_writable(text, directory=False)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def build_parser() -> argparse.ArgumentParser:
    """The benchmark's arguments (nothing timed)."""
    p = OneLineArgumentParser(prog="benchmarks/bench_train.py", description=__doc__,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="preresnet20")
    p.add_argument("--batch-size", type=positive_int, default=128)
    p.add_argument("--images", type=positive_int, default=None,
                   help="images per timed pass (default 50000 on CUDA, 1280 on CPU)")
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--workers", type=worker_count, default=None,
                   help=f"reference DataLoader workers, 0 to {MAX_WORKERS}, 0 for none (default 4 on CUDA, 0 on "
                        "CPU where workers compete with the model)")
    p.add_argument("--compile", action="store_true", help="torch.compile the trainer's model")
    p.add_argument("--repeats", type=positive_int, default=2)
    p.add_argument("--p", type=survival_probability, default=1.0,
                   help="Bernoulli survival probability of the dropout after each branch (default 1.0: none)")
    p.add_argument("--threads", type=thread_count, default=None, help="torch CPU threads (default: torch's)")
    p.add_argument("--json", type=json_path, default=None, metavar="PATH",
                   help="also write the figures as JSON to PATH")
    return p


def main() -> int:
    parser = build_parser()
    args = parser.parse_args()
    try:
        device = resolve_device(args.device)
        model = nets.build_model(args.model)  # an unknown model name is a one-line error, not a traceback mid-benchmark
        if isinstance(model, MLPResNet):
            raise ValueError(f"{args.model!r} takes 2-D points, not the 3x32x32 images this benchmark trains on; "
                             "choose an image model such as preresnet20")
    except ValueError as error:
        fail(parser.prog, f"argument --{'device' if 'device' in str(error) else 'model'}: {error}")
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cudnn.benchmark = True
    args.images = (50000 if cuda else 1280) if args.images is None else args.images
    args.workers = (4 if cuda else 0) if args.workers is None else args.workers
    ds = make_synthetic(args.images, 16)
    runs = {"ours": trainer_pass(args, ds, device), "ref": reference_pass(args, ds, device)}
    for run in runs.values():  # warm-up pass (cuDNN autotune, compile, worker start-up)
        run()
    best = {key: (float("inf"), float("inf")) for key in runs}
    for rep in range(args.repeats):  # interleaved, alternating order: both loops see the same machine load
        for key, run in (runs.items() if rep % 2 == 0 else reversed(runs.items())):
            wall, cpu = timed(run, device)
            best[key] = (min(best[key][0], wall), min(best[key][1], cpu))
    n = len(ds.train_labels)
    ours, ref = n / best["ours"][0], n / best["ref"][0]
    name = torch.cuda.get_device_name(device) if cuda else f"CPU {platform.processor() or platform.machine()}"
    ms = {key: 1e3 * best[key][1] / n for key in best}
    projected_min = 164 * 50000 / ours / 60
    print(f"# bench_train  {datetime.date.today()}  {name}  torch {torch.__version__}  "
          f"threads {torch.get_num_threads()}  os.cpu_count {os.cpu_count()}")
    dropout = f" (dropout p = {args.p:g})" if args.p < 1 else ""
    print(f"# model {args.model}{dropout}  batch {args.batch_size}  {args.images} images/pass  best of {args.repeats}  "
          f"reference workers {args.workers}  compile {args.compile}")
    print(f"{'loop':<44} {'images/s':>10} {'CPU ms/image':>13}")
    print(f"{'this trainer (' + ('bf16, channels_last' if cuda else 'fp32') + ', on-device aug)':<44} {ours:>10.0f} "
          f"{ms['ours']:>13.2f}")
    print(f"{'reference (fp32, DataLoader, CPU transforms)':<44} {ref:>10.0f} {ms['ref']:>13.2f}")
    print(f"{'ratio (images/s)':<44} {ours / ref:>10.2f} {ms['ref'] / ms['ours']:>13.2f}")
    print(f"projected 164 x 50,000 training images at this rate: {projected_min:.1f} min "
          "(training passes only; evaluation adds 164 x 10,000 forward-only images)")
    if args.json:
        figures = {"tool": "bench_train", "date": datetime.date.today().isoformat(), "device": device.type,
                   "device_name": name, "torch_version": torch.__version__, "threads": torch.get_num_threads(),
                   "model": args.model, "p": args.p, "batch_size": args.batch_size, "images": n,
                   "repeats": args.repeats,
                   "workers": args.workers, "compile": bool(args.compile),
                   "trainer_images_per_s": ours, "reference_images_per_s": ref, "ratio": ours / ref,
                   "trainer_best_s": best["ours"][0], "reference_best_s": best["ref"][0],
                   "trainer_cpu_ms_per_image": ms["ours"], "reference_cpu_ms_per_image": ms["ref"],
                   "projected_164_epochs_min": projected_min}
        with atomic_output(args.json) as tmp, open(tmp, "w") as fh:
            json.dump(figures, fh, indent=1)
            fh.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
