"""`callguard scan FILE...`: score audio files offline with a shipped detector.

One JSON object per file (with --json), or one readable line per file. A file that cannot be scored gets
an ``error`` and a message on stderr; the other files are still scanned; the exit status is 1 when any
file failed, 2 when the detector itself could not be loaded.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from detector.audio import DETECTOR_RATE, AudioError, load_audio
from detector.chunking import speech_chunks
from detector.scoring import DETECTOR_NAMES, ModelError, load_detector
from detector.verdict import verdict_for


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("scan", help="score audio files (wav/flac/mp3/ogg, any rate; raw .ulaw/.alaw)")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    p.add_argument("--json", action="store_true", help="one JSON object per line")
    p.add_argument("--detector", choices=DETECTOR_NAMES, default="gbm")
    p.add_argument("--models-dir", type=Path, default=None, help="default: the shipped models/")
    p.add_argument("--explain", action="store_true", help="add the top feature groups per chunk (gbm)")
    p.set_defaults(func=run)


def scan_file(path: Path, detector, explain: bool = False) -> dict:
    """Score one file; raises AudioError for unreadable, empty or speechless files."""
    audio = load_audio(path, DETECTOR_RATE)
    chunks = speech_chunks(audio, DETECTOR_RATE)
    if not chunks:
        raise AudioError(f"{path}: no 2-second stretch of speech found "
                         f"({len(audio) / DETECTOR_RATE:.1f} s of audio)")
    scores = detector.score([c.audio for c in chunks])
    score = float(np.mean(scores))
    result = {
        "file": str(path), "detector": detector.name, "model_version": detector.version,
        "score": round(score, 4), "verdict": verdict_for(score, detector.thresholds),
        "duration_s": round(len(audio) / DETECTOR_RATE, 2),
        "chunks": [{"start_s": c.start_s, "score": round(float(s), 4)} for c, s in zip(chunks, scores, strict=True)],
    }
    if explain and hasattr(detector, "explain"):
        for entry, groups in zip(result["chunks"], detector.explain([c.audio for c in chunks]), strict=True):
            entry["top_groups"] = groups
    return result


def run(args: argparse.Namespace) -> int:
    try:
        detector = load_detector(args.detector, args.models_dir)
    except ModelError as exc:
        print(f"callguard scan: {exc}", file=sys.stderr)
        return 2
    failed = 0
    for path in args.files:
        try:
            result = scan_file(path, detector, args.explain)
        except (AudioError, OSError) as exc:
            failed += 1
            msg = str(exc)
            print(f"callguard scan: {msg}", file=sys.stderr)
            result = {"file": str(path), "detector": detector.name, "error": msg}
        if args.json:
            print(json.dumps(result), flush=True)
        elif "error" in result:
            print(f"{path}: ERROR {result['error']}", flush=True)
        else:
            print(f"{path}: {result['verdict']} score={result['score']:.3f} "
                  f"({len(result['chunks'])} chunks, detector {detector.name})", flush=True)
    return 1 if failed else 0
