"""Which way up a voice arrived: one canonical polarity per chunk.

A telephone line, a codec or a microphone's wiring may invert the waveform (x -> -x); the speech is the same,
but any statistic that is odd in the signal (the bispectrum's phase, the skewness of the excitation, a neural
network's response to the raw samples) is not. Glottal excitation makes the LPC residual of voiced speech
skewed, so the sign of that skewness says which way up the voice arrived. ``upright`` returns the orientation
with the residual skewed positive: the same samples for x and -x, so whatever is computed from them cannot
depend on polarity (docs/generalisation.md, "The shipped GBM reads the waveform's polarity").
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import solve_toeplitz


def lpc_inverse_filtered(x: np.ndarray, order: int = 12) -> np.ndarray:
    """The residual of one order-``order`` LPC fit over the whole of ``x`` (autocorrelation method)."""
    r = np.array([x[: len(x) - lag] @ x[lag:] for lag in range(order + 1)])  # autocorrelation, 13 dot products
    r[0] *= 1.0 + 1e-6
    try:
        a = solve_toeplitz(r[:-1], r[1:])
    except np.linalg.LinAlgError:
        a = np.zeros(order)
    return np.convolve(x, np.concatenate(([1.0], -a)))[: len(x)]  # the FIR inverse filter (= lfilter)


def residual_skewness(x: np.ndarray) -> float:
    """Skewness of the LPC residual; odd in ``x`` (exactly: every step commutes with negation)."""
    res = lpc_inverse_filtered(np.asarray(x, dtype=np.float64))
    d = res - res.mean()
    var = (d * d).mean()
    return float((d * d * d).mean() / (var * np.sqrt(var) + 1e-30))


def upright(x: np.ndarray) -> np.ndarray:
    """``x`` or ``-x``, whichever has the positively skewed LPC residual."""
    return x if residual_skewness(x) >= 0 else -x
