"""Model-selection experiments on the generalisation protocol, over train+dev only (eval is never read).

Same folds as ``detector.lofo.run_lofo`` (each family held out with one bona fide speaker fold, their
voices removed from training), 200 rounds, one thread. Results and reading: docs/generalisation.md.

    .venv/bin/python docs/experiments/lofo_variants.py oneclass [--corpus data/corpus_v4] [--pca 48]
    .venv/bin/python docs/experiments/lofo_variants.py experts  [--corpus data/corpus_v4]

- ``oneclass``: a bona fide-only model on the GBM features (robust standardisation on bona fide training
  rows, PCA; score = log(1 + Mahalanobis distance) or log residual norm), alone and z-fused with the GBM
  logit (z-scored on the calibration rows' bona fide scores).
- ``experts``: one GBM versus a digital expert (trained without replay spoofs) and a replay expert (bona
  fide vs replay only), combined by max of logits, max of bona fide z-scores, or their sum; also the
  digital expert alone on the digital families.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from detector.corpus.manifest import load_manifest  # noqa: E402
from detector.featcache import corpus_features  # noqa: E402
from detector.lofo import speaker_folds, tied_groups, with_ties  # noqa: E402
from detector.metrics import eer, recording_means  # noqa: E402
from detector.train_gbm import DEFAULT_PARAMS, balanced_weights, speaker_group  # noqa: E402


class Protocol:
    """Train+dev rows, their features and labels, and the folds of ``detector.lofo.run_lofo`` (also the base
    of the other experiment scripts here). ``train_only``: speaker groups never held out (as
    ``run_lofo(train_only_groups=...)``); one leaves training only where a group tied to it is held out."""

    def __init__(self, corpus: Path, rounds: int = 200, threads: int = 1, train_only: tuple[str, ...] = ()) -> None:
        self.rounds = rounds
        self.rows = [r for r in load_manifest(corpus) if r["split"] in ("train", "dev")]
        self.x = corpus_features(corpus, self.rows).astype(np.float64)
        self.y = np.array([r["label"] != "bonafide" for r in self.rows], dtype=np.int32)
        self.family = np.array([r["generator"] if r["label"] != "bonafide" else "" for r in self.rows])
        self.replay = np.char.startswith(self.family.astype(str), "replay")
        self.speaker = np.array([speaker_group(r) for r in self.rows])
        self.split = np.array([r["split"] for r in self.rows])
        self.families = sorted(set(self.family) - {""})
        self.folds = speaker_folds([r for r, g in zip(self.rows, self.speaker, strict=True) if g not in train_only], 4)
        self.ties = tied_groups(set(self.speaker))
        self.params = dict(DEFAULT_PARAMS, num_threads=threads)
        self.params.pop("metric")

    def masks(self, fam: str, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(test, fit, calibration bona fide) with ``fam`` and speaker fold ``k`` held out."""
        held = np.isin(self.speaker, self.folds[k])
        test = ((self.y == 0) & held) | (self.family == fam)
        train = (self.family != fam) & ~np.isin(self.speaker, with_ties(self.folds[k], self.ties))
        return test, train & (self.split != "dev"), train & (self.split == "dev") & (self.y == 0)

    def folds_iter(self):
        """(family, test mask, fit mask, calibration bona fide mask) per held-out family."""
        for n, fam in enumerate(self.families):
            yield fam, *self.masks(fam, n % len(self.folds))

    def crossed_iter(self):
        """(family, fold index, test, fit, calibration bona fide): every family against every speaker fold."""
        for fam in self.families:
            for k in range(len(self.folds)):
                yield fam, k, *self.masks(fam, k)

    def gbm(self, mask: np.ndarray, x: np.ndarray | None = None):
        """A GBM on the ``mask`` rows of ``x`` (default: the handcrafted features), balanced weights."""
        import lightgbm as lgb

        x = self.x if x is None else x
        sub = [self.rows[i] for i in np.flatnonzero(mask)]
        data = lgb.Dataset(x[mask], self.y[mask], weight=balanced_weights(sub))
        return lgb.train(self.params, data, num_boost_round=self.rounds)

    def eers(self, test: np.ndarray, scores: np.ndarray) -> tuple[float, float]:
        """EER per chunk and per recording (mean chunk score) of ``scores`` on the ``test`` rows."""
        rows = [self.rows[i] for i in np.flatnonzero(test)]
        return eer(self.y[test], scores)[0], eer(*recording_means(rows, self.y[test], scores))[0]


def summarise_folds(fams: dict[str, list[tuple[float, float]]]) -> dict:
    """Per family, the mean over its folds of (per-chunk EER, per-recording EER) in %; worst and mean over
    the families, rounded for printing."""
    chunk = {f: float(np.mean([v[0] for v in vals])) for f, vals in fams.items()}
    rec = {f: float(np.mean([v[1] for v in vals])) for f, vals in fams.items()}
    return {"worst": round(max(chunk.values()), 2), "mean": round(float(np.mean(list(chunk.values()))), 2),
            "worst_recording": round(max(rec.values()), 2),
            "mean_recording": round(float(np.mean(list(rec.values()))), 2),
            "families": {f: round(v, 2) for f, v in chunk.items()}}


