"""How a recording was captured before it reached the phone line: room, microphone, a lossy codec.

Applied to bona fide speech and spoofs alike before the telephone channel (`channel.py`). Without it, the
corpus ties these nuisances to one class: only replay spoofs had room reverberation and only some bona fide
packs had a codec history (GSM, MP3, 8-bit), so a detector could learn "a room means replay" (a false alarm
on every speakerphone caller) or "codec artefacts mean human". Real callers speak in rooms, into cheap
microphones, through mobile codecs; so may an attacker's loudspeaker or a TTS stream.

Replay jobs already carry a simulated room and microphone, so they get no second room, only the microphone
and codec draws. That alone leaves a room more common among spoofs than among people, and the capture room
(a noise tail) is another simulator than the replay rooms' image method. `corpus build --balance-rooms`
gives bona fide recordings the higher room probability that makes the shares equal in each split
(`room_probabilities`) and simulates half the capture rooms with the replay families' image method
(measured in docs/generalisation.md; not the default, the shipped models are trained without it).

Deterministic from the seed; the codecs run through ffmpeg (a Debian package ./setup installs), whose
encoders give the same bytes for the same input.
"""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass

import numpy as np
from scipy.signal import butter, fftconvolve, lfilter, sosfilt

from detector.corpus.generators.replay import image_method_room, peaking

ROOM_P = 0.3      # room probability of a non-replay spoof (bona fide: see room_probabilities)
IMAGE_ROOM_P = 0.5  # --balance-rooms: share of capture rooms simulated with the image method, the rest noise tails
MIC_P = 0.4
CODEC_P = 0.3
# (name, ffmpeg encoder, container, encode rate or None for the source rate, bit rates)
CODECS = [
    ("opus", "libopus", "ogg", 16000, ["6k", "8k", "12k", "16k", "24k"]),  # libopus takes 8/12/16/24/48 kHz only
    ("mp3", "libmp3lame", "mp3", None, ["16k", "24k", "32k"]),
    ("gsm", "libgsm", "gsm", 8000, ["13k"]),
    ("g726", "g726", "wav", 8000, ["16k", "24k", "32k"]),
    ("speex", "libspeex", "ogg", 8000, ["8k", "11k", "15k"]),
]
MP3_RATES = {8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000}  # what libmp3lame encodes
# Not codec2: a parametric vocoder at 0.7-3.2 kbit/s would put vocoder artefacts on bona fide speech.
# Not AMR: Debian's ffmpeg has no AMR encoder.


class CaptureError(RuntimeError):
    """A codec round trip failed (ffmpeg missing, or an encoder it lacks)."""


@dataclass(frozen=True)
class CaptureParams:
    room: str = "none"    # none | "rt<RT60 s>drr<direct-to-reverberant dB>" | "box<L>x<W>x<H>rt<RT60 s>d<metres>"
    mic: str = "none"     # none | "hp<Hz>_pk<Hz>:<dB>_pk<Hz>:<dB>_tilt<k>"
    codec: str = "none"   # none | "<codec>-<bit rate>"

    def as_row(self) -> dict[str, object]:
        return {"capture": "+".join(p for p in (self.room, self.mic, self.codec) if p != "none") or "none"}


def capture_stages(capture: str) -> set[str]:
    """Which stages a manifest ``capture`` value names: a subset of {"room", "microphone", "codec"}."""
    codecs = {c[0] for c in CODECS}
    out = set()
    for part in capture.split("+"):
        if part.startswith(("rt", "box")):
            out.add("room")
        elif part.startswith("hp"):
            out.add("microphone")
        elif part.split("-")[0] in codecs:
            out.add("codec")
    return out


def room_probabilities(replay_share: float) -> tuple[float, float]:
    """(bona fide, non-replay spoof) room probabilities that make a room as common in both classes.

    ``replay_share``: the share of a split's spoof speech that is replay (which always has a room). Spoofs
    then have a room with probability s + (1 - s) * ROOM_P, and bona fide speech is given the same.
    """
    s = min(max(replay_share, 0.0), 1.0)
    return s + (1.0 - s) * ROOM_P, ROOM_P


def _draw_room(rng: np.random.Generator, image_p: float) -> str:
    rt60 = rng.uniform(0.15, 0.7)
    if image_p > 0 and rng.random() < image_p:  # no draw at 0: the default corpus keeps its exact draws
        dims = np.array([rng.uniform(2.5, 8.0), rng.uniform(2.0, 6.0), rng.uniform(2.3, 3.2)])
        return f"box{dims[0]:.1f}x{dims[1]:.1f}x{dims[2]:.1f}rt{rt60:.2f}d{rng.uniform(0.3, 1.5):.1f}"
    return f"rt{rt60:.2f}drr{rng.uniform(-3.0, 12.0):.1f}"


def draw_capture(rng: np.random.Generator, room_p: float = ROOM_P, image_p: float = 0.0) -> CaptureParams:
    """One capture draw: ``room_p`` 0 for replay spoofs (their room is part of the attack); ``image_p`` the
    share of rooms from the image-method simulator."""
    room = mic = codec = "none"
    if rng.random() < room_p:
        room = _draw_room(rng, image_p)
    if rng.random() < MIC_P:
        hp = int(rng.uniform(60, 250))
        peaks = "_".join(f"pk{int(rng.uniform(300, 3500))}:{rng.uniform(-6, 6):.1f}" for _ in range(2))
        mic = f"hp{hp}_{peaks}_tilt{rng.uniform(-0.5, 0.5):.2f}"
    if rng.random() < CODEC_P:
        name, _, _, _, rates = CODECS[int(rng.integers(len(CODECS)))]
        codec = f"{name}-{rates[int(rng.integers(len(rates)))]}"
    return CaptureParams(room, mic, codec)


