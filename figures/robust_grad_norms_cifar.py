"""Per-block gradient and weight norms over training, h = 1.0 against h = 0.1 (robust-ResNet paper, Fig. 2), CIFAR.

Zhang et al., section 4.1 ("Small h stabilizes gradient and encourages smaller weights", Figure 2; Appendix
6.1, Figures 10-11): ResNets x_{n+1} = x_n + h F(x_n) (their eq. 4) of depth 218 and 110 trained on CIFAR-10
with h = 1.0 (the original ResNet) and h = 0.1. "Analysis 1": at h = 1 the gradient of layer #2 is large
(exploding) in the early iterations and the weights jump to a plateau; later on the deep layers' gradients
are large and bumpy. "Analysis 2": h = 1 trains much larger weights (layer #2's weight norm averaged over
all iterations: 51.12 and 105.63 at h = 1.0, 4.54 and 4.10 at h = 0.1, two seeds). Their eq. (9) /
Proposition 1 bound the back-propagated gradient by the factor 1 - h + h (1 + W)^D, exponential in the depth D.

Drawn from the norms the trainer records with --grad-norm-every N (nets.grad_norms: every N-th optimizer
step, the L2 norms of each block's gradient, after backward and before the step, and of its weights;
block #0 is the stem convolution, block #b >= 1 the b-th residual block, "blocks.{b-1}"), for plain
PreResNets (no branch noise, no stochastic depth, clean inputs) at h = 1.0 and 0.1 of one model (the
deepest with both): (a) block #2's gradient norm over the first EARLY_STEPS optimizer steps (log axis),
(b) block #2's weight norm over all recorded steps, (c) the last block's gradient norm over all recorded
steps (log axis), (d) the largest recorded gradient norm of every block against its index (log axis).
One line per h; with several seeds the first seed per h is drawn (the note says so). The mean weight norm
of block #2 over the records (the paper's "averaged weights of layer #2") is kept in the data file and
in the legend of (b).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from figures.output import MissingResults, save_outputs
from figures.results import RunRecord, group_by, is_plain_preresnet, matching_h, results_root, select, sweep_command

SUMMARY = ("Robust-ResNet Fig. 2 on CIFAR: block #2's gradient and weight norms, the last block's gradient and "
           "each block's largest gradient over training, h = 1.0 vs h = 0.1 (from sweep results, --grad-norm-every)")
NAME = "robust_grad_norms_cifar"
MODELS = ("preresnet110",)
H_VALUES = (1.0, 0.1)
H_COLORS = {1.0: "tab:red", 0.1: "tab:blue"}  # the paper's red (h = 1) and blue (small h) lines
EVERY = 10
EARLY_STEPS = 500  # panel (a): optimizer steps 0 .. EARLY_STEPS - 1
BLOCK = 2  # the paper's layer #2: column 2 of the records (stem = #0), i.e. the second residual block


def command(results: Path | None) -> str:
    """The sweep recording the norms (one seed; lr 0.1 divided by 10 at epochs 40 and 60, as the paper)."""
    return sweep_command(MODELS, results_root(results) / "robust_grad_norms", seeds=1, h=(0.1, 1.0),
                         grad_norm_every=EVERY, epochs=80, schedule=(40, 60))


def _paper_h(record: RunRecord) -> float | None:
    """The value of H_VALUES that the run's h is (to float rounding), or None."""
    return matching_h(record, H_VALUES)


def is_norm_run(record: RunRecord) -> bool:
    """A plain PreResNet (no branch noise, no stochastic depth) at h = 1.0 or 0.1 with recorded norms."""
    return (is_plain_preresnet(record) and _paper_h(record) is not None
            and record.grad_norm is not None and record.grad_norm.shape[1] > BLOCK)


