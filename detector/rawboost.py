"""RawBoost-style data boosting for raw-waveform training (Tak et al., ICASSP 2022), for 8 kHz chunks.

Three signal-level perturbations that model what a channel can do to *any* speech, so a detector cannot
key on one particular channel or recording chain:

- ``convolutive``: a random multi-band FIR filter (notches and boosts at random frequencies), with optional
  weak higher-order (nonlinear) terms ``x**2, x**3`` each passed through their own random filter; models
  handsets, line equalisers and mildly saturated amplifiers.
- ``impulsive``: signal-dependent impulsive noise on a random few per cent of the samples (clicks, bit
  errors, clipping-like distortion).
- ``coloured``: stationary additive noise shaped by a random FIR filter, at 10-40 dB SNR.

Applied with the same probability to bona fide and spoof chunks by the caller.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import fftconvolve, firwin

RATE = 8000
NYQ = RATE / 2


def _random_filter(rng: np.random.Generator, n_bands: int = 5, taps: int = 31) -> np.ndarray:
    """Sum of ``n_bands`` random band-pass/band-stop FIR filters, normalised to unit peak gain."""
    h = np.zeros(taps)
    for _ in range(n_bands):
        centre = rng.uniform(100.0, NYQ - 200.0)
        width = rng.uniform(100.0, 1200.0)
        lo, hi = max(centre - width / 2, 20.0), min(centre + width / 2, NYQ - 20.0)
        band = firwin(taps, [lo, hi], pass_zero=bool(rng.random() < 0.5), fs=RATE)
        h += band * rng.uniform(0.3, 1.0)
    peak = np.abs(np.fft.rfft(h, 512)).max()
    return h / (peak + 1e-9)


def convolutive(x: np.ndarray, rng: np.random.Generator, nonlinear: bool = True) -> np.ndarray:
    y = fftconvolve(x, _random_filter(rng), mode="same")
    if nonlinear:
        for power in (2, 3):
            if rng.random() < 0.5:
                term = fftconvolve(x ** power, _random_filter(rng), mode="same")
                y = y + rng.uniform(0.02, 0.15) * term
    return y


def impulsive(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    y = x.copy()
    n_hit = int(len(x) * rng.uniform(0.005, 0.05))
    idx = rng.choice(len(x), size=n_hit, replace=False)
    gain = rng.uniform(-1.0, 1.0, size=n_hit) * rng.uniform(0.2, 1.0)
    y[idx] = x[idx] * (1.0 + gain)
    return y


def coloured(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    noise = fftconvolve(rng.standard_normal(len(x)), _random_filter(rng, n_bands=3), mode="same")
    p_sig = float(np.mean(x ** 2)) + 1e-12
    snr_db = rng.uniform(10.0, 40.0)
    noise *= np.sqrt(p_sig / 10 ** (snr_db / 10) / (float(np.mean(noise ** 2)) + 1e-12))
    return x + noise


def rawboost(x: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One random combination of the three perturbations (at least one), level restored to the input RMS."""
    x64 = np.asarray(x, dtype=np.float64)
    rms_in = np.sqrt(np.mean(x64 ** 2)) + 1e-12
    ops = [op for op in (convolutive, impulsive, coloured) if rng.random() < 0.5]
    if not ops:
        ops = [(convolutive, impulsive, coloured)[int(rng.integers(3))]]
    y = x64
    for op in ops:
        y = op(y, rng)
    y *= rms_in / (np.sqrt(np.mean(y ** 2)) + 1e-12)
    return np.clip(y, -1.0, 1.0).astype(np.float32)
