"""Copy synthesis of bona fide speech with the small HiFi-GAN-style vocoder trained here (neural).

The vocoder (``detector.corpus.neural_vocoders``, family ``hifigan``) was trained on train-split
speakers only; it turns the 8 kHz log-mel of a recording back into a waveform. Needs torch and
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


def prepare(x: np.ndarray, sr: int) -> np.ndarray:
    from detector.audio import resample
    from detector.corpus.neural_vocoders.dsp import SR, normalize

    if sr != SR:
        x = resample(x, sr, SR)
    return normalize(np.asarray(x, dtype=np.float32))


def transform(x: np.ndarray, sr: int, rng: np.random.Generator, family: str = FAMILY):
    from detector.corpus.neural_vocoders.dsp import SR
    from detector.corpus.neural_vocoders.synth import load, vocode

    model, _ = load(FAMILY)
    y = vocode(model, prepare(x, sr), int(rng.integers(2**31)))
    return y, SR, "copy"
