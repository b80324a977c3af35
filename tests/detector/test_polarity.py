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


def test_every_chunk_of_one_recording_chain_is_kept_as_recorded_and_its_inverse_turned_back(chunks):
    """A property of the data that the tests above rely on not being trivial: one speaker and chain (the Allison
    prompts, all positively skewed) gives one orientation, so inverting the recordings turns every chunk."""
    assert all(upright(c) is c for c in chunks)
    assert all(np.array_equal(upright(-c), c) for c in chunks)


def test_integer_and_silent_input_is_handled_without_wrapping():
    rng = np.random.default_rng(0)
    pcm = (rng.standard_normal(16000) * 3000).astype(np.int16)
    pcm[0] = -32768  # negating this in int16 would wrap to itself
    turned = upright(pcm)
    assert turned.dtype == np.float32 and abs(turned).max() == 32768
    assert np.array_equal(upright(np.zeros(16000)), np.zeros(16000))