def cached_columns(corpus_dir: Path, rows: list[dict], name: str,
                   make_compute: Callable[[], Callable[[np.ndarray], np.ndarray]], batch: int = 256,
                   dtype: type = np.float32) -> np.ndarray:
    """``compute(chunks)`` over ``rows`` in batches, cached as features/<name>_<rows-hash>.npy of the corpus
    (stored as ``dtype``); ``make_compute()`` (loading a model, say) runs only when the cache misses."""
    import hashlib

    from detector.corpus.manifest import load_chunks

    key = hashlib.sha256("\n".join(r["path"] for r in rows).encode()).hexdigest()[:16]
    path = Path(corpus_dir) / "features" / f"{name}_{key}.npy"
    if path.exists():
        return np.load(path)
    compute, out = make_compute(), []
    for i in range(0, len(rows), batch):
        out.append(compute(load_chunks(corpus_dir, rows[i:i + batch])))
        print(f"{name}: {min(i + batch, len(rows))}/{len(rows)} chunks", file=sys.stderr, flush=True)
    x = np.concatenate(out).astype(dtype)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, x)
    return x


def run_variants(corpus: Path, variants: dict[str, dict], names: list[str], rounds: int,
                 cross_folds: bool = False) -> dict:
    """``detector.lofo.run_lofo`` over train+dev for each named variant (its keyword arguments); prints and
    returns worst/mean per chunk and per recording, and each family's EER."""
    import json

    from detector.lofo import run_lofo

    results = {}
    for name in names:
        s = run_lofo(corpus, None, rounds=rounds, splits=("train", "dev"), params={"num_threads": 2},
                     cross_folds=cross_folds, **variants[name])
        results[name] = {"worst": s["worst_eer"], "mean": s["mean_eer"], "worst_rec": s["worst_eer_recording"],
                         "mean_rec": s["mean_eer_recording"],
                         "families": {f["family"]: round(100 * f["eer"], 2) for f in s["families"]}}
        print(name, json.dumps(results[name]), flush=True)
    print(json.dumps(results, indent=1))
    return results


def _z(v: np.ndarray, ref: np.ndarray) -> np.ndarray:
    return (v - np.median(ref)) / (np.std(ref) + 1e-9)


def _report(results: dict[str, list[tuple[float, float]]]) -> None:
    for name, vals in results.items():
        v = np.array(vals)
        print(f"{name:14s} per chunk worst {v[:, 0].max():.2%} mean {v[:, 0].mean():.2%} | "
              f"per recording worst {v[:, 1].max():.2%} mean {v[:, 1].mean():.2%}")


def one_class(p: Protocol, k: int) -> None:
    def fit(xb: np.ndarray):
        med = np.median(xb, 0)
        iqr = np.subtract(*np.percentile(xb, [75, 25], 0)) + 1e-6
        z = np.clip((xb - med) / iqr, -20, 20)
        mu = z.mean(0)
        _, s, vt = np.linalg.svd(z - mu, full_matrices=False)
        return med, iqr, mu, vt[:k], s[:k] ** 2 / len(z)

    def score(model, xx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        med, iqr, mu, v, var = model
        z = np.clip((xx - med) / iqr, -20, 20) - mu
        proj = z @ v.T
        return np.log1p((proj ** 2 / var).sum(1)), np.log1p(((z - proj @ v) ** 2).sum(1))

    results: dict[str, list[tuple[float, float]]] = {n: [] for n in ("gbm", "oc_mahalanobis", "oc_residual",
                                                                     "gbm+oc")}
    for fam, test, fit_mask, cal in p.folds_iter():
        booster = p.gbm(fit_mask)
        g, g_cal = booster.predict(p.x[test], raw_score=True), booster.predict(p.x[cal], raw_score=True)
        model = fit(p.x[fit_mask & (p.y == 0)])
        (maha, resid), (maha_cal, _) = score(model, p.x[test]), score(model, p.x[cal])
        for name, s in (("gbm", g), ("oc_mahalanobis", maha), ("oc_residual", resid),
                        ("gbm+oc", _z(g, g_cal) + _z(maha, maha_cal))):
            results[name].append(p.eers(test, s))
        print(fam, {n: f"{v[-1][0]:.3f}" for n, v in results.items()}, file=sys.stderr, flush=True)
    _report(results)


def experts(p: Protocol) -> None:
    combos: dict[str, Callable] = {
        "single": lambda g, gc, d, dc, r, rc: g,
        "max_logit": lambda g, gc, d, dc, r, rc: np.maximum(d, r),
        "max_z": lambda g, gc, d, dc, r, rc: np.maximum(_z(d, dc), _z(r, rc)),
        "sum_z": lambda g, gc, d, dc, r, rc: _z(d, dc) + _z(r, rc),
    }
    results: dict[str, list[tuple[float, float]]] = {n: [] for n in combos}
    digital: dict[str, list[tuple[float, float]]] = {"single (digital)": [], "digital expert": []}
    for fam, test, fit_mask, cal in p.folds_iter():
        single, dig, rep = p.gbm(fit_mask), p.gbm(fit_mask & ~p.replay), p.gbm(fit_mask & ((p.y == 0) | p.replay))
        outs = [m.predict(p.x[s], raw_score=True) for m in (single, dig, rep) for s in (test, cal)]
        for name, combine in combos.items():
            results[name].append(p.eers(test, combine(*outs)))
        if not fam.startswith("replay"):
            digital["single (digital)"].append(p.eers(test, outs[0]))
            digital["digital expert"].append(p.eers(test, outs[2]))
        print(fam, {n: f"{v[-1][0]:.3f}" for n, v in results.items()}, file=sys.stderr, flush=True)
    _report(results)
    _report(digital)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("experiment", choices=("oneclass", "experts"))
    ap.add_argument("--corpus", type=Path, default=Path("data/corpus_v4"))
    ap.add_argument("--pca", type=int, default=48, help="oneclass: principal components kept")
    args = ap.parse_args()
    protocol = Protocol(args.corpus)
    if args.experiment == "oneclass":
        one_class(protocol, args.pca)
    else:
        experts(protocol)


if __name__ == "__main__":
    main()
