"""Cost of the WavLM detector: milliseconds per 2-s chunk on one onnxruntime thread."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np


def _chunks(n: int) -> list[np.ndarray]:
    try:
        from bench.chunk_cost import _speech_chunks

        return _speech_chunks(n)
    except Exception:  # the speech packs or that module are missing: cost does not depend on content
        rng = np.random.default_rng(0)
        t = np.arange(16000) / 8000
        return [(np.sin(2 * np.pi * 140 * t) * rng.uniform(0.2, 1) + 0.05 * rng.standard_normal(16000))
                .astype(np.float32) for _ in range(n)]


def bench_wavlm(n_chunks: int = 50, models_dir: str | Path | None = None, threads: int = 1) -> dict:
    """Wall and CPU milliseconds per 2-s 8 kHz chunk for ``models/wavlm.onnx`` (one intra-op thread).

    ``one_chunk_*``: one chunk per call, as the live path scores; ``batched_*``: 16 chunks per call, as
    `scan` and `eval` do. Without a trained model, an untrained export of the same compact architecture is
    measured when torch is installed (the cost does not depend on the weights); ``model`` says which.
    """
    from detector.scoring import DEFAULT_MODELS_DIR
    from detector.wavlm_onnx import CALIBRATION_FILE, MODEL_FILE, WavLMDetector

    models_dir = Path(models_dir or DEFAULT_MODELS_DIR)
    out: dict = {"chunks": n_chunks, "threads": threads}
    tmp = None
    path = models_dir / MODEL_FILE
    if path.is_file():
        out["model"] = str(path)
    else:
        try:
            from detector.wavlm_model import build_model, export_onnx
        except ImportError:
            return {**out, "error": f"no {path} and no training extra to export an untrained one"}
        tmp = tempfile.TemporaryDirectory()
        path = Path(tmp.name) / MODEL_FILE
        export_onnx(build_model(), path)
        out["model"] = "untrained compact architecture (no trained model in models/)"
    try:
        if tmp is None and (models_dir / CALIBRATION_FILE).is_file():  # as served, input turned upright included
            det = WavLMDetector.load(models_dir, threads=threads)
        else:
            det = WavLMDetector.from_file(path, threads=threads)
        out["input_upright"] = det.upright
        out["onnx_mb"] = round(path.stat().st_size / 1e6, 2)
        chunks = _chunks(n_chunks)
        det.logits(chunks[:3])  # warm-up: session allocations
        for name, fn in (("one_chunk", lambda: [det.logits([c]) for c in chunks]),
                         ("batched", lambda: det.logits(chunks))):
            w0, c0 = time.perf_counter(), time.process_time()
            fn()
            out[f"{name}_ms_per_chunk"] = round(1000 * (time.perf_counter() - w0) / len(chunks), 2)
            out[f"{name}_cpu_ms_per_chunk"] = round(1000 * (time.process_time() - c0) / len(chunks), 2)
        lat = []
        for c in chunks[:20]:
            t0 = time.perf_counter()
            det.logits([c])
            lat.append(1000 * (time.perf_counter() - t0))
        out["one_chunk_p50_ms"] = round(float(np.percentile(lat, 50)), 2)
        out["one_chunk_p95_ms"] = round(float(np.percentile(lat, 95)), 2)
    finally:
        if tmp is not None:
            tmp.cleanup()
    return out


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(bench_wavlm(int(sys.argv[1]) if len(sys.argv) > 1 else 50), indent=1))
