"""Numerical core of resnet-sde: the backward Kolmogorov equation of noisy residual flows.

Main paper: Sun, Tao, Du, "Stochastic training of residual networks: a differential equation
viewpoint" (../shared/papers/sun-tao-du-stochastic-training-resnets-sde.txt), sections 2-4.

Public API
----------
epsilon, noise_parameter_for       noise level eps of the stochastic modified equation (3.4)
stochastic_depth_epsilon(s)        stochastic depth's per-block and rms noise levels (LM-ResNet paper 3.2),
stochastic_depth_survival(_for)    its linear-decay survival rule and the p_L of a given rms level
u_sigmoid, du_sigmoid_df           closed-form viscous solution of (4.1) and its f-derivative
solve_backward                     finite differences for (3.6) in 1-D, variable coefficients
solve_backward_batched             many constant-coefficient problems at once (a landscape's f-grid)
residual_flow_mean, FlowMean       E[sigma(X_K)] of the discrete noisy residual flow (3.1), (3.13)-(3.15)
stochastic_depth_flow_mean         the same for stochastic depth (exact up to 16 blocks)
two_point_flow_mean                the same for two-point masks of one eps and any jump (kolmogorov.two_point:
                                   also their cumulant expansion about the SDE and the small-noise limit c(a))

numpy, scipy and numba only: nothing here imports torch.
"""
from kolmogorov.closed_form import du_sigmoid_df, u_sigmoid
from kolmogorov.flow import FlowMean, residual_flow_mean, stochastic_depth_flow_mean
from kolmogorov.noise_level import (NOISE_KINDS, epsilon, noise_parameter_for, stochastic_depth_epsilon,
                                   stochastic_depth_epsilons, stochastic_depth_survival, stochastic_depth_survival_for)
from kolmogorov.solver import solve_backward, solve_backward_batched
from kolmogorov.two_point import TwoPointMask, small_noise_curvature, two_point_flow_mean

__all__ = [
    "FlowMean",
    "TwoPointMask",
    "NOISE_KINDS",
    "du_sigmoid_df",
    "epsilon",
    "noise_parameter_for",
    "residual_flow_mean",
    "solve_backward",
    "solve_backward_batched",
    "stochastic_depth_epsilon",
    "stochastic_depth_epsilons",
    "stochastic_depth_flow_mean",
    "stochastic_depth_survival",
    "stochastic_depth_survival_for",
    "small_noise_curvature",
    "two_point_flow_mean",
    "u_sigmoid",
]
