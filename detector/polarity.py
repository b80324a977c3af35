"""One canonical polarity per chunk, so that nothing downstream can depend on which way up the line delivers it.

A telephone line, a codec or a microphone's wiring may invert the waveform (x -> -x); the speech is the same,
but any statistic that is odd in the signal (the bispectrum's phase, the skewness of the excitation, a neural
network's response to the raw samples) is not. ``upright`` picks the orientation whose LPC residual is
positively skewed: the same samples for x and -x, so whatever is computed from them cannot depend on polarity.
What is guaranteed is that invariance, not a physical "right way up": glottal excitation skews the residual of
clearly voiced speech (one recording chain's chunks all come out the same way), but for many chunks the
skewness is small and the pick close to a coin toss (docs/generalisation.md, "The shipped GBM reads the
waveform's polarity").
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


def _skewness(v: np.ndarray) -> float:
    d = v - v.mean()
    var = (d * d).mean()
    return float((d * d * d).mean() / (var * np.sqrt(var) + 1e-30))


def residual_skewness(x: np.ndarray) -> float:
    """Skewness of the LPC residual; odd in ``x`` (exactly: every step commutes with negation)."""
    return _skewness(lpc_inverse_filtered(np.asarray(x, dtype=np.float64)))


def upright_with_residual(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``upright(x)`` and its LPC residual (float64), for callers that need both: the residual of -x is exactly
    minus the residual of x, so it is computed once."""
    x = np.asarray(x, dtype=np.result_type(x, np.float32))  # integers would wrap when negated
    res = lpc_inverse_filtered(np.asarray(x, dtype=np.float64))
    return (-x, -res) if _skewness(res) < 0 else (x, res)


def upright(x: np.ndarray) -> np.ndarray:
    """``x`` or ``-x`` (as floats), whichever has the positively skewed LPC residual. Exactly the same samples for
    x and -x unless the skewness is exactly 0 (digital silence, a pure tone) or not finite (NaN input); those
    are returned as they came."""
    return upright_with_residual(x)[0]
