"""Replay attack: bona fide speech played through a simulated loudspeaker in a simulated room
(pyroomacoustics image method) and picked up by a microphone. Three disjoint room/device sets make three
families, so that one of them can be held out for evaluation."""

from __future__ import annotations

import numpy as np
from scipy.signal import butter, lfilter, sosfilt

from detector.audio import resample

FAMILY = "replay"
FAMILIES = ["replay_rooms_a", "replay_rooms_b", "replay_rooms_c"]
ATTACK_TYPE = "replay"
KIND = "transform"
RATE = 16000

# room dims (min, max) in metres, RT60 range in s, loudspeaker band (low cut, high cut) ranges, distance
ROOM_SETS = {
    "replay_rooms_a": dict(dims=((3.0, 2.5, 2.4), (5.0, 4.5, 2.8)), rt60=(0.2, 0.5), lo=(250, 600),
                           hi=(3800, 7000), dist=(0.3, 1.2), kind="small rooms, phone/laptop speakers"),
    "replay_rooms_b": dict(dims=((5.0, 4.0, 2.6), (9.0, 7.0, 3.2)), rt60=(0.35, 0.8), lo=(120, 300),
                           hi=(5000, 7800), dist=(0.8, 2.5), kind="offices, desktop speakers"),
    "replay_rooms_c": dict(dims=((1.6, 1.3, 1.1), (12.0, 10.0, 4.0)), rt60=(0.08, 1.1), lo=(60, 180),
                           hi=(6000, 7900), dist=(0.3, 3.0), kind="cars and halls, smart/hifi speakers"),
}


def check() -> str | None:
    try:
        import pyroomacoustics  # noqa: F401
    except ImportError:
        return "pyroomacoustics is not installed: .venv/bin/pip install pyroomacoustics"
    return None


def peaking(f0: float, gain_db: float, q: float, fs: int):
    a_ = 10 ** (gain_db / 40)
    w0 = 2 * np.pi * f0 / fs
    alpha = np.sin(w0) / (2 * q)
    b = np.array([1 + alpha * a_, -2 * np.cos(w0), 1 - alpha * a_])
    a = np.array([1 + alpha / a_, -2 * np.cos(w0), 1 - alpha / a_])
    return b / a[0], a / a[0]


def loudspeaker(x: np.ndarray, rng: np.random.Generator, cfg: dict) -> tuple[np.ndarray, str]:
    lo = float(rng.uniform(*cfg["lo"]))
    hi = float(rng.uniform(*cfg["hi"]))
    y = sosfilt(butter(4, [lo, hi], btype="band", fs=RATE, output="sos"), x)
    fr = float(rng.uniform(700, 3000))
    b, a = peaking(fr, float(rng.uniform(2, 9)), float(rng.uniform(0.7, 3)), RATE)
    y = lfilter(b, a, y)
    drive = float(rng.uniform(1.0, 4.0))
    y = y / (np.max(np.abs(y)) + 1e-9)
    y = np.tanh(drive * y) / np.tanh(drive)
    return y, f"spk{int(lo)}-{int(hi)}Hz_drive{drive:.1f}"


def image_method_room(x: np.ndarray, sr: int, dims: np.ndarray, rt60: float, src: np.ndarray,
                      mic: np.ndarray) -> np.ndarray:
    """``x`` emitted at ``src`` in a shoebox room of ``dims`` metres and reverberation time ``rt60`` seconds,
    as heard at ``mic`` (pyroomacoustics' image method, reflections capped at order 12 to bound the cost)."""
    import pyroomacoustics as pra

    try:
        e_abs, max_order = pra.inverse_sabine(rt60, dims)
    except ValueError:
        e_abs, max_order = 0.9, 2
    room = pra.ShoeBox(dims, fs=sr, materials=pra.Material(e_abs), max_order=int(min(max_order, 12)))
    room.add_source(src, signal=x)
    room.add_microphone(mic)
    room.simulate()
    return room.mic_array.signals[0]


def transform(x: np.ndarray, sr: int, rng: np.random.Generator, family: str = FAMILIES[0]):
    cfg = ROOM_SETS[family]
    x16 = resample(x, sr, RATE).astype(np.float64)
    spk, spk_desc = loudspeaker(x16, rng, cfg)
    lo, hi = np.array(cfg["dims"][0]), np.array(cfg["dims"][1])
    dims = lo + (hi - lo) * rng.random(3)
    rt60 = float(rng.uniform(*cfg["rt60"]))
    src = 0.2 + (dims - 0.4) * rng.random(3)
    direction = rng.standard_normal(3)
    direction /= np.linalg.norm(direction) + 1e-9
    dist = float(rng.uniform(*cfg["dist"]))
    mic = np.clip(src + direction * dist, 0.1, dims - 0.1)
    y = image_method_room(spk, RATE, dims, rt60, src, mic)
    y = sosfilt(butter(2, float(rng.uniform(60, 200)), btype="high", fs=RATE, output="sos"), y)
    y = y[: len(x16) + int(0.3 * RATE)]
    desc = f"room{dims[0]:.1f}x{dims[1]:.1f}x{dims[2]:.1f}_rt{rt60:.2f}_d{dist:.1f}_{spk_desc}"
    return y.astype(np.float32), RATE, desc