def _noise_tail_room(x: np.ndarray, sr: int, spec: str, rng: np.random.Generator) -> np.ndarray:
    """Convolve with a synthetic room response: direct path + exponentially decaying noise tail.

    High frequencies decay faster than low ones (air and wall absorption), which a plain noise tail lacks.
    """
    rt60, drr = (float(v) for v in spec[2:].split("drr"))
    n = int(sr * rt60 * 1.2)
    t = np.arange(n) / sr
    noise = rng.standard_normal(n)
    lo = sosfilt(butter(2, min(1500, sr / 2 - 100), fs=sr, output="sos"), noise)
    hi = noise - lo
    tail = lo * np.exp(-6.9 * t / rt60) + hi * np.exp(-6.9 * t / (0.6 * rt60))
    predelay = int(sr * rng.uniform(0.002, 0.012))
    tail[:predelay] = 0.0
    tail *= np.sqrt(10 ** (-drr / 10) / (np.sum(tail ** 2) + 1e-12))
    tail[0] = 1.0  # the direct path
    return fftconvolve(x, tail)[: len(x) + n // 2]


def _image_room(x: np.ndarray, sr: int, spec: str, rng: np.random.Generator) -> np.ndarray:
    """A talker ``d`` metres from the microphone in a shoebox room (the replay families' simulator)."""
    size, rest = spec[3:].split("rt")
    rt60, dist = (float(v) for v in rest.split("d"))
    dims = np.array([float(v) for v in size.split("x")])
    src = 0.5 + (dims - 1.0) * rng.random(3)
    src[2] = min(max(1.1, src[2]), dims[2] - 0.3)  # a mouth at sitting or standing height
    direction = rng.standard_normal(3)
    direction[2] *= 0.2
    direction /= np.linalg.norm(direction) + 1e-9
    mic = np.clip(src + direction * dist, 0.1, dims - 0.1)
    return image_method_room(x, sr, dims, rt60, src, mic)[: len(x) + int(0.3 * sr)]


def _room(x: np.ndarray, sr: int, spec: str, rng: np.random.Generator) -> np.ndarray:
    y = _image_room(x, sr, spec, rng) if spec.startswith("box") else _noise_tail_room(x, sr, spec, rng)
    return y / (np.max(np.abs(y)) + 1e-9) * (np.max(np.abs(x)) + 1e-9)


def _mic(x: np.ndarray, sr: int, spec: str) -> np.ndarray:
    """A cheap microphone: a high-pass, two resonances or dips, and a first-order spectral tilt."""
    parts = spec.split("_")
    y = sosfilt(butter(2, float(parts[0][2:]), btype="high", fs=sr, output="sos"), x)
    for p in parts[1:3]:
        f, g = (float(v) for v in p[2:].split(":"))
        b, a = peaking(min(f, sr / 2 - 200), g, 1.2, sr)
        y = lfilter(b, a, y)
    k = float(parts[3][4:])
    y = lfilter([1.0, -k], [1.0], y)
    return y


def _codec(x: np.ndarray, sr: int, spec: str) -> tuple[np.ndarray, int]:
    """Round trip through a lossy speech/music codec with ffmpeg; returns audio at the codec's rate."""
    name, rate = spec.split("-")
    _, encoder, fmt, enc_sr, _ = next(c for c in CODECS if c[0] == name)
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise CaptureError("ffmpeg is not installed (./setup installs it); the capture stage needs it")
    out_sr = enc_sr or (sr if sr in MP3_RATES else 16000)
    pcm = (np.clip(x, -1.0, 1.0) * 32767).astype("<i2").tobytes()
    base = [ffmpeg, "-nostdin", "-hide_banner", "-v", "error", "-threads", "1"]
    enc = subprocess.run(base + ["-f", "s16le", "-ar", str(sr), "-ac", "1", "-i", "pipe:0", "-ar", str(out_sr),
                                 "-c:a", encoder, "-b:a", rate, "-f", fmt, "pipe:1"],
                         input=pcm, capture_output=True, check=False)
    if enc.returncode != 0 or not enc.stdout:
        raise CaptureError(f"ffmpeg could not encode {spec}: {enc.stderr.decode(errors='replace').strip()[:200]}")
    dec = subprocess.run(base + ["-f", fmt, "-i", "pipe:0", "-f", "s16le", "-ar", str(out_sr), "-ac", "1",
                                 "pipe:1"], input=enc.stdout, capture_output=True, check=False)
    if dec.returncode != 0 or not dec.stdout:
        raise CaptureError(f"ffmpeg could not decode {spec}: {dec.stderr.decode(errors='replace').strip()[:200]}")
    return np.frombuffer(dec.stdout, "<i2").astype(np.float32) / 32768.0, out_sr


def apply_capture(x: np.ndarray, sr: int, seed: int, room_p: float = ROOM_P, image_p: float = 0.0,
                  params: CaptureParams | None = None) -> tuple[np.ndarray, int, CaptureParams]:
    """Room, microphone and codec drawn from ``seed`` (or given); returns float32 audio, its rate, params."""
    rng = np.random.default_rng(seed)
    p = params or draw_capture(rng, room_p, image_p)
    y = np.asarray(x, dtype=np.float64)
    peak = float(np.max(np.abs(y))) if y.size else 0.0
    if p.room != "none":
        y = _room(y, sr, p.room, rng)
    if p.mic != "none":
        y = _mic(y, sr, p.mic)
    if p.room != "none" or p.mic != "none":
        y = y / (np.max(np.abs(y)) + 1e-9) * min(max(peak, 0.05), 0.95)
    if p.codec != "none":
        y, sr = _codec(y, sr, p.codec)
    return np.asarray(y, dtype=np.float32), sr, p
