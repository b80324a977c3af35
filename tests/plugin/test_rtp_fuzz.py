"""Fuzzing the RTP parser and the reorder buffer: any datagram is either parsed into a packet whose fields are in
range (and agree with an independent reading of the header) or rejected with None; any packet sequence keeps
the buffer's state bounded and releases sequence slots in order.

Default suite: a small sample. Dedicated run: CALLGUARD_FUZZ_EXAMPLES (README, "Tests").
"""

from __future__ import annotations

import struct

import pytest
from fuzzing import fuzz_settings
from hypothesis import given
from hypothesis import strategies as st

from plugin.rtp import MAX_GAP, MAX_MISORDER, MAX_SILENCE_FILL, ReorderBuffer, RtpPacket, parse_rtp


def _reference_payload(data: bytes) -> bytes | None:
    """RFC 3550 section 5.1 read independently of plugin.rtp (no RTCP filter)."""
    if len(data) < 12 or data[0] >> 6 != 2:
        return None
    start = 12 + 4 * (data[0] & 0x0F)
    if data[0] & 0x10:
        if len(data) < start + 4:
            return None
        start += 4 + 4 * int.from_bytes(data[start + 2:start + 4], "big")
    end = len(data)
    if data[0] & 0x20:
        if end <= start or data[-1] == 0 or end - data[-1] < start:
            return None
        end -= data[-1]
    return data[start:end] if end >= start else None


def _check_packet(data: bytes, p: RtpPacket | None) -> None:
    ref = _reference_payload(data)
    if p is None:
        assert ref is None or 72 <= (data[1] & 0x7F) <= 76, "a well-formed RTP packet was rejected"
        return
    assert ref is not None, "a malformed datagram was accepted"
    assert 0 <= p.payload_type <= 127 and not 72 <= p.payload_type <= 76
    assert 0 <= p.seq <= 0xFFFF and 0 <= p.timestamp <= 0xFFFFFFFF and 0 <= p.ssrc <= 0xFFFFFFFF
    assert isinstance(p.payload, bytes) and p.payload == ref
    assert len(p.payload) <= len(data) - 12
    b0, b1, seq, ts, ssrc = struct.unpack_from("!BBHII", data)
    assert (p.marker, p.payload_type, p.seq, p.timestamp, p.ssrc) == (bool(b1 & 0x80), b1 & 0x7F, seq, ts, ssrc)


@pytest.mark.fuzz
@fuzz_settings(100, weight=1.0)
@given(data=st.binary(max_size=1600))
def test_random_datagrams_parse_to_in_range_packets_or_none(data):
    _check_packet(data, parse_rtp(data))


@st.composite
def rtp_like(draw) -> bytes:
    """Version-2 headers with random flags, CSRC counts, extension lengths and padding bytes: the parser's
    length arithmetic is exercised far more often than with random bytes."""
    b0 = 0x80 | draw(st.integers(0, 0x3F))
    b1 = draw(st.integers(0, 255))
    head = struct.pack("!BBHII", b0, b1, draw(st.integers(0, 0xFFFF)), draw(st.integers(0, 0xFFFFFFFF)),
                       draw(st.integers(0, 0xFFFFFFFF)))
    body = draw(st.binary(max_size=4 * 15 + 8))
    if b0 & 0x10 and draw(st.booleans()):  # a plausible extension header right after the CSRCs
        pos = 4 * (b0 & 0x0F)
        words = draw(st.integers(0, 0xFFFF))
        body = body[:pos].ljust(pos, b"\0") + struct.pack("!HH", 0xBEDE, words) + body[pos:]
    payload = draw(st.binary(max_size=400))
    tail = bytes([draw(st.integers(0, 255))]) if b0 & 0x20 else b""
    return head + body + payload + tail


@pytest.mark.fuzz
@fuzz_settings(100, weight=1.0)
@given(data=rtp_like())
def test_version2_headers_with_random_lengths_parse_consistently(data):
    _check_packet(data, parse_rtp(data))


def _pkt(seq: int, ts: int, ssrc: int, n: int = 160) -> RtpPacket:
    return RtpPacket(payload_type=0, marker=False, seq=seq & 0xFFFF, timestamp=ts & 0xFFFFFFFF, ssrc=ssrc,
                     payload=bytes([seq & 0xFF]) * n)


