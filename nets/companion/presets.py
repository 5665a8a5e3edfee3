"""The settings of every companion figure, full (the papers' protocol where they state it) and --fast.

Zhang & Wynter state the Wine recipe (50 epochs, 20 blocks of width 13, batch size 10, 10 trials per h,
h from 0.1 to 1) and use Keras, but name no optimizer or learning rate; where the paper is silent we
choose Adam with lr 1e-3. The synthetic-data recipe (data size, epochs, batch size) is not in the paper; ours is
stated here. Robust ResNet trains with SGD, momentum 0.9, lr 0.1; we keep that optimizer for the digits
analogues of its CIFAR-10 figures. --fast keeps every architecture and h of the full figure where the
budget allows, and cuts trials, epochs, grid points and data size (see docs/companion.md).
"""
from __future__ import annotations

from dataclasses import replace

from kolmogorov._checks import check_choice
from nets.companion.experiments import GradientNormConfig, PropagationConfig
from nets.companion.models import NetSpec
from nets.companion.sweeps import GridConfig
from nets.companion.trainer import TrainConfig

# Zhang & Wynter Figs. 2-7: name -> (variant, h, depth) as in the paper's captions.
PROPAGATION_FIGURES: dict[str, tuple[str, float, int]] = {
    "plain": ("residual", 1.0, 100),          # Fig. 2
    "plain_h01": ("residual", 0.1, 500),      # Fig. 3
    "shrinkage": ("shrinkage", 1.0, 100),     # Fig. 4
    "shrinkage_h01": ("shrinkage", 0.1, 500),  # Fig. 5
    "batchnorm": ("batchnorm", 1.0, 100),     # Fig. 6
    "batchnorm_h01": ("batchnorm", 0.1, 500),  # Fig. 7
}
PAPER_FIGURE = {"plain": 2, "plain_h01": 3, "shrinkage": 4, "shrinkage_h01": 5, "batchnorm": 6, "batchnorm_h01": 7}

SYNTHETIC_TRAIN = TrainConfig(epochs=50, batch_size=32, lr=1e-3, optimizer="adam")
# --fast: ten times the learning rate for about a tenth of the steps (150 instead of 1600).
SYNTHETIC_TRAIN_FAST = TrainConfig(epochs=30, batch_size=100, lr=1e-2, optimizer="adam")
ROBUST_SGD = TrainConfig(epochs=30, batch_size=64, lr=0.1, optimizer="sgd", momentum=0.9)
H_GRID_SMOOTH = tuple(round(0.1 * i, 1) for i in range(1, 11))
H_GRID_SMOOTH_FAST = (0.1, 0.5, 1.0)
SMOOTH_VARIANTS = ("residual", "batchnorm", "shrinkage")


def propagation(name: str, fast: bool) -> PropagationConfig:
    """Zhang & Wynter Fig. 2-7 run `name` (a key of PROPAGATION_FIGURES)."""
    check_choice("name", name, PROPAGATION_FIGURES)
    variant, h, depth = PROPAGATION_FIGURES[name]
    return PropagationConfig(net=NetSpec(depth=depth, h=h, variant=variant),
                             train=SYNTHETIC_TRAIN_FAST if fast else SYNTHETIC_TRAIN, dataset="synthetic",
                             n_train=500 if fast else 1000, n_test=300 if fast else 500)


def smooth_synthetic(fast: bool) -> GridConfig:
    """Zhang & Wynter Fig. 8: test accuracy against h, 100-layer networks, three blocks, 10 trials."""
    return GridConfig(dataset="synthetic", variants=SMOOTH_VARIANTS, depths=(100,),
                      h_values=H_GRID_SMOOTH_FAST if fast else H_GRID_SMOOTH, trials=2 if fast else 10,
                      train=replace(SYNTHETIC_TRAIN_FAST, epochs=20) if fast else SYNTHETIC_TRAIN,
                      dataset_kwargs=(("n_train", 300 if fast else 1000), ("n_test", 300 if fast else 500)))


def smooth_wine(fast: bool) -> GridConfig:
    """Zhang & Wynter Fig. 9: Wine, 20 blocks of width 13, 50 epochs, batch size 10, 10 trials per h."""
    return GridConfig(dataset="wine", variants=SMOOTH_VARIANTS, depths=(20,),
                      h_values=H_GRID_SMOOTH_FAST if fast else H_GRID_SMOOTH, trials=2 if fast else 10,
                      train=TrainConfig(epochs=15 if fast else 50, batch_size=10, lr=1e-3, optimizer="adam"))


def moons_filtering(fast: bool) -> tuple[PropagationConfig, ...]:
    """Robust ResNet Fig. 7: a vanilla (no BN) ResNet with h = 1.0 and with h = 0.1 on noisy two moons."""
    depth = 30
    layers = (0, 1, 2, 5, 10, 20, 30)
    base = PropagationConfig(net=NetSpec(depth=depth, h=1.0, variant="residual"),
                             train=replace(SYNTHETIC_TRAIN_FAST if fast else SYNTHETIC_TRAIN),
                             dataset="moons", noise=0.25, n_train=500 if fast else 1000, n_test=300 if fast else 500,
                             perturbation_std=0.1, layers=layers)
    return tuple(replace(base, net=replace(base.net, h=h)) for h in (1.0, 0.1))


def gradient_norms(fast: bool) -> GradientNormConfig:
    """Robust ResNet Fig. 2 analogue: per-layer gradient and weight norms, batch-norm MLP ResNet on digits,
    at the paper's lr 0.1 and at lr 0.01 (where h = 1 also trains)."""
    return GradientNormConfig(net=NetSpec(depth=50, variant="batchnorm"), h_values=(1.0, 0.1),
                              train=replace(ROBUST_SGD, epochs=5 if fast else 30, record_norms=True),
                              dataset="digits", lrs=(0.1, 0.01))


def digits_h(fast: bool) -> GridConfig:
    """Robust ResNet Fig. 9 analogue: test accuracy against h for a shallow and a deep batch-norm MLP ResNet."""
    if fast:
        return GridConfig(dataset="digits", variants=("batchnorm",), depths=(8, 32), h_values=(0.01, 0.1, 1.0, 10.0),
                          trials=2, train=replace(ROBUST_SGD, epochs=8))
    return GridConfig(dataset="digits", variants=("batchnorm",), depths=(10, 50),
                      h_values=(0.001, 0.01, 0.1, 0.3, 0.5, 1.0, 2.0, 5.0, 10.0, 20.0), trials=5, train=ROBUST_SGD)


def digits_noise(fast: bool) -> GridConfig:
    """Robust ResNet Fig. 8 analogue: train on noisy digits, test on clean, h = 1.0 against h = 0.1.

    lr is 0.01, not the paper's 0.1: at lr 0.1 every h = 1 run of these depths diverges (see
    robust_fig9_digits), which would leave no noise robustness to compare.
    """
    train = replace(ROBUST_SGD, lr=0.01)
    if fast:
        return GridConfig(dataset="digits", variants=("batchnorm",), depths=(32,), h_values=(1.0, 0.1),
                          noise_levels=(0.0, 1.0, 2.0), trials=2, train=replace(train, epochs=8))
    return GridConfig(dataset="digits", variants=("batchnorm",), depths=(50,), h_values=(1.0, 0.1),
                      noise_levels=(0.0, 0.5, 1.0, 1.5, 2.0, 3.0), trials=5, train=train)
