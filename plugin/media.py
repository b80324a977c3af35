"""One asyncio UDP endpoint for all media taps, demultiplexed by the sender's address.

The socket is read in batches: on each readiness event (``loop.add_reader``) the endpoint drains up to
``READ_BATCH`` datagrams with ``recvfrom`` before it yields to the loop, instead of one datagram per
event-loop pass as an ``asyncio.DatagramProtocol`` gets them (``callguard bench recv`` measures the cost).

Each ExternalMedia channel sends its RTP from its own address (its ``UNICASTRTP_LOCAL_ADDRESS`` and
``UNICASTRTP_LOCAL_PORT`` channel variables). The adapter announces that address with ``add_tap``;
packets from any other address are counted and dropped. Per tap: RTP parse -> reorder buffer ->
G.711 u-law or big-endian L16 decoding -> 8 kHz (slin16 is low-passed and decimated, with filter state
kept across packets) -> 20 ms frames -> ``detector.chunking.SpeechChunker`` -> ``on_chunk``.

The per-packet work is a 160/640-byte table lookup, a 20 ms FIR and one webrtcvad call (tens of
microseconds, measured in tests/plugin/test_media.py); scoring, the expensive part, never runs here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.signal import firwin, lfilter, lfilter_zi

from detector.audio import DETECTOR_RATE, ULAW_TO_PCM
from detector.chunking import FRAME_MS, SpeechChunk, SpeechChunker
from plugin import metrics
from plugin.rtp import ReorderBuffer, StreamStats, parse_rtp

log = logging.getLogger(__name__)

Addr = tuple[str, int]
FORMATS = {"ulaw": (0, 8000, 1), "slin16": (118, 16000, 2)}  # payload type, rate, bytes per sample
_FRAME_8K = DETECTOR_RATE * FRAME_MS // 1000
_DECIM_TAPS = firwin(63, 3600, fs=16000).astype(np.float64)


class Decimator:
    """16 kHz -> 8 kHz with an anti-alias FIR whose state spans packets (no per-packet edge clicks)."""

    def __init__(self) -> None:
        self._zi = lfilter_zi(_DECIM_TAPS, [1.0]) * 0.0
        self._phase = 0

    def __call__(self, x: np.ndarray) -> np.ndarray:
        y, self._zi = lfilter(_DECIM_TAPS, [1.0], x.astype(np.float64), zi=self._zi)
        out = y[self._phase::2]
        self._phase = (self._phase + len(x)) % 2
        return out


@dataclass
class TapStats:
    packets: int = 0
    malformed: int = 0
    wrong_payload_type: int = 0
    frames: int = 0
    concealed: int = 0
    chunks: int = 0
    first_packet_at: float | None = None  # time.time() of the first packet
    speech_onset_at: float | None = None  # wall-clock time when the first chunk's speech began


@dataclass
class LegTap:
    """The receiving end of one tap: packets in, 2-second speech chunks out."""

    key: str  # the leg's identifier, passed to on_chunk
    fmt: str
    on_chunk: Callable[[str, SpeechChunk], None]
    reorder_window: int = 3
    stats: TapStats = field(default_factory=TapStats)

    def __post_init__(self) -> None:
        self.payload_type, self.rate, self.width = FORMATS[self.fmt]
        self.buffer = ReorderBuffer(window=self.reorder_window, samples_per_frame=self.rate * FRAME_MS // 1000)
        self.chunker = SpeechChunker(rate=DETECTOR_RATE)
        self._decim = Decimator() if self.rate != DETECTOR_RATE else None
        self._pending = np.zeros(0, np.float64)  # 8 kHz samples waiting to fill a 20 ms frame
        self._last_frame_len = self.rate * FRAME_MS // 1000 * self.width

    @property
    def rtp_stats(self) -> StreamStats:
        return self.buffer.stats

    def feed(self, data: bytes, now: float | None = None) -> None:
        """One datagram. Never raises: bad packets are counted."""
        try:
            self._feed(data, now if now is not None else time.time())
        except Exception:  # fail open: a bug in decoding must not kill the endpoint
            metrics.inc("media_feed_errors")
            log.exception("tap %s: packet processing failed", self.key)

    def _feed(self, data: bytes, now: float) -> None:
        st = self.stats
        st.packets += 1
        if st.first_packet_at is None:
            st.first_packet_at = now
        pkt = parse_rtp(data)
        if pkt is None:
            st.malformed += 1
            metrics.inc("rtp_malformed")
            return
        dynamic_ok = self.fmt != "ulaw" and 96 <= pkt.payload_type <= 127
        if pkt.payload_type != self.payload_type and not dynamic_ok:
            st.wrong_payload_type += 1  # comfort noise, DTMF events, ...: not audio for us
            return
        for payload in self.buffer.push(pkt):
            self._decode(payload, now)

    def flush(self) -> None:
        for payload in self.buffer.flush():
            self._decode(payload, time.time())

    def _decode(self, payload: bytes | None, now: float) -> None:
        if payload is None:
            self.stats.concealed += 1
            n = self._last_frame_len // self.width
            pcm = np.zeros(n, np.float64)
        else:
            usable = len(payload) - len(payload) % self.width
            if usable <= 0:
                self.stats.malformed += 1
                return
            # a lost slot is concealed with the last packet's duration, but at most 60 ms: one oversized
            # packet must not turn every later loss into seconds of synthetic audio
            self._last_frame_len = min(usable, 3 * self.rate * FRAME_MS // 1000 * self.width)
            if self.fmt == "ulaw":
                pcm16 = ULAW_TO_PCM[np.frombuffer(payload, np.uint8, usable)]
                if usable == _FRAME_8K and not self._pending.size:
                    # the usual packet: exactly one 20 ms frame and nothing pending, so the int16 table
                    # values are the frame (what push_8k's float round trip would give, bit for bit)
                    self._push_frame(pcm16, now)
                    return
                pcm = pcm16.astype(np.float64)
            else:
                pcm = np.frombuffer(payload, ">i2", usable // 2).astype(np.float64)
        if self._decim is not None:
            pcm = self._decim(pcm)
        self.push_8k(pcm, now)

    def push_8k(self, pcm: np.ndarray, now: float) -> None:
        """Decoded 8 kHz samples (int16 range, float) into 20 ms frames, the speech chunker and ``on_chunk``;
        shared by RTP taps and raw unicast taps (``plugin.unicast``)."""
        self._pending = np.concatenate([self._pending, pcm]) if self._pending.size else pcm
        while self._pending.size >= _FRAME_8K:
            frame = np.clip(np.rint(self._pending[:_FRAME_8K]), -32768, 32767).astype(np.int16)
            self._pending = self._pending[_FRAME_8K:]
            self._push_frame(frame, now)

    def _push_frame(self, frame: np.ndarray, now: float) -> None:
        """One 20 ms int16 frame at 8 kHz into the speech chunker; chunks out to ``on_chunk``."""
        self.stats.frames += 1
        for chunk in self.chunker.push(frame):
            self.stats.chunks += 1
            if self.stats.speech_onset_at is None:
                # the chunk ends now; its speech began (end_s - start_s) stream-seconds ago
                self.stats.speech_onset_at = now - (chunk.end_s - chunk.start_s)
            self.on_chunk(self.key, chunk)


MAX_DATAGRAM = 65536  # larger than any UDP payload: nothing is truncated (raw sources check sizes themselves)
READ_BATCH = 256  # datagrams read per readiness event at most, so one busy socket cannot starve the loop
RCVBUF_BYTES = 1 << 20  # asked for; the kernel caps it at net.core.rmem_max


class MediaTransport:
    """What the endpoint exposes of its socket (the subset of ``asyncio.DatagramTransport`` callers use):
    ``get_extra_info("socket" | "sockname")``, ``close()``, ``is_closing()``."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._sockname = sock.getsockname()
        self._closed = False

    def get_extra_info(self, name: str, default: object = None) -> object:
        if name == "socket":
            return self._sock
        if name == "sockname":
            return self._sockname
        return default

    def is_closing(self) -> bool:
        return self._closed

    def close(self) -> None:
        self._closed = True


