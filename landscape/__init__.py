"""1-D loss landscapes J_0 (3.10) and J_eps (3.7) of the main paper's section 4.1.

Sun, Tao, Du, "Stochastic training of residual networks: a differential equation viewpoint":
a binary classification task in one dimension with S = id, T = sigma and a constant velocity f,
for which the viscous solution of (4.1) is known in closed form (kolmogorov.u_sigmoid).

Public API
----------
compute, evaluate, gradient          J(f) on a grid (objectives "ensemble" = J_eps (3.7), "expected"),
                                     solvers closed / fd / mc (the SDE) and network (the K-block
                                     dropout network itself, exact; jump < 1: two-point masks of the
                                     same eps; mask "uniform": the uniform masks of (3.14); mask
                                     "stochastic_depth": the linear decay), and dJ/df
                                     in closed form
sgd, SGDConfig, SGDPath              minibatch SGD, modes "smoothed" and "sampled" (Fig. 5)
landscape_statistics, ...            local minima, barriers, global minimum
get_dataset, builtin_dataset,        the built-in data sets (rugged, double-well, separable) and
load_dataset                         users' .csv / .npz / .h5 files

The command is `python -m landscape.plot --eps 0.5 --loss l2` (landscape/plot.py). Importing
this package loads numpy only; scipy, numba (through kolmogorov), matplotlib and h5py are
imported where used.
"""
from landscape.datasets import DATASET_NAMES, Dataset, builtin_dataset, check_samples, get_dataset, load_dataset
from landscape.objective import LOSS_FLOOR, LOSSES, OBJECTIVES, SOLVERS, Landscape, compute, evaluate, fit_accuracy, gradient
from landscape.sgd import SGD_MODES, SGDConfig, SGDPath, run_sgd, sgd
from landscape.statistics import Barrier, LandscapeStatistics, Minimum, format_table, landscape_statistics

__all__ = [
    "Barrier",
    "DATASET_NAMES",
    "Dataset",
    "LOSSES",
    "LOSS_FLOOR",
    "Landscape",
    "LandscapeStatistics",
    "Minimum",
    "OBJECTIVES",
    "SGDConfig",
    "SGDPath",
    "SGD_MODES",
    "SOLVERS",
    "builtin_dataset",
    "check_samples",
    "compute",
    "evaluate",
    "fit_accuracy",
    "format_table",
    "get_dataset",
    "gradient",
    "landscape_statistics",
    "load_dataset",
    "run_sgd",
    "sgd",
]
