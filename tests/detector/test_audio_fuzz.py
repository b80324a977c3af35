"""Malformed input never crashes the file loader or the codecs: it raises AudioError or decodes.

The default suite runs a small sample; the dedicated fuzz run sets CALLGUARD_FUZZ_EXAMPLES (README, "Tests").
The file tests are weighted down there: most random files end in an ffmpeg run (tens of milliseconds).
"""

import io
import struct

import numpy as np
import pytest
import soundfile
from fuzzing import fuzz_settings
from hypothesis import given
from hypothesis import strategies as st

from detector.audio import MAX_RATE, MIN_RATE, AudioError, g711_decode, load_audio
from detector.chunking import SpeechChunker


def _valid_wav() -> bytes:
    buf = io.BytesIO()
    soundfile.write(buf, (np.sin(np.arange(4000) / 3) * 0.3).astype(np.float32), 8000, format="WAV")
    return buf.getvalue()


VALID = _valid_wav()


@pytest.mark.fuzz
@fuzz_settings(60, weight=0.05)
@given(data=st.binary(max_size=2048), suffix=st.sampled_from([".wav", ".mp3", ".ulaw", ".alaw", ".ogg", ".flac"]))
def test_random_bytes_are_read_or_rejected_cleanly(tmp_path, data, suffix):
    path = tmp_path / f"input{suffix}"
    path.write_bytes(data)
    try:
        x = load_audio(path)
    except AudioError as exc:
        assert str(path) in str(exc)
        return
    assert x.dtype == np.float32 and np.isfinite(x).all()


@pytest.mark.fuzz
@fuzz_settings(60, weight=0.1)
@given(cut=st.integers(0, len(VALID)), flips=st.lists(st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)),
                                                      max_size=8))
def test_truncated_or_corrupted_wav_never_crashes(tmp_path, cut, flips):
    data = bytearray(VALID[:cut])
    for pos, value in flips:
        if pos < len(data):
            data[pos] = value
    path = tmp_path / "damaged.wav"
    path.write_bytes(bytes(data))
    try:
        x = load_audio(path)
    except AudioError:
        return
    assert np.isfinite(x).all()


@pytest.mark.fuzz
@fuzz_settings(1200, weight=1.5)
@given(payload=st.binary(max_size=1500), law=st.sampled_from(["ulaw", "alaw"]))
def test_any_g711_payload_decodes_and_feeds_the_chunker(payload, law):
    pcm = g711_decode(payload, law)
    assert pcm.dtype == np.int16 and len(pcm) == len(payload)
    SpeechChunker().push(pcm[:160])


@pytest.mark.fuzz
@fuzz_settings(60, weight=0.05)
@given(rate=st.one_of(st.integers(0, 2 ** 32 - 1), st.sampled_from([0, 1, MIN_RATE - 1, MIN_RATE, 8000, 44100,
                                                                    MAX_RATE, MAX_RATE + 1, 2 ** 31 - 1])))
def test_any_sample_rate_in_a_wav_header_is_resampled_to_bounded_length_or_rejected(tmp_path, rate):
    """A damaged header's sample rate must not make the loader synthesise gigabytes (1 Hz -> 8 kHz is 8000x)."""
    data = bytearray(VALID)
    data[24:28] = struct.pack("<I", rate)
    path = tmp_path / "rate.wav"
    path.write_bytes(bytes(data))
    try:
        x = load_audio(path)
    except AudioError as exc:
        assert str(path) in str(exc)
        return
    assert np.isfinite(x).all()
    assert len(x) <= 4000 * 8000 // MIN_RATE + 1
