"""Where each residual branch's gradient comes from, at the start and the end of training (nets.branch_gradients).

The gradient of the loss on block k's branch splits exactly into the upstream gradient U_k = ||dL/dr_k|| at the
branch's output and the branch's transfer T_k (||grad_theta_k L|| = U_k T_k); where the network after X_k is invariant
to the stream's scale (BatchNorm first in every branch and in the head, small h), U_k scales as one over the stream's
size rms(X_k), and U_k rms(X_k) takes that out. The robust-ResNet paper (Zhang et al., section 4.1, Fig. 2) follows
gradient norms per layer over training; this figure says, per block, which of these factors moved them. The numbers
are what `python -m nets.branch_gradients --save` measured and saved under RESULTS/branch_gradients/ (checkpoints are
not kept in the repository); this module only reads and plots them.

Six panels, per block k (1 = the first residual block): (a) the branch's gradient, (b) the stream's size rms(X_k),
(c) the upstream gradient U_k, (d) U_k rms(X_k), (e) the transfer T_k, and (f) the backward gain of each layer of
the first block's branch (conv2's ||dL/da_2|| / U_1, bn2's with its ReLU, conv1's). One colour per training setting
(model and nets.noise_response's label of what it trained with), one line per run: dashed with open markers at the
run's start (its initial weights, rebuilt from its seed), solid with filled markers at its end (its checkpoint).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from figures.output import MissingResults, save_labelled, wrapped_suptitle
from figures.results import results_root

SUMMARY = ("Where each residual branch's gradient comes from at a run's start and end: the stream's size, the upstream "
           "gradient and the branch's transfer (from saved nets.branch_gradients measurements)")
NAME = "branch_gradients"
FOLDER = "branch_gradients"
QUANTITIES = ("branch_grad", "stream_rms", "upstream", "scale_free_upstream", "transfer")
COLORS = ("tab:blue", "tab:red", "tab:green", "tab:purple", "tab:orange", "tab:brown")


def command(results: Path | None) -> str:
    """What produces the figure's numbers: two digits PreResNet-8 runs, h = 1 and h = 0.01 (CPU, a minute), then
    their branch gradients at the start and the end, saved where the figure reads them."""
    out = results_root(results) / FOLDER / "digits_preresnet8.json"
    return ("python -m nets.sweep --models preresnet8 --p 1.0 --h 1.0 0.01 --seeds 1 --epochs 10 --schedule 5 8 "
            "--data digits --out runs/digits_branch "
            f"&& python -m nets.branch_gradients runs/digits_branch/preresnet8-*/ --images 512 --save {out}")


def measurement_files(results: Path | None) -> list[Path]:
    """The saved measurements under RESULTS/branch_gradients/ (any depth); MissingResults with the command that
    produces them when there are none."""
    folder = results_root(results) / FOLDER
    files = sorted(folder.rglob("*.json")) if folder.is_dir() else []
    if not files:
        raise MissingResults(f"no branch-gradient measurements (*.json) under {folder}", command(results))
    return files


def _row(blocks, quantity: str) -> np.ndarray:
    return np.array([getattr(b, quantity) for b in blocks], dtype=float)


def compute(results: Path | None) -> tuple[dict[str, dict], str]:
    """Setting label -> the plotted arrays of its runs (each (runs, blocks) at "start" and "end"; the first block's
    backward gains (runs, layers)), with the figure's note.

    Raises:
        MissingResults: no saved measurement, or none with both the start and the end.
        ValueError: a file that is not nets.branch_gradients' JSON, a run measured twice, or runs of one setting
            whose blocks differ.
    """
    from nets.branch_gradients import load_saved

    files = measurement_files(results)
    runs = [r for r in load_saved(files) if r.moments == ("start", "end")]
    if not runs:
        raise MissingResults(f"no branch-gradient measurement with both the start and the end under "
                             f"{results_root(results) / FOLDER}", command(results))
    seen: set[str] = set()
    groups: dict[str, list] = {}
    for r in runs:
        if str(r.run) in seen:
            raise ValueError(f"{r.run} is measured twice under {results_root(results) / FOLDER}; one measurement "
                             "per run")
        seen.add(str(r.run))
        groups.setdefault(f"{r.model}: {r.trained_with or 'setting not recorded'}", []).append(r)
    data: dict[str, dict] = {}
    for label in sorted(groups):
        members = sorted(groups[label], key=lambda r: (r.seed is None, r.seed, str(r.run)))
        names = [b.block for b in members[0].at("end")]
        layers = [x.name.rsplit(".", 1)[-1] for x in members[0].at("end")[0].layer_inputs]
        for r in members:
            if [b.block for b in r.at("start")] != names or [b.block for b in r.at("end")] != names:
                raise ValueError(f"{label}: {r.run} has other blocks than {members[0].run}")
        values: dict = {"blocks": names, "layers": layers,
                        "seeds": np.array([-1 if r.seed is None else r.seed for r in members]),
                        "runs": [str(r.run) for r in members], "n_images": members[0].n_images,
                        "batch_size": members[0].batch_size}
        for moment in ("start", "end"):
            for quantity in QUANTITIES:
                values[f"{quantity}_{moment}"] = np.stack([_row(r.at(moment), quantity) for r in members])
            values[f"first_block_gains_{moment}"] = np.array(
                [[gain for _, gain in r.at(moment)[0].backward_gains] for r in members], dtype=float).reshape(
                len(members), len(layers))
        data[label] = values
    versions = sorted({str((r.settings or {}).get("code_version")) for r in runs})
    sizes = sorted({(r.n_images, r.batch_size) for r in runs})
    note = (f"{_runs(len(runs))} from {len(files)} file(s) under {FOLDER}/; "
            + ", ".join(f"{n} training images in batches of {b}" for n, b in sizes)
            + f"; measured by code {', '.join(versions)}; start dashed (open markers), end solid (filled)")
    return data, note


def _runs(count: int) -> str:
    return f"{count} run" + ("" if count == 1 else "s")


def draw(data: dict[str, dict], note: str):
    """The six panels (see the module docstring)."""
    import matplotlib.pyplot as plt

    fig, grid = plt.subplots(2, 3, figsize=(13, 7.5))
    axes = grid.flat
    titles = ("(a) branch gradient ||grad theta_k L||", "(b) stream size rms(X_k)", "(c) upstream U_k = ||dL/dr_k||",
              "(d) U_k rms(X_k): the stream's scale taken out", "(e) transfer T_k = gradient / U_k")
    for index, (label, values) in enumerate(data.items()):
        color = COLORS[index % len(COLORS)]
        x = np.arange(1, len(values["blocks"]) + 1)
        for row, seed in enumerate(values["seeds"]):
            first = row == 0
            for ax, quantity in zip(axes, QUANTITIES):
                ax.semilogy(x, values[f"{quantity}_start"][row], "--", marker="o", mfc="none", color=color, lw=0.8,
                            ms=4)
                ax.semilogy(x, values[f"{quantity}_end"][row], "-", marker="o", color=color, lw=1.0, ms=4,
                            label=f"{label} ({_runs(len(values['seeds']))})" if first else None)
            layers = np.arange(len(values["layers"]))
            axes[5].semilogy(layers, values["first_block_gains_start"][row], "--", marker="s", mfc="none",
                             color=color, lw=0.8, ms=4)
            axes[5].semilogy(layers, values["first_block_gains_end"][row], "-", marker="s", color=color, lw=1.0, ms=4)
    for ax, title in zip(axes, titles):
        ax.set(xlabel="block k", title=title)
        ax.xaxis.set_major_locator(plt.MaxNLocator(integer=True))
    first = next(iter(data.values()))
    axes[5].set(xticks=np.arange(len(first["layers"])), xticklabels=list(first["layers"]),
                xlabel="layer of the first block's branch (input to output)",
                title="(f) first block: backward gain per layer")
    for ax in axes:
        ax.grid(alpha=0.3, which="both")
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(3, len(labels)), fontsize=8, frameon=False)
    wrapped_suptitle(fig, "Where each branch's gradient comes from (nets.branch_gradients): " + note, fontsize=8)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    return fig


def make(out_dir: Path, fast: bool = False, results: Path | None = None) -> list[Path]:
    """Plot the saved measurements; `fast` changes nothing (the numbers are read)."""
    data, note = compute(results)
    return save_labelled(draw, data, note, out_dir, NAME)
