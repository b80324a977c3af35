"""Mel-cepstral analysis + MLSA filter resynthesis of bona fide speech (pysptk)."""

from __future__ import annotations

import numpy as np

from detector.audio import resample
from detector.corpus.generators._util import import_pyworld, import_with_shim
from detector.corpus.generators.lpc import _excitation

FAMILY = "mlsa"
ATTACK_TYPE = "resynthesis"
KIND = "transform"


def check() -> str | None:
    try:
        import_with_shim("pysptk")
    except ImportError:
        return "pysptk is not installed: .venv/bin/pip install pysptk"
    return None


def transform(x: np.ndarray, sr: int, rng: np.random.Generator, family: str = FAMILY):
    pysptk = import_with_shim("pysptk")
    from pysptk.synthesis import MLSADF, Synthesizer

    if sr != 8000:  # telephone band is all that survives the channel; 8 kHz keeps MLSA cheap and stable
        x, sr = resample(x, sr, 8000), 8000
    x64 = x.astype(np.float64)
    frame_len = 256
    hop = sr // 200  # 5 ms
    order = int(rng.choice([12, 16, 20]))
    alpha = pysptk.util.mcepalpha(sr)
    pad = np.concatenate([np.zeros(frame_len // 2), x64, np.zeros(frame_len)])
    n = (len(x64)) // hop
    idx = np.arange(frame_len)[None, :] + hop * np.arange(n)[:, None]
    frames = pad[idx] * np.blackman(frame_len)
    frames += 1e-6 * rng.standard_normal(frames.shape)  # keep mcep stable on digital silence
    mc = pysptk.mcep(frames, order=order, alpha=alpha, etype=1, eps=1e-8)
    fk = float(rng.uniform(0.85, 1.2)) if rng.random() < 0.5 else 1.0
    # F0 by WORLD's DIO and our own excitation: SPTK's swipe and excite are not reproducible run to run
    pw = import_pyworld()
    f0, t = pw.dio(x64, sr, frame_period=1000.0 * hop / sr)
    f0 = pw.stonemask(x64, f0, t, sr)
    f0 = np.pad(f0, (0, max(0, n - len(f0))))[:n] * fk
    exc = _excitation(f0, hop, sr, rng, 0.0)
    b = pysptk.mc2b(mc, alpha)
    synth = Synthesizer(MLSADF(order=order, alpha=alpha, pd=5), hop)
    y = synth.synthesis(exc, np.ascontiguousarray(b))
    return np.nan_to_num(y).astype(np.float32), sr, f"order{order}_f0x{fk:.2f}"
