"""Neural source-filter (NSF) vocoder trained here: copy synthesis and voice-conversion-like variants.

The vocoder (``detector.corpus.neural_vocoders``, family ``nsf``) was trained on train-split speakers
only. Voices: ``copy`` (plain copy synthesis, 50 %) and ``vc`` (50 %): F0 shifted by 2-4 semitones up or
down and the spectral envelope frequency-warped by a factor 0.9-1.1 before the mel is taken, the way a
voice-conversion system hands a converted mel and F0 to a neural vocoder. Needs torch and
``data/vocoders/nsf.pt`` (``callguard corpus train-vocoders``); otherwise the build skips it.
"""

from __future__ import annotations

import numpy as np

from detector.corpus.generators.hifigan import prepare
from detector.corpus.neural_vocoders import weights_problem

FAMILY = "nsf"
ATTACK_TYPE = "neural"
KIND = "transform"


def check() -> str | None:
    return weights_problem(FAMILY)


def transform(x: np.ndarray, sr: int, rng: np.random.Generator, family: str = FAMILY):
    from detector.corpus.neural_vocoders.dsp import SR
    from detector.corpus.neural_vocoders.synth import load, vocode

    model, _ = load(FAMILY)
    if rng.random() < 0.5:
        semis, warp, voice = 0.0, 1.0, "copy"
    else:
        semis = float(rng.uniform(2.0, 4.0)) * (1 if rng.random() < 0.5 else -1)
        warp = float(rng.uniform(0.9, 1.1))
        voice = f"vc_f0{semis:+.1f}st_warp{warp:.2f}"
    y = vocode(model, prepare(x, sr), int(rng.integers(2**31)), f0_factor=2 ** (semis / 12), warp=warp)
    return y, SR, voice
