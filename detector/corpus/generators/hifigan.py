"""Copy synthesis of bona fide speech with the small HiFi-GAN-style vocoder trained here (neural).

The vocoder (``detector.corpus.neural_vocoders``, family ``hifigan``) was trained on train-split
speakers only; it turns the 8 kHz log-mel of a recording back into a waveform. Voices: ``copy`` (60 %)
and, since corpus v4, voice-conversion-like ``vc_warpW`` (40 %): the magnitude spectrum frequency-warped by
0.88-1.12 before the mel is taken (this vocoder takes no F0, so the warp moves formants and harmonics
together), so that train holds converted-timbre neural speech too, not only the eval family's. Needs torch and
``data/vocoders/hifigan.pt`` (``callguard corpus train-vocoders``); otherwise the build skips it.
"""

from __future__ import annotations

import numpy as np

from detector.corpus.neural_vocoders import weights_problem

FAMILY = "hifigan"
ATTACK_TYPE = "neural"
KIND = "transform"


def check() -> str | None:
    return weights_problem(FAMILY)


def prepare(x: np.ndarray, sr: int, rate: int | None = None) -> np.ndarray:
    """A vocoder's input: resampled to ``rate`` (default the vocoders' 8 kHz), peak 0.8."""
    from detector.audio import resample
    from detector.corpus.neural_vocoders.dsp import SR, normalize

    rate = rate or SR
    if sr != rate:
        x = resample(x, sr, rate)
    return normalize(np.asarray(x, dtype=np.float32))


def copy_or_warp(vocoder: str, x: np.ndarray, sr: int, rng: np.random.Generator, p_warp: float = 0.4):
    """Copy synthesis by a mel-only vocoder, or (``p_warp``) a voice-conversion-like ``vc_warpW`` variant."""
    from detector.corpus.neural_vocoders.dsp import SR
    from detector.corpus.neural_vocoders.synth import load, vocode

    model, _ = load(vocoder)
    seed = int(rng.integers(2**31))
    warp, voice = 1.0, "copy"
    if rng.random() < p_warp:
        warp = float(rng.choice([rng.uniform(0.88, 0.96), rng.uniform(1.04, 1.12)]))
        voice = f"vc_warp{warp:.2f}"
    y = vocode(model, prepare(x, sr), seed, warp=warp)
    return y, SR, voice


def transform(x: np.ndarray, sr: int, rng: np.random.Generator, family: str = FAMILY):
    return copy_or_warp(FAMILY, x, sr, rng)
