"""Reading bona fide recordings that are not plain audio files: game speech containers.

Three game packages store speech in ways ``detector.audio.load_audio`` cannot open directly:

- Flight of the Amazon Queen (``queen.1c``): one ScummVM "QTBL" resource archive. Layout (big-endian):
  ``b"QTBL"``, a 6-byte version (``b"CEM10\\0"``), 2 flag bytes, 1 compression byte (0 none, 1 MP3, 2 Ogg
  Vorbis, 3 FLAC), a uint16 entry count, then per entry ``name[12]`` (NUL-padded), ``bundle`` u8, ``offset``
  u32, ``size`` u32. Speech entries (``*.SB``) of the Debian package are bare MPEG-2.5 layer III streams
  (11025 Hz mono, 16 kbit/s), which libsndfile decodes from memory. An archive member is named by the
  *member path* ``<archive>::<entry name>`` so that it can travel through the build like a file path.
- Drascula (``*.ALS``): headerless unsigned 8-bit PCM, mono, 11025 Hz.
- Beneath a Steel Sky (``sky.dsk`` + ``sky.dnr``): RNC-packed unsigned 8-bit PCM, 11025 Hz, read by
  ``detector.corpus.sky_audio``; a speech file is the member path ``<.../sky.dsk>::<file number>``.

``recording_rate``, ``recording_duration`` and ``load_recording`` accept any recording the inventory lists
(plain files, GSM, ALS files and archive members) and are what the corpus builder uses.
"""

from __future__ import annotations

import io
import os
import struct
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import soundfile as sf

from detector.audio import AudioError, load_audio, resample, u8_to_float
from detector.corpus import sky_audio

MEMBER_SEP = "::"
QTBL_MAGIC = b"QTBL"
QTBL_HEADER = 15          # magic 4 + version 6 + flags 2 + compression 1 + count 2
QTBL_ENTRY = 21           # name 12 + bundle 1 + offset 4 + size 4
QTBL_COMPRESSION = {0: "none", 1: "mp3", 2: "ogg", 3: "flac"}
DOG_HEADER = 20           # .DOG dialogue files: 20-byte header, then levelMax, uniqueKey, talkKey (int16 BE)
ALS_RATE = 11025
GSM_FRAME_BYTES, GSM_FRAME_S = 33, 0.02

# MPEG audio layer III bitrates (kbit/s) by header index, for MPEG-1 and for MPEG-2 / 2.5
_MP3_KBPS = {
    1: (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320),
    2: (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160),
}


class ArchiveError(ValueError):
    """A resource archive that is not a readable QTBL table."""


@dataclass(frozen=True)
class QtblEntry:
    name: str
    bundle: int
    offset: int
    size: int


@dataclass(frozen=True)
class QtblArchive:
    version: str
    compression: str
    entries: tuple[QtblEntry, ...]

    def entry(self, name: str) -> QtblEntry:
        for e in self.entries:
            if e.name == name:
                return e
        raise KeyError(name)


def parse_qtbl(head: bytes) -> QtblArchive:
    """The table of a QTBL archive from its first bytes (at least the header and the whole table)."""
    if len(head) < QTBL_HEADER or head[:4] != QTBL_MAGIC:
        raise ArchiveError("not a QTBL resource archive (no 'QTBL' magic)")
    version = head[4:10].split(b"\0")[0].decode("latin-1")
    compression = QTBL_COMPRESSION.get(head[12], f"unknown-{head[12]}")
    (count,) = struct.unpack(">H", head[13:15])
    end = QTBL_HEADER + QTBL_ENTRY * count
    if len(head) < end:
        raise ArchiveError(f"truncated QTBL table: {count} entries need {end} bytes, got {len(head)}")
    entries = []
    for i in range(count):
        o = QTBL_HEADER + QTBL_ENTRY * i
        name = head[o:o + 12].split(b"\0")[0].decode("latin-1")
        bundle, offset, size = struct.unpack(">BII", head[o + 12:o + QTBL_ENTRY])
        entries.append(QtblEntry(name, bundle, offset, size))
    return QtblArchive(version, compression, tuple(entries))


