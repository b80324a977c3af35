"""The media endpoint: demultiplexing taps by source address, decoding, and chunking like the offline path."""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from pathlib import Path

import numpy as np
import pytest

from detector.audio import g711_decode, g711_encode, load_audio, resample, to_int16
from detector.chunking import speech_chunks
from plugin import metrics
from plugin.media import Decimator, LegTap, MediaEndpoint

SPEECH = sorted(Path("/usr/share/asterisk/sounds/en_US_f_Allison").glob("a*.wav"))[:6]


def speech_8k() -> np.ndarray:
    if not SPEECH:
        pytest.skip("asterisk-core-sounds-en-wav not installed")
    parts = [np.zeros(4000, np.float32)]
    for f in SPEECH:
        parts += [load_audio(f), np.zeros(2000, np.float32)]
    return np.concatenate(parts)


def packets(payloads: list[bytes], pt: int, ts_step: int, ssrc: int = 99) -> list[bytes]:
    return [struct.pack("!BBHII", 0x80, pt, i & 0xFFFF, i * ts_step, ssrc) + p for i, p in enumerate(payloads)]


async def send_all(dgrams: list[bytes], dest: tuple[str, int], sock: socket.socket) -> None:
    for i, d in enumerate(dgrams):
        sock.sendto(d, dest)
        if i % 10 == 9:
            await asyncio.sleep(0.002)
    await asyncio.sleep(0.2)


def run_endpoint(send_from: list[tuple[socket.socket, list[bytes]]], taps: dict[socket.socket, LegTap]) -> int:
    async def main() -> int:
        ep = MediaEndpoint()
        host, port = await ep.start("127.0.0.1", 0)
        for sock, tap in taps.items():
            ep.add_tap(sock.getsockname(), tap)
        await asyncio.gather(*(send_all(d, (host, port), s) for s, d in send_from))
        for sock in taps:
            ep.remove_tap(sock.getsockname())
        ep.close()
        return ep.unknown_packets

    return asyncio.run(main())


def udp() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    return s


def test_ulaw_tap_cuts_the_same_chunks_as_the_offline_chunker():
    x = speech_8k()
    codes = g711_encode(to_int16(x), "ulaw")
    got = []
    tap = LegTap(key="leg1", fmt="ulaw", on_chunk=lambda k, c: got.append((k, c)))
    with udp() as s:
        run_endpoint([(s, packets([codes[i:i + 160].tobytes() for i in range(0, len(codes) - 159, 160)], 0,
                                  160))], {s: tap})
    offline = speech_chunks(g711_decode(codes.tobytes(), "ulaw"))
    assert len(got) == len(offline) >= 2
    for (key, live), ref in zip(got, offline, strict=True):
        assert key == "leg1" and live.start_s == ref.start_s
        np.testing.assert_allclose(live.audio, ref.audio, atol=1e-6)
    assert tap.stats.malformed == 0 and tap.stats.concealed == 0


def test_packets_from_unannounced_addresses_are_counted_and_dropped():
    x = speech_8k()[:8000 * 4]
    codes = g711_encode(to_int16(x), "ulaw")
    dgrams = packets([codes[i:i + 160].tobytes() for i in range(0, len(codes) - 159, 160)], 0, 160)
    before = metrics.get("media_unknown_source_packets")
    got_a, got_b = [], []
    tap_a = LegTap(key="a", fmt="ulaw", on_chunk=lambda k, c: got_a.append(k))
    tap_b = LegTap(key="b", fmt="ulaw", on_chunk=lambda k, c: got_b.append(k))
    with udp() as a, udp() as b, udp() as stranger:
        unknown = run_endpoint([(a, dgrams), (b, dgrams[:50]), (stranger, dgrams[:30])], {a: tap_a, b: tap_b})
    assert unknown == 30 and metrics.get("media_unknown_source_packets") - before == 30
    assert tap_a.stats.packets == len(dgrams) and tap_b.stats.packets == 50
    assert set(got_a) <= {"a"} and set(got_b) <= {"b"}


