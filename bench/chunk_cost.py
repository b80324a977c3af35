"""Per-chunk and per-packet CPU cost of the detection path, measured on one core, side by side."""

from __future__ import annotations

import glob
import time
import tracemalloc

import numpy as np

from detector.audio import g711_decode, g711_encode, load_audio, to_int16
from detector.chunking import SpeechChunker, speech_chunks
from detector.features import extract_matrix
from detector.threads import limit_native_threads


def _speech_chunks(n: int) -> list[np.ndarray]:
    files = sorted(glob.glob("/usr/share/asterisk/sounds/en_US_f_Allison/*.wav"))
    if files:
        signal = np.concatenate([load_audio(f) for f in files[:120]])
        chunks = [c.audio for c in speech_chunks(signal)]
    else:  # no speech pack installed: a noisy harmonic signal keeps the arithmetic honest
        rng = np.random.default_rng(0)
        t = np.arange(16000) / 8000
        chunks = [(np.sin(2 * np.pi * 140 * t) * rng.uniform(0.2, 1) + 0.05 * rng.standard_normal(16000))
                  .astype(np.float32) for _ in range(n)]
    return (chunks * (n // max(len(chunks), 1) + 1))[:n]


def _per_item_ms(fn, items, repeat: int = 1) -> float:
    t0 = time.process_time()
    for _ in range(repeat):
        fn(items)
    return 1000 * (time.process_time() - t0) / (repeat * len(items))


def bench_chunk_cost(n_chunks: int = 100, models_dir: str | None = None) -> dict[str, float]:
    """CPU milliseconds per 2-s chunk (process time, single thread) for each stage."""
    limit_native_threads(1)  # process time must be one core's time, not a spinning BLAS helper thread's too
    chunks = _speech_chunks(n_chunks)
    out: dict[str, float] = {"chunks": float(len(chunks))}
    out["features_ms_per_chunk"] = _per_item_ms(extract_matrix, chunks)
    try:
        from detector.gbm import GBMDetector
        from detector.scoring import DEFAULT_MODELS_DIR

        gbm = GBMDetector.load(models_dir or DEFAULT_MODELS_DIR)
        feats = extract_matrix(chunks)
        out["gbm_predict_ms_per_chunk"] = _per_item_ms(lambda _: gbm.score_features(feats), chunks, repeat=3)
        out["gbm_predict_one_chunk_ms"] = _per_item_ms(
            lambda items: [gbm.score_features(feats[i: i + 1]) for i in range(len(items))], chunks)
        out["gbm_total_ms_per_chunk"] = out["features_ms_per_chunk"] + out["gbm_predict_one_chunk_ms"]
    except Exception as exc:  # no model shipped yet: say so, measure the rest
        out["gbm_error"] = str(exc)  # type: ignore[assignment]
    return out


def bench_packet_cost(seconds: float = 60.0) -> dict[str, float]:
    """CPU microseconds per 20 ms G.711 packet for decode + VAD gate + chunk assembly."""
    chunks = _speech_chunks(int(seconds / 2))
    signal = to_int16(np.concatenate(chunks))
    packets = [g711_encode(signal[i: i + 160], "ulaw").tobytes() for i in range(0, len(signal) - 159, 160)]
    chunker = SpeechChunker()
    t0 = time.process_time()
    for p in packets:
        chunker.push(g711_decode(p, "ulaw"))
    per_packet_us = 1e6 * (time.process_time() - t0) / len(packets)
    return {"packets": float(len(packets)), "decode_vad_us_per_packet": per_packet_us,
            "packet_budget_share_at_200_legs": per_packet_us * 200 * 50 / 1e6}


def bench_leg_memory(legs: int = 200) -> dict[str, float]:
    """Bytes of Python heap per guarded leg for the chunker state with a full 2-s buffer."""
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    held = []
    frame = (np.random.default_rng(0).standard_normal(160) * 3000).astype(np.int16)
    for _ in range(legs):
        c = SpeechChunker()
        c._buf = [frame.copy() for _ in range(99)]  # worst case: just short of a full chunk
        c._buf_len = 99 * 160
        held.append(c)
    after = tracemalloc.take_snapshot()
    tracemalloc.stop()
    total = sum(s.size_diff for s in after.compare_to(before, "filename"))
    return {"legs": float(legs), "chunker_bytes_per_leg": total / legs}
