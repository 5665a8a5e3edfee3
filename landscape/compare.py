"""`python -m landscape.compare [--out PNG]`: the two noisy objectives side by side (docs/landscape.md).

Left: on the double-well data with the l2 loss, J_0 (3.10), the paper's ensemble objective J_eps
(3.7) (loss of the averaged prediction) and the expected objective E[loss(sigma(X_1))] (the loss
averaged over the injected noise, what dropout training descends). Right: their difference, which
for l2 is the mean variance of sigma(X_1) over the samples: largest where the predictions sit on
the steep part of sigma while the noise eps |f| is large, i.e. in sharp wells far from f = 0.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

PROG = "python -m landscape.compare"


def objective_comparison(dataset: str = "double-well", eps: float = 0.5, n_f: int = 801) -> dict[str, np.ndarray]:
    """The curves of the comparison figure: f, J0, ensemble, expected and gap = expected - ensemble."""
    from landscape import compute, get_dataset
    from landscape.report import check_f_range

    data = get_dataset(dataset)
    check_f_range(*data.default_f_range(), f"dataset {data.name} (its samples set the f-range)")
    f = np.linspace(*data.default_f_range(), n_f)
    J0 = compute(f, data.y, data.label, 0.0, "l2")
    ensemble = compute(f, data.y, data.label, eps, "l2", objective="ensemble")
    expected = compute(f, data.y, data.label, eps, "l2", objective="expected")
    return {"f": f, "J0": J0, "ensemble": ensemble, "expected": expected, "gap": expected - ensemble}


def draw(out: Path, dataset: str = "double-well", eps: float = 0.5) -> Path:
    """Write the comparison figure to out (PNG), atomically."""
    from kolmogorov._atomic import atomic_output
    from landscape.drawing import new_figure

    c = objective_comparison(dataset, eps)
    fig = new_figure(figsize=(10, 3.8))
    ax, ax2 = fig.subplots(1, 2)
    ax.plot(c["f"], c["J0"], "k--", label=r"$J_0$ (3.10)")
    ax.plot(c["f"], c["ensemble"], color="tab:blue", label=rf"ensemble $J_\varepsilon$ (3.7), $\varepsilon$={eps:g}")
    ax.plot(c["f"], c["expected"], color="tab:red", label=rf"expected $E\,\ell_2(\sigma(X_1))$, $\varepsilon$={eps:g}")
    ax.set(xlabel="$f$", ylabel=r"$\ell_2$ loss", title=f"{dataset} data, l2")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    ax2.plot(c["f"], c["gap"], color="tab:purple", label=r"expected $-$ ensemble = mean Var $\sigma(X_1)$")
    ax2.set(xlabel="$f$", ylabel="expected $-$ ensemble", title="the variance of the noisy prediction")
    ax2.legend(fontsize=8)
    ax2.grid(alpha=0.3)
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.14, top=0.9, wspace=0.25)
    with atomic_output(out, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    return out


def build_parser():
    """The command's arguments (nothing computed)."""
    from kolmogorov._cli import OneLineArgumentParser

    parser = OneLineArgumentParser(prog=PROG, description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/img/objectives_ensemble_vs_expected.png"), help="PNG to write")
    parser.add_argument("--dataset", default="double-well", help="built-in name or data file (default double-well)")
    parser.add_argument("--eps", type=float, default=0.5, help="noise level (default 0.5)")
    return parser


def main(argv: list[str] | None = None) -> int:
    from kolmogorov._cli import fail

    args = build_parser().parse_args(argv)
    if args.out.suffix.lower() != ".png":
        fail(PROG, f"--out must end in .png, got {str(args.out)!r}")
    try:
        from landscape.report import check_target

        if args.out.parent.exists():  # else atomic_output creates it (the default docs/img) or names why not
            check_target("--out", str(args.out), (".png",))
        print(f"wrote {draw(args.out, args.dataset, args.eps)}")
    except (ValueError, OSError) as err:
        fail(PROG, str(err))
    return 0


if __name__ == "__main__":
    sys.exit(main())
