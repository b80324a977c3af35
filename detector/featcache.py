"""Feature matrices for corpus rows, computed in parallel once and cached next to the corpus."""

from __future__ import annotations

import hashlib
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from detector.features import FEATURE_SCHEMA_VERSION, extract_matrix, feature_names
from detector.threads import limit_native_threads


def _rows_key(rows: list[dict]) -> str:
    h = hashlib.sha256(f"schema{FEATURE_SCHEMA_VERSION}:{len(feature_names())}".encode())
    for r in rows:
        h.update(r["path"].encode())
        h.update(b"\0")
    return h.hexdigest()[:16]


AUGMENTATIONS = ("rawboost", "channel", "invert")


def augment_seed(path: str) -> int:
    """The augmentation's random seed of one chunk: fixed by its path, so a cached copy is reproducible."""
    return int.from_bytes(hashlib.sha256(f"augment:{path}".encode()).digest()[:8], "little")


def _features_of_paths(args: tuple[str, list[str], str | None]) -> np.ndarray:
    corpus_dir, paths, augment = args
    from detector.corpus.manifest import load_chunks

    chunks = load_chunks(Path(corpus_dir), [{"path": p} for p in paths])
    if augment == "invert":                       # the same speech upside down, as a line or microphone may deliver it
        chunks = -chunks
    elif augment is not None:
        if augment == "rawboost":
            from detector.rawboost import rawboost as perturb
        else:
            from detector.channel_augment import random_channel as perturb
        chunks = np.stack([perturb(c, np.random.default_rng(augment_seed(p)))
                           for c, p in zip(chunks, paths, strict=True)])
    return extract_matrix(chunks)


def corpus_features(corpus_dir: Path, rows: list[dict], workers: int | None = None,
                    augment: str | None = None) -> np.ndarray:
    """[len(rows), n_features] for these rows of the corpus in ``corpus_dir``.

    Features of the whole manifest are computed once and cached; any subset (a split, a fold) is then
    a lookup, so training, evaluation and the cross-validation protocol share one extraction.
    ``augment="rawboost"``: the features of one RawBoost-perturbed copy of each chunk (``detector.rawboost``,
    seeded by the chunk's path), cached separately, for training on clean + perturbed copies; ``"channel"``:
    the same with one random minimum-phase channel (``detector.channel_augment``); ``"invert"``: each chunk's
    waveform negated (x -> -x); since feature schema 3 these are the features as recorded again (a check of
    that, and what the schema-2 polarity experiments in docs/experiments/ read).
    """
    from detector.corpus.manifest import load_manifest

    if augment is not None and augment not in AUGMENTATIONS:
        raise ValueError(f"unknown augmentation {augment!r} (known: {', '.join(AUGMENTATIONS)})")
    everything = load_manifest(corpus_dir)
    matrix = _features_of_rows(Path(corpus_dir), everything, workers, augment=augment)
    index = {r["path"]: i for i, r in enumerate(everything)}
    try:
        return matrix[[index[r["path"]] for r in rows]]
    except KeyError as exc:
        raise ValueError(f"{corpus_dir}: row {exc} is not in the manifest") from exc


def _features_of_rows(corpus_dir: Path, rows: list[dict], workers: int | None = None,
                      batch: int = 200, augment: str | None = None) -> np.ndarray:
    tag = f"-{augment}" if augment else ""
    cache = corpus_dir / "features" / f"v{FEATURE_SCHEMA_VERSION}{tag}-{_rows_key(rows)}.npy"
    if cache.is_file():
        return np.load(cache)
    workers = workers or max(1, min(2, os.cpu_count() or 1))
    paths = [r["path"] for r in rows]
    jobs = [(str(corpus_dir), paths[i: i + batch], augment) for i in range(0, len(paths), batch)]
    parts: list[np.ndarray] = []
    t0 = time.time()
    with ProcessPoolExecutor(max_workers=workers, initializer=limit_native_threads) as pool:
        for part in pool.map(_features_of_paths, jobs):
            parts.append(part)
            done = sum(len(p) for p in parts)
            rate = done / max(time.time() - t0, 1e-6)
            print(f"\rfeatures{tag}: {done}/{len(paths)} chunks ({rate:.0f}/s, "
                  f"{(len(paths) - done) / max(rate, 1e-6):.0f}s left)", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    matrix = np.concatenate(parts) if parts else np.zeros((0, len(feature_names())), np.float32)
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp.npy")
    np.save(tmp, matrix)
    tmp.replace(cache)
    return matrix
