"""Each network under its own noise: J_eps at fixed weights of networks trained with different masks at one eps,
paired by training seed.

The weak approximation equates the Bernoulli, Gaussian and uniform masks of one variance to first order in eps
(eqs. (3.2), (3.13), (3.14)): trained at one eps they should end alike. Measured at fixed weights
(nets.noise_response), each network's objective J_eps of (4.2) under every mask kind at the eps it trained at
says more than the final training loss does: how much each kind of noise costs it, cost = J_eps - J_0, and
what its own objective is, J_eps under the kind it trained with (eval-mode BatchNorm with the recorded
statistics, unaugmented training images: not the training loss of the last epoch). Networks of one family
(data set and model), estimator and eps are paired by their training seed, which fixes the initial weights and
the mini-batches whatever the mask (figures.seed_blocks). Read per network: its cost under each kind, and
whether its own kind is its cheapest (flattest along its own noise); per pair of training kinds and seed: the
difference of J_eps under own noise, with the standard error of the two estimates' draws combined, split into
the difference of J_0 and that of the own-noise cost; over the seeds: the paired t-test of each difference
(figures.seed_blocks.paired_difference). The numbers are what `python -m nets.noise_response --save` measured
and saved under RESULTS/noise_response/ (any sub-folder but jumps/); this module only reads and compares them.

A network enters when it trained with one mask kind alone (trained_with "bernoulli p=P", "gaussian nu=NU" or
"uniform beta=B"), with the recorded BatchNorm statistics, was measured under that kind at its own parameter
(within a relative 1e-4: the label keeps 6 digits) and its run directory carries the sweep's seed (NAME-sS-HASH,
nets.sweep); a family is drawn where two or more training kinds share a seed.
"""
from __future__ import annotations

import itertools
import math
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from figures.noise_curvature import FOLDER, KIND_COLORS, family
from figures.noise_dose import measured_twice, measurement_files
from figures.output import MissingResults, save_labelled, wrapped_suptitle
from figures.results import results_root
from figures.seed_blocks import PairedDifference, paired_difference
from kolmogorov.noise_level import PARAMETER_OF

SUMMARY = ("Each network under its own noise: J_eps at fixed weights of networks trained with different masks at "
           "one eps, paired by seed (from nets.noise_response)")
#: the masks, in the order their columns and comparisons are written (later minus earlier)
MASKS = tuple(PARAMETER_OF)
_TRAINED = re.compile(r"(?P<kind>bernoulli|gaussian|uniform) (?:p|nu|beta)=(?P<value>[0-9.eE+-]+)")
_SEED = re.compile(r"-s(?P<seed>\d+)-[0-9a-f]{8}$")
PARAMETER_TOLERANCE = 1e-4


def command(results: Path | None) -> str:
    """What produces the numbers: digits PreResNet-20 runs with Bernoulli and uniform masks at one eps (CPU,
    minutes), then each under the three masks at that eps, saved where the figure reads it."""
    out = results_root(results) / FOLDER / "digits_preresnet20_own_noise.json"
    return ("python -m nets.sweep --models preresnet20 --noise bernoulli uniform --eps 0.111111 --seeds 4 "
            "--data digits --out runs/digits_own && python -m nets.noise_response runs/digits_own/preresnet20-*/ "
            "--eps 0.111111 "
            "--kinds bernoulli gaussian uniform --estimator control-variate --images 1437 --draws 8 "
            f"--save {out}")


def trained_mask(trained_with: str) -> tuple[str, float] | None:
    """(kind, parameter) of a network trained with one mask kind alone (nets.noise_response.trained_with's label);
    None for no noise, stochastic depth or a combination."""
    match = _TRAINED.fullmatch(trained_with)
    return (match["kind"], float(match["value"])) if match else None


def training_seed(run: Path | str) -> int | None:
    """The seed of a run directory named by nets.sweep (NAME-sS-HASH8); None for any other name."""
    match = _SEED.search(Path(run).name)
    return int(match["seed"]) if match else None


