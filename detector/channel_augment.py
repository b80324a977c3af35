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

from detector.corpus.generators.replay import peaking

RATE = 8000


def random_channel(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``x`` through one random minimum-phase channel, at the input's RMS level, clipped to [-1, 1]."""
    x64 = np.asarray(x, dtype=np.float64)
    rms_in = np.sqrt(np.mean(x64 ** 2)) + 1e-12
    tilt = rng.uniform(-0.8, 0.8)
    y = lfilter([1.0, -tilt], [1.0], x64)
    for _ in range(int(rng.integers(1, 4))):
        b, a = peaking(rng.uniform(250.0, 3400.0), rng.uniform(-9.0, 9.0), rng.uniform(0.5, 3.0), RATE)
        y = lfilter(b, a, y)
    y *= rms_in / (np.sqrt(np.mean(y ** 2)) + 1e-12)
    return np.clip(y, -1.0, 1.0).astype(np.float32)