def read_qtbl(path: str | Path) -> QtblArchive:
    """Parse the table of the archive at ``path`` (reads only the table, not the data)."""
    with open(path, "rb") as f:
        head = f.read(QTBL_HEADER)
        if len(head) < QTBL_HEADER or head[:4] != QTBL_MAGIC:
            raise ArchiveError(f"{path}: not a QTBL resource archive")
        (count,) = struct.unpack(">H", head[13:15])
        head += f.read(QTBL_ENTRY * count)
    archive = parse_qtbl(head)
    size = os.path.getsize(path)
    for e in archive.entries:
        if e.offset + e.size > size:
            raise ArchiveError(f"{path}: entry {e.name} runs past the end of the file")
    return archive


@lru_cache(maxsize=8)
def _cached_table(path: str, mtime_ns: int, size: int) -> QtblArchive:
    return read_qtbl(path)


def archive_table(path: str | Path) -> QtblArchive:
    st = os.stat(path)
    return _cached_table(str(path), st.st_mtime_ns, st.st_size)


def read_member(path: str | Path, name: str) -> bytes:
    """The bytes of entry ``name`` of the archive at ``path``."""
    e = archive_table(path).entry(name)
    with open(path, "rb") as f:
        f.seek(e.offset)
        data = f.read(e.size)
    if len(data) != e.size:
        raise ArchiveError(f"{path}: entry {name} is truncated")
    return data


def dog_talk_keys(path: str | Path, archive: QtblArchive | None = None) -> dict[int, str]:
    """talkKey -> character for every ``.DOG`` dialogue file: ``FAYE2.DOG`` -> 'faye' (digits dropped)."""
    archive = archive or archive_table(path)
    out: dict[int, str] = {}
    with open(path, "rb") as f:
        for e in archive.entries:
            if not e.name.upper().endswith(".DOG") or e.size < DOG_HEADER + 6:
                continue
            f.seek(e.offset + DOG_HEADER + 4)
            (talk_key,) = struct.unpack(">h", f.read(2))
            out[talk_key] = e.name[:-4].rstrip("0123456789").lower()
    return out


def member_path(archive: str | Path, name: str) -> Path:
    return Path(f"{archive}{MEMBER_SEP}{name}")


def split_member(path: str | Path) -> tuple[str, str] | None:
    """(archive, entry) for a member path, None for a plain file."""
    s = str(path)
    if MEMBER_SEP not in s:
        return None
    archive, _, name = s.rpartition(MEMBER_SEP)
    return archive, name


def mp3_bitrate(data: bytes) -> int | None:
    """Bitrate (bit/s) from the first MPEG audio layer III frame header, or None."""
    for i in range(min(len(data) - 3, 4096)):
        if data[i] != 0xFF or (data[i + 1] & 0xE0) != 0xE0:
            continue
        version = (data[i + 1] >> 3) & 0x03      # 0 MPEG-2.5, 2 MPEG-2, 3 MPEG-1
        layer = (data[i + 1] >> 1) & 0x03        # 1 = layer III
        index = data[i + 2] >> 4
        if version == 1 or layer != 1 or index in (0, 15):
            continue
        return _MP3_KBPS[1 if version == 3 else 2][index] * 1000
    return None


def decode_als(data: bytes) -> np.ndarray:
    """Drascula ALS audio (headerless unsigned 8-bit PCM) as float32 in [-1, 1) at ``ALS_RATE``."""
    return u8_to_float(data)


