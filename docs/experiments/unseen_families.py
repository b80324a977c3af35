"""How a shipped detector scores generator families it never saw, against the bona fide speech of unseen voices.

    .venv/bin/python docs/experiments/unseen_families.py --corpus data/corpus_v11 \
        --families kokoro,hibari,hifigan16k [--detector gbm] [--models-dir models] [--bonafide-split eval]

For each family (its chunks from any split): EER against the bona fide chunks of ``--bonafide-split`` (voices
the shipped models never trained on), the family's mean score, and the share of its chunks above the
detector's warn and hang-up thresholds (per chunk; the live policy averages several chunks). The same bona
fide chunks' shares above the thresholds are printed for comparison. Used on 2026-12-07 for the corpus v11
families, which the shipped models (trained on corpus v8) never saw.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from detector.corpus.manifest import load_manifest
from detector.evaluate import score_rows
from detector.metrics import eer
from detector.scoring import load_detector


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, required=True)
    ap.add_argument("--families", required=True, help="comma-separated generator families")
    ap.add_argument("--detector", default="gbm")
    ap.add_argument("--models-dir", type=Path, default=None)
    ap.add_argument("--bonafide-split", default="eval")
    args = ap.parse_args()

    rows = load_manifest(args.corpus)
    families = args.families.split(",")
    bona = [r for r in rows if r["label"] == "bonafide" and r["split"] == args.bonafide_split]
    det = load_detector(args.detector, args.models_dir)
    th = det.thresholds
    bona_scores = score_rows(det, args.corpus, bona)
    print(f"{det.name} {det.version}; bona fide: {len(bona)} chunks of the {args.bonafide_split} split, "
          f"mean score {bona_scores.mean():.3f}, above warn {np.mean(bona_scores >= th.warn):.2%}, "
          f"above hang-up {np.mean(bona_scores >= th.hangup):.2%}")
    print("| family | chunks | EER | mean score | above warn | above hang-up |")
    print("|---|---|---|---|---|---|")
    for fam in families:
        spoof = [r for r in rows if r["generator"] == fam]
        if not spoof:
            print(f"| {fam} | 0 | — | — | — | — |")
            continue
        s = score_rows(det, args.corpus, spoof)
        labels = np.r_[np.zeros(len(bona)), np.ones(len(s))]
        print(f"| {fam} | {len(s)} | {eer(labels, np.r_[bona_scores, s])[0]:.2%} | {s.mean():.3f} | "
              f"{np.mean(s >= th.warn):.2%} | {np.mean(s >= th.hangup):.2%} |")


if __name__ == "__main__":
    main()
