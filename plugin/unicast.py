"""Raw-audio taps: FreeSWITCH's ``unicast`` sends audio frames over UDP with no RTP header.

What FreeSWITCH sends (``switch_ivr_park`` in src/switch_ivr.c; unicast streams only while the channel
is parked): one datagram per frame the channel reads, from the socket it bound to ``local-ip:local-port``
to ``remote-ip:remote-port``. Without ``flags: native`` the frame is decoded to L16 -- signed 16-bit
linear in the host's byte order (little-endian on x86-64 and arm64) at the channel's rate; with
``flags: native`` it is the channel's codec payload as is (PCMU/PCMA for a G.711 leg; L16 for a loopback
leg). A comfort-noise frame is sent as ``decoded_bytes_per_packet`` bytes of 0xFF. There are no sequence
numbers or timestamps, so there is no reordering or loss concealment: a datagram lost on the way is
simply missing audio (the tap is meant for loopback or a LAN).

``RawAudioFeed`` decodes these datagrams for one tap and drives the same per-tap pipeline as RTP taps
(``plugin.media.LegTap``: its stats, its ``SpeechChunker``, its ``on_chunk``); the media endpoint calls
it instead of ``LegTap.feed`` for sources registered with ``MediaEndpoint.set_raw_source``.
"""

from __future__ import annotations

import logging
import time

import numpy as np

from detector.audio import ALAW_TO_PCM, DETECTOR_RATE, ULAW_TO_PCM
from plugin import metrics
from plugin.media import Decimator, LegTap

log = logging.getLogger(__name__)

FORMATS = ("l16", "pcmu", "pcma")
MAX_DATAGRAM = 8192  # 256 ms of 16 kHz L16; anything larger is not an audio frame


class RawAudioFeed:
    """Decoder for one unicast stream: ``feed(tap, datagram)``. Never raises."""

    def __init__(self, fmt: str = "l16", rate: int = 8000) -> None:
        if fmt not in FORMATS:
            raise ValueError(f"unicast format {fmt!r}: expected one of {', '.join(FORMATS)}")
        if rate not in (8000, 16000) or (fmt != "l16" and rate != 8000):
            raise ValueError(f"unicast rate {rate}: L16 at 8000 or 16000 Hz, G.711 at 8000 Hz")
        self.fmt, self.rate = fmt, rate
        self.width = 2 if fmt == "l16" else 1
        self._decim = Decimator() if rate != DETECTOR_RATE else None
        self.cng_frames = 0

    def __call__(self, tap: LegTap, data: bytes, now: float | None = None) -> None:
        try:
            self._feed(tap, data, now if now is not None else time.time())
        except Exception:  # fail open: a decoding bug must not kill the endpoint
            metrics.inc("media_feed_errors")
            log.exception("tap %s: unicast datagram processing failed", tap.key)

    def _feed(self, tap: LegTap, data: bytes, now: float) -> None:
        st = tap.stats
        st.packets += 1
        if st.first_packet_at is None:
            st.first_packet_at = now
        usable = len(data) - len(data) % self.width
        if usable <= 0 or len(data) > MAX_DATAGRAM:
            st.malformed += 1
            metrics.inc("unicast_malformed")
            return
        if self.fmt == "l16":
            pcm = np.frombuffer(data, "<i2", usable // 2).astype(np.float64)
        elif data.count(0xFF) == len(data) and len(data) % 2 == 0:
            # native G.711 comfort noise: FreeSWITCH fills the *decoded* frame size (2 bytes per sample)
            self.cng_frames += 1
            pcm = np.zeros(len(data) // 2, np.float64)
        else:
            table = ULAW_TO_PCM if self.fmt == "pcmu" else ALAW_TO_PCM
            pcm = table[np.frombuffer(data, np.uint8, usable)].astype(np.float64)
        if self._decim is not None:
            pcm = self._decim(pcm)
        tap.push_8k(pcm, now)