packet_fields = st.tuples(st.integers(0, 0xFFFF), st.integers(0, 0xFFFFFFFF), st.sampled_from([1, 2, 0xFFFFFFFF]))


@st.composite
def hostile_stream(draw) -> list[tuple[int, int, int]]:
    """A sequence stream with in-order runs mixed with huge forward/backward sequence and timestamp jumps,
    duplicates, replays of old packets and SSRC changes."""
    seq, ts, ssrc = draw(packet_fields)
    out = []
    for op in draw(st.lists(st.sampled_from(["next", "next", "next", "dup", "seqjump", "tsjump", "old", "ssrc",
                                             "any"]), max_size=60)):
        if op == "next":
            seq, ts = seq + 1, ts + 160
        elif op == "seqjump":
            seq += draw(st.integers(-70000, 70000))
        elif op == "tsjump":
            ts += draw(st.integers(-(2 ** 32), 2 ** 32))
        elif op == "old" and out:
            out.append(draw(st.sampled_from(out)))
            continue
        elif op == "ssrc":
            ssrc = draw(st.sampled_from([1, 2, 0xFFFFFFFF]))
        elif op == "any":
            seq, ts, ssrc = draw(packet_fields)
        out.append((seq & 0xFFFF, ts & 0xFFFFFFFF, ssrc))
    return out


@pytest.mark.fuzz
@fuzz_settings(50, weight=0.5)
@given(stream=hostile_stream(), window=st.integers(0, 50))
def test_hostile_sequence_streams_keep_the_reorder_buffer_bounded(stream, window):
    buf = ReorderBuffer(window=window)
    released = 0
    for seq, ts, ssrc in stream:
        out = buf.push(_pkt(seq, ts, ssrc))
        # one packet releases at most: what was buffered, a gap up to MAX_GAP, a DTX fill, itself
        assert len(out) <= MAX_GAP + MAX_SILENCE_FILL + window + 2
        assert all(p is None or isinstance(p, bytes) for p in out)
        released += len(out)
        assert len(buf._buf) <= max(window - 1, 0), "only packets inside the window are held"
        assert len(buf._played) <= 257
        if buf._next is not None:
            assert all(buf._next < ext < buf._next + max(window, 1) for ext in buf._buf)
    released += len(buf.flush())
    assert not buf._buf
    s = buf.stats
    assert s.received == len(stream)
    assert s.released + s.lost + s.silence_filled == released
    assert s.released + s.duplicates + s.late <= s.received


@pytest.mark.fuzz
@fuzz_settings(50, weight=0.25)
@given(stream=hostile_stream(), window=st.integers(0, 10), start=st.integers(0, 0xFFFF))
def test_a_clean_stream_after_any_hostile_prefix_is_played_again_within_a_few_packets(stream, window, start):
    """One stray packet (a big sequence jump, an old replay) must not blind the tap for up to MAX_GAP packets
    (a minute): after any prefix, a clean in-order run from any sequence number is played again at the latest
    once it has caught up with the stray packet's MAX_MISORDER-packet tolerance (RFC 3550 A.1)."""
    buf = ReorderBuffer(window=window)
    for seq, ts, ssrc in stream:
        buf.push(_pkt(seq, ts, ssrc))
    ssrc = stream[-1][2] if stream else 1
    n = MAX_MISORDER + 50
    released: list[int] = []
    for i in range(n):
        pkt = RtpPacket(payload_type=0, marker=False, seq=(start + i) & 0xFFFF, timestamp=(i * 160) & 0xFFFFFFFF,
                        ssrc=ssrc, payload=b"clean" + struct.pack("!I", i))
        out = buf.push(pkt)
        released += [struct.unpack("!I", p[5:])[0] for p in out if p is not None and p.startswith(b"clean")]
    released += [struct.unpack("!I", p[5:])[0] for p in buf.flush() if p is not None and p.startswith(b"clean")]
    assert released == sorted(set(released)), "clean packets come out once, in order"
    assert set(range(MAX_MISORDER + 2 + window, n)) <= set(released), "the clean stream was not played again"
