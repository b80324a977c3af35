"""The committed fixture corpus (tests/fixtures/corpus) is a valid, small corpus other tests can use."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from detector.corpus.manifest import COLUMNS, load_chunks, load_manifest
from detector.corpus.splits import check_disjoint

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "corpus"


def test_fixture_corpus_loads_and_is_varied() -> None:
    rows = load_manifest(FIXTURE)
    assert 24 <= len(rows) <= 100
    assert set(rows[0]) == set(COLUMNS)
    x = load_chunks(FIXTURE, rows)
    assert x.shape == (len(rows), 16000) and x.dtype == np.float32
    assert {r["label"] for r in rows} == {"bonafide", "spoof"}
    assert len({r["generator"] for r in rows if r["label"] == "spoof"}) >= 4
    assert {r["attack_type"] for r in rows} >= {"tts", "resynthesis", "replay", "bonafide"}
    assert check_disjoint(rows) == []
    size = sum(p.stat().st_size for p in FIXTURE.rglob("*") if p.is_file())
    assert size <= 5 * 1024 * 1024


def test_report_summarises_the_fixture_corpus(tmp_path: Path) -> None:
    from detector.corpus.report import report

    rows = load_manifest(FIXTURE)
    text = report(FIXTURE, audit_sample=50)
    assert f"{len(rows)} chunks" in text
    assert "splits disjoint by speaker group and generator: yes" in text
    for s in ("train", "dev", "eval"):
        n_bf = sum(r["split"] == s and r["label"] == "bonafide" for r in rows)
        n_sp = sum(r["split"] == s and r["label"] == "spoof" for r in rows)
        assert any(line.split()[:3] == [s, str(n_bf), str(n_sp)] for line in text.splitlines())
    assert "logistic AUC" in text
