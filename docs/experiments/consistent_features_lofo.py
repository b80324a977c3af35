"""Keep only the features whose spoof evidence points the same way for every training family: a
model-selection experiment on the crossed protocol (train+dev only; eval unread).

A GBM happily learns one family's signature from a feature that says nothing about the others; when that
family is held out the signature is useless, and when a new generator comes the model has spent its trees on
signatures. Here each fold ranks the features on its own training rows only: for every training family f and
feature j, the effect size d_fj = (median of f's chunks − median of bona fide) / IQR of bona fide; a feature's
score is |mean_f d_fj| (a feature that one family pushes up and another down, or that only one family moves,
scores low). The fold's GBM trains on the top K features. Same folds as ``run_lofo`` with ``bass`` train-only.

    .venv/bin/python docs/experiments/consistent_features_lofo.py --corpus data/corpus_v8 [--keep 60 100 140]

Results: docs/generalisation.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from lofo_variants import Protocol  # noqa: E402


def consistency(x: np.ndarray, y: np.ndarray, family: np.ndarray) -> np.ndarray:
    """|mean over families of the robust effect size| per feature column, from these rows only."""
    bona = x[y == 0]
    med = np.median(bona, axis=0)
    iqr = np.subtract(*np.percentile(bona, [75, 25], axis=0)) + 1e-9
    fams = sorted(set(family[y == 1]))
    d = np.array([(np.median(x[family == f], axis=0) - med) / iqr for f in fams])
    return np.abs(d.mean(axis=0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, default=Path("data/corpus_v8"))
    ap.add_argument("--keep", type=int, nargs="+", default=[60, 100, 140])
    ap.add_argument("--train-only-group", default="bass")
    args = ap.parse_args()
    p = Protocol(args.corpus, threads=2, train_only=(args.train_only_group,))
    names = ["all"] + [f"top{k}" for k in args.keep]
    per_family: dict[str, dict[str, list[tuple[float, float]]]] = {n: {} for n in names}
    picked: dict[int, np.ndarray] = {k: np.zeros(p.x.shape[1]) for k in args.keep}
    for fam, k, test, fit, _cal in p.crossed_iter():
        order = np.argsort(-consistency(p.x[fit], p.y[fit], p.family[fit]))
        line = [f"{fam} fold {k + 1}:"]
        for name in names:
            cols = np.arange(p.x.shape[1]) if name == "all" else np.sort(order[:int(name[3:])])
            if name != "all":
                picked[int(name[3:])][cols] += 1
            model = p.gbm(fit, x=p.x[:, cols])
            e = p.eers(test, model.predict(p.x[test][:, cols], raw_score=True))
            per_family[name].setdefault(fam, []).append(e)
            line.append(f"{name} {e[0]:.2%}")
        print(" ".join(line), flush=True)
    for name in names:
        fam = {f: np.mean(v, axis=0) for f, v in per_family[name].items()}
        chunk = np.array([v[0] for v in fam.values()])
        rec = np.array([v[1] for v in fam.values()])
        print(f"{name}: per chunk worst {chunk.max():.2%} mean {chunk.mean():.2%} | per recording worst "
              f"{rec.max():.2%} mean {rec.mean():.2%}")
        print("  " + " ".join(f"{f} {100 * v[0]:.1f}" for f, v in sorted(fam.items())))
    from detector.features import feature_names

    fn = np.array(feature_names())
    for k, counts in picked.items():
        always = fn[counts == counts.max()]
        print(f"top{k}: {len(always)} features picked in every fold, e.g. {', '.join(always[:12])}")


if __name__ == "__main__":
    main()
