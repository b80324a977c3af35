"""`callguard corpus build`: bona fide packs + spoof generators -> telephone channel -> 2-s chunks.

The whole build is planned up front from the seed (which files, which generator/voice/text, which
channel), as a list of jobs with their own seeds; workers run jobs in any order and the manifest is
sorted, so the same seed gives the same manifest (and its hash) whatever the number of workers.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import logging
import os
import shutil
import sys
import time
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import numpy as np
import soundfile as sf

from detector.audio import AudioError
from detector.chunking import speech_chunks
from detector.corpus import splits as splitmod
from detector.corpus.capture import IMAGE_ROOM_P, ROOM_P, apply_capture, room_probabilities
from detector.corpus.channel import apply_channel
from detector.corpus.game_audio import load_recording, recording_duration, recording_rate
from detector.corpus.generators import load_all
from detector.corpus.manifest import COLUMNS, file_sha256, manifest_sha256
from detector.corpus.neural_vocoders import FAMILIES as VOCODER_FAMILIES
from detector.corpus.neural_vocoders import TRAIN_COMMAND as VOCODER_TRAIN_COMMAND
from detector.corpus.sources import Pack, inventory
from detector.corpus.texts import bank, make_texts
from detector.threads import THREAD_VARS, limit_native_threads

log = logging.getLogger("callguard.corpus")

SIZES = {
    # seg_s: bona fide segment length; max_segs: per pack (None = all); passes: channel passes per bona fide
    # segment; spoof_ratio: spoof seconds planned per bona fide second; klettres: include that package;
    # tts_utterances: utterances per TTS job
    "small": dict(seg_s=14.0, max_segs=1, passes=1, spoof_ratio=1.0, klettres=False, max_jobs_per_family=3,
                  tts_utterances=3),
    "full": dict(seg_s=24.0, max_segs=None, passes=1, spoof_ratio=1.0, klettres=True, max_jobs_per_family=None,
                 tts_utterances=6),
}
EST_SECONDS_PER_UTTERANCE = 5.0  # measured: a 6-utterance job gives 26-38 s of speech
MIN_LANG_SHARE = 0.05


def stable_seed(*parts: object) -> int:
    h = hashlib.sha256("/".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(h[:4], "little")


@dataclass
class Job:
    job_id: str
    kind: str                 # bonafide | tts | transform
    split: str
    seed: int
    family: str = "bonafide"
    attack_type: str = "bonafide"
    voice: str = ""
    language: str = ""
    speaker: str = ""
    group: str = ""
    source: str = ""
    files: list[str] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    seconds: float = 0.0
    room_p: float = 0.0       # probability of a capture room (set by _set_rooms)
    image_p: float = 0.0      # share of those rooms from the image-method simulator


def _duration(path: Path) -> float:
    return recording_duration(path)


def _segments(pack: Pack, seg_s: float, seed: int, max_segs: int | None) -> list[tuple[list[Path], float]]:
    rng = np.random.default_rng(stable_seed(seed, "segments", pack.key, pack.language))
    files = list(pack.files)
    order = rng.permutation(len(files))
    segs: list[tuple[list[Path], float]] = []
    cur: list[Path] = []
    cur_s = 0.0
    cap_s = pack.max_minutes * 60 if pack.max_minutes else None
    for i in order:
        d = _duration(files[i])
        if d <= 0.05:
            continue
        cur.append(files[i])
        cur_s += d
        if cur_s >= seg_s:
            segs.append((cur, cur_s))
            cur, cur_s = [], 0.0
            if max_segs is not None and len(segs) >= max_segs:
                return segs
            if cap_s is not None and sum(d for _, d in segs) >= cap_s:
                return segs
    if cur_s >= 2.5:
        segs.append((cur, cur_s))
    return segs[:max_segs] if max_segs is not None else segs


def plan(seed: int, size: str, families: dict, fam_split: dict[str, str], packs: list[Pack],
         balance_rooms: bool = False) -> list[Job]:
    cfg = SIZES[size]
    gsplit = splitmod.group_splits(sorted({p.group for p in packs}))
    jobs: list[Job] = []
    bona_by_split: dict[str, list[Job]] = {s: [] for s in splitmod.SPLITS}
    lang_seconds: dict[str, dict[str, float]] = {s: {} for s in splitmod.SPLITS}
    for pack in packs:
        split = gsplit[pack.group]
        for si, (files, secs) in enumerate(_segments(pack, cfg["seg_s"], seed, cfg["max_segs"])):
            base = dict(kind="bonafide", split=split, language=pack.language, speaker=pack.speaker,
                        group=pack.group, source=pack.package, files=[str(f) for f in files], seconds=secs)
            for p in range(cfg["passes"]):
                jid = f"bf-{pack.speaker}-{pack.language}-{si:04d}-p{p}"
                job = Job(job_id=jid, seed=stable_seed(seed, jid), **base)
                jobs.append(job)
                bona_by_split[split].append(job)
                lang_seconds[split][pack.language] = lang_seconds[split].get(pack.language, 0.0) + secs
    for split in splitmod.SPLITS:
        fams = sorted(f for f, s in fam_split.items() if s == split)
        if not fams or not bona_by_split[split]:
            continue
        total = sum(j.seconds for j in bona_by_split[split])
        per_family = total * cfg["spoof_ratio"] / len(fams)
        for fam in fams:
            mod = families[fam]
            rng = np.random.default_rng(stable_seed(seed, "plan", split, fam))
            if mod.KIND == "tts":
                jobs += _plan_tts(seed, split, fam, mod, per_family, lang_seconds[split], rng, cfg)
            else:
                jobs += _plan_transform(seed, split, fam, mod, per_family, bona_by_split[split], rng, cfg)
    _set_rooms(jobs, cfg, balance_rooms)
    return jobs


def _set_rooms(jobs: list[Job], cfg: dict, balance: bool) -> None:
    """Each job's capture-room probability: ROOM_P, none for replays (their room is the attack's). With
    ``balance``, bona fide speech gets the probability that makes a room as common in it as in the spoofs of
    its split, and half the rooms come from the image-method simulator (see capture.room_probabilities)."""
    image_p = IMAGE_ROOM_P if balance else 0.0
    for split in splitmod.SPLITS:
        mine = [j for j in jobs if j.split == split]
        bona_p = spoof_p = ROOM_P
        if balance:
            spoofs = [j for j in mine if j.kind != "bonafide"]
            secs = [j.seconds or cfg["tts_utterances"] * EST_SECONDS_PER_UTTERANCE for j in spoofs]
            replay = sum(s for j, s in zip(spoofs, secs, strict=True) if j.attack_type == "replay")
            bona_p, spoof_p = room_probabilities(replay / sum(secs) if secs else 0.0)
        for j in mine:
            j.room_p = bona_p if j.kind == "bonafide" else 0.0 if j.attack_type == "replay" else spoof_p
            j.image_p = image_p


def _plan_tts(seed, split, fam, mod, target_s, lang_s, rng, cfg) -> list[Job]:
    voices = mod.voices()
    total = sum(lang_s.values())
    langs = {lang: s for lang, s in lang_s.items() if s / total >= MIN_LANG_SHARE and bank(lang)
             and any(v[1] == lang for v in voices)}
    if not langs:
        log.warning("%s: no voice speaks a language of the %s split (%s): family unused there", fam, split,
                    ", ".join(sorted(lang_s)))
        return []
    names = sorted(langs)
    probs = np.array([langs[n] for n in names])
    probs /= probs.sum()
    n_utt = cfg["tts_utterances"]
    n_jobs = max(1, int(round(target_s / (n_utt * EST_SECONDS_PER_UTTERANCE))))
    if cfg["max_jobs_per_family"]:
        n_jobs = min(n_jobs, cfg["max_jobs_per_family"])
    out = []
    for i in range(n_jobs):
        lang = names[int(rng.choice(len(names), p=probs))]
        cands = [v for v, lg in voices if lg == lang]
        voice = cands[int(rng.integers(len(cands)))]
        jid = f"tts-{fam}-{i:05d}"
        out.append(Job(job_id=jid, kind="tts", split=split, seed=stable_seed(seed, jid), family=fam,
                       attack_type=mod.ATTACK_TYPE, voice=voice, language=lang, speaker=f"{fam}:{voice}",
                       group=f"{fam}:{voice}", source=fam, texts=make_texts(lang, rng, n_utt)))
    return out


def _plan_transform(seed, split, fam, mod, target_s, bona: list[Job], rng, cfg) -> list[Job]:
    # one bona fide segment per distinct pass-0 source, drawn at random until the target is met
    sources = [j for j in bona if j.job_id.endswith("-p0")]
    out, acc, i = [], 0.0, 0
    order = rng.permutation(len(sources))
    while acc < target_s and sources:
        src = sources[order[i % len(order)]]
        jid = f"tr-{fam}-{i:05d}"
        out.append(Job(job_id=jid, kind="transform", split=split, seed=stable_seed(seed, jid), family=fam,
                       attack_type=mod.ATTACK_TYPE, language=src.language, speaker=src.speaker, group=src.group,
                       source=src.source, files=src.files, seconds=src.seconds))
        acc += src.seconds
        i += 1
        if cfg["max_jobs_per_family"] and i >= cfg["max_jobs_per_family"]:
            break
    return out


def _load_source(files: list[str], rng: np.random.Generator) -> tuple[np.ndarray, int]:
    """Concatenate recordings at 8 kHz (telephone packs) or 16 kHz (wideband packs) with short pauses."""
    infos = [recording_rate(f) for f in files]
    rate = 8000 if max(infos) <= 8000 else 16000
    pieces = []
    for f in files:
        try:
            x = load_recording(f, rate)
        except AudioError as exc:
            log.warning("skipping %s", exc)
            continue
        pieces.append(x)
        pieces.append(np.zeros(int(rate * rng.uniform(0.1, 0.5)), np.float32))
    return (np.concatenate(pieces) if pieces else np.zeros(0, np.float32)), rate


_FAMILIES = None


def _run_job(args: tuple[Job, str]) -> tuple[str, list[dict], str | None]:
    job, out_dir = args
    global _FAMILIES
    if _FAMILIES is None:
        _FAMILIES = load_all()
    rng = np.random.default_rng(job.seed)
    voice = job.voice
    try:
        if job.kind == "bonafide":
            x, sr = _load_source(job.files, rng)
            voice = job.speaker
        elif job.kind == "tts":
            x, sr = _FAMILIES[job.family].synthesize(job.texts, job.voice, job.language, rng)
        else:
            src, sr0 = _load_source(job.files, np.random.default_rng(stable_seed(job.seed, "src")))
            x, sr, voice = _FAMILIES[job.family].transform(src, sr0, rng, job.family)
        x = np.nan_to_num(np.asarray(x, dtype=np.float32))
        if x.size < sr * 0.5 or not np.any(x):
            return job.job_id, [], f"{job.job_id}: generator produced no audio"
        x, sr, capture = apply_capture(x, sr, stable_seed(job.seed, "capture"), room_p=job.room_p,
                                       image_p=job.image_p)
        y, params = apply_channel(x, sr, stable_seed(job.seed, "channel"))
    except Exception as exc:  # one failed job must not stop a 40-minute build
        return job.job_id, [], f"{job.job_id}: {type(exc).__name__}: {exc}"
    chunks = speech_chunks(y, 8000)
    rows = []
    label = "bonafide" if job.kind == "bonafide" else "spoof"
    for c in chunks:
        rel = f"chunks/{job.split}/{job.job_id}-{c.index:03d}.wav"
        buf = io.BytesIO()
        sf.write(buf, c.audio, 8000, subtype="PCM_16", format="WAV")
        data = buf.getvalue()
        (Path(out_dir) / rel).write_bytes(data)
        pcm = sf.read(io.BytesIO(data), dtype="int16")[0]
        row = dict(path=rel, label=label, attack_type=job.attack_type, generator=job.family, voice=voice,
                   speaker=job.speaker, group=job.group, language=job.language, source=job.source,
                   split=job.split, seed=job.seed, job=job.job_id, start_s=c.start_s,
                   sha1=hashlib.sha1(pcm.tobytes()).hexdigest()[:16])
        row.update(params.as_row())
        row.update(capture.as_row())
        rows.append(row)
    return job.job_id, rows, None


class Progress:
    """A progress bar on stderr (a line every 2 % when stderr is not a terminal, e.g. a log file)."""

    def __init__(self, total: int, label: str) -> None:
        self.total, self.label, self.done, self.t0 = max(total, 1), label, 0, time.time()
        self.tty = sys.stderr.isatty()
        self._last_pct = -1

    def update(self, n: int = 1, extra: str = "") -> None:
        self.done += n
        frac = self.done / self.total
        el = time.time() - self.t0
        eta = el / frac - el if frac > 0 else 0
        bar = "#" * int(30 * frac) + "-" * (30 - int(30 * frac))
        msg = (f"{self.label} [{bar}] {self.done}/{self.total} {100 * frac:5.1f}% "
               f"elapsed {el / 60:4.1f} min eta {eta / 60:4.1f} min {extra}")
        if self.tty:
            sys.stderr.write("\r" + msg)
            if self.done >= self.total:
                sys.stderr.write("\n")
        elif int(frac * 50) != self._last_pct or self.done >= self.total:
            self._last_pct = int(frac * 50)
            sys.stderr.write(msg + "\n")
        sys.stderr.flush()


def _vocoder_weights(available: list[str]) -> dict[str, dict[str, str]]:
    """Which weights made each neural family: their vocoder training can differ between machines, so the
    file's sha256 says whether two builds used the same ones."""
    from detector.corpus.neural_vocoders import FAMILIES, weights_path

    out = {}
    for fam in FAMILIES:
        path = weights_path(fam)
        if fam in available and path.is_file():
            out[fam] = {"path": str(path), "sha256": file_sha256(path)}
    return out


