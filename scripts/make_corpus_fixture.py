#!/usr/bin/env python3
"""Copy a small, varied subset of a built corpus into tests/fixtures/corpus (chunks + manifest.csv).

Usage: .venv/bin/python scripts/make_corpus_fixture.py [CORPUS_DIR] [OUT_DIR]
Picks, deterministically, bona fide chunks of several speakers in every split and a few chunks of every
spoof family, keeping the corpus layout (chunks/<split>/<id>.wav, manifest.csv with the same columns).
"""

from __future__ import annotations

import csv
import shutil
import sys
from pathlib import Path

from detector.corpus.manifest import COLUMNS, load_manifest

PER_FAMILY = 3
PER_SPEAKER = 2


def main(corpus: Path, out: Path) -> int:
    rows = load_manifest(corpus)
    picked: list[dict] = []
    seen: dict[str, int] = {}
    for r in sorted(rows, key=lambda r: (r["sha1"], r["path"])):  # sha1 order = a fixed pseudo-random order
        key = r["generator"] if r["label"] == "spoof" else f"bf:{r['speaker']}"
        cap = PER_FAMILY if r["label"] == "spoof" else PER_SPEAKER
        if r["label"] == "bonafide" and r["source"] == "klettres-data":
            continue
        if seen.get(key, 0) < cap:
            seen[key] = seen.get(key, 0) + 1
            picked.append(r)
    if out.exists():
        shutil.rmtree(out)
    for r in picked:
        dst = out / r["path"]
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(corpus / r["path"], dst)
    with (out / "manifest.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        for r in sorted(picked, key=lambda r: r["path"]):
            w.writerow({k: r[k] for k in COLUMNS})
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"{len(picked)} chunks, {size / 1e6:.2f} MB in {out}")
    return 0


if __name__ == "__main__":
    args = sys.argv[1:]
    corpus = Path(args[0]) if args else Path("data/corpus")
    dest = Path(args[1]) if len(args) > 1 else Path("tests/fixtures/corpus")
    sys.exit(main(corpus, dest))
