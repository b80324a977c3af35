"""The corpus v6/v7 resynthesis families: Codec 2 re-synthesis and three voice changers (Rubber Band's phase
vocoder, Praat's PSOLA, SoX's WSOLA)."""

from __future__ import annotations

import re

import numpy as np
import pytest

from detector.corpus.generators import codec2, load_all, psola, rubberband, wsola
from detector.corpus.splits import FAMILY_SPLIT


def _voiced(f0: float, seconds: float = 2.0, sr: int = 8000) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    phase = 2 * np.pi * f0 * t
    return (0.2 * sum(np.sin(k * phase) / k for k in range(1, 15))).astype(np.float32)


def _f0(x: np.ndarray, sr: int) -> float:
    """Fundamental by the autocorrelation peak between 60 and 400 Hz, over the middle of the signal."""
    seg = x[len(x) // 4: 3 * len(x) // 4].astype(np.float64)
    seg = seg - seg.mean()
    ac = np.correlate(seg, seg, "full")[len(seg) - 1:]
    lo, hi = sr // 400, sr // 60
    return sr / (lo + int(np.argmax(ac[lo:hi])))


@pytest.mark.parametrize("mod", [codec2, rubberband, psola, wsola])
def test_same_job_gives_the_same_audio(mod) -> None:
    if mod.check():
        pytest.skip(mod.check())
    # voiced, then a noisy (unvoiced) stretch: PSOLA fills unvoiced parts with randomly spaced periods
    noise = 0.05 * np.random.default_rng(0).normal(size=8000).astype(np.float32)
    x = np.concatenate([_voiced(140.0), noise, _voiced(120.0, seconds=1.0)])
    a = mod.transform(x, 8000, np.random.default_rng(3))
    mod.transform(_voiced(200.0), 8000, np.random.default_rng(4))
    b = mod.transform(x, 8000, np.random.default_rng(3))
    assert a[2] == b[2] and a[1] == b[1]
    assert np.array_equal(a[0], b[0])


def test_codec2_resynthesises_at_8khz_keeping_pitch_and_length_but_not_the_waveform() -> None:
    if codec2.check():
        pytest.skip(codec2.check())
    x = _voiced(150.0, sr=16000)
    y, sr, voice = codec2.transform(x, 16000, np.random.default_rng(0))
    assert sr == 8000 and voice.removeprefix("mode") in codec2.MODES
    assert abs(len(y) - len(x) // 2) <= 320  # at most one 40-ms codec frame of difference
    assert abs(_f0(y, 8000) - 150.0) < 8.0
    ref = _voiced(150.0)[: len(y)]
    assert abs(np.corrcoef(ref, y[: len(ref)])[0, 1]) < 0.9  # parameters re-synthesised, not the samples


# (module, pattern of the drawn shift in the voice description, its unit per octave, allowed |shift|, seeds,
# text every checked voice must contain): psola's seeds 0-2 keep the duration, so the pitch is measured cleanly
VOICE_CHANGERS = [
    (rubberband, r"_([+-][0-9.]+)st", 12, (2.0, 6.0), range(4), ""),
    (psola, r"psola_([+-][0-9.]+)st", 12, (3.0, 8.0), range(3), "_dur1.00"),
    (wsola, r"sox_([+-][0-9]+)c", 1200, (250.0, 700.0), range(4), ""),
]


@pytest.mark.parametrize("mod, pattern, per_octave, bounds, seeds, must_contain", VOICE_CHANGERS,
                         ids=[v[0].FAMILY for v in VOICE_CHANGERS])
def test_voice_changers_shift_the_pitch_by_the_drawn_amount(mod, pattern, per_octave, bounds, seeds,
                                                            must_contain) -> None:
    if mod.check():
        pytest.skip(mod.check())
    x = _voiced(150.0, seconds=2.5)
    for seed in seeds:
        y, sr, voice = mod.transform(x, 8000, np.random.default_rng(seed))
        shift = float(re.search(pattern, voice).group(1))
        assert bounds[0] <= abs(shift) <= bounds[1] and sr == 8000 and must_contain in voice
        expected = 150.0 * 2 ** (shift / per_octave)
        assert abs(_f0(y, sr) / expected - 1) < 0.05, (voice, _f0(y, sr), expected)


def test_new_families_are_registered_as_train_only_resynthesis() -> None:
    fams = load_all()
    for fam in ("codec2", "rubberband", "psola", "wsola"):
        assert fams[fam].ATTACK_TYPE == "resynthesis" and fams[fam].KIND == "transform"
        assert FAMILY_SPLIT[fam] == "train"
