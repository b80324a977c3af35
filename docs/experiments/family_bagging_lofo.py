"""Family-bagged GBM ensemble on the crossed model-selection protocol (train+dev only; eval unread).

Each of M members trains without one of M disjoint random groups of the training families, so every family
is absent from one member and no member can rest on all family signatures at once; the ensemble's score is
the mean of the members' logits. Compared with one GBM on the same folds (schema-2 features, 200 rounds,
``bass`` train-only as in the shipped protocol).

    .venv/bin/python docs/experiments/family_bagging_lofo.py --corpus data/corpus_v8 [--members 4]

Results: docs/generalisation.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from lofo_variants import Protocol, _report  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--corpus", type=Path, default=Path("data/corpus_v8"))
    ap.add_argument("--members", type=int, default=4)
    ap.add_argument("--train-only-group", default="bass")
    args = ap.parse_args()
    p = Protocol(args.corpus, threads=2, train_only=(args.train_only_group,))
    results: dict[str, list[tuple[float, float]]] = {"gbm": [], f"bagged x{args.members}": []}
    per_family: dict[str, dict[str, list[float]]] = {k: {} for k in results}
    for n, (fam, k, test, fit, _cal) in enumerate(p.crossed_iter()):
        base = p.gbm(fit).predict(p.x[test], raw_score=True)
        train_fams = sorted(set(p.family[fit]) - {""})
        order = np.random.default_rng(1000 * n + k).permutation(train_fams)
        groups = np.array_split(order, args.members)
        logits = [p.gbm(fit & ~np.isin(p.family, g)).predict(p.x[test], raw_score=True) for g in groups]
        for name, scores in (("gbm", base), (f"bagged x{args.members}", np.mean(logits, axis=0))):
            e = p.eers(test, scores)
            results[name].append(e)
            per_family[name].setdefault(fam, []).append(e[0])
        print(f"{fam} fold {k + 1}: gbm {results['gbm'][-1][0]:.2%} bagged "
              f"{results[f'bagged x{args.members}'][-1][0]:.2%}", flush=True)
    # the protocol's figures are per family (mean over its folds); worst and mean over families
    for name in results:
        fam_means = {f: float(np.mean(v)) for f, v in per_family[name].items()}
        print(name, "per family:", " ".join(f"{f} {100 * v:.2f}" for f, v in sorted(fam_means.items())))
        print(f"{name}: worst {max(fam_means.values()):.2%} mean {np.mean(list(fam_means.values())):.2%}")
    _report(results)


if __name__ == "__main__":
    main()
