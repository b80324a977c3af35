"""Does a shipped detector's score depend on the waveform's polarity (x against -x)?

A telephone chain, a microphone or a sound card may invert the signal; the speech is the same. Scores every
chunk of ``--split`` as recorded and inverted, and prints: EER, bona fide false alarms at the shipped
thresholds, spoofs caught at hang-up, each bona fide speaker's mean score and hang-up false alarms, each
family's EER, and the same for the mean of the two polarities' scores (a polarity-invariant score; the
thresholds were not calibrated for it, so its threshold shares are indicative only).

    .venv/bin/python docs/experiments/polarity.py --corpus data/corpus_v8 --split eval [--detector wavlm]

Used on 2026-12-07 (eighth session) on the shipped model of the time (feature schema 2); nothing was tuned on
what it prints. From schema 3 on the GBM's features take one canonical polarity, so for `--detector gbm` both
columns must come out the same: the script is then a check of that on a whole split. Since
`wavlm-20261207-173210` (tenth session) the WavLM detector, and so the fused one, take their input upright too.
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from pathlib import Path

import numpy as np

from detector.corpus.manifest import load_manifest
from detector.evaluate import score_rows
from detector.metrics import eer
from detector.scoring import Detector, load_detector


class Inverted:
    """A detector that hears every chunk upside down (features extracted afresh, never from the cache)."""

    def __init__(self, detector: Detector) -> None:
        self.detector, self.name = detector, detector.name

    def score(self, chunks: list[np.ndarray]) -> np.ndarray:
        return self.detector.score([-c for c in chunks])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, required=True)
    ap.add_argument("--split", default="eval")
    ap.add_argument("--models-dir", type=Path, default=None)
    ap.add_argument("--detector", default="gbm", choices=("gbm", "wavlm", "fused"))
    args = ap.parse_args()

    rows = [r for r in load_manifest(args.corpus) if r["split"] == args.split]
    det = load_detector(args.detector, args.models_dir)
    th = det.thresholds
    scores = {"as recorded": score_rows(det, args.corpus, rows),
              "inverted": score_rows(Inverted(det), args.corpus, rows)}
    scores["mean of both"] = (scores["as recorded"] + scores["inverted"]) / 2
    spoof = np.array([r["label"] != "bonafide" for r in rows])
    labels = spoof.astype(float)

    print(f"{det.name} {det.version} on the {args.split} split: {(~spoof).sum()} bona fide, {spoof.sum()} spoof chunks")
    print("| scores | EER | bona fide mean | false alarms at warn | at hang-up | spoofs caught at hang-up |")
    print("|---|---|---|---|---|---|")
    for name, s in scores.items():
        print(f"| {name} | {100 * eer(labels, s)[0]:.2f} % | {s[~spoof].mean():.3f} | "
              f"{100 * np.mean(s[~spoof] >= th.warn):.2f} % | {100 * np.mean(s[~spoof] >= th.hangup):.2f} % | "
              f"{100 * np.mean(s[spoof] >= th.hangup):.2f} % |")

    print("\n| bona fide speaker (chunks) | mean score as recorded / inverted / both "
          "| hang-up false alarms as recorded / inverted / both |")
    print("|---|---|---|")
    by_speaker: dict[str, list[int]] = defaultdict(list)
    for i, r in enumerate(rows):
        if r["label"] == "bonafide":
            by_speaker[r["speaker"]].append(i)
    for speaker, idx in sorted(by_speaker.items()):
        means = " / ".join(f"{s[idx].mean():.3f}" for s in scores.values())
        fas = " / ".join(f"{100 * np.mean(s[idx] >= th.hangup):.2f}" for s in scores.values())
        print(f"| {speaker} ({len(idx)}) | {means} | {fas} % |")

    print("\n| family | EER as recorded / inverted / both |")
    print("|---|---|")
    for fam in sorted({r["generator"] for r in rows if r["label"] != "bonafide"}):
        m = np.array([r["generator"] == fam for r in rows]) | ~spoof
        print(f"| {fam} | " + " / ".join(f"{100 * eer(labels[m], s[m])[0]:.2f}" for s in scores.values()) + " % |")


if __name__ == "__main__":
    main()
