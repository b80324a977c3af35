"""The one speech-chunking function shared by the corpus builder, `scan` and the live path.

Audio is gated by webrtcvad in 20 ms frames; speech frames (with a short hang-over so word endings are
kept) are concatenated until they fill a 2-second chunk. Silence never enters a chunk, so leading
silence, pauses and call set-up noise cannot become a cue for the detectors. ``SpeechChunker`` is the
streaming form (one frame at a time, for RTP); ``speech_chunks`` runs it over a whole signal.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import webrtcvad

from detector.audio import DETECTOR_RATE, to_int16

CHUNK_SECONDS = 2.0
FRAME_MS = 20
VAD_MODE = 2
HANGOVER_FRAMES = 4  # keep 80 ms after the VAD says speech ended: consonant tails matter


@dataclass(frozen=True)
class SpeechChunk:
    """2 s of speech (float32 at ``rate``) that began ``start_s`` seconds into the stream."""

    index: int
    start_s: float
    end_s: float
    audio: np.ndarray
    rate: int = DETECTOR_RATE


class SpeechChunker:
    """Streaming VAD gate: feed 20 ms frames, get 2-second speech chunks.

    Frames are float32 or int16 at ``rate`` (8000 or 16000). A frame of the wrong size is padded or cut:
    the live path must never fail on one odd packet.
    """

    def __init__(self, rate: int = DETECTOR_RATE, vad_mode: int = VAD_MODE,
                 chunk_seconds: float = CHUNK_SECONDS, min_speech_frames: int = 3) -> None:
        if rate not in (8000, 16000, 32000, 48000):
            raise ValueError(f"VAD needs 8, 16, 32 or 48 kHz audio, got {rate} Hz")
        self.rate = rate
        self.frame_len = rate * FRAME_MS // 1000
        self.chunk_len = int(round(chunk_seconds * rate))
        self._vad = webrtcvad.Vad(vad_mode)
        self._min_speech = min_speech_frames
        self._buf: list[np.ndarray] = []
        self._buf_len = 0
        self._start_s: float | None = None
        self._pending: list[tuple[float, np.ndarray]] = []  # speech onset candidates not yet confirmed
        self._hang = 0
        self._in_speech = False
        self._frames_seen = 0
        self._next_index = 0

    @property
    def seconds_seen(self) -> float:
        return self._frames_seen * FRAME_MS / 1000.0

    def push(self, frame: np.ndarray) -> list[SpeechChunk]:
        """Add one 20 ms frame; return the chunks it completed (usually none, sometimes one)."""
        if frame.dtype != np.int16:
            frame = to_int16(np.asarray(frame, dtype=np.float32))
        if frame.size != self.frame_len:
            frame = np.resize(frame, self.frame_len) if frame.size else np.zeros(self.frame_len, np.int16)
        t = self.seconds_seen
        self._frames_seen += 1
        is_speech = self._vad.is_speech(frame.tobytes(), self.rate)
        out: list[SpeechChunk] = []
        if is_speech:
            self._hang = HANGOVER_FRAMES
            if not self._in_speech:
                # require a few consecutive speech frames before opening: clicks are not speech
                self._pending.append((t, frame))
                if len(self._pending) >= self._min_speech:
                    self._in_speech = True
                    for pt, pf in self._pending:
                        out += self._append(pt, pf)
                    self._pending.clear()
                return out
            return self._append(t, frame)
        self._pending.clear()
        if self._in_speech and self._hang > 0:
            self._hang -= 1
            return self._append(t, frame)
        self._in_speech = False
        return out

    def _append(self, t: float, frame: np.ndarray) -> list[SpeechChunk]:
        if self._start_s is None:
            self._start_s = t
        self._buf.append(frame)
        self._buf_len += frame.size
        if self._buf_len < self.chunk_len:
            return []
        audio = np.concatenate(self._buf)
        chunk = SpeechChunk(index=self._next_index, start_s=round(self._start_s, 3),
                            end_s=round(t + FRAME_MS / 1000.0, 3),
                            audio=audio[: self.chunk_len].astype(np.float32) / 32768.0, rate=self.rate)
        self._next_index += 1
        rest = audio[self.chunk_len:]
        self._buf = [rest] if rest.size else []
        self._buf_len = rest.size
        self._start_s = t if rest.size else None
        return [chunk]


def iter_frames(samples: np.ndarray, rate: int) -> Iterator[np.ndarray]:
    """Split a signal into whole 20 ms frames (a trailing partial frame is dropped)."""
    n = rate * FRAME_MS // 1000
    for i in range(0, len(samples) - n + 1, n):
        yield samples[i: i + n]


def speech_chunks(samples: np.ndarray, rate: int = DETECTOR_RATE, **kwargs: object) -> list[SpeechChunk]:
    """All 2-second speech chunks of a whole signal, exactly as the live path would cut them."""
    chunker = SpeechChunker(rate=rate, **kwargs)  # type: ignore[arg-type]
    pcm = samples if samples.dtype == np.int16 else to_int16(samples)
    out: list[SpeechChunk] = []
    for frame in iter_frames(pcm, rate):
        out += chunker.push(frame)
    return out
