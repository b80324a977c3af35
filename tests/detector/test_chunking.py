import glob

import numpy as np
import pytest

from detector.audio import load_audio
from detector.chunking import SpeechChunker, iter_frames, speech_chunks

PROMPTS = sorted(glob.glob("/usr/share/asterisk/sounds/en_US_f_Allison/*.wav"))[:12]


@pytest.fixture(scope="module")
def speech():
    if not PROMPTS:
        pytest.skip("asterisk-core-sounds-en-wav is not installed (./setup installs it)")
    return np.concatenate([load_audio(p) for p in PROMPTS])


def test_chunks_are_two_seconds_and_in_time_order(speech):
    chunks = speech_chunks(speech)
    assert len(chunks) >= 3
    assert all(c.audio.shape == (16000,) and c.audio.dtype == np.float32 for c in chunks)
    starts = [c.start_s for c in chunks]
    assert starts == sorted(starts)
    assert [c.index for c in chunks] == list(range(len(chunks)))


def test_silence_and_noise_floor_give_no_chunks():
    rng = np.random.default_rng(0)
    assert speech_chunks(np.zeros(8000 * 10, np.float32)) == []
    assert speech_chunks((rng.standard_normal(8000 * 10) * 1e-4).astype(np.float32)) == []


def test_inserted_silence_does_not_enter_chunks(speech):
    plain = speech_chunks(speech)
    half = len(speech) // 2 // 160 * 160
    padded = np.concatenate([np.zeros(8000 * 3, np.float32), speech[:half], np.zeros(8000 * 5, np.float32),
                             speech[half:]])
    gapped = speech_chunks(padded)
    assert abs(len(gapped) - len(plain)) <= 1
    for c in gapped:  # no chunk is mostly silence
        frames = c.audio.reshape(-1, 160)
        assert (np.sqrt((frames ** 2).mean(axis=1)) < 1e-4).mean() < 0.2


def test_streaming_and_batch_cut_identical_chunks(speech):
    batch = speech_chunks(speech)
    chunker = SpeechChunker()
    streamed = [c for f in iter_frames(speech, 8000) for c in chunker.push(f)]
    assert len(streamed) == len(batch)
    for a, b in zip(streamed, batch, strict=True):
        assert a.start_s == b.start_s
        np.testing.assert_array_equal(a.audio, b.audio)


def test_odd_sized_frames_never_raise():
    chunker = SpeechChunker()
    for n in (0, 1, 159, 161, 400):
        chunker.push(np.zeros(n, np.int16))
    assert chunker.seconds_seen == pytest.approx(0.1)


def test_wideband_chunks_have_wideband_length(speech):
    from detector.audio import resample

    chunks = speech_chunks(resample(speech, 8000, 16000), 16000)
    assert chunks and all(c.audio.shape == (32000,) and c.rate == 16000 for c in chunks)
