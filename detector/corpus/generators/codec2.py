"""Codec 2 resynthesis of bona fide speech (Debian's `codec2`: c2enc / c2dec).

Codec 2 is a low-bit-rate parametric speech codec: a sinusoidal harmonic model (pitch, voicing, a quantised
spectral envelope and a phase model, no waveform coding). Decoding rebuilds the speech from those parameters,
so its output is a vocoder re-synthesis with artefacts unlike WORLD's, LPC's or Griffin-Lim's: harmonic
amplitudes sampled at multiples of F0, synthetic minimum-phase phases, frame-rate envelope steps. It is not a
telephone codec (no PBX carries it), so it is no bona fide cue either.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

from detector.corpus.generators._util import need, run, tempdir

FAMILY = "codec2"
ATTACK_TYPE = "resynthesis"
KIND = "transform"
# 450/450PWB are left out: they need a trained codebook file outside the package's defaults
MODES = ("3200", "2400", "1600", "1400", "1300", "1200", "700C")
RATE = 8000


def check() -> str | None:
    return need("c2enc", "codec2") or need("c2dec", "codec2")


def to_8k(x: np.ndarray, sr: int) -> np.ndarray:
    if sr == RATE:
        return x.astype(np.float64)
    g = np.gcd(sr, RATE)
    return resample_poly(x.astype(np.float64), RATE // g, sr // g)


def transform(x: np.ndarray, sr: int, rng: np.random.Generator, family: str = FAMILY):
    y8 = to_8k(x, sr)
    peak = float(np.max(np.abs(y8))) if y8.size else 0.0
    pcm = np.clip(np.rint(y8 * (0.5 / peak if peak > 0 else 1.0) * 32767), -32768, 32767).astype("<i2")
    mode = str(rng.choice(MODES))
    with tempdir() as d:
        src, bits, out = Path(d, "in.raw"), Path(d, "c2.bit"), Path(d, "out.raw")
        pcm.tofile(src)
        run(["c2enc", mode, str(src), str(bits)])
        run(["c2dec", mode, str(bits), str(out)])
        y = np.fromfile(out, dtype="<i2").astype(np.float32) / 32768.0
    return y, RATE, f"mode{mode}"
