"""Model-selection experiment: can the GBM be made blind to the waveform's polarity without losing accuracy?

17 of the 190 features change sign when the waveform is inverted (docs/generalisation.md, "The shipped GBM
reads the waveform's polarity"). Three GBMs trained on the train split, tested on dev (unseen speakers and
unseen families), as recorded and inverted:

- ``raw``: today's features;
- ``both``: today's features, every training chunk also inverted (the model may learn to ignore polarity);
- ``canonical``: each chunk's features taken from the polarity in which its LPC residual is positively
  skewed (glottal pulses make the residual skewed; its sign says which way up the voice arrived), or in which
  ``--flip-by`` is the larger of the two. Invariant by construction: inverting a chunk picks the same
  orientation.

Prints EER on dev as recorded and inverted, each bona fide speaker's mean score both ways, and the mean
absolute change of a bona fide chunk's score. Features of the inverted chunks come from
``corpus_features(augment="invert")``, computed once for the whole manifest and cached. Eval is never read.

With ``--lofo``, the same raw and canonical models on the model-selection protocol (train+dev, one speaker fold
per held-out family, ``bass`` train-only): per-family EER, the raw model's held-out rows also inverted.

    .venv/bin/python docs/experiments/polarity_invariance.py --corpus data/corpus_v8 [--rounds 300] \
        [--lofo [--cross-folds]] [--flip-by lpc_res_skew]

Written for feature schema 2. Schema 3 ships the ``canonical`` variant inside ``detector/features.py``, so on
today's features the three variants no longer differ in what they compare; to rerun the screen, check out a
commit with ``FEATURE_SCHEMA_VERSION = 2``.
"""

from __future__ import annotations

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from detector.corpus.manifest import load_manifest  # noqa: E402
from detector.featcache import corpus_features  # noqa: E402
from detector.features import feature_names  # noqa: E402
from detector.metrics import eer  # noqa: E402
from detector.train_gbm import DEFAULT_PARAMS, balanced_weights, fit_model  # noqa: E402


def canonical(pos: np.ndarray, neg: np.ndarray, feature: str) -> np.ndarray:
    """Each row's features from the orientation (as recorded or inverted) in which ``feature`` is larger.
    The pair {x, -x} is the same for a chunk and its inverse, so the pick is too (polarity-invariant)."""
    j = list(feature_names()).index(feature)
    return np.where((pos[:, j] >= neg[:, j])[:, None], pos, neg)


def run_lofo(corpus: Path, rounds: int, crossed: bool, flip_by: str) -> None:
    """The model-selection protocol (one speaker fold per held-out family, ``bass`` train-only): the raw and
    the canonical GBM per fold, the held-out rows scored as recorded and inverted."""
    import json

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from lofo_variants import Protocol, summarise_folds

    p = Protocol(corpus, rounds=rounds, threads=2, train_only=("bass",))
    neg = corpus_features(corpus, p.rows, augment="invert").astype(np.float64)
    canon = canonical(p.x, neg, flip_by)
    out: dict[str, dict[str, list[tuple[float, float]]]] = {
        n: {} for n in ("raw as recorded", "raw inverted", "canonical")}
    folds = ((f, *rest) for f, _, *rest in p.crossed_iter()) if crossed else p.folds_iter()
    for fam, test, fit, _ in folds:
        raw, can = p.gbm(fit), p.gbm(fit, canon)
        scores = {"raw as recorded": raw.predict(p.x[test]), "raw inverted": raw.predict(neg[test]),
                  "canonical": can.predict(canon[test])}
        for n, sc in scores.items():
            out[n].setdefault(fam, []).append(tuple(100 * e for e in p.eers(test, sc)))
        print(f"{fam}: " + ", ".join(f"{n} {out[n][fam][-1][0]:.1f}" for n in out), file=sys.stderr, flush=True)
    print(json.dumps({n: summarise_folds(f) for n, f in out.items()}, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=Path("data/corpus_v8"))
    ap.add_argument("--rounds", type=int, default=300)
    ap.add_argument("--lofo", action="store_true", help="run the leave-one-family-out protocol instead")
    ap.add_argument("--cross-folds", action="store_true", help="with --lofo: every family against every fold")
    ap.add_argument("--flip-by", default="lpc_res_skew",
                    help="the feature whose larger value picks the canonical orientation")
    args = ap.parse_args()
    if args.lofo:
        run_lofo(args.corpus, args.rounds, args.cross_folds, args.flip_by)
        return

    rows = [r for r in load_manifest(args.corpus) if r["split"] in ("train", "dev")]
    pos = corpus_features(args.corpus, rows)
    neg = corpus_features(args.corpus, rows, augment="invert")
    canon = canonical(pos, neg, args.flip_by)
    y = np.array([r["label"] != "bonafide" for r in rows], dtype=float)
    train = np.array([r["split"] == "train" for r in rows])
    dev = ~train
    w = balanced_weights([r for r, t in zip(rows, train, strict=True) if t])
    bona = dev & (y == 0)
    speakers: dict[str, list[int]] = defaultdict(list)
    for i in np.flatnonzero(bona):
        speakers[rows[i]["speaker"]].append(i)

    variants = {
        "raw": (pos[train], y[train], w, pos, neg),
        "both": (np.r_[pos[train], neg[train]], np.r_[y[train], y[train]], np.r_[w, w], pos, neg),
        "canonical": (canon[train], y[train], w, canon, canon),
    }
    print(f"train {train.sum()} chunks, dev {dev.sum()} ({bona.sum()} bona fide); {args.rounds} rounds")
    print("| model | dev EER as recorded | inverted | mean abs. change of a bona fide score | "
          "largest change of a speaker's mean |")
    print("|---|---|---|---|---|")
    per_speaker = {}
    for name, (xt, yt, wt, test_pos, test_neg) in variants.items():
        booster = fit_model(xt, yt, wt, DEFAULT_PARAMS, args.rounds).booster
        s_pos = booster.predict(test_pos[dev], num_threads=2)
        s_neg = booster.predict(test_neg[dev], num_threads=2)
        full_pos, full_neg = np.zeros(len(rows)), np.zeros(len(rows))
        full_pos[dev], full_neg[dev] = s_pos, s_neg
        shifts = {k: (full_pos[i].mean(), full_neg[i].mean()) for k, i in speakers.items()}
        per_speaker[name] = shifts
        print(f"| {name} | {100 * eer(y[dev], s_pos)[0]:.2f} % | {100 * eer(y[dev], s_neg)[0]:.2f} % | "
              f"{np.abs(full_pos[bona] - full_neg[bona]).mean():.3f} | "
              f"{max(abs(a - b) for a, b in shifts.values()):.3f} |", flush=True)
    print("\n| dev speaker | " + " | ".join(f"{n}: as recorded → inverted" for n in variants) + " |")
    print("|---|" + "---|" * len(variants))
    for k in sorted(speakers):
        print(f"| {k} ({len(speakers[k])}) | "
              + " | ".join(f"{per_speaker[n][k][0]:.3f} → {per_speaker[n][k][1]:.3f}" for n in variants) + " |")


if __name__ == "__main__":
    main()