class MediaEndpoint:
    """The single UDP socket all ExternalMedia channels send to.

    The socket is non-blocking and watched with ``loop.add_reader``: on each readiness event the endpoint
    reads datagrams in a loop until the socket is empty (``BlockingIOError``) or ``READ_BATCH`` were read,
    then yields to the loop. At 50 packets/s per leg this turns one event-loop pass (selector call, handle,
    transport) per datagram into one per burst; the per-datagram work is ``recvfrom`` plus
    ``datagram_received`` (demultiplexing by source address, then the tap)."""

    def __init__(self, read_batch: int = READ_BATCH) -> None:
        self.taps: dict[Addr, LegTap] = {}
        self.raw_sources: dict[Addr, Callable[[LegTap, bytes], None]] = {}  # not RTP: plugin.unicast
        self.unknown_packets = 0
        self.transport: MediaTransport | None = None
        self.read_batch = max(1, int(read_batch))
        self.read_passes = 0  # readiness events handled (datagrams / read_passes = mean batch)
        self.full_batches = 0  # passes that stopped at read_batch with datagrams possibly left
        self._sock: socket.socket | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._warned: set[Addr] = set()

    async def start(self, host: str, port: int) -> Addr:
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM, proto=socket.IPPROTO_UDP,
                                       flags=socket.AI_PASSIVE)
        if not infos:
            raise OSError(f"cannot resolve {host!r}")
        error: OSError | None = None
        for family, type_, proto, _, addr in infos:
            sock = socket.socket(family, type_, proto)
            try:
                sock.setblocking(False)
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF_BYTES)
                sock.bind(addr)
            except OSError as exc:
                sock.close()
                error = exc
                continue
            break
        else:
            assert error is not None
            raise error
        self._sock, self._loop = sock, loop
        self.transport = MediaTransport(sock)
        loop.add_reader(sock.fileno(), self._read_ready)
        name = sock.getsockname()
        return name[0], name[1]

    def close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is None:
            return
        if self.transport is not None:
            self.transport.close()
        if self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(Exception):  # closing from another thread or after the loop stopped
                self._loop.remove_reader(sock.fileno())
        sock.close()

    def _read_ready(self) -> None:
        """Drain the socket: at most ``read_batch`` datagrams, each dispatched at once. Never raises."""
        sock = self._sock
        if sock is None:
            return
        recv = sock.recvfrom
        dispatch = self.datagram_received
        n = 0
        while n < self.read_batch:
            try:
                data, addr = recv(MAX_DATAGRAM)
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:  # e.g. an ICMP error queued on the socket: reported, reading goes on later
                self.error_received(exc)
                break
            n += 1
            try:
                dispatch(data, addr)
            except Exception:  # fail open: one bad datagram must not stop the endpoint (taps never raise)
                metrics.inc("media_feed_errors")
                log.exception("media: handling a datagram from %s failed", addr)
        else:
            self.full_batches += 1  # datagrams may be left: the loop comes back after its other work
        self.read_passes += 1
        metrics.inc("media_read_passes")  # media_datagrams / media_read_passes: the mean batch
        if n:
            metrics.inc("media_datagrams", n)

    def add_tap(self, addr: Addr, tap: LegTap) -> None:
        self.taps[_norm(addr)] = tap

    def set_raw_source(self, addr: Addr, feed: Callable[[LegTap, bytes], None]) -> None:
        """Datagrams from ``addr`` (an added tap's address) are raw audio, not RTP: ``feed(tap, data)``."""
        self.raw_sources[_norm(addr)] = feed

    def remove_tap(self, addr: Addr) -> LegTap | None:
        self.raw_sources.pop(_norm(addr), None)
        tap = self.taps.pop(_norm(addr), None)
        if tap is not None:
            tap.flush()
        return tap

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        """One datagram from ``addr``: to the tap announced for that address, else counted and dropped."""
        tap = self.taps.get(addr)  # an IPv4 (host, port) is its own key: the common case, one lookup
        key = addr
        if tap is None:
            key = _norm((addr[0], addr[1]))
            tap = self.taps.get(key)
        if tap is None:  # a tap announced with a wildcard address (0.0.0.0:port): match the port alone
            tap = self.taps.get(("0.0.0.0", key[1])) or self.taps.get(("::", key[1]))
        if tap is None:
            self.unknown_packets += 1
            metrics.inc("media_unknown_source_packets")
            if key not in self._warned and len(self._warned) < 100:
                self._warned.add(key)
                log.info("dropping RTP from unannounced address %s:%d", *key)
            return
        if self.raw_sources:
            raw = self.raw_sources.get(key) or self.raw_sources.get(("0.0.0.0", key[1]))
            if raw is not None:
                raw(tap, data)
                return
        tap.feed(data)

    def error_received(self, exc: Exception) -> None:
        log.debug("media socket error: %s", exc)


def _norm(addr: Addr) -> Addr:
    host = addr[0]
    if host.startswith("::ffff:"):
        host = host[7:]
    return host, int(addr[1])
