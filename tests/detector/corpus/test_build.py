"""`callguard corpus build --size small`: layout, chunk format, splits, determinism, missing generators."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import soundfile as sf

from detector.corpus.build import plan
from detector.corpus.generators import load_all
from detector.corpus.manifest import load_chunks, load_manifest, manifest_sha256
from detector.corpus.sources import inventory
from detector.corpus.splits import RESYNTHESIS, check_disjoint, family_splits

from .conftest import run_build


def test_every_chunk_is_two_seconds_of_8khz_16bit_mono(small_corpus: Path) -> None:
    rows = load_manifest(small_corpus)
    assert len(rows) >= 150
    for r in rows:
        info = sf.info(str(small_corpus / r["path"]))
        assert (info.samplerate, info.channels, info.frames, info.subtype) == (8000, 1, 16000, "PCM_16"), r["path"]
    files = sorted(p.relative_to(small_corpus).as_posix() for p in (small_corpus / "chunks").rglob("*.wav"))
    assert files == sorted(r["path"] for r in rows)


def test_load_chunks_returns_float32_matrix(small_corpus: Path) -> None:
    rows = load_manifest(small_corpus)[:12]
    x = load_chunks(small_corpus, rows)
    assert x.shape == (12, 16000) and x.dtype == np.float32
    assert np.all(np.abs(x) <= 1.0) and np.all(x.std(axis=1) > 0)


def test_manifest_has_labels_channel_parameters_and_all_attack_types(small_corpus: Path) -> None:
    rows = load_manifest(small_corpus)
    assert {r["label"] for r in rows} == {"bonafide", "spoof"}
    assert {r["attack_type"] for r in rows} >= {"bonafide", "tts", "resynthesis", "neural", "replay"}
    assert {r["codec"] for r in rows} == {"ulaw", "alaw"}
    for r in rows:
        assert (r["label"] == "bonafide") == (r["attack_type"] == "bonafide") == (r["generator"] == "bonafide")
        assert r["speaker"] and r["language"] and r["source"] and r["split"] in ("train", "dev", "eval")
        assert 0 <= r["loss_rate"] < 0.2 and -20 <= r["gain_db"] <= 10


def test_splits_are_disjoint_by_speaker_and_generator(small_corpus: Path) -> None:
    rows = load_manifest(small_corpus)
    assert check_disjoint(rows) == []
    by_split = {s: [r for r in rows if r["split"] == s] for s in ("train", "dev", "eval")}
    speakers = {s: {r["group"] for r in rs if r["label"] == "bonafide"} for s, rs in by_split.items()}
    gens = {s: {r["generator"] for r in rs if r["label"] == "spoof"} for s, rs in by_split.items()}
    for a, b in (("train", "dev"), ("train", "eval"), ("dev", "eval")):
        assert not speakers[a] & speakers[b] and not gens[a] & gens[b]
    # eval: unseen humans, >= 3 unseen families incl. a resynthesis family and a replay room set
    assert speakers["eval"]
    assert len(gens["eval"]) >= 3
    assert gens["eval"] & RESYNTHESIS and any(g.startswith("replay") for g in gens["eval"])
    # every split holds both classes
    for s, rs in by_split.items():
        assert {r["label"] for r in rs} == {"bonafide", "spoof"}, s


def test_transform_spoofs_come_from_same_split_speakers(small_corpus: Path) -> None:
    rows = load_manifest(small_corpus)
    for s in ("train", "dev", "eval"):
        human = {r["speaker"] for r in rows if r["split"] == s and r["label"] == "bonafide"}
        made = {r["speaker"] for r in rows if r["split"] == s and r["attack_type"] in ("resynthesis", "replay")}
        assert made <= human


def test_same_seed_gives_same_manifest_whatever_the_workers(small_corpus: Path, tmp_path: Path) -> None:
    proc = run_build(tmp_path / "again", "--seed", "7", "--workers", "1")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert manifest_sha256(tmp_path / "again") == manifest_sha256(small_corpus)
    info = json.loads((small_corpus / "build_info.json").read_text())
    assert info["manifest_sha256"] == manifest_sha256(small_corpus)


def test_another_seed_plans_another_corpus() -> None:
    packs, _ = inventory(include_klettres=False)
    fams = load_all()
    fs = family_splits(list(fams))
    a = [(j.job_id, j.files, j.texts, j.voice) for j in plan(1, "small", fams, fs, packs)]
    b = [(j.job_id, j.files, j.texts, j.voice) for j in plan(2, "small", fams, fs, packs)]
    assert a == [(j.job_id, j.files, j.texts, j.voice) for j in plan(1, "small", fams, fs, packs)]
    assert a != b


def test_missing_generator_is_named_and_build_goes_on(tmp_path: Path) -> None:
    # a PATH without pico2wave: the build must name the package to install and still produce a corpus
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for d in os.environ.get("PATH", "").split(os.pathsep):
        if not d or not Path(d).is_dir():
            continue
        for exe in Path(d).iterdir():
            if exe.name != "pico2wave" and not (bindir / exe.name).exists():
                try:
                    (bindir / exe.name).symlink_to(exe)
                except OSError:
                    pass
    proc = run_build(tmp_path / "c", "--seed", "3", "--skip", "festival,piper,mlsa,world",
                     env={"PATH": str(bindir)})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "pico" in proc.stderr and "libttspico-utils" in proc.stderr
    assert "MISSING generator pico" in proc.stdout and "libttspico-utils" in proc.stdout
    rows = load_manifest(tmp_path / "c")
    gens = {r["generator"] for r in rows}
    assert "pico" not in gens and {"espeak", "mbrola", "griffinlim"} <= gens
    info = json.loads((tmp_path / "c" / "build_info.json").read_text())
    assert "pico" in info["missing_generators"]


def test_balance_rooms_gives_bona_fide_speech_rooms_as_often_as_spoofs_get_them() -> None:
    packs, _ = inventory(include_klettres=False)
    fams = load_all()
    default = plan(1, "full", fams, family_splits(list(fams)), packs)
    assert all(j.room_p in (0.0, 0.3) and j.image_p == 0.0 for j in default)  # the shipped corpus: no balancing
    jobs = plan(1, "full", fams, family_splits(list(fams)), packs, balance_rooms=True)
    for split in ("train", "dev", "eval"):
        mine = [j for j in jobs if j.split == split]
        spoofs = [j for j in mine if j.kind != "bonafide"]
        assert all(j.room_p == 0.0 for j in spoofs if j.attack_type == "replay")  # their room is the attack's
        seconds = [j.seconds or 30.0 for j in spoofs]  # a TTS job is planned as 6 utterances of ~5 s
        rooms = [1.0 if j.attack_type == "replay" else j.room_p for j in spoofs]
        spoof_share = float(np.average(rooms, weights=seconds))
        bona = {j.room_p for j in mine if j.kind == "bonafide"}
        assert len(bona) == 1 and abs(bona.pop() - spoof_share) < 1e-9 and spoof_share > 0.3


def test_build_info_names_the_vocoder_weights_by_sha256(tmp_path, monkeypatch) -> None:
    import hashlib

    from detector.corpus.build import _vocoder_weights

    monkeypatch.setenv("CALLGUARD_VOCODERS_DIR", str(tmp_path))
    (tmp_path / "hifigan.pt").write_bytes(b"weights")
    (tmp_path / "nsf.pt").write_bytes(b"other")
    got = _vocoder_weights(["hifigan", "espeak"])  # nsf has weights but was not used (skipped)
    assert got == {"hifigan": {"path": str(tmp_path / "hifigan.pt"),
                               "sha256": hashlib.sha256(b"weights").hexdigest()}}


def test_default_build_leaves_out_the_families_that_made_held_out_families_worse(small_corpus: Path) -> None:
    from detector.commands.corpus import DEFAULT_SKIP

    assert {"psola", "wsola", "kokoro", "hibari", "hifigan16k"} <= set(DEFAULT_SKIP)
    used = {r["generator"] for r in load_manifest(small_corpus)}
    assert not used & set(DEFAULT_SKIP)
    missing = json.loads((small_corpus / "build_info.json").read_text())["missing_generators"]
    assert all(missing[f].startswith("skipped on request") for f in DEFAULT_SKIP)