def build(out: Path, seed: int = 1, size: str = "full", workers: int = 2, skip: tuple[str, ...] = (),
          packages_dir: Path | None = None, balance_rooms: bool = False) -> dict:
    t0 = time.time()
    cfg = SIZES[size]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for sub in ("chunks",):
        if (out / sub).exists():
            shutil.rmtree(out / sub)
    for f in ("manifest.csv", "BUILD_DONE", "build_info.json"):
        (out / f).unlink(missing_ok=True)
    for s in splitmod.SPLITS:
        (out / "chunks" / s).mkdir(parents=True, exist_ok=True)

    packs, missing_sources = inventory(packages_dir, include_klettres=cfg["klettres"])
    for m in missing_sources:
        log.warning("bona fide source missing: %s", m)
    families = load_all()
    missing_generators: dict[str, str] = {}
    available = []
    for fam, mod in families.items():
        msg = "skipped on request (--skip)" if fam in skip or getattr(mod, "FAMILY", "") in skip else mod.check()
        if msg:
            missing_generators[fam] = msg
            log.warning("generator %s unavailable, build goes on without it: %s", fam, msg)
        else:
            available.append(fam)
    skipped_vocoders = skipped_vocoder_families(missing_generators, skip)
    if skipped_vocoders:
        log.warning("neural vocoder families skipped (%s): train them with `%s`, then rebuild",
                    ", ".join(skipped_vocoders), VOCODER_TRAIN_COMMAND)
    fam_split = splitmod.family_splits(available)
    jobs = plan(seed, size, families, fam_split, packs, balance_rooms)
    log.info("planned %d jobs (%d bona fide, %d spoof) from %d packs and %d generator families",
             len(jobs), sum(j.kind == "bonafide" for j in jobs), sum(j.kind != "bonafide" for j in jobs),
             len(packs), len(available))
    # heavy jobs first so that the two workers finish together
    cost = {"tts": 1.0, "transform": 2.0, "bonafide": 0.5}
    order = sorted(jobs, key=lambda j: (-cost[j.kind] * max(j.seconds, 18.0), j.job_id))
    rows: list[dict] = []
    errors: list[str] = []
    bar = Progress(len(order), f"corpus build ({size})")
    args = [(j, str(out)) for j in order]
    # Jobs always run in forked worker processes, also with one worker, so that a build does not depend
    # on what the parent process did before (native libraries may keep state between calls).
    # One BLAS thread per worker whatever the caller's environment: numpy is already loaded when we fork
    pool = get_context("fork").Pool(processes=max(1, workers), maxtasksperchild=200, initializer=limit_native_threads)
    results = pool.imap_unordered(_run_job, args, chunksize=1)
    try:
        for _jid, r, err in results:
            rows += r
            if err:
                errors.append(err)
                log.warning("job failed: %s", err)
            bar.update(1, f"chunks {len(rows)}")
    finally:
        pool.close()
        pool.join()
    rows.sort(key=lambda r: r["path"])
    with (out / "manifest.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS, lineterminator="\n")
        w.writeheader()
        for r in rows:
            w.writerow({k: r.get(k, "") for k in COLUMNS})
    digest = manifest_sha256(out)
    elapsed = time.time() - t0
    info = {
        "seed": seed, "size": size, "workers": workers, "balance_rooms": balance_rooms, "manifest_sha256": digest,
        "chunks": len(rows),
        "build_seconds": round(elapsed, 1), "jobs": len(jobs), "failed_jobs": errors[:50],
        "n_failed_jobs": len(errors),
        "families": {f: {"split": fam_split[f], "attack_type": families[f].ATTACK_TYPE} for f in available},
        "missing_generators": missing_generators, "missing_sources": missing_sources,
        "vocoder_weights": _vocoder_weights(available),
        "sources": [{"package": p.package, "speaker": p.speaker, "group": p.group, "language": p.language,
                     "licence": p.licence, "gsm": p.gsm, "codec_history": p.codec_history,
                     "max_minutes": p.max_minutes, "files": len(p.files), "note": p.note} for p in packs],
        "group_splits": splitmod.group_splits(sorted({p.group for p in packs})),
    }
    (out / "build_info.json").write_text(json.dumps(info, indent=1, ensure_ascii=False), encoding="utf-8")
    return info


def summary_text(info: dict) -> str:
    lines = [f"corpus build: {info['chunks']} chunks in {info['build_seconds'] / 60:.1f} min "
             f"(seed {info['seed']}, size {info['size']}); manifest sha256 {info['manifest_sha256'][:16]}",
             "generator families used: " + ", ".join(f"{f}->{v['split']}" for f, v in sorted(info["families"].items()))]
    for fam, msg in sorted(info["missing_generators"].items()):
        lines.append(f"MISSING generator {fam}: {msg}")
    skipped = skipped_vocoder_families(info["missing_generators"], ())
    if skipped:
        lines.append(f"SKIPPED neural vocoder families: {', '.join(skipped)} (no trained weights or no torch); "
                     f"train them with `{VOCODER_TRAIN_COMMAND}` (CPU, ~30 min for both), then rebuild the corpus")
    for m in info["missing_sources"]:
        lines.append(f"MISSING source {m}")
    if info["n_failed_jobs"]:
        lines.append(f"{info['n_failed_jobs']} jobs failed (first: {info['failed_jobs'][0]})")
    return "\n".join(lines)


def skipped_vocoder_families(missing: dict[str, str], skip: tuple[str, ...]) -> list[str]:
    """Neural vocoder families that are missing for a reason other than --skip."""
    return [f for f in VOCODER_FAMILIES if f in missing and f not in skip
            and not missing[f].startswith("skipped on request")]


def set_single_thread_env() -> None:
    for var in THREAD_VARS:
        os.environ.setdefault(var, "1")
