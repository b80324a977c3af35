import glob

import numpy as np
import pytest

from detector.audio import load_audio
from detector.chunking import speech_chunks
from detector.polarity import residual_skewness, upright

PROMPTS = sorted(glob.glob("/usr/share/asterisk/sounds/en_US_f_Allison/*.wav"))[:40]


@pytest.fixture(scope="module")
def chunks():
    if not PROMPTS:
        pytest.skip("asterisk-core-sounds-en-wav is not installed (./setup installs it)")
    return [c.audio.astype(np.float64) for c in speech_chunks(np.concatenate([load_audio(p) for p in PROMPTS]))]


def test_a_voice_and_its_inverse_are_turned_to_the_same_samples(chunks):
    for c in chunks:
        assert np.array_equal(upright(c), upright(-c))


def test_the_upright_orientation_has_a_positively_skewed_residual(chunks):
    skews = [residual_skewness(c) for c in chunks]
    assert all(residual_skewness(upright(c)) >= 0 for c in chunks)
    assert all(s == -residual_skewness(-c) for s, c in zip(skews, chunks, strict=True))
    # voiced speech is clearly skewed: the sign is a property of the voice, not of rounding
    assert np.median(np.abs(skews)) > 0.1




def test_one_recording_chains_chunks_all_come_out_the_same_way_up(chunks):
    """The sign follows the voice and the chain, not the words: every Allison chunk is kept as recorded, and
    every chunk of the inverted recordings is turned back."""
    assert all(upright(c) is c for c in chunks)
    assert all(np.array_equal(upright(-c), c) for c in chunks)
