"""Numerical core of resnet-sde: the backward Kolmogorov equation of noisy residual flows.

Main paper: Sun, Tao, Du, "Stochastic training of residual networks: a differential equation
viewpoint" (../shared/papers/sun-tao-du-stochastic-training-resnets-sde.txt), sections 2-4.

Public API
----------
epsilon, noise_parameter_for       noise level eps of the stochastic modified equation (3.4)
u_sigmoid, du_sigmoid_df           closed-form viscous solution of (4.1) and its f-derivative

numpy, scipy and numba only: nothing here imports torch.
"""
from kolmogorov.closed_form import du_sigmoid_df, u_sigmoid
from kolmogorov.noise_level import NOISE_KINDS, epsilon, noise_parameter_for

__all__ = ["NOISE_KINDS", "du_sigmoid_df", "epsilon", "noise_parameter_for", "u_sigmoid"]
