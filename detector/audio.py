"""Audio primitives shared by the corpus, `scan` and the live path.

G.711 is done with numpy lookup tables so that no ``audioop`` (gone in Python 3.13) is needed. Decoding
is bit-exact with the ITU-T G.711 reference; encoding rounds to the nearest reconstruction level (the
reference truncates, so a few codes differ by one step, which no detector can notice).
The detectors work on 8 kHz mono float32 in [-1, 1]: telephone audio is the default.
"""

from __future__ import annotations

import subprocess
from math import gcd
from pathlib import Path

import numpy as np
from scipy.signal import resample_poly

DETECTOR_RATE = 8000
MIN_RATE, MAX_RATE = 1000, 384_000  # sample rates load_audio accepts
RAW_G711_SUFFIXES = {".ulaw": "ulaw", ".ul": "ulaw", ".pcmu": "ulaw", ".mulaw": "ulaw",
                     ".alaw": "alaw", ".al": "alaw", ".pcma": "alaw"}


class AudioError(ValueError):
    """An audio file that cannot be read or holds no usable audio."""


def _ulaw_decode_table() -> np.ndarray:
    codes = ~np.arange(256, dtype=np.int32) & 0xFF
    sign = codes & 0x80
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = (((mantissa << 3) + 0x84) << exponent) - 0x84
    return np.where(sign != 0, -magnitude, magnitude).astype(np.int16)


def _alaw_decode_table() -> np.ndarray:
    codes = np.arange(256, dtype=np.int32) ^ 0x55
    sign = codes & 0x80
    exponent = (codes >> 4) & 0x07
    mantissa = codes & 0x0F
    magnitude = np.where(exponent == 0, (mantissa << 4) + 8, ((mantissa << 4) + 0x108) << (exponent - 1))
    return np.where(sign != 0, magnitude, -magnitude).astype(np.int16)


ULAW_TO_PCM = _ulaw_decode_table()
ALAW_TO_PCM = _alaw_decode_table()


def _encode_table(decode: np.ndarray) -> np.ndarray:
    """Encoder as a 65536-entry table: for each int16 value, the code whose decoded value is nearest."""
    order = np.argsort(decode, kind="stable")
    levels = decode[order].astype(np.int32)
    values = np.arange(-32768, 32768, dtype=np.int32)
    idx = np.searchsorted(levels, values)
    idx = np.clip(idx, 1, len(levels) - 1)
    lower, upper = levels[idx - 1], levels[idx]
    pick = np.where(values - lower <= upper - values, idx - 1, idx)
    return order[pick].astype(np.uint8)


_PCM_TO_ULAW = _encode_table(ULAW_TO_PCM)
_PCM_TO_ALAW = _encode_table(ALAW_TO_PCM)


def g711_decode(payload: bytes | np.ndarray, law: str) -> np.ndarray:
    """Decode G.711 bytes (``law`` is 'ulaw' or 'alaw') to int16 PCM."""
    codes = np.frombuffer(payload, dtype=np.uint8) if isinstance(payload, bytes | bytearray) else payload
    table = ULAW_TO_PCM if law == "ulaw" else ALAW_TO_PCM if law == "alaw" else None
    if table is None:
        raise ValueError(f"unknown G.711 law {law!r} (expected 'ulaw' or 'alaw')")
    return table[codes]


def g711_encode(pcm: np.ndarray, law: str) -> np.ndarray:
    """Encode int16 PCM to G.711 codes (uint8)."""
    table = _PCM_TO_ULAW if law == "ulaw" else _PCM_TO_ALAW if law == "alaw" else None
    if table is None:
        raise ValueError(f"unknown G.711 law {law!r} (expected 'ulaw' or 'alaw')")
    return table[pcm.astype(np.int32) + 32768]


def to_int16(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, -1.0, 1.0) * 32767.0).astype(np.int16)


def to_float(pcm: np.ndarray) -> np.ndarray:
    return pcm.astype(np.float32) / 32768.0


def u8_to_float(pcm: bytes) -> np.ndarray:
    """Unsigned 8-bit PCM (old game audio) as float32 in [-1, 1)."""
    return (np.frombuffer(pcm, dtype=np.uint8).astype(np.float32) - 128.0) / 128.0


def resample(x: np.ndarray, sr_in: int, sr_out: int) -> np.ndarray:
    """Polyphase resampling (anti-aliased) between integer rates."""
    if sr_in == sr_out:
        return x.astype(np.float32, copy=False)
    g = gcd(sr_in, sr_out)
    return resample_poly(x, sr_out // g, sr_in // g).astype(np.float32)


def _decode_with_ffmpeg(path: Path) -> tuple[np.ndarray, int]:
    try:
        proc = subprocess.run(
            ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-f", "s16le", "-ac", "1",
             "-ar", str(DETECTOR_RATE), "-"], capture_output=True, timeout=120, check=False)
    except FileNotFoundError as exc:
        raise AudioError(f"{path}: format not readable without ffmpeg (apt-get install ffmpeg)") from exc
    if proc.returncode != 0:
        msg = proc.stderr.decode(errors="replace").strip().splitlines()
        raise AudioError(f"{path}: not a readable audio file ({msg[-1] if msg else 'ffmpeg failed'})")
    return to_float(np.frombuffer(proc.stdout, dtype="<i2")), DETECTOR_RATE


def load_audio(path: str | Path, target_rate: int = DETECTOR_RATE) -> np.ndarray:
    """Read any common audio file (or raw G.711 by extension) as mono float32 at ``target_rate``.

    Raises AudioError with a message naming the file when it is missing, unreadable or empty.
    """
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such file")
    law = RAW_G711_SUFFIXES.get(path.suffix.lower())
    if law:
        x, sr = to_float(g711_decode(path.read_bytes(), law)), 8000
    else:
        try:
            import soundfile

            data, sr = soundfile.read(str(path), dtype="float32", always_2d=True)
            x = data.mean(axis=1)
        except Exception:  # soundfile lacks mp3 on old libsndfile, or the file is odd: try ffmpeg
            x, sr = _decode_with_ffmpeg(path)
    if x.size == 0:
        raise AudioError(f"{path}: the file holds no audio samples")
    if not MIN_RATE <= sr <= MAX_RATE:  # a damaged header: resampling 1 Hz or 2**31 Hz would need gigabytes
        raise AudioError(f"{path}: implausible sample rate {sr} Hz (expected {MIN_RATE}..{MAX_RATE})")
    if not np.all(np.isfinite(x)):
        raise AudioError(f"{path}: the file holds non-finite samples")
    return resample(x, int(sr), target_rate)
