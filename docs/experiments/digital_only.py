#!/usr/bin/env python3
"""Does a GBM trained without the replay families stop reading a room as spoof evidence?

The shipped GBM scores reverberant human speech higher than dry speech (docs/generalisation.md, "Why a clean
human voice scores high"): every replay spoof has a room. This screen trains the shipped recipe (train+dev
pooled, out-of-fold thresholds) twice with one seed: with every family, and without the replay families. Then,
on the eval split (read after both models exist; nothing is chosen from it here): EER on the digital families,
the bona fide mean score and false alarms at hang-up with and without a capture room, the worst speaker and
the live policy's 5-chunk evidence.

Usage: .venv/bin/python docs/experiments/digital_only.py [CORPUS] [ROUNDS]   (default data/corpus_v8, 400)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from scipy.special import expit

from detector.corpus.manifest import load_manifest
from detector.featcache import corpus_features
from detector.metrics import eer
from detector.oof import oof_logits
from detector.train_gbm import DEFAULT_PARAMS, HANGUP_WINDOW, balanced_weights, calibrate, evidence_scores, fit_model


def has_room(row: dict) -> bool:
    return row["capture"].startswith("rt")


def report(name: str, test: list[dict], y: np.ndarray, p: np.ndarray, t: dict[str, float]) -> None:
    hang = t["far_0_1pct"]
    bona = y == 0
    room = np.array([has_room(r) for r in test])
    gens = np.array([r["generator"] for r in test])
    spk = np.array([r["speaker"] for r in test])
    digital = bona | ((y == 1) & (np.array([r["attack_type"] for r in test]) != "replay"))
    print(f"== {name}: OOF EER {100 * t['dev_eer']:.2f} %, hang-up {hang:.4f}")
    print(f"   eval EER all {100 * eer(y, p)[0]:.2f} %, digital only {100 * eer(y[digital], p[digital])[0]:.2f} %; "
          + ", ".join(f"{g} {100 * eer(y[bona | (gens == g)], p[bona | (gens == g)])[0]:.2f} %"
                      for g in sorted(set(gens[~bona]))))
    for label, m in (("dry", bona & ~room), ("room", bona & room)):
        print(f"   bona fide {label} ({m.sum()}): mean {p[m].mean():.3f}, "
              f"at hang-up {100 * (p[m] >= hang).mean():.2f} %")
    worst = max((float((p[bona & (spk == s)] >= hang).mean()), s) for s in set(spk[bona]))
    ev_y, ev = evidence_scores(test, y, p, window=HANGUP_WINDOW)
    print(f"   per chunk at hang-up {100 * (p[bona] >= hang).mean():.2f} %, worst {worst[1]} {100 * worst[0]:.2f} %; "
          f"live policy {100 * (ev[ev_y == 0] >= hang).mean():.2f} % false alarms / "
          f"{100 * (ev[ev_y == 1] < hang).mean():.1f} % misses", flush=True)


def main(corpus: Path, rounds: int) -> None:
    rows = load_manifest(corpus)
    pool_all = [r for r in rows if r["split"] == "train"] + [r for r in rows if r["split"] == "dev"]
    test = [r for r in rows if r["split"] == "eval"]
    xt = corpus_features(corpus, test)
    yt = np.array([r["label"] != "bonafide" for r in test], dtype=np.int32)
    params = dict(DEFAULT_PARAMS)
    for name, keep in (("every family", lambda r: True),
                       ("no replay", lambda r: r["attack_type"] != "replay")):
        pool = [r for r in pool_all if keep(r)]
        x = corpus_features(corpus, pool)
        y = np.array([r["label"] != "bonafide" for r in pool], dtype=np.int32)
        oof = oof_logits(x, y, pool, params, rounds)[:, 0]
        ok = ~np.isnan(oof)
        t = calibrate(y[ok], expit(oof[ok]), [r for r, k in zip(pool, ok, strict=True) if k])
        p = expit(fit_model(x, y, balanced_weights(pool), params, rounds).logits(xt)[:, 0])
        report(name, test, yt, p, t)


if __name__ == "__main__":
    args = sys.argv[1:]
    main(Path(args[0]) if args else Path("data/corpus_v8"), int(args[1]) if len(args) > 1 else 400)
