"""Copy synthesis of bona fide speech with the small WaveRNN-style autoregressive vocoder trained here (neural).

The vocoder (``detector.corpus.neural_vocoders``, family ``wavernn``) was trained on train-split speakers
only; it samples 8-bit mu-law audio one sample at a time from the log-mel. Voices: ``copy`` (60 %) and
voice-conversion-like ``vc_warpW`` (40 %, as for ``hifigan``). Needs torch and ``data/vocoders/wavernn.pt``
(``callguard corpus train-vocoders``); otherwise the build skips it.
"""

from __future__ import annotations

import numpy as np

from detector.corpus.generators.hifigan import copy_or_warp
from detector.corpus.neural_vocoders import weights_problem

FAMILY = "wavernn"
ATTACK_TYPE = "neural"
KIND = "transform"


def check() -> str | None:
    return weights_problem(FAMILY)


def transform(x: np.ndarray, sr: int, rng: np.random.Generator, family: str = FAMILY):
    return copy_or_warp(FAMILY, x, sr, rng)