def compute(results: Path | None) -> tuple[dict[str, dict], str]:
    """"hH" -> the plotted arrays of the first seed's run at h = H (see make), with the selection's note.

    Raises:
        MissingResults (with the sweep command) when no model has runs with recorded norms at both h.
    """
    root = results_root(results)
    selection = select(results, is_norm_run, score=lambda runs: len({_paper_h(r) for r in runs}))
    by_model = group_by(selection.records, lambda r: r.model)
    complete = [m for m, runs in by_model.items() if {_paper_h(r) for r in runs} == set(H_VALUES)]
    if not complete:
        raise MissingResults(f"no finished plain PreResNet runs with recorded gradient norms (--grad-norm-every) at "
                             f"both h = 1.0 and h = 0.1 of one model under {root}", command(results))
    model = max(complete, key=lambda m: (by_model[m][0].depth or 0, m))
    by_h = group_by(by_model[model], _paper_h)
    data: dict[str, dict] = {}
    seeds_note = []
    for h in H_VALUES:
        runs = by_h[h]
        run = runs[0]
        if len(runs) > 1:
            seeds_note.append(f"h = {h:g}: seed {run.seed} of {len(runs)} seeds")
        step = np.asarray(run.grad_norm_step, dtype=np.int64)
        grad = np.asarray(run.grad_norm, dtype=float)
        weight = np.asarray(run.weight_norm, dtype=float)
        early = step < EARLY_STEPS
        names = list(run.grad_norm_blocks or [f"#{b}" for b in range(grad.shape[1])])
        data[f"h{h:g}"] = {
            "step_early": step[early], "grad_norm_block2_early": grad[early, BLOCK],
            "step": step, "weight_norm_block2": weight[:, BLOCK], "grad_norm_last": grad[:, -1],
            "block": np.arange(grad.shape[1]), "max_grad_norm": np.fmax.reduce(grad, axis=0),
            "mean_weight_norm_block2": float(np.mean(weight[:, BLOCK])), "h": h, "seed": run.seed,
            "run": str(run.path), "model": model, "block2_name": names[BLOCK], "last_name": names[-1],
            "every": int(run.get("grad_norm_every", 0)),
        }
    note = selection.note()
    left_out = sorted(m for m in by_model if m != model)
    if left_out:
        note += f"; drawn: {model} (also recorded, not drawn: {', '.join(left_out)})"
    if seeds_note:
        note += "; first seed per h (" + ", ".join(seeds_note) + ")"
    return data, note


def make(out_dir: Path, fast: bool = False, results: Path | None = None) -> list[Path]:
    """Plot the four panels from recorded norms; `fast` changes nothing (the numbers are read)."""
    import matplotlib.pyplot as plt

    data, note = compute(results)
    first = next(iter(data.values()))
    model = first["model"]
    fig, grid = plt.subplots(2, 2, figsize=(10, 7))
    axes = grid.flat  # (a) (b) / (c) (d)
    for d in data.values():
        color = H_COLORS.get(d["h"])
        label = f"h = {d['h']:g}" + (" (original ResNet)" if d["h"] == 1.0 else "")
        axes[0].semilogy(d["step_early"], d["grad_norm_block2_early"], color=color, lw=0.9, label=label)
        axes[1].plot(d["step"], d["weight_norm_block2"], color=color, lw=1.0,
                     label=f"{label}, mean {d['mean_weight_norm_block2']:.3g}")
        axes[2].semilogy(d["step"], d["grad_norm_last"], color=color, lw=0.7, label=label)
        axes[3].semilogy(d["block"], d["max_grad_norm"], "o-", ms=3, color=color, label=label)
    block2, last = f"block #{BLOCK} ({first['block2_name']})", f"last block ({first['last_name']})"
    axes[0].set(xlabel="optimizer step", ylabel="gradient norm", title=f"(a) {block2}: gradient, first steps")
    axes[1].set(xlabel="optimizer step", ylabel="weight norm", title=f"(b) {block2}: weights")
    axes[2].set(xlabel="optimizer step", ylabel="gradient norm", title=f"(c) {last}: gradient")
    axes[3].set(xlabel="block (0 = stem)", ylabel="largest gradient norm", title="(d) largest gradient per block")
    for ax in axes:
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.suptitle(f"PreResNet-{model.removeprefix('preresnet')}, norms every {first['every']} optimizer steps\n"
                 f"{note}", fontsize=7)
    fig.tight_layout()
    return save_outputs(fig, out_dir, NAME, data, attrs={"note": note, "paper": "robust-ResNet Fig. 2 (CIFAR)",
                                                         "early_steps": EARLY_STEPS, "block": BLOCK})
