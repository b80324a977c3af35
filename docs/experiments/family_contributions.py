"""Why does the shipped GBM call a generator family human? Mean SHAP contribution per feature group.

    .venv/bin/python docs/experiments/family_contributions.py --corpus data/corpus_v11 \
        --families kokoro,hifigan16k,hibari,wavernn,pico [--bonafide-split dev] [--top 12]

For each family (its chunks from any split) and for the bona fide chunks of ``--bonafide-split``: the mean
log-odds contribution of each feature group (LightGBM's ``pred_contrib``), then the features whose mean
contribution differs most between the first family and the bona fide chunks. Dev bona fide voices were seen
in training (the shipped model is trained on train+dev), so their totals sit lower than unseen voices'; the
per-group *pattern* is what this reads. Used on 2026-12-07 for Kokoro.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from detector.corpus.manifest import load_manifest
from detector.featcache import corpus_features
from detector.features import feature_group, feature_names
from detector.scoring import load_detector


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, required=True)
    ap.add_argument("--families", required=True, help="comma-separated generator families; the first is explained")
    ap.add_argument("--bonafide-split", default="dev")
    ap.add_argument("--models-dir", type=Path, default=None)
    ap.add_argument("--top", type=int, default=12)
    args = ap.parse_args()

    rows = load_manifest(args.corpus)
    det = load_detector("gbm", args.models_dir)
    names = feature_names()
    groups = np.array([feature_group(n) for n in names])
    sets = {"bonafide": [r for r in rows if r["label"] == "bonafide" and r["split"] == args.bonafide_split]}
    sets.update({f: [r for r in rows if r["generator"] == f] for f in args.families.split(",")})
    contrib = {}
    for name, sel in sets.items():
        if not sel:
            raise SystemExit(f"no chunks of {name} in {args.corpus}")
        c = det.booster.predict(corpus_features(args.corpus, sel), pred_contrib=True, num_threads=2)
        contrib[name] = c[:, :-1]
    print("| group | " + " | ".join(f"{k} ({len(sets[k])})" for k in contrib) + " |")
    print("|---|" + "---|" * len(contrib))
    for g in sorted(set(groups)):
        cells = " | ".join(f"{v[:, groups == g].sum(1).mean():+.3f}" for v in contrib.values())
        print(f"| {g} | {cells} |")
    print("| **all** | " + " | ".join(f"**{v.sum(1).mean():+.3f}**" for v in contrib.values()) + " |")
    first = args.families.split(",")[0]
    diff = contrib[first].mean(0) - contrib["bonafide"].mean(0)
    order = np.argsort(diff)
    print(f"\nfeatures pushing {first} furthest towards bona fide (mean contribution minus bona fide's):")
    for i in order[: args.top]:
        print(f"  {names[i]:36s} {diff[i]:+.3f}")
    print("and furthest towards spoof:")
    for i in order[::-1][: args.top // 2]:
        print(f"  {names[i]:36s} {diff[i]:+.3f}")


if __name__ == "__main__":
    main()