@dataclass(frozen=True)
class OwnNoise:
    """One network at one eps: J_0, and per mask kind measured the cost J_eps - J_0 with its standard error over
    the draws (J_0 is computed once, without draws: the cost's error is J_eps's)."""

    family: str
    estimator: str
    eps: float
    seed: int
    trained: str  # the mask kind it trained with
    run: str
    clean_loss: float
    cost: dict[str, float]
    cost_stderr: dict[str, float]

    @property
    def own_cost(self) -> float:
        """J_eps - J_0 under the kind it trained with."""
        return self.cost[self.trained]

    @property
    def own_stderr(self) -> float:
        """The standard error of own_cost (and of own_loss) over the draws."""
        return self.cost_stderr[self.trained]

    @property
    def own_loss(self) -> float:
        """J_eps under the kind it trained with: its own objective (4.2) at these weights."""
        return self.clean_loss + self.own_cost

    @property
    def own_cheapest(self) -> bool:
        """Whether its own kind costs it the least of the kinds measured: flattest along its own noise."""
        return self.own_cost == min(self.cost.values())


def own_noise_networks(results: Path | None) -> tuple[list[OwnNoise], int]:
    """Every measured network that enters (module docstring), one per (family, run, estimator, eps), and the count of
    measured networks left out. MissingResults when nothing is saved; ValueError naming a file that is not
    nets.noise_response's JSON, or a run measured twice at one eps with one estimator."""
    from nets.noise_response import load_saved

    files = measurement_files(results, command(results))
    networks: dict[tuple[str, str, str, float], OwnNoise] = {}
    left_out = 0
    for record in load_saved(files):
        mask, seed = trained_mask(record.trained_with), training_seed(record.run)
        entered = False
        if mask is not None and seed is not None and record.batchnorm == "recorded":
            kind, value = mask
            for level in sorted({k.eps for k in record.kinds}):
                at_level = {k.kind: k for k in record.kinds if k.eps == level and k.kind in MASKS}
                own = at_level.get(kind)
                measured = None if own is None else own.options.get(PARAMETER_OF[kind])
                if measured is None or abs(float(measured) - value) > PARAMETER_TOLERANCE * value:
                    continue
                entered = True
                group = family(record.data, record.model, record.split)
                key = (group, str(record.run), record.estimator, level)
                if key in networks:
                    raise measured_twice(group, record.run, record.estimator, level)
                networks[key] = OwnNoise(
                    family=group, estimator=record.estimator, eps=level, seed=seed,
                    trained=kind, run=record.run.name, clean_loss=record.clean_loss,
                    cost={k: r.loss - record.clean_loss for k, r in at_level.items()},
                    cost_stderr={k: r.loss_stderr for k, r in at_level.items()})
        left_out += not entered
    return list(networks.values()), left_out


@dataclass(frozen=True)
class SeedComparison:
    """Training kind `mine` against `theirs` at one seed: the differences (mine minus theirs) of J_eps under own
    noise (with the two estimates' standard errors combined), of J_0 and of the own-noise cost."""

    seed: int
    own_loss: float
    own_loss_stderr: float
    clean_loss: float
    own_cost: float


@dataclass(frozen=True)
class KindComparison:
    """Training kind `mine` against `theirs` in one group, per seed both hold and over them (paired t-tests)."""

    mine: str
    theirs: str
    seeds: tuple[SeedComparison, ...]
    own_loss: PairedDifference | None
    clean_loss: PairedDifference | None
    own_cost: PairedDifference | None


def compare(mine: dict[int, OwnNoise], theirs: dict[int, OwnNoise], mine_kind: str, theirs_kind: str
            ) -> KindComparison:
    """The per-seed differences of the networks trained with mine_kind and with theirs_kind (seed -> network) over
    the seeds both hold, and their paired t-tests over the seeds (None below 2 seeds)."""
    shared = sorted(set(mine) & set(theirs))
    seeds = tuple(SeedComparison(
        s, mine[s].own_loss - theirs[s].own_loss, math.hypot(mine[s].own_stderr, theirs[s].own_stderr),
        mine[s].clean_loss - theirs[s].clean_loss, mine[s].own_cost - theirs[s].own_cost) for s in shared)

    def paired(value) -> PairedDifference | None:
        return paired_difference({s: value(mine[s]) for s in shared}, {s: value(theirs[s]) for s in shared})

    return KindComparison(mine_kind, theirs_kind, seeds, paired(lambda n: n.own_loss),
                          paired(lambda n: n.clean_loss), paired(lambda n: n.own_cost))


