"""Model-selection experiment: does a one-class softmax (OC-softmax) network on the handcrafted features
generalise to unseen families better than the same network with a plain two-class loss, or the GBM?

OC-softmax (Zhang, Jiang and Duan, 2021) pulls bona fide embeddings within a tight angle of one learnt
direction and pushes spoofs beyond a looser margin, instead of drawing one boundary between the two
training classes. The claim is that an unseen attack, unlike anything in training, still falls outside the
compact bona fide region. The network is small (features -> 128 -> 64 -> 32, L2-normalised) and sees
the same robust-scaled features, speaker- and generator-balanced weights and folds as the GBM.

Crossed folds (every family against every bona fide speaker fold), train+dev only (eval is never read),
same fold rules as ``detector.lofo.run_lofo``. Needs torch (the ``train`` extra).

    .venv/bin/python docs/experiments/ocsoftmax_lofo.py [--corpus data/corpus_v6] [--rounds 200] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from lofo_variants import Protocol, summarise_folds  # noqa: E402

from detector.mlp import robust_scale, robust_stats  # noqa: E402
from detector.train_gbm import balanced_weights  # noqa: E402

M_BONAFIDE, M_SPOOF, ALPHA = 0.9, 0.2, 20.0   # the paper's margins and scale


def train_net(x: np.ndarray, y: np.ndarray, w: np.ndarray, loss: str, seed: int, epochs: int = 12):
    """A small embedding network trained with ``loss`` ("oc" or "bce"); returns a scoring function whose
    output is higher for spoofs."""
    import torch
    from torch import nn

    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(x.shape[1], 128), nn.ReLU(), nn.Dropout(0.2), nn.Linear(128, 64), nn.ReLU(),
                        nn.Linear(64, 32))
    center = nn.Parameter(torch.randn(32))
    head = nn.Linear(32, 1)
    params = list(net.parameters()) + ([center] if loss == "oc" else list(head.parameters()))
    opt = torch.optim.AdamW(params, lr=1e-3, weight_decay=1e-3)
    xt = torch.as_tensor(x, dtype=torch.float32)
    yt = torch.as_tensor(y, dtype=torch.float32)
    wt = torch.as_tensor(w / w.mean(), dtype=torch.float32)
    gen = torch.Generator().manual_seed(seed)

    def score(xb: torch.Tensor) -> torch.Tensor:
        e = net(xb)
        if loss == "oc":   # cosine to the bona fide direction, negated so that spoofs score high
            return -(nn.functional.normalize(e, dim=1) @ nn.functional.normalize(center, dim=0))
        return head(nn.functional.relu(e)).squeeze(1)

    for _ in range(epochs):
        net.train()
        for idx in torch.randperm(len(xt), generator=gen).split(512):
            s = score(xt[idx])
            if loss == "oc":
                cos = -s   # bona fide: want cos >= M_BONAFIDE; spoof: want cos <= M_SPOOF
                margin = torch.where(yt[idx] == 0, M_BONAFIDE - cos, cos - M_SPOOF)
                per_row = nn.functional.softplus(ALPHA * margin)
            else:
                per_row = nn.functional.binary_cross_entropy_with_logits(s, yt[idx], reduction="none")
            opt.zero_grad()
            (per_row * wt[idx]).mean().backward()
            opt.step()
    net.eval()

    def predict(xs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return score(torch.as_tensor(xs, dtype=torch.float32)).numpy().astype(np.float64)
    return predict


def main() -> int:
    import torch

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=Path("data/corpus_v6"))
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=0, help="stop after this many folds (a smoke run)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    p = Protocol(args.corpus, rounds=args.rounds, threads=1)
    x, y = p.x, p.y
    names = ("gbm", "bce_net", "oc_net", "gbm+oc_net", "gbm+bce_net")
    out: dict[str, dict[str, list[tuple[float, float]]]] = {n: {} for n in names}
    for i, (fam, k, test, fit, cal_bona) in enumerate(p.crossed_iter()):
        if args.limit and i >= args.limit:
            break
        w = balanced_weights([p.rows[j] for j in np.flatnonzero(fit)])
        b = p.gbm(fit)
        median, iqr = robust_stats(x[fit])
        xs_fit, xs_test, xs_cal = (robust_scale(a, median, iqr) for a in (x[fit], x[test], x[cal_bona]))
        raw = {"gbm": (b.predict(x[test], raw_score=True), b.predict(x[cal_bona], raw_score=True))}
        for loss in ("bce", "oc"):
            f = train_net(xs_fit, y[fit], w, loss, args.seed)
            raw[f"{loss}_net"] = (f(xs_test), f(xs_cal))
        z = {n: (s - c.mean()) / (c.std() + 1e-9) for n, (s, c) in raw.items()}
        z["gbm+oc_net"] = (z["gbm"] + z["oc_net"]) / 2
        z["gbm+bce_net"] = (z["gbm"] + z["bce_net"]) / 2
        for n in names:
            out[n].setdefault(fam, []).append(tuple(100 * e for e in p.eers(test, z[n])))
        print(f"{fam} fold {k + 1}: " + ", ".join(f"{n} {out[n][fam][-1][0]:.1f}" for n in names),
              file=sys.stderr, flush=True)
    print(json.dumps({n: summarise_folds(fams) for n, fams in out.items()}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
