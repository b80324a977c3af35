"""`callguard eval`: score a corpus split with one or more detectors and write a Markdown report with
ROC, DET and confusion-matrix plots (PNG) next to it.

Thresholds always come from the detector's calibration (fixed on dev); nothing here is tuned on the
split being evaluated.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from detector.metrics import eer, min_dcf, rates_at, recording_means, roc_points
from detector.scoring import Detector

ATTACK_TYPES = ("tts", "resynthesis", "neural", "replay")


def score_rows(detector: Detector, corpus_dir: Path, rows: list[dict], batch: int = 256) -> np.ndarray:
    """Scores for corpus rows; the GBM reuses the cached feature matrix."""
    if hasattr(detector, "score_features"):
        from detector.featcache import corpus_features

        return detector.score_features(corpus_features(corpus_dir, rows))
    from detector.corpus.manifest import load_chunks

    out = []
    for i in range(0, len(rows), batch):
        out.append(detector.score(list(load_chunks(corpus_dir, rows[i: i + batch]))))
        print(f"\r{detector.name}: {min(i + batch, len(rows))}/{len(rows)} chunks", end="", file=sys.stderr)
    print(file=sys.stderr)
    return np.concatenate(out) if out else np.zeros(0)


def _pct(v: float) -> str:
    return f"{100 * v:.2f} %"


def _safe_eer(labels: np.ndarray, scores: np.ndarray) -> str:
    try:
        return _pct(eer(labels, scores)[0])
    except ValueError:
        return "n/a"


def detector_sections(name: str, detector: Detector, rows: list[dict], scores: np.ndarray) -> tuple[list[str], dict]:
    labels = np.array([r["label"] != "bonafide" for r in rows], dtype=bool)
    th = detector.thresholds
    lines = [f"## {name} (model {detector.version})", ""]
    overall_eer, _ = eer(labels, scores)
    at_eer = rates_at(labels, scores, th.eer)
    summary = {"eer": overall_eer, "accuracy": at_eer["accuracy"], "min_dcf": min_dcf(labels, scores),
               "eer_recording": eer(*recording_means(rows, labels, scores))[0]}
    lines += ["| metric | value |", "|---|---|",
              f"| chunks (bona fide / spoof) | {int((~labels).sum())} / {int(labels.sum())} |",
              f"| EER | {_pct(overall_eer)} |",
              f"| EER per recording (mean chunk score of each recording, as `scan` judges a file) | "
              f"{_pct(summary['eer_recording'])} |",
              f"| accuracy at the dev-EER threshold ({th.eer:.3f}) | {_pct(at_eer['accuracy'])} |",
              f"| min DCF (p_spoof 0.05, C_fa 10) | {summary['min_dcf']:.3f} |"]
    for tname, t in (("warn", th.warn), ("hangup", th.hangup)):
        r = rates_at(labels, scores, t)
        summary[f"far_{tname}"], summary[f"miss_{tname}"] = r["far"], r["miss"]
        lines.append(f"| at the {tname} threshold ({t:.3f}): false alarms / misses | {_pct(r['far'])} / "
                     f"{_pct(r['miss'])} |")
    lines += ["", "### Per attack type (each against all bona fide chunks of the split)", "",
              "| attack type | spoof chunks | EER | miss at warn | miss at hangup |", "|---|---|---|---|---|"]
    bona = ~labels
    attack = np.array([r["attack_type"] for r in rows])
    for a in ATTACK_TYPES:
        sel = attack == a
        if not sel.any():
            continue
        both = bona | sel
        r_w, r_h = rates_at(labels[sel], scores[sel], th.warn), rates_at(labels[sel], scores[sel], th.hangup)
        summary[f"eer_{a}"] = eer(labels[both], scores[both])[0]
        lines.append(f"| {a} | {int(sel.sum())} | {_pct(summary[f'eer_{a}'])} | {_pct(r_w['miss'])} | "
                     f"{_pct(r_h['miss'])} |")
    seen = set(getattr(detector, "calibration", {}).get("train", {}).get("generators", []))
    lines += ["", "### Per generator", "", "| generator | attack type | seen in training | chunks | EER |",
              "|---|---|---|---|---|"]
    gens = defaultdict(list)
    for i, r in enumerate(rows):
        if r["label"] != "bonafide":
            gens[r["generator"]].append(i)
    for g in sorted(gens):
        idx = np.array(gens[g])
        sel = bona.copy()
        sel[idx] = True
        lines.append(f"| {g} | {rows[idx[0]]['attack_type']} | {'yes' if g in seen else 'no'} | {len(idx)} | "
                     f"{_safe_eer(labels[sel], scores[sel])} |")
    lines += ["", "### Bona fide false alarms per speaker", "",
              "| speaker | language | chunks | at EER threshold | at warn | at hangup |", "|---|---|---|---|---|---|"]
    spk = defaultdict(list)
    for i, r in enumerate(rows):
        if r["label"] == "bonafide":
            spk[r["speaker"]].append(i)
    worst = 0.0
    for s in sorted(spk):
        v = scores[np.array(spk[s])]
        fa = [(v >= t).mean() for t in (th.eer, th.warn, th.hangup)]
        worst = max(worst, fa[2])
        lines.append(f"| {s} | {rows[spk[s][0]].get('language', '')} | {len(v)} | {_pct(fa[0])} | {_pct(fa[1])} | "
                     f"{_pct(fa[2])} |")
    summary["worst_speaker_far_hangup"] = worst
    policy_lines, policy_summary = policy_section(th, rows, labels, scores)
    summary.update(policy_summary)
    return lines + [""] + policy_lines, summary


def policy_section(th: Any, rows: list[dict], labels: np.ndarray, scores: np.ndarray) -> tuple[list[str], dict]:
    """What the live policy decides: each threshold against the rolling mean it is compared with in service
    (``warn_window`` / ``hangup_window`` consecutive chunks of one recording; the policy's default 3 when the
    calibration does not say), bona fide false alarms overall and per speaker, and spoof windows missed."""
    from detector.train_gbm import EVIDENCE_WINDOW, evidence_scores

    windows = {"warn": th.warn_window or EVIDENCE_WINDOW, "hangup": th.hangup_window or EVIDENCE_WINDOW}
    lines = ["### Live policy: rolling evidence (mean of consecutive chunks of one recording)", "",
             "| decision | threshold | chunks averaged | bona fide windows | false alarms | spoof windows | "
             "misses |", "|---|---|---|---|---|---|---|"]
    summary: dict = {}
    per_speaker: dict[str, dict[str, float]] = defaultdict(dict)
    bona_idx = defaultdict(list)
    for i, r in enumerate(rows):
        if r["label"] == "bonafide":
            bona_idx[r["speaker"]].append(i)
    for name, t in (("warn", th.warn), ("hangup", th.hangup)):
        w = windows[name]
        ev_y, ev = evidence_scores(rows, labels.astype(int), scores, window=w)
        far = float((ev[ev_y == 0] >= t).mean()) if (ev_y == 0).any() else float("nan")
        miss = float((ev[ev_y == 1] < t).mean()) if (ev_y == 1).any() else float("nan")
        summary[f"policy_far_{name}"], summary[f"policy_miss_{name}"] = far, miss
        lines.append(f"| {name} | {t:.4f} | {w} | {int((ev_y == 0).sum())} | {_pct(far)} | {int((ev_y == 1).sum())} "
                     f"| {_pct(miss)} |")
        for spk, idx in bona_idx.items():
            sub = [rows[i] for i in idx]
            _, e = evidence_scores(sub, np.zeros(len(idx), dtype=int), scores[np.array(idx)], window=w)
            per_speaker[spk][name] = float((e >= t).mean())
    worst = max(per_speaker.items(), key=lambda kv: kv[1]["hangup"], default=(None, {"hangup": 0.0}))
    summary["policy_worst_speaker_far_hangup"] = worst[1]["hangup"]
    head = (f"Worst speaker at hang-up: {worst[0]} ({_pct(worst[1]['hangup'])} of its windows)."
            if worst[1]["hangup"] > 0 else "No speaker reaches the hang-up threshold.")
    lines += ["", f"{head} Per speaker, share of evidence windows at or above each threshold:", "",
              "| speaker | at warn | at hangup |", "|---|---|---|"]
    lines += [f"| {spk} | {_pct(v['warn'])} | {_pct(v['hangup'])} |" for spk, v in sorted(per_speaker.items())]
    call_lines, call_summary = calls_section(th, rows, labels, scores)
    return lines + [""] + call_lines, {**summary, **call_summary}


def calls_section(th: Any, rows: list[dict], labels: np.ndarray, scores: np.ndarray) -> tuple[list[str], dict]:
    """Each recording as a call, with the live policy replayed as the plugin decides (``metrics.policy_evidence``):
    warn after every scored chunk on the trailing mean of the policy's window (fewer chunks at the start of a
    call), hang-up from chunk max(min_chunks, hang-up window) on. The table above counts full windows only."""
    from detector.metrics import POLICY_MIN_CHUNKS, policy_outcome, recordings_in_order
    from detector.train_gbm import EVIDENCE_WINDOW

    hang_w = th.hangup_window or EVIDENCE_WINDOW
    stats = {0: [0, 0, 0, 0, []], 1: [0, 0, 0, 0, []]}  # calls, warned, long enough, hung up, first warnings
    for idx in recordings_in_order(rows):
        o = policy_outcome(scores[idx], th.warn, th.hangup, EVIDENCE_WINDOW, hang_w)
        st = stats[int(labels[idx[0]])]
        st[0] += 1
        st[1] += o.warned
        st[2] += o.hung_up is not None
        st[3] += bool(o.hung_up)
        if o.first_warning is not None:
            st[4].append(o.first_warning)
    lines = ["### Live policy per recording, replayed as the plugin decides", "",
             f"Each recording is a call: warn after every scored chunk on the mean of the last {EVIDENCE_WINDOW} "
             f"scores (fewer at the start of a call), hang-up from chunk {max(POLICY_MIN_CHUNKS, hang_w)} on, on "
             f"the mean of the last {hang_w}.", "",
             "| recordings | calls | warned | long enough to hang up on | hung up on | first warning (median chunk) |",
             "|---|---|---|---|---|---|"]
    summary = {}
    for label, name in ((0, "bona fide"), (1, "spoof")):
        n, warned, long_enough, hung, first = stats[label]
        key = "bonafide" if label == 0 else "spoof"
        summary[f"calls_{key}_warned"] = warned / n if n else float("nan")
        summary[f"calls_{key}_hung_up"] = hung / long_enough if long_enough else float("nan")
        median_first = f"{np.median(first):.0f}" if first else "—"
        lines.append(f"| {name} | {n} | {warned} ({_pct(summary[f'calls_{key}_warned'])}) | {long_enough} | {hung} "
                     f"({_pct(summary[f'calls_{key}_hung_up'])}) | {median_first} |")
    return lines + [""], summary


def plot_curves(results: dict[str, tuple[np.ndarray, np.ndarray]], out_dir: Path, title: str) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.stats import norm

    files = []
    fig, ax = plt.subplots(figsize=(5, 5))
    for name, (labels, scores) in results.items():
        far, miss, _ = roc_points(labels, scores)
        ax.plot(far, 1 - miss, label=f"{name} (EER {100 * eer(labels, scores)[0]:.1f} %)")
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set(xlabel="false-alarm rate (bona fide flagged)", ylabel="detection rate (spoof flagged)", title=f"ROC {title}")
    ax.legend(loc="lower right")
    fig.tight_layout()
    fig.savefig(out_dir / "roc.png", dpi=110)
    files.append("roc.png")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(5, 5))
    ticks = np.array([0.001, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.4])
    for name, (labels, scores) in results.items():
        far, miss, _ = roc_points(labels, scores)
        clip = lambda v: norm.ppf(np.clip(v, 5e-4, 1 - 5e-4))  # noqa: E731
        ax.plot(clip(far), clip(miss), label=name)
    ax.set_xticks(norm.ppf(ticks), [f"{100 * t:g}" for t in ticks])
    ax.set_yticks(norm.ppf(ticks), [f"{100 * t:g}" for t in ticks])
    lim = (norm.ppf(5e-4), norm.ppf(0.5))
    ax.set(xlabel="false-alarm rate (%)", ylabel="miss rate (%)", title=f"DET {title}", xlim=lim, ylim=lim)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(out_dir / "det.png", dpi=110)
    files.append("det.png")
    plt.close(fig)
    return files


def plot_confusion(name: str, labels: np.ndarray, scores: np.ndarray, thresholds: dict[str, float],
                   out_dir: Path) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(thresholds), figsize=(4 * len(thresholds), 3.6))
    for ax, (tname, t) in zip(np.atleast_1d(axes), thresholds.items(), strict=True):
        r = rates_at(labels, scores, t)
        m = np.array([[r["tn"], r["fp"]], [r["fn"], r["tp"]]])
        ax.imshow(m, cmap="Blues")
        for (i, j), v in np.ndenumerate(m):
            ax.text(j, i, str(v), ha="center", va="center", color="black")
        ax.set_xticks([0, 1], ["bona fide", "spoof"])
        ax.set_yticks([0, 1], ["bona fide", "spoof"])
        ax.set(xlabel="predicted", ylabel="true", title=f"{name} @ {tname} ({t:.3f})")
    fig.tight_layout()
    fname = f"confusion_{name}.png"
    fig.savefig(out_dir / fname, dpi=110)
    plt.close(fig)
    return fname


def evaluate(corpus_dir: Path, detectors: dict[str, Detector], split: str, out_dir: Path) -> dict[str, dict]:
    from detector.corpus.manifest import load_manifest

    rows = [r for r in load_manifest(corpus_dir) if r["split"] == split]
    if not rows:
        raise SystemExit(f"{corpus_dir}: no rows in split {split!r}")
    out_dir.mkdir(parents=True, exist_ok=True)
    labels = np.array([r["label"] != "bonafide" for r in rows], dtype=bool)
    report = [f"# Evaluation on the `{split}` split", "",
              f"Corpus `{corpus_dir}`: {len(rows)} chunks of 2 s, {int((~labels).sum())} bona fide "
              f"({len({r['speaker'] for r in rows if r['label'] == 'bonafide'})} speakers), "
              f"{int(labels.sum())} spoof ({len({r['generator'] for r in rows if r['label'] != 'bonafide'})} "
              "generators). Scores are per chunk; thresholds come from each model's dev calibration.", ""]
    curves, summaries, body = {}, {}, []
    for name, det in detectors.items():
        scores = score_rows(det, corpus_dir, rows)
        curves[name] = (labels, scores)
        lines, summaries[name] = detector_sections(name, det, rows, scores)
        th = det.thresholds
        cm = plot_confusion(name, labels, scores, {"eer": th.eer, "hangup": th.hangup}, out_dir)
        body += lines + [f"![confusion {name}]({cm})", ""]
    if len(detectors) > 1:
        keys = sorted({k for s in summaries.values() for k in s})
        report += ["## Side by side", "", "| metric | " + " | ".join(summaries) + " |",
                   "|---|" + "---|" * len(summaries)]
        for k in keys:
            vals = [summaries[n].get(k) for n in summaries]
            fmt = [("n/a" if v is None else f"{v:.3f}" if k == "min_dcf" else _pct(v)) for v in vals]
            report.append(f"| {k} | " + " | ".join(fmt) + " |")
        report.append("")
    for f in plot_curves(curves, out_dir, f"({split})"):
        report.append(f"![{f}]({f})")
    report += [""] + body
    (out_dir / "report.md").write_text("\n".join(report))
    print(f"eval: wrote {out_dir / 'report.md'}", file=sys.stderr)
    return summaries
