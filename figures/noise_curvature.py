"""The eps^2 law at fixed trained weights: J_eps - J_0 and c = (J_eps - J_0) / eps^2 per noise kind.

At fixed weights the noisy objective J_eps of (4.2) exceeds the clean one by c eps^2 + o(eps^2) for every
mean-one noise (the 1/2 eps^2 g g^T : grad^2 u term of (3.6)); c depends on the kind through the diffusion
g g^T (one draw per unit for the Bernoulli, Gaussian and uniform masks, one per branch for stochastic depth)
and on the weights, so a network trained with noise and one trained without can be compared at one eps. The
numbers are what `python -m nets.noise_response --save` measured and saved under RESULTS/noise_response/
(checkpoints are not kept in the repository); this module only reads and plots them (nets.noise_response
.curvature_summary: mean +- sample std over the runs of one model and training setting). Where a point (family,
setting, kind, eps) was measured with both estimators the control variate's number is drawn
(preferred_estimator); the note names the eps at which each setting's points are the control variate's.

One row of two panels per measured network family (data set and model): (a) J_eps - J_0 against eps, log-log,
with a slope-2 guide (the eps^2 law); (b) c against eps. Colour: the noise kind; line style: the training
setting. Points whose mean is not positive cannot be drawn on log axes and are left out (the note says how
many).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from figures.output import MissingResults, in_noise_order, save_labelled, wrapped_suptitle
from figures.results import results_root

SUMMARY = "The eps^2 law at fixed weights: J_eps - J_0 and c = (J_eps - J_0) / eps^2 per noise kind (from nets.noise_response)"
FOLDER = "noise_response"
#: one colour per noise kind, the same in every figure that draws kinds side by side
KIND_COLORS = {"bernoulli": "tab:blue", "gaussian": "tab:orange", "uniform": "tab:green", "stochastic_depth": "tab:red"}
_STYLES = ("-", "--", ":", "-.")


def command(results: Path | None) -> str:
    """What produces the figure's numbers: the digits PreResNet-20 runs at p = 1.0 and 0.9 (CPU, minutes), then
    their noise response at four eps, saved where the figure reads it."""
    out = results_root(results) / FOLDER / "digits_preresnet20.json"
    return ("python -m nets.sweep --models preresnet20 --p 1.0 0.9 --seeds 4 --data digits --out runs/digits_nr "
            "&& python -m nets.noise_response runs/digits_nr/preresnet20-*/ --eps 0.02 0.04 0.08 0.16 "
            "--images 1437 --draws 8 "
            f"--save {out}")


def family(data: str | None, model: str, split: str | None = None) -> str:
    """The name of one row of the figure: the model and, where the measurement recorded it, the data set (and
    "test split" where it was measured on the test images)."""
    name = model if data is None else f"{model} on {data}"
    return name + (" (test split)" if split == "test" else "")


def compute(results: Path | None) -> tuple[dict[str, dict], str]:
    """label "family, setting, kind" (family: the data set and model) -> family, model, setting, kind, eps, runs,
    c_mean, c_std, excess_mean, excess_std (arrays over eps, increasing), controlled_eps (the eps whose point is
    the control variate's); and the note. MissingResults when no JSON is saved; ValueError naming the file when
    one is not nets.noise_response's JSON."""
    from nets.noise_response import curvature_summary, load_saved

    folder = results_root(results) / FOLDER
    files = sorted(folder.glob("*.json")) if folder.is_dir() else []
    if not files:
        raise MissingResults(f"no noise-response measurements (*.json) under {folder}", command(results))
    groups: dict[tuple[str, str, str, str], list] = {}
    for s in preferred_estimator(curvature_summary(load_saved(files))):
        groups.setdefault((family(s.data, s.model, s.split), s.model, s.setting, s.kind), []).append(s)
    data: dict[str, dict] = {}
    for (name, model, setting, kind), cells in groups.items():
        cells = sorted(cells, key=lambda s: s.eps)
        eps = np.array([s.eps for s in cells])
        c_mean, c_std = np.array([s.mean for s in cells]), np.array([s.std for s in cells])
        data[f"{name}, {setting}, {kind}"] = {
            "family": name, "model": model, "setting": setting, "kind": kind, "eps": eps,
            "runs": np.array([s.runs for s in cells]), "c_mean": c_mean, "c_std": c_std,
            "excess_mean": c_mean * eps ** 2, "excess_std": c_std * eps ** 2,
            "controlled_eps": np.array([s.eps for s in cells if s.estimator == "control-variate"], dtype=float)}
    by_setting: dict[tuple[str, str], dict] = {}
    for d in data.values():
        seen = by_setting.setdefault((d["family"], d["setting"]), {"runs": 0, "controlled": set()})
        seen["runs"] = max(seen["runs"], int(d["runs"].max()))
        seen["controlled"].update(float(e) for e in d["controlled_eps"])
    counts = ", ".join(f"{name} {setting} ({seen['runs']} run{'' if seen['runs'] == 1 else 's'}, "
                       f"{_estimators(seen['controlled'])})" for (name, setting), seen in by_setting.items())
    note = (f"J_eps on the runs' own training images (unless a row says test split), noise drawn as in training, "
            f"BatchNorm in eval mode; mean +- sample std over runs: {counts}; from {', '.join(p.name for p in files)}")
    hidden = sum(int(np.sum(d["c_mean"] <= 0)) for d in data.values())
    if hidden:
        note += f"; {hidden} point(s) with a mean <= 0 left out of the log axes"
    return data, note


def _estimators(controlled: set[float]) -> str:
    if not controlled:
        return "plain estimator"
    return "control variate at eps " + ", ".join(f"{e:g}" for e in sorted(controlled))


def preferred_estimator(summaries: list) -> list:
    """Per data set, model, training setting, kind and eps, the control variate's CurvatureSummary where there is
    one, else the plain one: the same expectation, and for the masks a smaller error (nets.control_variate;
    stochastic depth is estimated plain by both)."""
    key = lambda s: (s.data, s.split, s.model, s.setting, s.kind, s.eps)  # noqa: E731
    controlled = {key(s) for s in summaries if s.estimator == "control-variate"}
    return [s for s in summaries if s.estimator == "control-variate" or key(s) not in controlled]


def draw(data: dict[str, dict], note: str):
    """Per family (data set and model) a row of two log-log panels against eps: J_eps - J_0 with a slope-2
    guide, and c."""
    import matplotlib.pyplot as plt

    families = list(dict.fromkeys(d["family"] for d in data.values()))
    fig, axes = plt.subplots(len(families), 2, figsize=(15, 4.8 * len(families)), squeeze=False)
    for (ax_excess, ax_c), name in zip(axes, families):
        _draw_family(ax_excess, ax_c, {label: d for label, d in data.items() if d["family"] == name}, name)
    wrapped_suptitle(fig, "Fixed trained weights (nets.noise_response); " + note, fontsize=8)
    fig.tight_layout()
    return fig


def _draw_family(ax_excess, ax_c, data: dict[str, dict], name: str) -> None:
    import matplotlib.pyplot as plt

    settings = in_noise_order(dict.fromkeys(d["setting"] for d in data.values()))
    for d in sorted(data.values(), key=lambda d: settings.index(d["setting"])):
        style = _STYLES[settings.index(d["setting"]) % len(_STYLES)]
        shown = d["c_mean"] > 0
        kind = d["kind"].replace("_", " ")
        for ax, mean, std in ((ax_excess, d["excess_mean"], d["excess_std"]), (ax_c, d["c_mean"], d["c_std"])):
            lower = np.minimum(std, 0.95 * mean)  # an error bar may not reach 0 on a log axis
            ax.errorbar(d["eps"][shown], mean[shown], yerr=[lower[shown], std[shown]], color=KIND_COLORS.get(d["kind"]),
                        linestyle=style, marker="o", ms=4, capsize=3, label=f"{kind}, {d['setting']}")
    eps_all = np.unique(np.concatenate([d["eps"] for d in data.values()]))
    anchor = min((d["excess_mean"][d["c_mean"] > 0].min() for d in data.values() if np.any(d["c_mean"] > 0)),
                 default=None)
    if anchor is not None:
        guide = anchor * (eps_all / eps_all[0]) ** 2
        ax_excess.plot(eps_all, guide, color="0.5", linestyle=(0, (1, 3)), label="slope 2 (eps^2 law)")
    for ax in (ax_excess, ax_c):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(eps_all, [f"{e:g}" for e in eps_all])
        ax.xaxis.set_minor_formatter(plt.NullFormatter())
        ax.grid(alpha=0.3, which="both")
        ax.set_xlabel("eps")
    ax_excess.set(ylabel="J_eps - J_0", title=f"(a) {name}: what the noise adds")
    ax_c.set(ylabel="c = (J_eps - J_0) / eps^2", title=f"(b) {name}: curvature c")
    handles, labels = ax_excess.get_legend_handles_labels()
    ax_c.legend(handles, labels, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0))  # beside the row


def make(out_dir: Path, fast: bool = False, results: Path | None = None) -> list[Path]:
    """Plot the saved noise-response measurements; `fast` changes nothing (the numbers are read)."""
    return save_labelled(draw, *compute(results), out_dir, "noise_curvature")