def compute(results: Path | None) -> tuple[dict[str, dict], str]:
    """label "family, estimator, eps" -> networks (list of OwnNoise, by seed then training kind), kinds (the masks
    measured on all of them), comparisons (list of KindComparison); and the note. MissingResults where no group
    has two training kinds at one seed."""
    networks, left_out = own_noise_networks(results)
    groups: dict[tuple[str, str, float], list[OwnNoise]] = {}
    for network in networks:
        groups.setdefault((network.family, network.estimator, network.eps), []).append(network)
    data = {}
    for (name, estimator, level), members in groups.items():
        by_kind: dict[str, dict[int, OwnNoise]] = {kind: {} for kind in MASKS}
        for n in members:
            other = by_kind[n.trained].setdefault(n.seed, n)
            if other is not n:  # e.g. a seed re-trained on another processor: which one to pair is not ours to pick
                raise ValueError(f"{name}: two {n.trained}-trained networks of seed {n.seed} measured at eps "
                                 f"{level:g} ({other.run}, {n.run}); keep one of their measurements")
        comparisons = [compare(by_kind[later], by_kind[earlier], later, earlier)
                       for earlier, later in itertools.combinations(MASKS, 2)
                       if set(by_kind[earlier]) & set(by_kind[later])]
        if not comparisons:
            continue
        compared = {(kind, s.seed) for c in comparisons for kind in (c.mine, c.theirs) for s in c.seeds}
        paired = sorted((n for n in members if (n.trained, n.seed) in compared),
                        key=lambda n: (n.seed, MASKS.index(n.trained)))
        kinds = [kind for kind in MASKS if all(kind in n.cost for n in paired)]
        data[f"{name}, {estimator}, eps {level:g}"] = {"networks": paired, "kinds": kinds, "comparisons": comparisons}
    if not data:
        raise MissingResults(f"no two networks trained with different masks at one seed and measured at the eps "
                             f"they trained at under {results_root(results) / FOLDER}", command(results))
    note = (f"J_eps at fixed weights (nets.noise_response), BatchNorm in eval mode with the recorded statistics, on "
            f"the runs' own training images; cost = J_eps - J_0 +- the standard error over the draws; networks "
            f"paired by training seed; {left_out} measured network(s) without a single mask kind measured at its "
            f"own parameter, a sweep seed in the run's name or the recorded BatchNorm statistics left out")
    return data, note


def _pvalue(difference: PairedDifference | None) -> str:
    if difference is None:
        return "–"
    return f"{difference.difference:+.4f} (paired p = {difference.pvalue:.2g}, {difference.n} seeds)"


def to_markdown(data: dict[str, dict], note: str) -> str:
    """Per group a table of its networks (J_0, the cost under each kind, J_eps under its own noise, whether its
    own kind is its cheapest) and one of each pair of training kinds per seed, with the paired tests below."""
    blocks = []
    for label, d in data.items():
        kinds = d["kinds"]
        lines = [f"**{label}: each network under each mask kind.**", "",
                 "| seed | trained with | J_0 | " + " | ".join(f"J_eps - J_0, {kind}" for kind in kinds)
                 + " | J_eps under its own noise | own kind cheapest |", "|" + "---|" * (len(kinds) + 5)]
        for n in d["networks"]:
            lines.append("| " + " | ".join(
                [str(n.seed), n.trained, f"{n.clean_loss:.4f}",
                 *[f"{n.cost[k]:.4f} +- {n.cost_stderr[k]:.4f}" for k in kinds],
                 f"{n.own_loss:.4f}", "yes" if n.own_cheapest else "no"]) + " |")
        cheapest = sum(n.own_cheapest for n in d["networks"])
        lines += ["", f"Own kind cheapest: {cheapest} of {len(d['networks'])} networks."]
        for c in d["comparisons"]:
            lines += ["", f"**{c.mine}-trained minus {c.theirs}-trained, each under its own noise.**", "",
                      "| seed | J_eps under own noise | J_0 | own-noise cost |", "|---|---|---|---|"]
            lines += [f"| {s.seed} | {s.own_loss:+.4f} +- {s.own_loss_stderr:.4f} | {s.clean_loss:+.4f} | "
                      f"{s.own_cost:+.4f} |" for s in c.seeds]
            lines += ["", f"Over the seeds: J_eps under own noise {_pvalue(c.own_loss)}; J_0 {_pvalue(c.clean_loss)}; "
                          f"own-noise cost {_pvalue(c.own_cost)}."]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + f"\n\n{note}.\n"


