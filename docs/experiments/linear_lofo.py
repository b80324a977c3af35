"""Model-selection experiment: does a smooth model on the handcrafted features (logistic regression, a small
MLP) generalise to unseen families better than the trees, alone or averaged with the GBM?

Trees extrapolate flat outside the training range, and an unseen family's features often lie outside it,
so a smooth boundary might carry over further. Crossed folds (every family against every bona fide speaker
fold), train+dev only (eval is never read), same fold rules as ``detector.lofo.run_lofo``. Needs
scikit-learn (not a project dependency).

    .venv/bin/python docs/experiments/linear_lofo.py [--corpus data/corpus_v6] [--rounds 200]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from lofo_variants import Protocol  # noqa: E402

from detector.metrics import eer  # noqa: E402
from detector.mlp import robust_scale as robust_scale_with  # noqa: E402
from detector.mlp import robust_stats  # noqa: E402
from detector.train_gbm import balanced_weights  # noqa: E402


def robust_scale(fit: np.ndarray, *others: np.ndarray) -> list[np.ndarray]:
    """Median/IQR of the training rows, then clipped to ±6 (``detector.mlp``'s scaling)."""
    median, iqr = robust_stats(fit)
    return [robust_scale_with(a, median, iqr) for a in (fit, *others)]


def main() -> int:
    from sklearn.linear_model import LogisticRegression
    from sklearn.neural_network import MLPClassifier

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=Path("data/corpus_v6"))
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0, help="the MLP's initialisation and validation split")
    args = ap.parse_args()
    p = Protocol(args.corpus, rounds=args.rounds, threads=2)
    x, y = p.x, p.y
    names = ("gbm", "logreg", "mlp", "gbm+logreg", "gbm+mlp")
    out: dict[str, dict[str, list[float]]] = {n: {} for n in names}
    for fam, k, test, fit, cal_bona in p.crossed_iter():
        w = balanced_weights([p.rows[i] for i in np.flatnonzero(fit)])
        b = p.gbm(fit)
        xs_fit, xs_test, xs_cal = robust_scale(x[fit], x[test], x[cal_bona])
        lr = LogisticRegression(C=0.05, max_iter=2000).fit(xs_fit, y[fit], sample_weight=w)
        mlp = MLPClassifier((64,), alpha=1e-2, max_iter=60, early_stopping=True, random_state=args.seed)
        mlp.fit(xs_fit, y[fit])
        raw = {"gbm": (b.predict(x[test], raw_score=True), b.predict(x[cal_bona], raw_score=True)),
               "logreg": (lr.decision_function(xs_test), lr.decision_function(xs_cal)),
               "mlp": tuple(np.log(np.clip(m, 1e-7, 1)) - np.log(np.clip(1 - m, 1e-7, 1))
                            for m in (mlp.predict_proba(xs_test)[:, 1], mlp.predict_proba(xs_cal)[:, 1]))}
        z = {n: (s - c.mean()) / (c.std() + 1e-9) for n, (s, c) in raw.items()}
        z["gbm+logreg"] = (z["gbm"] + z["logreg"]) / 2
        z["gbm+mlp"] = (z["gbm"] + z["mlp"]) / 2
        for n in names:
            out[n].setdefault(fam, []).append(100 * eer(y[test], z[n])[0])
        print(f"{fam} fold {k + 1}: " + ", ".join(f"{n} {out[n][fam][-1]:.1f}" for n in names),
              file=sys.stderr, flush=True)
    summary = {n: {"worst": round(max(np.mean(v) for v in fams.values()), 2),
                   "mean": round(float(np.mean([np.mean(v) for v in fams.values()])), 2),
                   "families": {f: round(float(np.mean(v)), 2) for f, v in fams.items()}}
               for n, fams in out.items()}
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
