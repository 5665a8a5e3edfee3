"""The logistic sigmoid T = sigma of section 4.1 and softplus, in numpy (keeps scipy out of the import)."""
from __future__ import annotations

import numpy as np


def sigmoid(x) -> np.ndarray:
    """sigma(x) = 1 / (1 + e^{-x}) with full relative precision for either sign of x."""
    x = np.asarray(x, dtype=float)
    e = np.exp(-np.abs(x))
    return np.where(x >= 0.0, 1.0 / (1.0 + e), e / (1.0 + e))


def softplus(x) -> np.ndarray:
    """log(1 + e^x) = -log(1 - sigma(x)), without overflow."""
    return np.logaddexp(0.0, x)
