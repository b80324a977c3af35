"""Copy synthesis of bona fide speech with the small multi-band MelGAN-style vocoder trained here (neural).

The vocoder (``detector.corpus.neural_vocoders``, family ``mbmelgan``) was trained on train-split speakers
only: four 2 kHz sub-bands from the log-mel, recombined by a pseudo-QMF bank. Voices as for ``hifigan``:
``copy`` (60 %) and voice-conversion-like ``vc_warpW`` (40 %, magnitude spectrum frequency-warped by
0.88-1.12 before the mel is taken). Needs torch and ``data/vocoders/mbmelgan.pt``
(``callguard corpus train-vocoders``); otherwise the build skips it.
"""

from __future__ import annotations

import numpy as np

from detector.corpus.generators.hifigan import copy_or_warp
from detector.corpus.neural_vocoders import weights_problem

FAMILY = "mbmelgan"
ATTACK_TYPE = "neural"
KIND = "transform"


def check() -> str | None:
    return weights_problem(FAMILY)


def transform(x: np.ndarray, sr: int, rng: np.random.Generator, family: str = FAMILY):
    return copy_or_warp(FAMILY, x, sr, rng)
