"""WORLD vocoder resynthesis of bona fide speech (pyworld): copy synthesis, pitch and formant shifts.

F0 (DIO + StoneMask), the spectral envelope (CheapTrick) and synthesis are WORLD's. The aperiodicity is
not D4C's: pyworld's D4C reads memory it has not written on some frames, so the same input gave different
aperiodicity from run to run and the corpus was not reproducible. Instead a band-aperiodicity model of
the kind WORLD-based TTS back-ends predict is drawn per job and shaped per frame by the frame's
periodicity (normalised autocorrelation at the pitch period), all deterministic numpy.
"""

from __future__ import annotations

import numpy as np

from detector.corpus.generators._util import import_pyworld

FAMILY = "world"
ATTACK_TYPE = "resynthesis"
KIND = "transform"


def check() -> str | None:
    try:
        import_pyworld()
    except ImportError:
        return "pyworld is not installed: .venv/bin/pip install pyworld"
    return None


def warp_envelope(sp: np.ndarray, alpha: float) -> np.ndarray:
    """Stretch a spectral envelope along frequency (alpha > 1 raises formants)."""
    n = sp.shape[1]
    src = np.clip(np.arange(n) / alpha, 0, n - 1)
    lo = np.floor(src).astype(int)
    hi = np.minimum(lo + 1, n - 1)
    frac = src - lo
    return sp[:, lo] * (1 - frac) + sp[:, hi] * frac


def periodicity(x: np.ndarray, f0: np.ndarray, t: np.ndarray, sr: int) -> np.ndarray:
    """Normalised autocorrelation at the pitch lag over three periods around each voiced frame (0..1)."""
    r = np.zeros(len(f0))
    for i in np.flatnonzero(f0 > 0):
        lag = max(1, int(round(sr / f0[i])))
        half = int(1.5 * lag) + 1
        c = int(round(t[i] * sr))
        lo, hi = max(0, c - half), min(len(x), c + half + lag)
        seg = x[lo:hi]
        if len(seg) <= lag + 8:
            continue
        a, b = seg[:-lag], seg[lag:]
        den = np.sqrt(np.dot(a, a) * np.dot(b, b))
        r[i] = np.dot(a, b) / den if den > 0 else 0.0
    return np.clip(r, 0.0, 1.0)


def band_aperiodicity(f0: np.ndarray, per: np.ndarray, n_bins: int, sr: int,
                      rng: np.random.Generator) -> np.ndarray:
    """Aperiodicity (0..1, WORLD's layout) rising with frequency, lower where the frame is more periodic."""
    floor_db = float(rng.uniform(-45.0, -25.0))  # aperiodicity at 0 Hz of a fully periodic frame
    tilt_db = float(rng.uniform(4.0, 9.0))  # rise per kHz
    freq_khz = np.linspace(0.0, sr / 2000.0, n_bins)
    periodic_db = np.minimum(floor_db + tilt_db * freq_khz, 0.0)
    ap_db = per[:, None] ** 2 * periodic_db[None, :]
    ap = 10.0 ** (ap_db / 20.0)
    ap[f0 <= 0] = 1.0 - 1e-12
    return np.clip(ap, 1e-3, 1.0 - 1e-12)


def transform(x: np.ndarray, sr: int, rng: np.random.Generator, family: str = FAMILY):
    pw = import_pyworld()

    x64 = x.astype(np.float64)
    f0, t = pw.dio(x64, sr, frame_period=5.0)
    f0 = pw.stonemask(x64, f0, t, sr)
    sp = pw.cheaptrick(x64, f0, t, sr)
    ap = band_aperiodicity(f0, periodicity(x64, f0, t, sr), sp.shape[1], sr, rng)
    mode = rng.choice(["copy", "pitch", "formant", "both"], p=[0.3, 0.25, 0.2, 0.25])
    fk = float(rng.uniform(0.8, 1.25)) if mode in ("pitch", "both") else 1.0
    alpha = float(rng.uniform(0.88, 1.12)) if mode in ("formant", "both") else 1.0
    if alpha != 1.0:
        sp = warp_envelope(sp, alpha)
    y = pw.synthesize(np.ascontiguousarray(f0 * fk), np.ascontiguousarray(sp), np.ascontiguousarray(ap), sr, 5.0)
    return y.astype(np.float32), sr, f"{mode}_f0x{fk:.2f}_warp{alpha:.2f}"
