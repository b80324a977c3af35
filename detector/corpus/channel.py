"""The randomized telephone channel applied to every recording, bona fide and spoof alike.

Order follows a real call: (optional) band-limiting at the sender, level normalisation with a random
gain, background noise at a random SNR, 8 kHz G.711 (mu-law or A-law), then random loss of 20 ms RTP
frames with a simple concealment (repeat the last good frame, fading). Everything is drawn from a
``numpy.random.Generator`` built from the given seed, so the same seed gives the same audio.

Every source, whatever its own sample rate and noise floor, leaves the channel at 8 kHz with a noise
floor, level and codec drawn from the same distributions: a detector cannot learn "16 kHz TTS" or
"digital silence" as cues.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy.signal import butter, lfilter, sosfilt

from detector.audio import DETECTOR_RATE, g711_decode, g711_encode, resample, to_float, to_int16

FRAME = DETECTOR_RATE // 50  # 20 ms at 8 kHz
TARGET_DBFS = -26.0          # active speech level before the random gain (ITU-T P.56 style nominal)


@dataclass(frozen=True)
class ChannelParams:
    codec: str          # ulaw | alaw
    snr_db: float       # speech-to-noise ratio of the added background noise
    noise: str          # white | pink | brown | hum | babble
    loss_rate: float    # fraction of 20 ms frames lost
    gain_db: float      # gain relative to the nominal -26 dBFS speech level
    bandlimit: str      # none | "lo-hi" band edges in Hz
    agc: str = "none"   # none | "r<ratio>t<threshold dB>": compressor/AGC as handsets and gateways apply

    def as_row(self) -> dict[str, object]:
        d = asdict(self)
        d["snr_db"] = round(self.snr_db, 1)
        d["loss_rate"] = round(self.loss_rate, 4)
        d["gain_db"] = round(self.gain_db, 1)
        return d


def draw_params(rng: np.random.Generator) -> ChannelParams:
    codec = "ulaw" if rng.random() < 0.6 else "alaw"
    snr = float(rng.uniform(8.0, 40.0))
    noise = str(rng.choice(["white", "pink", "brown", "hum", "babble"], p=[0.25, 0.3, 0.2, 0.1, 0.15]))
    loss = 0.0 if rng.random() < 0.5 else float(rng.uniform(0.002, 0.05))
    gain = float(rng.uniform(-14.0, 6.0))
    if rng.random() < 0.35:
        lo = int(rng.choice([100, 200, 300, 400]))
        hi = int(rng.choice([2800, 3000, 3200, 3400, 3600]))
        band = f"{lo}-{hi}"
    else:
        band = "none"
    if rng.random() < 0.5:
        agc = f"r{float(rng.uniform(2.0, 8.0)):.1f}t{float(rng.uniform(-24.0, -8.0)):.0f}"
    else:
        agc = "none"
    return ChannelParams(codec, snr, noise, loss, gain, band, agc)


def _compress(y: np.ndarray, spec: str) -> np.ndarray:
    """Feed-forward compressor: threshold relative to the active speech level, 15 ms envelope."""
    ratio, thr = (float(v) for v in spec[1:].split("t"))
    level_db = 20 * np.log10(_active_rms(y))
    a = np.exp(-1.0 / (0.015 * DETECTOR_RATE))
    env = np.sqrt(lfilter([1 - a], [1, -a], y ** 2) + 1e-12)
    env_db = 20 * np.log10(env) - level_db
    gain_db = np.minimum(0.0, (thr - env_db) * (1 - 1 / ratio))
    return y * 10 ** (gain_db / 20)


def _active_rms(x: np.ndarray) -> float:
    """RMS over the loudest 20 ms frames (a crude active-speech level: silences do not count)."""
    n = len(x) // FRAME
    if n == 0:
        return float(np.sqrt(np.mean(x ** 2)) + 1e-9)
    e = np.mean(x[: n * FRAME].reshape(n, FRAME) ** 2, axis=1)
    thr = np.max(e) * 10 ** (-30 / 10)
    act = e[e > thr]
    return float(np.sqrt(np.mean(act)) + 1e-9) if act.size else 1e-9


def _noise(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    w = rng.standard_normal(n + 256)
    if kind == "white":
        y = w
    elif kind == "pink":
        # Paul Kellet's economical pink filter approximated by a 3-pole IIR
        b = [0.049922035, -0.095993537, 0.050612699, -0.004408786]
        a = [1, -2.494956002, 2.017265875, -0.522189400]
        y = lfilter(b, a, w)
    elif kind == "brown":
        y = lfilter([1.0], [1.0, -0.98], w)
    elif kind == "hum":
        t = np.arange(n + 256) / DETECTOR_RATE
        f0 = rng.choice([50.0, 60.0])
        y = sum(np.sin(2 * np.pi * f0 * k * t + rng.uniform(0, 6.28)) / k for k in (1, 2, 3, 5)) + 0.3 * w
    else:  # babble-like: speech-band noise with a slow syllabic envelope
        sos = butter(4, [300, 2500], btype="band", fs=DETECTOR_RATE, output="sos")
        y = sosfilt(sos, w)
        env = lfilter([1.0], [1.0, -0.999], rng.standard_normal(n + 256))
        y = y * (1.0 + 0.8 * np.tanh(env / (np.std(env) + 1e-9)))
    y = y[256:]
    return (y / (np.std(y) + 1e-12)).astype(np.float64)


def _conceal_loss(pcm: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    if rate <= 0:
        return pcm
    n = len(pcm) // FRAME
    out = pcm.copy()
    lost = rng.random(n) < rate
    # losses come in short bursts on real networks: extend some by one frame
    burst = np.roll(lost, 1) & (rng.random(n) < 0.3)
    lost |= burst
    run = 0
    for i in np.nonzero(lost)[0]:
        if i == 0:
            out[:FRAME] = 0
            continue
        run = run + 1 if lost[i - 1] else 1
        prev = out[(i - 1) * FRAME: i * FRAME].astype(np.float64)
        out[i * FRAME: (i + 1) * FRAME] = (prev * (0.7 ** run)).astype(np.int16)
    return out


def apply_channel(x: np.ndarray, sr: int, seed: int,
                  params: ChannelParams | None = None) -> tuple[np.ndarray, ChannelParams]:
    """Run ``x`` (float mono at ``sr``) through a random telephone channel; returns 8 kHz float32."""
    rng = np.random.default_rng(seed)
    p = params or draw_params(rng)
    y = resample(np.asarray(x, dtype=np.float32), sr, DETECTOR_RATE).astype(np.float64)
    if p.bandlimit != "none":
        lo, hi = (int(v) for v in p.bandlimit.split("-"))
        sos = butter(6, [lo, min(hi, DETECTOR_RATE // 2 - 50)], btype="band", fs=DETECTOR_RATE, output="sos")
        y = sosfilt(sos, y)
    else:
        sos = butter(2, 60, btype="high", fs=DETECTOR_RATE, output="sos")  # remove DC/rumble as any phone does
        y = sosfilt(sos, y)
    if p.agc != "none":
        y = _compress(y, p.agc)
    level = _active_rms(y)
    y = y * (10 ** ((TARGET_DBFS + p.gain_db) / 20) / level)
    speech_rms = 10 ** ((TARGET_DBFS + p.gain_db) / 20)
    y = y + _noise(p.noise, len(y), rng) * speech_rms * 10 ** (-p.snr_db / 20)
    pcm = g711_encode(to_int16(y.astype(np.float32)), p.codec)
    pcm = g711_decode(pcm, p.codec)
    pcm = _conceal_loss(pcm, p.loss_rate, rng)
    return to_float(pcm), p
