"""Experiment: HuBERT-style self-supervised pre-training of the compact WavLM backbone on our own bona fide
speech, before the classification fine-tune (`callguard train wavlm --init DIR`).

Issue #6 invites it: no pretrained WavLM can be downloaded, and the from-scratch classifier learns its front
end from the spoof/bona fide label alone, which rewards whatever separates the training families. A backbone
first taught to model human speech (predict the acoustic class of masked 20-ms frames from their context) may
carry over better to unseen generators.

- Data: the bona fide chunks of the corpus's **train** split only (dev and eval are never read here), with
  the same telephone augmentation as the classifier's training (``train_wavlm.augment``) on the input; the
  targets come from the clean chunk.
- Targets: per backbone frame (20 ms hop), 13 mel cepstra + their deltas over a 50-ms window, standardised,
  clustered by k-means (``--clusters``, MiniBatchKMeans on up to 200,000 frames).
- Model: ``wavlm_model.compact_config()`` (the shipped architecture), inputs normalised as ``SpoofWavLM``
  does; masked spans (``--mask-prob`` of frames as starts, 5 frames long) replaced by WavLM's learnt mask
  embedding; a linear layer predicts each masked frame's cluster (cross-entropy on masked frames only).
- Output: ``save_pretrained`` into ``--out``, ready for ``callguard train wavlm --init <out>``.

    .venv/bin/python docs/experiments/wavlm_ssl_pretrain.py --corpus data/corpus_v8 --steps 1500 --out runs/ssl
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from detector.features import _frames, _mel_edges, _triangular_bank, _window  # noqa: E402

WIN, HOP, NFFT = 400, 160, 512


def frame_targets_features(chunks: np.ndarray, n_frames: int) -> np.ndarray:
    """[N, samples] -> [N, n_frames, 26] mel cepstra (13) and deltas, one per backbone frame."""
    from scipy.fft import dct

    bank = _triangular_bank(NFFT // 2 + 1, _mel_edges(26, 8000), 8000)
    out = np.zeros((len(chunks), n_frames, 26), dtype=np.float32)
    for i, x in enumerate(chunks):
        x = np.concatenate([x, np.zeros(WIN, dtype=x.dtype)]).astype(np.float64)
        fr = _frames(x, WIN, HOP)[:n_frames] * _window(WIN)
        power = np.abs(np.fft.rfft(fr, n=NFFT, axis=1)) ** 2
        cep = dct(np.log(power @ bank.T + 1e-10), type=2, norm="ortho", axis=1)[:, :13]
        delta = np.gradient(cep, axis=0)
        out[i] = np.concatenate([cep, delta], axis=1)
    return out


def main() -> int:
    import torch
    from sklearn.cluster import MiniBatchKMeans
    from transformers import WavLMModel
    from transformers.models.wavlm.modeling_wavlm import _compute_mask_indices

    from detector.corpus.manifest import load_chunks, load_manifest
    from detector.train_wavlm import augment
    from detector.wavlm_model import compact_config, cosine_with_warmup

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=Path("data/corpus_v8"))
    ap.add_argument("--out", type=Path, default=Path("runs/ssl"))
    ap.add_argument("--steps", type=int, default=1500)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--clusters", type=int, default=100)
    ap.add_argument("--mask-prob", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    rows = [r for r in load_manifest(args.corpus) if r["split"] == "train" and r["label"] == "bonafide"]
    t0 = time.time()
    chunks = load_chunks(args.corpus, rows)
    backbone = WavLMModel(compact_config())
    n_frames = int(backbone._get_feat_extract_output_lengths(torch.tensor(chunks.shape[1])))
    feats = frame_targets_features(chunks, n_frames)
    flat = feats.reshape(-1, feats.shape[-1])
    mu, sd = flat.mean(0), flat.std(0) + 1e-6
    sample = (flat[rng.choice(len(flat), min(len(flat), 200_000), replace=False)] - mu) / sd
    km = MiniBatchKMeans(n_clusters=args.clusters, random_state=args.seed, n_init=3, batch_size=4096).fit(sample)
    targets = km.predict(((flat - mu) / sd).astype(np.float32)).reshape(len(chunks), n_frames)
    used = np.bincount(targets.ravel(), minlength=args.clusters)
    print(f"ssl: {len(rows)} bona fide train chunks, {n_frames} frames each, {args.clusters} clusters "
          f"(largest {used.max() / used.sum():.1%} of frames) in {time.time() - t0:.0f} s", file=sys.stderr)

    head = torch.nn.Linear(backbone.config.hidden_size, args.clusters)
    params = list(backbone.parameters()) + list(head.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: cosine_with_warmup(s, args.steps, 150))
    backbone.train()
    t0, ema = time.time(), None
    for step in range(1, args.steps + 1):
        idx = rng.choice(len(chunks), size=args.batch_size)
        x = torch.from_numpy(augment(chunks[idx], rng))
        x = x - x.mean(dim=1, keepdim=True)
        x = x / torch.sqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)
        mask = _compute_mask_indices((args.batch_size, n_frames), args.mask_prob, 5, min_masks=2)
        mask_t = torch.from_numpy(mask)
        hidden = backbone(x, mask_time_indices=mask_t).last_hidden_state
        logits = head(hidden[mask_t])
        loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(targets[idx][mask]).long())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 5.0)
        opt.step()
        sched.step()
        ema = loss.item() if ema is None else 0.98 * ema + 0.02 * loss.item()
        if step % 50 == 0:
            acc = float((logits.argmax(1).numpy() == targets[idx][mask]).mean())
            print(f"ssl: step {step}/{args.steps} loss {ema:.3f} masked-frame accuracy {acc:.1%} "
                  f"({step / (time.time() - t0):.2f} steps/s)", file=sys.stderr, flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    backbone.save_pretrained(str(args.out))
    print(f"ssl: saved {args.out} after {time.time() - t0:.0f} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
