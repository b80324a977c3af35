"""Malformed input never crashes the file loader or the codecs: it raises AudioError or decodes.

The default suite runs a small sample; the dedicated fuzz run sets CALLGUARD_FUZZ_EXAMPLES (e.g. 20000).
"""

import io
import os

import numpy as np
import soundfile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detector.audio import AudioError, g711_decode, load_audio
from detector.chunking import SpeechChunker

EXAMPLES = int(os.environ.get("CALLGUARD_FUZZ_EXAMPLES", "60"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _valid_wav() -> bytes:
    buf = io.BytesIO()
    soundfile.write(buf, (np.sin(np.arange(4000) / 3) * 0.3).astype(np.float32), 8000, format="WAV")
    return buf.getvalue()


VALID = _valid_wav()


@FUZZ
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


@FUZZ
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


@settings(max_examples=EXAMPLES * 20, deadline=None)
@given(payload=st.binary(max_size=1500), law=st.sampled_from(["ulaw", "alaw"]))
def test_any_g711_payload_decodes_and_feeds_the_chunker(payload, law):
    pcm = g711_decode(payload, law)
    assert pcm.dtype == np.int16 and len(pcm) == len(payload)
    SpeechChunker().push(pcm[:160])
