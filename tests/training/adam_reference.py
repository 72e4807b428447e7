"""NumPy reference of Adam's step, for the optimizer tests."""

import numpy as np

BETA_1, BETA_2, EPSILON, LR = 0.9, 0.999, 1e-7, 0.01


def adam_rows(w, m, v, g, step):
    """One Adam step on the given rows: returns (w, m, v)."""
    m = BETA_1 * m + (1 - BETA_1) * g
    v = BETA_2 * v + (1 - BETA_2) * g**2
    alpha = LR * np.sqrt(1 - BETA_2**step) / (1 - BETA_1**step)
    return w - alpha * m / (np.sqrt(v) + EPSILON), m, v
