"""Fuzzing the media decode path: G.711 (u-law, A-law) and big-endian L16 payloads of any length decode to
finite samples in [-1, 1] of the right length, and a LegTap fed arbitrary datagrams (garbage, wrong payload
types, huge or backward sequence/timestamp jumps, duplicates, reordering, odd lengths) never fails
internally, never produces NaN/inf audio and keeps its buffers bounded.

Default suite: a small sample. Dedicated run: CALLGUARD_FUZZ_EXAMPLES (README, "Tests").
"""

from __future__ import annotations

import struct

import numpy as np
import pytest
from fuzzing import fuzz_settings
from hypothesis import given
from hypothesis import strategies as st

from detector.audio import ALAW_TO_PCM, ULAW_TO_PCM, AudioError, g711_decode, load_audio, to_float
from detector.chunking import SpeechChunk
from plugin import metrics
from plugin.media import FORMATS, Decimator, LegTap
from plugin.rtp import MAX_GAP, MAX_SILENCE_FILL

FRAME = 160  # 20 ms at 8 kHz


@pytest.mark.fuzz
@fuzz_settings(100, weight=1.0)
@given(payload=st.binary(max_size=2000), law=st.sampled_from(["ulaw", "alaw"]))
def test_any_g711_bytes_decode_to_one_finite_sample_in_range_per_byte(payload, law):
    x = to_float(g711_decode(payload, law))
    assert x.shape == (len(payload),)
    assert np.isfinite(x).all() and (np.abs(x) <= 1.0).all()
    table = ULAW_TO_PCM if law == "ulaw" else ALAW_TO_PCM
    assert all(int(v) == int(table[b]) for v, b in zip(g711_decode(payload, law)[:16], payload[:16], strict=False))


@pytest.mark.fuzz
@fuzz_settings(20, weight=0.05)
@given(payload=st.binary(max_size=2000), suffix=st.sampled_from([".ulaw", ".alaw", ".pcmu", ".al"]))
def test_raw_g711_files_load_one_sample_per_byte_or_are_rejected_as_empty(tmp_path, payload, suffix):
    path = tmp_path / f"x{suffix}"
    path.write_bytes(payload)
    if not payload:
        with pytest.raises(AudioError):
            load_audio(path)
        return
    x = load_audio(path)
    assert x.dtype == np.float32 and x.shape == (len(payload),)
    assert np.isfinite(x).all() and (np.abs(x) <= 1.0).all()


def _recording_tap(fmt: str, window: int = 3) -> tuple[LegTap, list[np.ndarray], list[SpeechChunk]]:
    chunks: list[SpeechChunk] = []
    tap = LegTap(key="fuzz", fmt=fmt, on_chunk=lambda key, c: chunks.append(c), reorder_window=window)
    frames: list[np.ndarray] = []
    push = tap.chunker.push

    def record(frame: np.ndarray) -> list[SpeechChunk]:
        frames.append(frame.copy())
        return push(frame)

    tap.chunker.push = record  # type: ignore[method-assign]
    return tap, frames, chunks


def _rtp(seq: int, ts: int, payload: bytes, pt: int, ssrc: int = 7) -> bytes:
    return struct.pack("!BBHII", 0x80, pt, seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc) + payload


@pytest.mark.fuzz
@fuzz_settings(30, weight=0.1)
@given(fmt=st.sampled_from(["ulaw", "slin16"]), payloads=st.lists(st.binary(max_size=700), max_size=25))
def test_in_order_payloads_of_any_length_decode_to_exactly_the_reference_samples(fmt, payloads):
    """Odd-length L16 payloads lose their last byte, a payload with no whole sample is counted as malformed,
    and the 8 kHz frames are exactly the reference decoding of the concatenated usable bytes."""
    tap, frames, _ = _recording_tap(fmt)
    pt, rate, width = FORMATS[fmt]
    step = rate // 50
    for i, p in enumerate(payloads):
        tap.feed(_rtp(i, i * step, p, pt), now=0.0)
    usable = [p[:len(p) - len(p) % width] for p in payloads]
    assert tap.stats.malformed == sum(1 for u in usable if not u)
    assert tap.stats.concealed == 0
    data = b"".join(usable)
    if fmt == "ulaw":
        ref = ULAW_TO_PCM[np.frombuffer(data, np.uint8)].astype(np.int16)
    else:
        pcm = np.frombuffer(data, ">i2").astype(np.float64)
        y = Decimator()(pcm) if pcm.size else pcm
        ref = np.clip(np.rint(y), -32768, 32767).astype(np.int16)
    n = len(ref) // FRAME
    assert len(frames) == n == tap.stats.frames
    got = np.concatenate(frames) if frames else np.zeros(0, np.int16)
    assert got.dtype == np.int16
    # L16: the per-packet filter state equals one filter over the whole stream (up to float rounding)
    assert np.abs(got.astype(np.int32) - ref[:n * FRAME].astype(np.int32)).max(initial=0) <= (0 if fmt == "ulaw"
                                                                                              else 1)
    assert tap._pending.size == len(ref) - n * FRAME < FRAME


