"""RTP parsing and a small reorder buffer. Pure functions and state, no I/O; never raises on bad input.

``parse_rtp`` returns None for anything that is not a well-formed RTP packet. ``ReorderBuffer`` takes
packets of one stream in arrival order and releases payloads in sequence order: a packet that arrives up
to ``window`` packets late is put back in place, a packet still missing when the window has passed is
released as a loss (``None``: the caller conceals it with one frame of silence), duplicates and
packets older than what was already released are dropped and counted.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

RTP_VERSION = 2
_HDR = struct.Struct("!BBHII")
MAX_GAP = 3000  # a sequence jump larger than this (either way) is a stream restart, not loss
MAX_SILENCE_FILL = 50  # at most 1 s of silence inserted for a timestamp gap (DTX)
MAX_MISORDER = 100  # further behind than this is no late packet: two such in a row restart the stream


@dataclass(frozen=True)
class RtpPacket:
    payload_type: int
    marker: bool
    seq: int
    timestamp: int
    ssrc: int
    payload: bytes


def parse_rtp(data: bytes) -> RtpPacket | None:
    """Parse one RTP packet (RFC 3550): CSRCs, header extension and padding are handled."""
    if len(data) < _HDR.size:
        return None
    b0, b1, seq, ts, ssrc = _HDR.unpack_from(data)
    if b0 >> 6 != RTP_VERSION:
        return None
    padding, extension, cc = bool(b0 & 0x20), bool(b0 & 0x10), b0 & 0x0F
    pt = b1 & 0x7F
    if 72 <= pt <= 76:  # RTCP packet types on a muxed port
        return None
    offset = _HDR.size + 4 * cc
    if extension:
        if len(data) < offset + 4:
            return None
        (ext_words,) = struct.unpack_from("!H", data, offset + 2)
        offset += 4 + 4 * ext_words
    end = len(data)
    if padding:
        if end <= offset:
            return None
        pad = data[-1]
        if pad == 0 or end - pad < offset:
            return None
        end -= pad
    if end < offset:
        return None
    return RtpPacket(payload_type=pt, marker=bool(b1 & 0x80), seq=seq, timestamp=ts, ssrc=ssrc,
                     payload=bytes(data[offset:end]))


def seq_delta(a: int, b: int) -> int:
    """Signed distance a - b between 16-bit sequence numbers."""
    d = (a - b) & 0xFFFF
    return d - 0x10000 if d >= 0x8000 else d


@dataclass
class StreamStats:
    received: int = 0
    released: int = 0
    lost: int = 0
    duplicates: int = 0
    late: int = 0
    reordered: int = 0
    restarts: int = 0
    silence_filled: int = 0


@dataclass
class ReorderBuffer:
    """Per-stream sequence handling. ``push`` returns payloads to play in order (``None`` = lost frame)."""

    window: int = 3
    samples_per_frame: int = 160
    stats: StreamStats = field(default_factory=StreamStats)
    _next: int | None = None  # extended sequence number expected next
    _ssrc: int | None = None
    _buf: dict[int, RtpPacket] = field(default_factory=dict)
    _max_seen: int | None = None
    _last_ts: int | None = None
    _last_len: int = 0
    _played: set[int] = field(default_factory=set)  # recent released sequence numbers (duplicate check)
    _probe: int | None = None  # the last packet far behind the stream (RFC 3550 A.1 probation)

    def _extend(self, seq: int) -> int:
        assert self._next is not None
        return self._next + seq_delta(seq, self._next & 0xFFFF)

    def push(self, pkt: RtpPacket) -> list[bytes | None]:
        self.stats.received += 1
        if self._ssrc is not None and pkt.ssrc != self._ssrc:
            out = self.flush()
            self._reset()
            self.stats.restarts += 1
            return out + self.push_fresh(pkt)
        if self._next is None:
            return self.push_fresh(pkt)
        ext = self._extend(pkt.seq)
        if abs(ext - self._next) > MAX_GAP:
            out = self.flush()
            self._reset()
            self.stats.restarts += 1
            return out + self.push_fresh(pkt)
        if ext < self._next:
            if self._next - ext > MAX_MISORDER and ext not in self._played:
                # far behind: one stray packet took the stream forward, or the sender went back. Two in a
                # row mean the sender is really there: restart instead of dropping up to MAX_GAP packets
                if self._probe is not None and ext == self._probe + 1:
                    out = self.flush()
                    self._reset()
                    self.stats.restarts += 1
                    return out + self.push_fresh(pkt)
                self._probe = ext
            # already played (a duplicate) or already concealed as lost (too late): dropped either way
            if ext in self._played:
                self.stats.duplicates += 1
            else:
                self.stats.late += 1
            return []
        if ext in self._buf:
            self.stats.duplicates += 1
            return []
        if self._max_seen is not None and ext < self._max_seen:
            self.stats.reordered += 1
        self._max_seen = ext if self._max_seen is None else max(self._max_seen, ext)
        self._buf[ext] = pkt
        return self._release()

    def push_fresh(self, pkt: RtpPacket) -> list[bytes | None]:
        self._ssrc = pkt.ssrc
        self._next = pkt.seq
        self._max_seen = pkt.seq
        self._buf = {pkt.seq: pkt}
        return self._release()

    def _reset(self) -> None:
        self._next = None
        self._ssrc = None
        self._buf = {}
        self._max_seen = None
        self._last_ts = None
        self._played = set()
        self._probe = None

    def _emit(self, pkt: RtpPacket) -> list[bytes | None]:
        out: list[bytes | None] = []
        if self._last_ts is not None and self.samples_per_frame > 0:
            # contiguous sequence but a timestamp jump: the sender stopped sending (DTX); fill silence
            gap = ((pkt.timestamp - self._last_ts) & 0xFFFFFFFF) // self.samples_per_frame - 1
            if 0 < gap <= MAX_SILENCE_FILL:
                out += [None] * gap
                self.stats.silence_filled += gap
        self._last_ts = pkt.timestamp
        self._last_len = len(pkt.payload)
        self.stats.released += 1
        out.append(pkt.payload)
        return out

    def _release(self) -> list[bytes | None]:
        assert self._next is not None
        out: list[bytes | None] = []
        while self._buf:
            if self._next in self._buf:
                out += self._emit(self._buf.pop(self._next))
                self._remember(self._next)
                self._next += 1
                continue
            newest = max(self._buf)
            if newest - self._next < self.window:
                break
            # the missing packet is now too late to wait for: conceal it with one frame
            out.append(None)
            self.stats.lost += 1
            if self._last_ts is not None:
                self._last_ts = (self._last_ts + self.samples_per_frame) & 0xFFFFFFFF
            self._next += 1
        return out

    def _remember(self, ext: int) -> None:
        self._played.add(ext)
        if len(self._played) > 256:
            self._played = {e for e in self._played if e > ext - 128}

    def flush(self) -> list[bytes | None]:
        """Release everything buffered (end of stream): gaps become losses."""
        if self._next is None:
            return []
        out: list[bytes | None] = []
        while self._buf:
            if self._next in self._buf:
                out += self._emit(self._buf.pop(self._next))
                self._remember(self._next)
            else:
                out.append(None)
                self.stats.lost += 1
                if self._last_ts is not None:
                    self._last_ts = (self._last_ts + self.samples_per_frame) & 0xFFFFFFFF
            self._next += 1
        return out
