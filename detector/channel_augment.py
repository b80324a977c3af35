"""A random fixed channel for training copies: what a handset, a line equaliser or a microphone does to *any*
speech, as a minimum-phase filter (unlike RawBoost's linear-phase FIR bands, it also turns the phase, as real
channels do).

One first-order spectral tilt and one to three peaking equaliser sections (RBJ audio-EQ cookbook biquads,
±9 dB, 250-3400 Hz), the level restored. Applied to bona fide and spoof copies alike, so that neither class
owns a channel.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

RATE = 8000


def _peaking(f0: float, gain_db: float, q: float) -> tuple[np.ndarray, np.ndarray]:
    a_lin = 10 ** (gain_db / 40)
    w0 = 2 * np.pi * f0 / RATE
    alpha = np.sin(w0) / (2 * q)
    b = np.array([1 + alpha * a_lin, -2 * np.cos(w0), 1 - alpha * a_lin])
    a = np.array([1 + alpha / a_lin, -2 * np.cos(w0), 1 - alpha / a_lin])
    return b / a[0], a / a[0]


def random_channel(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``x`` through one random minimum-phase channel, at the input's RMS level, clipped to [-1, 1]."""
    x64 = np.asarray(x, dtype=np.float64)
    rms_in = np.sqrt(np.mean(x64 ** 2)) + 1e-12
    tilt = rng.uniform(-0.8, 0.8)
    y = lfilter([1.0, -tilt], [1.0], x64)
    for _ in range(int(rng.integers(1, 4))):
        b, a = _peaking(rng.uniform(250.0, 3400.0), rng.uniform(-9.0, 9.0), rng.uniform(0.5, 3.0))
        y = lfilter(b, a, y)
    y *= rms_in / (np.sqrt(np.mean(y ** 2)) + 1e-12)
    return np.clip(y, -1.0, 1.0).astype(np.float32)