def test_reordered_lost_duplicated_and_malformed_packets_keep_the_frame_clock():
    x = speech_8k()[:8000 * 6]
    codes = g711_encode(to_int16(x), "ulaw")
    dgrams = packets([codes[i:i + 160].tobytes() for i in range(0, len(codes) - 159, 160)], 0, 160)
    n = len(dgrams)
    damaged = list(dgrams)
    damaged[10], damaged[11] = damaged[11], damaged[10]  # reordered
    del damaged[40]  # lost
    damaged.insert(60, damaged[59])  # duplicated
    damaged.insert(80, b"\x12\x34garbage")  # malformed
    tap = LegTap(key="x", fmt="ulaw", on_chunk=lambda k, c: None)
    with udp() as s:
        run_endpoint([(s, damaged)], {s: tap})
    assert tap.stats.frames == n  # one 20 ms frame per slot: the lost one concealed, the duplicate dropped
    assert tap.stats.concealed == 1 and tap.stats.malformed == 1
    assert tap.rtp_stats.duplicates == 1 and tap.rtp_stats.reordered == 1


def voiced(seconds: float, rate: int) -> np.ndarray:
    """A continuous vowel-like signal (150 Hz harmonics, 4 Hz syllable envelope): speech to the VAD, no pauses."""
    t = np.arange(int(seconds * rate)) / rate
    f0 = 150 + 20 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / rate
    x = sum(np.sin(k * phase) / k for k in range(1, 20))
    return (0.25 * x * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t))).astype(np.float32)


def test_slin16_is_decoded_big_endian_and_decimated_to_8k():
    x16 = np.concatenate([np.zeros(8000, np.float32), voiced(6, 16000)])
    pcm = to_int16(x16).astype(">i2").tobytes()
    frame = 640
    got = []
    tap = LegTap(key="w", fmt="slin16", on_chunk=lambda k, c: got.append(c))
    with udp() as s:
        run_endpoint([(s, packets([pcm[i:i + frame] for i in range(0, len(pcm) - frame + 1, frame)], 118, 320))],
                     {s: tap})
    assert len(got) >= 2, "speech chunks came out"
    ref = resample(x16, 16000, 8000)
    first = got[0]
    assert 0.4 <= first.start_s <= 0.7  # speech starts at 0.5 s
    # the chunk is the 8 kHz signal from its start, up to the FIR's delay (~16 samples)
    i0 = int(round(first.start_s * 8000))
    best = max(np.corrcoef(first.audio[100:-100], ref[i0 + 100 - lag:i0 + 16000 - 100 - lag])[0, 1]
               for lag in range(0, 40))
    assert best > 0.95, best  # not 1.0: half-sample delay and a different anti-alias filter
    # and it is not byte-swapped or 16 kHz audio read as 8 kHz: the level matches too
    assert 0.7 < np.std(first.audio) / np.std(ref[i0:i0 + 16000]) < 1.3


def test_decimator_keeps_speech_band_and_rejects_aliases_across_packet_boundaries():
    t = np.arange(16000 * 2) / 16000
    dec = Decimator()
    low = np.concatenate([dec(seg) for seg in np.split(np.sin(2 * np.pi * 1000 * t) * 10000, 100)])
    dec = Decimator()
    high = np.concatenate([dec(seg) for seg in np.split(np.sin(2 * np.pi * 6000 * t) * 10000, 100)])
    assert len(low) == 16000
    assert np.std(low[1000:]) > 0.65 * 10000  # ~7071 for a pure tone
    assert np.std(high[1000:]) < 0.02 * 10000  # 6 kHz would alias to 2 kHz without the filter


def test_per_packet_work_is_small():
    """Reported, not asserted tightly (speed targets live in bench/): decoding + VAD per 20 ms packet."""
    x = speech_8k()
    codes = g711_encode(to_int16(x), "ulaw")
    dgrams = packets([codes[i:i + 160].tobytes() for i in range(0, len(codes) - 159, 160)], 0, 160)
    tap = LegTap(key="p", fmt="ulaw", on_chunk=lambda k, c: None)
    t0 = time.perf_counter()
    for d in dgrams:
        tap.feed(d)
    per_packet = (time.perf_counter() - t0) / len(dgrams)
    print(f"per-packet cost {per_packet * 1e6:.0f} us over {len(dgrams)} packets")
    assert per_packet < 0.02  # far below the 20 ms a packet lasts, even on a loaded CI machine