def draw(data: dict[str, dict], note: str):
    """Per group two panels: (a) each network's cost under each kind, networks along x by seed and training kind;
    (b) J_eps under its own noise and J_0 against the seed, one line per training kind."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(data), 2, figsize=(13, 5.6 * len(data)), squeeze=False)
    markers = dict(zip(MASKS, ("o", "s", "^")))
    for (ax_cost, ax_own), (label, d) in zip(axes, data.items()):
        networks, kinds = d["networks"], d["kinds"]
        for index, kind in enumerate(kinds):
            offset = (index - (len(kinds) - 1) / 2) * 0.2
            ax_cost.errorbar(np.arange(len(networks)) + offset, [n.cost[kind] for n in networks],
                             yerr=[n.cost_stderr[kind] for n in networks], fmt="o", ms=5, capsize=3,
                             color=KIND_COLORS.get(kind), label=f"{kind} masks")
        ax_cost.set_xticks(np.arange(len(networks)), [f"s{n.seed} {n.trained}" for n in networks], fontsize=7,
                           rotation=45, ha="right", rotation_mode="anchor")
        ax_cost.set(ylabel="J_eps - J_0", title=f"(a) cost of each kind of noise\n{label}")
        ax_cost.set_ylim(bottom=0.0)
        # legends below the axes: inside, with a dozen networks, they cover points
        ax_cost.legend(fontsize=7, title="measured with", title_fontsize=7, ncol=len(kinds), loc="upper center",
                       bbox_to_anchor=(0.5, -0.2))
        for kind in MASKS:
            mine = [n for n in networks if n.trained == kind]
            if not mine:
                continue
            seeds = [n.seed for n in mine]
            ax_own.errorbar(seeds, [n.own_loss for n in mine], yerr=[n.own_stderr for n in mine],
                            marker=markers[kind], capsize=3, color=KIND_COLORS.get(kind),
                            label=f"{kind}-trained: J_eps under its own noise")
            ax_own.plot(seeds, [n.clean_loss for n in mine], marker=markers[kind], ls=":", mfc="none",
                        color=KIND_COLORS.get(kind), label=f"{kind}-trained: J_0")
        ax_own.set(xlabel="training seed", ylabel="loss", title=f"(b) J_eps under its own noise and J_0\n{label}")
        seeds = sorted({n.seed for n in networks})
        ax_own.set_xticks(seeds)
        ax_own.set_xlim(min(seeds) - 0.5, max(seeds) + 0.5)
        ax_own.legend(fontsize=7, ncol=2, loc="upper center", bbox_to_anchor=(0.5, -0.12))
        for ax in (ax_cost, ax_own):
            ax.grid(alpha=0.3)
    wrapped_suptitle(fig, note, fontsize=8)
    fig.tight_layout()
    return fig


def _arrays(d: dict) -> dict:
    """The HDF5 group of one label: per network its seed, training kind, J_0 and cost per kind (columns: kinds)."""
    networks, kinds = d["networks"], d["kinds"]
    return {"seed": np.array([n.seed for n in networks]), "trained": ", ".join(n.trained for n in networks),
            "kinds": ", ".join(kinds), "clean_loss": np.array([n.clean_loss for n in networks]),
            "cost": np.array([[n.cost[k] for k in kinds] for n in networks]),
            "cost_stderr": np.array([[n.cost_stderr[k] for k in kinds] for n in networks]),
            "own_loss": np.array([n.own_loss for n in networks])}


def make(out_dir: Path, fast: bool = False, results: Path | None = None) -> list[Path]:
    """Draw and tabulate the saved measurements (noise_own.png/.pdf/.h5, noise_own.md); `fast` changes nothing
    (they are read)."""
    from figures.table1 import write_text

    data, note = compute(results)
    written = save_labelled(lambda _, text: draw(data, text), {label: _arrays(d) for label, d in data.items()},
                            note, out_dir, "noise_own")
    written.append(write_text(Path(out_dir) / "noise_own.md", to_markdown(data, note)))
    return written
