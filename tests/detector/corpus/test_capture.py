"""The capture stage (room, microphone, codec) drawn alike for bona fide and spoof recordings."""

from __future__ import annotations

import shutil
from collections import Counter

import numpy as np
import pytest
from scipy.signal import welch

from detector.corpus.capture import (
    CODEC_P,
    CODECS,
    IMAGE_ROOM_P,
    MIC_P,
    ROOM_P,
    CaptureParams,
    apply_capture,
    capture_stages,
    draw_capture,
    room_probabilities,
)


def _speechlike(sr: int = 16000, seconds: float = 3.0) -> np.ndarray:
    rng = np.random.default_rng(3)
    t = np.arange(int(sr * seconds)) / sr
    voiced = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 20))
    env = (np.sin(2 * np.pi * 3 * t) > 0).astype(float)  # syllable-like on/off
    return (0.3 * voiced * env / 3 + 0.01 * rng.standard_normal(t.size)).astype(np.float32)


def test_same_seed_gives_the_same_capture_and_audio() -> None:
    x = _speechlike()
    for seed in range(12):
        a, sr_a, pa = apply_capture(x, 16000, seed)
        b, sr_b, pb = apply_capture(x, 16000, seed)
        assert pa == pb and sr_a == sr_b and np.array_equal(a, b)


def test_draw_rates_match_the_stated_probabilities_and_replay_never_gets_a_second_room() -> None:
    rng = np.random.default_rng(0)
    draws = [draw_capture(rng) for _ in range(4000)]
    assert abs(np.mean([d.room != "none" for d in draws]) - ROOM_P) < 0.03
    assert abs(np.mean([d.mic != "none" for d in draws]) - MIC_P) < 0.03
    assert abs(np.mean([d.codec != "none" for d in draws]) - CODEC_P) < 0.03
    assert set(Counter(d.codec.split("-")[0] for d in draws if d.codec != "none")) == {c[0] for c in CODECS}
    assert all(d.room.startswith(("none", "rt")) for d in draws)  # the default: noise-tail rooms only
    rooms = [d.room for d in (draw_capture(rng, image_p=IMAGE_ROOM_P) for _ in range(2000)) if d.room != "none"]
    assert abs(np.mean([r.startswith("box") for r in rooms]) - IMAGE_ROOM_P) < 0.06
    assert all(capture_stages(r) == {"room"} for r in rooms)
    replay = [draw_capture(rng, room_p=0.0) for _ in range(500)]
    assert all(d.room == "none" for d in replay)
    assert any(d.mic != "none" for d in replay) and any(d.codec != "none" for d in replay)


@pytest.mark.parametrize("room", ["rt0.60drr0.0", "box6.0x4.0x2.8rt0.60d1.2"])
def test_room_adds_a_decaying_tail_after_the_speech_stops(room: str) -> None:
    pytest.importorskip("pyroomacoustics")
    sr = 16000
    x = np.zeros(sr, np.float32)
    x[:4000] = _speechlike(sr, 0.25)
    dry, _, _ = apply_capture(x, sr, 0, params=CaptureParams())
    wet, _, _ = apply_capture(x, sr, 0, params=CaptureParams(room=room))
    tail = slice(4200, 8000)
    assert np.sqrt(np.mean(dry[tail] ** 2)) < 1e-6
    e1 = np.sqrt(np.mean(wet[4200:5000] ** 2))
    e2 = np.sqrt(np.mean(wet[7000:8000] ** 2))
    assert e1 > 1e-3 and e2 < e1  # reverberation present and dying away


@pytest.mark.parametrize("replay_share", [0.0, 0.12, 0.34, 1.0])
def test_room_probabilities_make_a_room_as_common_in_bona_fide_speech_as_in_spoofs(replay_share: float) -> None:
    bona_p, spoof_p = room_probabilities(replay_share)
    assert spoof_p == ROOM_P
    spoof_room_share = replay_share + (1 - replay_share) * spoof_p  # replays always carry a room
    assert bona_p == pytest.approx(spoof_room_share)


def test_mic_colours_the_spectrum_where_its_peak_sits() -> None:
    sr = 16000
    x = np.random.default_rng(1).standard_normal(sr * 2).astype(np.float32) * 0.1
    y, _, _ = apply_capture(x, sr, 0, params=CaptureParams(mic="hp100_pk1000:6.0_pk3000:-6.0_tilt0.00"))
    f, px = welch(x, sr, nperseg=1024)
    _, py = welch(y, sr, nperseg=1024)
    gain = 10 * np.log10(py / px)
    at = lambda hz: gain[np.argmin(np.abs(f - hz))]  # noqa: E731
    assert at(1000) - at(3000) > 8.0  # +6 dB at 1 kHz against -6 dB at 3 kHz (relative: level is renormalised)


@pytest.mark.skipif(shutil.which("ffmpeg") is None, reason="ffmpeg not installed (./setup installs it)")
@pytest.mark.parametrize("codec", [f"{c[0]}-{c[4][0]}" for c in CODECS])
@pytest.mark.parametrize("rate", [8000, 10000, 11025, 16000, 22050, 44100])  # the rates our sources and generators give
def test_every_codec_round_trips_at_every_source_rate(codec: str, rate: int) -> None:
    x = _speechlike(rate)
    y, sr, p = apply_capture(x, rate, 0, params=CaptureParams(codec=codec))
    assert p.as_row() == {"capture": codec}
    assert sr in (8000, 16000, rate) and abs(len(y) / sr - len(x) / rate) < 0.2
    assert np.max(np.abs(y)) > 0.05  # not silence
    if sr == rate:
        assert not np.array_equal(y[: len(x)], x)


def test_capture_row_names_every_stage_or_none() -> None:
    assert CaptureParams().as_row() == {"capture": "none"}
    assert CaptureParams(room="rt0.30drr3.0", codec="gsm-13k").as_row() == {"capture": "rt0.30drr3.0+gsm-13k"}
    full = "rt0.30drr3.0+hp67_pk352:3.8_pk3220:1.3_tilt0.23+gsm-13k"
    assert capture_stages(full) == {"room", "microphone", "codec"}
    assert capture_stages("speex-15k") == {"codec"} and capture_stages("none") == set()
