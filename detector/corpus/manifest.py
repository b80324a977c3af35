"""Reading a built corpus: ``load_manifest(corpus_dir)`` and ``load_chunks(corpus_dir, rows)``."""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import numpy as np
import soundfile as sf

CHUNK_SAMPLES = 16000  # 2 s at 8 kHz
COLUMNS = ["path", "label", "attack_type", "generator", "voice", "speaker", "group", "language", "source",
           "split", "codec", "snr_db", "noise", "loss_rate", "gain_db", "bandlimit", "agc", "capture", "seed", "job",
           "start_s", "sha1"]
NUMERIC = {"snr_db": float, "loss_rate": float, "gain_db": float, "seed": int, "start_s": float}


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes (a manifest, the vocoder weights)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def manifest_sha256(corpus_dir: str | Path) -> str:
    """Which corpus (or review set) a model was trained on: the sha256 of ``<corpus_dir>/manifest.csv``."""
    return file_sha256(Path(corpus_dir) / "manifest.csv")


def load_manifest(corpus_dir: str | Path) -> list[dict]:
    """All rows of ``<corpus_dir>/manifest.csv`` as dicts (numbers converted), in file order."""
    path = Path(corpus_dir) / "manifest.csv"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no manifest (run `callguard corpus build --out {corpus_dir}`)")
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        for k, conv in NUMERIC.items():
            if k in r and r[k] != "":
                r[k] = conv(r[k])
    return rows


def load_chunks(corpus_dir: str | Path, rows: list[dict]) -> np.ndarray:
    """The chunks of ``rows`` as float32 in [-1, 1], shape [N, 16000] (8 kHz, 2 s)."""
    out = np.zeros((len(rows), CHUNK_SAMPLES), dtype=np.float32)
    base = Path(corpus_dir)
    for i, r in enumerate(rows):
        x, sr = sf.read(str(base / r["path"]), dtype="float32")
        if sr != 8000 or x.ndim != 1 or len(x) != CHUNK_SAMPLES:
            raise ValueError(f"{r['path']}: expected 2 s mono at 8 kHz, got {len(x)} samples at {sr} Hz")
        out[i] = x
    return out


def load_train_dev(corpus_dir: str | Path) -> tuple[list[dict], list[dict]]:
    """The train and dev rows (what training may look at; never eval), or SystemExit naming what is missing."""
    rows = load_manifest(corpus_dir)
    train = [r for r in rows if r["split"] == "train"]
    dev = [r for r in rows if r["split"] == "dev"]
    if not train or not dev:
        have: dict[str, int] = {}
        for r in rows:
            have[r["split"]] = have.get(r["split"], 0) + 1
        raise SystemExit(f"{corpus_dir}: the manifest needs train and dev rows (has {have})")
    return train, dev
