#!/usr/bin/env python3
"""The shipped detectors compared at matched misses: false alarms on the eval split's unseen voices and on the
outside people (``callguard eval --protocol outside``) where each detector misses the same share of the eval
split's spoof evidence (the live policy's 5-chunk windows). The thresholds are read off the eval spoofs, so this
compares fixed detectors and chooses nothing; each detector's own thresholds play no part.

Usage: .venv/bin/python docs/experiments/matched_misses.py [CORPUS]   (default data/corpus_v8; about 5.5 min)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import soundfile as sf

from detector import outside
from detector.corpus.manifest import load_manifest
from detector.outside_report import ChunkedSet
from detector.scoring import load_detector
from detector.train_gbm import HANGUP_WINDOW, evidence_scores

MISSES = (0.5, 0.65, 0.77, 0.85)


def main(corpus: Path) -> None:
    rows = [r for r in load_manifest(corpus) if r["split"] == "eval"]
    y = np.array([r["label"] != "bonafide" for r in rows], dtype=np.int32)
    chunks = [sf.read(corpus / r["path"], dtype="float32")[0] for r in rows]
    people = ChunkedSet.cut(outside.outside_recordings(), "ulaw")
    for name in ("gbm", "wavlm", "fused"):
        det = load_detector(name)
        p, c = np.asarray(det.score(chunks)), np.asarray(det.score(people.chunks))
        ev_y, ev = evidence_scores(rows, y, p, window=HANGUP_WINDOW)
        cells = []
        for miss in MISSES:
            t = float(np.quantile(ev[ev_y == 1], miss))
            cells.append(f"{100 * miss:.0f} % missed: eval bona fide chunks {100 * (p[y == 0] >= t).mean():.2f} %, "
                         f"windows {100 * (ev[ev_y == 0] >= t).mean():.2f} %, "
                         f"outside chunks {100 * (c >= t).mean():.2f} %")
        print(f"{name} | " + " | ".join(cells), flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("data/corpus_v8"))
