"""`callguard corpus report`: what a built corpus holds (counts per split, label, family, speaker...)."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

from detector.corpus.capture import capture_stages
from detector.corpus.manifest import load_manifest
from detector.corpus.splits import SPLITS, check_disjoint


def _table(title: str, counter: Counter, total: int | None = None) -> list[str]:
    lines = [title]
    for k, v in sorted(counter.items(), key=lambda kv: (-kv[1], str(kv[0]))):
        pct = f" ({100 * v / total:4.1f} %)" if total else ""
        lines.append(f"  {k!s:<64} {v:7d}{pct}")
    return lines


def audit_text(corpus_dir: Path, rows: list[dict], sample: int) -> list[str]:
    """Trivial-cue audit (cross-validated logistic regression on level/duration/silence/noise-floor cues)."""
    import numpy as np

    from detector.corpus.cues import audit

    out = [f"trivial-cue audit (AUC of label from level, active duration, leading silence, quiet-frame spectrum;"
           f" 0.5 = chance, up to {sample} chunks per split):"]
    for s in SPLITS:
        rs = [r for r in rows if r["split"] == s]
        if len(rs) > sample:
            idx = np.random.default_rng(0).choice(len(rs), size=sample, replace=False)
            rs = [rs[i] for i in sorted(idx)]
        if len({r["label"] for r in rs}) < 2:
            continue
        overall, single = audit(corpus_dir, rs)
        worst = max(single.items(), key=lambda kv: kv[1])
        out.append(f"  {s:<6} logistic AUC {overall:.3f}; strongest single cue {worst[0]} {worst[1]:.3f}")
    return out


def _capture_lines(rows: list[dict]) -> list[str]:
    """Share of each capture stage (room, microphone, codec) per label: they should match across labels."""
    out = ["capture stage (share of chunks, bona fide / spoof):"]
    by_label = {lab: [r.get("capture") or "none" for r in rows if r["label"] == lab] for lab in ("bonafide", "spoof")}
    stages = {lab: [capture_stages(c) for c in caps] for lab, caps in by_label.items()}
    for name in ("room", "microphone", "codec"):
        shares = [100 * sum(name in st for st in sts) / max(len(sts), 1) for sts in stages.values()]
        out.append(f"  {name:<12} {shares[0]:5.1f} % / {shares[1]:5.1f} %")
    return out


def codec_history_lines(info: dict) -> list[str]:
    """Bona fide packs that went through a lossy codec (or 8-bit PCM) before the build, by codec."""
    by_codec: dict[str, set[str]] = {}
    for src in info.get("sources", []):
        codec = src.get("codec_history") or ("gsm" if src.get("gsm") else "")
        if codec:
            by_codec.setdefault(codec, set()).add(src["speaker"])
    out = []
    names = {"gsm": "GSM-coded", "mp3-16k": "MP3-coded (16 kbit/s)", "pcm-u8": "8-bit PCM"}
    for codec, speakers in sorted(by_codec.items()):
        out.append(f"{names.get(codec, codec)} bona fide packs (codec history before the channel): "
                   f"{', '.join(sorted(speakers))}")
    return out


def report(corpus_dir: str | Path, audit_sample: int = 0) -> str:
    corpus_dir = Path(corpus_dir)
    rows = load_manifest(corpus_dir)
    info_path = corpus_dir / "build_info.json"
    info = json.loads(info_path.read_text(encoding="utf-8")) if info_path.is_file() else {}
    n = len(rows)
    out = [f"corpus {corpus_dir}: {n} chunks of 2 s at 8 kHz ({n * 2 / 3600:.1f} h)"]
    if info:
        out.append(f"built with seed {info.get('seed')} size {info.get('size')} in "
                   f"{info.get('build_seconds', 0) / 60:.1f} min; manifest sha256 "
                   f"{info.get('manifest_sha256', '')[:16]}")
    out.append("")
    out.append(f"{'split':<6} {'bonafide':>9} {'spoof':>7} {'spoof %':>8} {'speakers':>9} {'generators':>11} "
               f"{'languages'}")
    for s in SPLITS:
        rs = [r for r in rows if r["split"] == s]
        b = sum(r["label"] == "bonafide" for r in rs)
        sp = len(rs) - b
        spk = len({r["speaker"] for r in rs if r["label"] == "bonafide"})
        gens = sorted({r["generator"] for r in rs if r["label"] == "spoof"})
        langs = sorted({r["language"] for r in rs})
        out.append(f"{s:<6} {b:9d} {sp:7d} {100 * sp / max(len(rs), 1):7.1f}% {spk:9d} {len(gens):11d} "
                   f"{','.join(langs)}")
        out.append(f"       generators: {', '.join(gens)}")
    out.append("")
    out += _table("chunks by attack type:", Counter(r["attack_type"] for r in rows), n)
    out += _table("spoof chunks by generator family (split):",
                  Counter(f"{r['generator']} ({r['split']})" for r in rows if r["label"] == "spoof"), n)
    out += _table("bona fide chunks by speaker (source package, split):",
                  Counter(f"{r['speaker']} ({r['source']}, {r['split']})" for r in rows
                          if r["label"] == "bonafide"), n)
    out += _table("bona fide chunks by source package (split):",
                  Counter(f"{r['source']} ({r['split']})" for r in rows if r["label"] == "bonafide"), n)
    out += _table("chunks by language:", Counter(r["language"] for r in rows), n)
    out += _table("chunks by codec:", Counter(r["codec"] for r in rows), n)
    bl = Counter("band-limited" if r["bandlimit"] != "none" else "full band" for r in rows)
    out += _table("band-limiting:", bl, n)
    out += _capture_lines(rows)
    lossy = sum(float(r["loss_rate"]) > 0 for r in rows)
    out.append(f"frame loss applied to {lossy} chunks; SNR {min(r['snr_db'] for r in rows):.0f}-"
               f"{max(r['snr_db'] for r in rows):.0f} dB; gain {min(r['gain_db'] for r in rows):.0f}.."
               f"{max(r['gain_db'] for r in rows):.0f} dB")
    n_speakers = len({r["speaker"] for r in rows if r["label"] == "bonafide"})
    n_groups = len({r["group"] for r in rows if r["label"] == "bonafide"})
    n_fams = len({r["generator"] for r in rows if r["label"] == "spoof"})
    neural = sorted({r["generator"] for r in rows if r["attack_type"] == "neural"})
    out.append(f"human speakers: {n_speakers} in {n_groups} groups; generator families: {n_fams} "
               f"(neural: {', '.join(neural) or 'none'}); languages: {len({r['language'] for r in rows})}")
    out += codec_history_lines(info)
    problems = check_disjoint(rows)
    out.append("splits disjoint by speaker group and generator: " + ("yes" if not problems else
                                                                     "NO: " + "; ".join(problems[:5])))
    for fam, msg in sorted(info.get("missing_generators", {}).items()):
        out.append(f"missing generator {fam}: {msg}")
    for m in info.get("missing_sources", []):
        out.append(f"missing source {m}")
    if info.get("n_failed_jobs"):
        out.append(f"{info['n_failed_jobs']} jobs failed, e.g. {info['failed_jobs'][0]}")
    if audit_sample:
        out += audit_text(corpus_dir, rows, audit_sample)
    return "\n".join(out)
