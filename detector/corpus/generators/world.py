"""WORLD vocoder resynthesis of bona fide speech (pyworld): copy synthesis, pitch and formant shifts."""

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


def transform(x: np.ndarray, sr: int, rng: np.random.Generator, family: str = FAMILY):
    pw = import_pyworld()

    x64 = x.astype(np.float64)
    f0, t = pw.dio(x64, sr, frame_period=5.0)
    f0 = pw.stonemask(x64, f0, t, sr)
    sp = pw.cheaptrick(x64, f0, t, sr)
    ap = pw.d4c(x64, f0, t, sr)
    mode = rng.choice(["copy", "pitch", "formant", "both"], p=[0.3, 0.25, 0.2, 0.25])
    fk = float(rng.uniform(0.8, 1.25)) if mode in ("pitch", "both") else 1.0
    alpha = float(rng.uniform(0.88, 1.12)) if mode in ("formant", "both") else 1.0
    if alpha != 1.0:
        sp = warp_envelope(sp, alpha)
    y = pw.synthesize(np.ascontiguousarray(f0 * fk), np.ascontiguousarray(sp), np.ascontiguousarray(ap), sr, 5.0)
    return y.astype(np.float32), sr, f"{mode}_f0x{fk:.2f}_warp{alpha:.2f}"
