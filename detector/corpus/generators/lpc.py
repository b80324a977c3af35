"""Classic LPC vocoder resynthesis of bona fide speech: pulse/noise excitation through all-pole filters."""

from __future__ import annotations

import numpy as np
from scipy.linalg import solve_toeplitz
from scipy.signal import lfilter

from detector.corpus.generators._util import import_pyworld

FAMILY = "lpc"
ATTACK_TYPE = "resynthesis"
KIND = "transform"


def check() -> str | None:
    try:
        import_pyworld()
    except ImportError:
        return "pyworld (used for F0) is not installed: .venv/bin/pip install pyworld"
    return None


def _excitation(f0: np.ndarray, hop: int, sr: int, rng: np.random.Generator, jitter: float) -> np.ndarray:
    n = len(f0) * hop
    f0s = np.repeat(f0, hop)[:n]
    voiced = f0s > 0
    inc = np.where(voiced, f0s * (1 + jitter * rng.standard_normal(n)) / sr, 0.0)
    phase = np.cumsum(inc)
    pulses = np.zeros(n)
    idx = np.nonzero(np.diff(np.floor(phase), prepend=0.0) > 0)[0]
    period = np.where(f0s[idx] > 0, sr / np.maximum(f0s[idx], 1.0), 1.0)
    pulses[idx] = np.sqrt(period)
    noise = rng.standard_normal(n)
    return np.where(voiced, pulses, noise)


def transform(x: np.ndarray, sr: int, rng: np.random.Generator, family: str = FAMILY):
    pw = import_pyworld()

    x64 = x.astype(np.float64)
    hop = sr // 100
    f0, t = pw.dio(x64, sr, frame_period=10.0)
    f0 = pw.stonemask(x64, f0, t, sr)
    order = int(rng.choice([10, 12, 16])) if sr <= 8000 else int(rng.choice([16, 18, 22]))
    fk = float(rng.uniform(0.85, 1.2)) if rng.random() < 0.5 else 1.0
    jitter = float(rng.uniform(0.0, 0.01))
    exc = _excitation(f0 * fk, hop, sr, rng, jitter)
    win = 2 * hop + hop // 2
    w = np.hanning(win)
    pad = np.concatenate([np.zeros(win), x64, np.zeros(win)])
    y = np.zeros(len(exc))
    zi = np.zeros(order)
    pre = lfilter([1, -0.9], [1], pad)
    for i in range(len(f0)):
        c = win + i * hop
        seg = pre[c - win // 2: c - win // 2 + win] * w
        r = np.correlate(seg, seg, "full")[win - 1: win + order]
        if r[0] <= 1e-10:
            zi[:] = 0
            continue
        r[0] *= 1.0001
        try:
            a = solve_toeplitz(r[:order], r[1: order + 1])
        except np.linalg.LinAlgError:
            continue
        err = max(r[0] - np.dot(a, r[1: order + 1]), 1e-12)
        g = np.sqrt(err / np.sum(w ** 2))
        den = np.concatenate([[1.0], -a])
        e = exc[i * hop: (i + 1) * hop]
        y[i * hop: (i + 1) * hop], zi = lfilter([g], den, e, zi=zi)
    y = lfilter([1], [1, -0.9], y)  # undo pre-emphasis
    y = np.nan_to_num(y)
    return y.astype(np.float32), sr, f"order{order}_f0x{fk:.2f}"
