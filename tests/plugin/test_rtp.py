"""RTP parsing and sequence handling: reorder within the window, loss concealed, duplicates dropped,
malformed input never raises."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from plugin.rtp import ReorderBuffer, RtpPacket, parse_rtp, seq_delta


def rtp(seq: int, ts: int | None = None, payload: bytes = b"\xff" * 160, pt: int = 0, ssrc: int = 0x1234,
        csrc: int = 0, ext_words: int | None = None, pad: int = 0, marker: bool = False) -> bytes:
    b0 = 0x80 | csrc | (0x10 if ext_words is not None else 0) | (0x20 if pad else 0)
    b1 = pt | (0x80 if marker else 0)
    head = struct.pack("!BBHII", b0, b1, seq & 0xFFFF, (seq * 160 if ts is None else ts) & 0xFFFFFFFF, ssrc)
    head += b"\x00\x00\x00\x01" * csrc
    if ext_words is not None:
        head += struct.pack("!HH", 0xBEDE, ext_words) + b"\x00" * 4 * ext_words
    tail = (b"\x00" * (pad - 1) + bytes([pad])) if pad else b""
    return head + payload + tail


def test_parse_plain_packet_gives_header_fields_and_payload():
    p = parse_rtp(rtp(77, ts=12345, payload=b"abc", pt=0, marker=True))
    assert p is not None
    assert (p.seq, p.timestamp, p.ssrc, p.payload_type, p.marker, p.payload) == (77, 12345, 0x1234, 0, True, b"abc")


def test_parse_skips_csrcs_extension_and_padding():
    p = parse_rtp(rtp(1, payload=b"voice", csrc=2, ext_words=3, pad=4))
    assert p is not None and p.payload == b"voice"


def test_parse_rejects_short_wrong_version_bad_padding_and_truncated_extension():
    assert parse_rtp(b"\x80\x00") is None
    assert parse_rtp(b"\x40" + rtp(1)[1:]) is None  # version 1
    bad_pad = bytearray(rtp(1, payload=b"ab", pad=1))
    bad_pad[-1] = 200  # padding longer than the packet
    assert parse_rtp(bytes(bad_pad)) is None
    assert parse_rtp(rtp(1, payload=b"", ext_words=5)[:16]) is None


def test_parse_rejects_rtcp_on_the_same_port():
    sr = struct.pack("!BBH", 0x80, 200, 6) + b"\x00" * 24
    assert parse_rtp(sr) is None


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_parse_never_raises_on_garbage(data):
    p = parse_rtp(data)
    assert p is None or isinstance(p, RtpPacket)


def test_seq_delta_wraps():
    assert seq_delta(0, 65535) == 1
    assert seq_delta(65535, 0) == -1
    assert seq_delta(10, 5) == 5


def _run(buf: ReorderBuffer, seqs: list[int]) -> list[bytes | None]:
    out: list[bytes | None] = []
    for s in seqs:
        pkt = parse_rtp(rtp(s, payload=struct.pack("!I", s)))
        assert pkt is not None
        out += buf.push(pkt)
    return out + buf.flush()


def _seqs(out: list[bytes | None]) -> list[int | None]:
    return [None if p is None else struct.unpack("!I", p)[0] for p in out]


def test_in_order_stream_passes_through_unchanged():
    assert _seqs(_run(ReorderBuffer(window=3), list(range(10)))) == list(range(10))


def test_swapped_packets_are_put_back_in_order():
    buf = ReorderBuffer(window=3)
    assert _seqs(_run(buf, [0, 2, 1, 3, 5, 4, 6])) == list(range(7))
    assert buf.stats.reordered == 2 and buf.stats.lost == 0


def test_a_lost_packet_becomes_exactly_one_concealed_frame():
    buf = ReorderBuffer(window=3)
    assert _seqs(_run(buf, [0, 1, 3, 4, 5, 6])) == [0, 1, None, 3, 4, 5, 6]
    assert buf.stats.lost == 1


def test_duplicates_and_too_late_packets_are_dropped():
    buf = ReorderBuffer(window=2)
    out = _seqs(_run(buf, [0, 1, 1, 2, 4, 5, 6, 3, 2]))
    assert out == [0, 1, 2, None, 4, 5, 6]
    assert buf.stats.duplicates == 2 and buf.stats.late == 1  # 1 and 2 again; 3 after its slot was concealed


def test_sequence_wrap_around_is_continuous():
    seqs = [65533, 65534, 65535, 0, 1, 2]
    assert _seqs(_run(ReorderBuffer(window=3), seqs)) == seqs


def test_ssrc_change_restarts_the_stream():
    buf = ReorderBuffer(window=3)
    out = []
    for s in range(3):
        out += buf.push(parse_rtp(rtp(s, ssrc=1)))
    for s in (500, 501):
        out += buf.push(parse_rtp(rtp(s, ssrc=2)))
    out += buf.flush()
    assert len(out) == 5 and None not in out and buf.stats.restarts == 1


def test_timestamp_gap_without_sequence_gap_is_filled_with_silence():
    buf = ReorderBuffer(window=3, samples_per_frame=160)
    out = []
    out += buf.push(parse_rtp(rtp(0, ts=0)))
    out += buf.push(parse_rtp(rtp(1, ts=160 * 4)))  # the sender skipped 3 frames (DTX)
    assert out.count(None) == 3 and buf.stats.silence_filled == 3


@st.composite
def damaged_stream(draw):
    n = draw(st.integers(5, 120))
    window = draw(st.integers(1, 6))
    start = draw(st.integers(0, 65535))
    dropped = draw(st.sets(st.integers(1, n - 2), max_size=n // 3))
    kept = [i for i in range(n) if i not in dropped]
    dups = draw(st.sets(st.sampled_from(kept), max_size=5))
    arrival = []
    for i in kept:
        arrival.append(i)
        if i in dups:
            arrival.append(i)
    # local reordering: swap neighbours at distance < window, the first packet stays first
    swaps = draw(st.lists(st.integers(1, max(1, len(arrival) - 2)), max_size=len(arrival) // 2))
    for j in swaps:
        k = min(len(arrival) - 1, j + draw(st.integers(1, max(1, window - 1))))
        if abs(arrival[j] - arrival[k]) < window:
            arrival[j], arrival[k] = arrival[k], arrival[j]
    return start, window, kept, arrival


@settings(max_examples=300, deadline=None)
@given(damaged_stream())
def test_any_damaged_stream_comes_out_in_order_with_one_frame_per_slot(case):
    start, window, kept, arrival = case
    buf = ReorderBuffer(window=window)
    out = _seqs(_run(buf, [(start + i) & 0xFFFF for i in arrival]))
    played = [s for s in out if s is not None]
    rel = [(s - start) & 0xFFFF for s in played]
    assert rel == sorted(set(rel)), "released in order, no duplicates"
    # every slot from the first to the last packet is either a packet or one concealed frame
    assert len(out) == max(kept) + 1
    assert set(rel) | {i for i, s in enumerate(out) if s is None} == set(range(max(kept) + 1))