@st.composite
def hostile_datagrams(draw) -> tuple[str, int, list[bytes]]:
    """Valid streams damaged every way a network or a confused sender can: garbage, truncated headers, wrong
    payload types, odd/empty/oversized payloads, huge and backward sequence/timestamp jumps, duplicates,
    reordering, SSRC changes."""
    fmt = draw(st.sampled_from(["ulaw", "slin16"]))
    window = draw(st.integers(0, 8))
    pt, rate, width = FORMATS[fmt]
    step = rate // 50
    seq, ts, ssrc = draw(st.integers(0, 0xFFFF)), draw(st.integers(0, 0xFFFFFFFF)), 7
    nominal = step * width
    out: list[bytes] = []
    ops = draw(st.lists(st.sampled_from(["next"] * 4 + ["garbage", "short", "pt", "size", "big", "dup", "swap",
                                                       "seqjump", "tsjump", "ssrc"]), max_size=40))
    for op in ops:
        payload = draw(st.binary(min_size=nominal, max_size=nominal))
        p_t = pt
        if op == "garbage":
            out.append(draw(st.binary(max_size=300)))
            continue
        if op == "short":
            out.append(_rtp(seq, ts, payload, pt, ssrc)[:draw(st.integers(0, 12))])
            continue
        if op == "dup" and out:
            out.append(out[-1])
            continue
        if op == "swap" and len(out) >= 2:
            out[-1], out[-2] = out[-2], out[-1]
            continue
        if op == "pt":
            p_t = draw(st.integers(0, 127))
        elif op == "size":
            payload = draw(st.binary(max_size=3 * nominal + 1))
        elif op == "big":
            payload = draw(st.binary(min_size=2000, max_size=6000))
        elif op == "seqjump":
            seq += draw(st.one_of(st.integers(-5, 60), st.integers(-70000, 70000)))
        elif op == "tsjump":
            ts += draw(st.one_of(st.integers(-5, 60).map(lambda k: k * step), st.integers(-(2 ** 32), 2 ** 32)))
        elif op == "ssrc":
            ssrc = draw(st.integers(0, 0xFFFFFFFF))
        seq, ts = seq + 1, ts + step
        out.append(_rtp(seq, ts, payload, p_t, ssrc))
    return fmt, window, out


@pytest.mark.fuzz
@fuzz_settings(30, weight=0.1)
@given(case=hostile_datagrams())
def test_leg_tap_survives_hostile_datagrams_with_finite_audio_and_bounded_buffers(case):
    fmt, window, dgrams = case
    tap, frames, chunks = _recording_tap(fmt, window)
    _, rate, width = FORMATS[fmt]
    # a concealed or DTX-filled slot is at most a few nominal 20 ms frames of audio, never "the last packet's
    # length" of an oversized packet: one bogus packet must not make the tap synthesise minutes of audio
    per_slot = 3 * FRAME
    errors = metrics.get("media_feed_errors")
    fed_8k = 0  # upper bound of the 8 kHz samples the datagrams so far can hold
    for d in dgrams:
        concealed_before = tap.stats.concealed
        tap.feed(d, now=1000.0)
        assert metrics.get("media_feed_errors") == errors, "packet processing raised internally"
        assert tap.stats.concealed - concealed_before <= MAX_GAP + MAX_SILENCE_FILL + window + 2
        fed_8k += len(d) // width // (rate // 8000) + 1
        assert len(frames) * FRAME <= fed_8k + tap.stats.concealed * per_slot + FRAME
        assert tap._pending.size < FRAME and np.isfinite(tap._pending).all()
        assert len(tap.buffer._buf) <= max(window - 1, 0) and len(tap.buffer._played) <= 257
    tap.flush()
    assert metrics.get("media_feed_errors") == errors
    assert all(f.dtype == np.int16 and f.shape == (FRAME,) for f in frames)
    assert tap.stats.frames == len(frames)
    for c in chunks:
        assert c.audio.dtype == np.float32 and np.isfinite(c.audio).all() and (np.abs(c.audio) <= 1.0).all()
    assert tap.stats.packets == len(dgrams)