def decode_bytes(data: bytes, what: str) -> tuple[np.ndarray, int]:
    """Decode an in-memory audio stream (MP3, Ogg, FLAC, WAV) to mono float32 and its sample rate."""
    try:
        x, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
        x = x.mean(axis=1)
    except Exception:  # libsndfile without MPEG support: ffmpeg from a pipe
        try:
            proc = subprocess.run(["ffmpeg", "-nostdin", "-v", "error", "-i", "-", "-f", "s16le", "-ac", "1",
                                   "-ar", str(ALS_RATE), "-"], input=data, capture_output=True, timeout=120)
        except FileNotFoundError as exc:
            raise AudioError(f"{what}: cannot decode without ffmpeg (apt-get install ffmpeg)") from exc
        if proc.returncode != 0:
            raise AudioError(f"{what}: not decodable audio") from None
        x, sr = np.frombuffer(proc.stdout, dtype="<i2").astype(np.float32) / 32768.0, ALS_RATE
    if x.size == 0:
        raise AudioError(f"{what}: holds no audio samples")
    return x, int(sr)


def _is_als(path: str | Path) -> bool:
    return str(path).lower().endswith(".als")


def _sky_member(member: tuple[str, str] | None) -> tuple[str, int] | None:
    """(sky.dsk path, file number) for a Beneath a Steel Sky member path, None for anything else."""
    if member is None or Path(member[0]).name.lower() != sky_audio.SKY_DSK:
        return None
    try:
        return member[0], int(member[1])
    except ValueError:
        raise AudioError(f"{member[0]}{MEMBER_SEP}{member[1]}: a {sky_audio.SKY_DSK} member is a file number") \
            from None


def recording_rate(path: str | Path) -> int:
    """Native sample rate of a recording listed by the inventory."""
    s = str(path)
    if s.lower().endswith(".gsm"):
        return 8000
    if _is_als(s):
        return ALS_RATE
    member = split_member(s)
    if _sky_member(member):
        return sky_audio.SPEECH_RATE
    if member:
        data = read_member(*member)
        try:
            return int(sf.info(io.BytesIO(data)).samplerate)
        except Exception:
            return ALS_RATE  # what decode_bytes' ffmpeg fallback delivers
    return int(sf.info(s).samplerate)


def recording_duration(path: str | Path) -> float:
    """Duration in seconds (from sizes where the format allows it; 0.0 if unreadable)."""
    s = str(path)
    try:
        if s.lower().endswith(".gsm"):
            return os.path.getsize(s) / GSM_FRAME_BYTES * GSM_FRAME_S
        if _is_als(s):
            return os.path.getsize(s) / ALS_RATE
        member = split_member(s)
        sky = _sky_member(member)
        if sky:
            return sky_audio.speech_duration(*sky)
        if member:
            data = read_member(*member)
            try:
                return float(sf.info(io.BytesIO(data)).duration)
            except Exception:  # no MPEG support in libsndfile: estimate from the bitrate (CBR)
                bps = mp3_bitrate(data)
                return len(data) * 8 / bps if bps else 0.0
        return float(sf.info(s).duration)
    except Exception:
        return 0.0


def load_recording(path: str | Path, target_rate: int) -> np.ndarray:
    """Any inventory recording as mono float32 at ``target_rate`` (AudioError if unreadable)."""
    s = str(path)
    if _is_als(s):
        try:
            data = Path(s).read_bytes()
        except OSError as exc:
            raise AudioError(f"{s}: {exc.strerror or exc}") from exc
        if not data:
            raise AudioError(f"{s}: the file holds no audio samples")
        return resample(decode_als(data), ALS_RATE, target_rate)
    member = split_member(s)
    sky = _sky_member(member)
    if sky:
        try:
            x = sky_audio.decode_speech(*sky)
        except (OSError, KeyError, sky_audio.SkyDataError) as exc:
            msg = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
            raise AudioError(f"{s}: cannot read this Beneath a Steel Sky speech file ({msg})") from exc
        return resample(x, sky_audio.SPEECH_RATE, target_rate)
    if member:
        try:
            data = read_member(*member)
        except (OSError, KeyError, ArchiveError) as exc:
            raise AudioError(f"{s}: cannot read the archive member ({exc})") from exc
        x, sr = decode_bytes(data, s)
        return resample(x, sr, target_rate)
    return load_audio(s, target_rate)
