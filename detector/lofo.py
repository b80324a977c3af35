"""Generalisation protocol (`callguard eval --protocol lofo`): leave-one-generator-family-out crossed
with leave-speakers-out, over the whole corpus.

For each generator family F, a GBM is trained on every other family and on the bona fide speakers outside
one speaker fold S; it is tested on F's spoofs against S's bona fide speech, neither ever seen in training.
Thresholds for the per-speaker false alarms are calibrated inside the fold (on the training side's dev
rows), as a shipped model's would be, so nothing is tuned on what is tested.
"""

from __future__ import annotations

import sys
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np

from detector.featcache import corpus_features
from detector.metrics import eer, recording_means
from detector.train_gbm import (
    DEFAULT_PARAMS,
    DEFAULT_SEED,
    balanced_weights,
    calibrate,
    evidence_scores,
    fit_model,
    speaker_group,
)


def feature_mask_without(groups: list[str]) -> np.ndarray:
    """Column mask of the feature matrix without the named feature groups (for ablations).

    A name that is not a group may be a feature-name prefix (``bispec_phase`` drops the bispectral phase
    statistics and keeps the bicoherence and magnitude ones)."""
    from detector.features import feature_group, feature_names

    names = np.array(feature_names())
    have = np.array([feature_group(n) for n in names])
    drop = np.zeros(len(names), dtype=bool)
    unknown = []
    for g in groups:
        hit = (have == g) | np.char.startswith(names, g + "_")
        if not hit.any():
            unknown.append(g)
        drop |= hit
    if unknown:
        raise ValueError(f"unknown feature group(s) or prefix(es) {', '.join(sorted(unknown))}; "
                         f"known groups: {', '.join(sorted(set(have)))}")
    return ~drop


def tied_groups(groups: set[str] | list[str]) -> dict[str, set[str]]:
    """For each speaker group, every group that may hold the same person (``splits.SAME_SPLIT``, closed
    transitively), itself included."""
    from detector.corpus.splits import SAME_SPLIT

    unit = {g: {g} for g in groups}
    for tie in SAME_SPLIT:
        members = set().union(*(unit.get(g, {g}) for g in tie))
        for g in members:
            unit[g] = members
    return unit


def with_ties(held: list[str], ties: dict[str, set[str]]) -> list[str]:
    """The held-out groups and every group tied to one of them (``tied_groups``): all of them leave training."""
    return sorted(set().union(*(ties.get(g, {g}) for g in held)))


def speaker_folds(rows: list[dict], n_folds: int) -> list[list[str]]:
    """Bona fide speakers dealt into folds of similar size (by chunk count), deterministically. Groups that
    may hold the same person (a Tux Paint reader and that language's KLettres voice, say) go to one fold, or
    a held-out voice could still be heard in training."""
    counts: dict[str, int] = defaultdict(int)
    for r in rows:
        if r["label"] == "bonafide":
            counts[speaker_group(r)] += 1
    ties = tied_groups(set(counts))
    units = {tuple(sorted(m for m in ties[g] if m in counts)) for g in counts}
    size = {u: sum(counts[g] for g in u) for u in units}
    folds: list[list[str]] = [[] for _ in range(n_folds)]
    load = [0] * n_folds
    for u in sorted(units, key=lambda u: (-size[u], u)):
        i = int(np.argmin(load))
        folds[i].extend(u)
        load[i] += size[u]
    return [f for f in folds if f]


def run_lofo(corpus_dir: Path, out_dir: Path | None, rounds: int = 400, n_speaker_folds: int = 4,
             params: dict | None = None, splits: tuple[str, ...] = ("train", "dev", "eval"),
             feature_mask: np.ndarray | None = None, augment: str | None = None,
             exclude_families: tuple[str, ...] = (),
             extra_features: Callable[[Path, list[dict]], np.ndarray] | None = None,
             cross_folds: bool = False, mlp_seed: int | None = None,
             exclude_groups: tuple[str, ...] = (), train_only_groups: tuple[str, ...] = (),
             balance_alpha: float = 0.0, per_speaker_far: bool = False, n_seeds: int = 1) -> dict:
    """Run the protocol. ``splits=("train", "dev")`` keeps the eval split out, for model-selection
    experiments; the shipped report uses all splits. ``feature_mask`` selects feature columns.
    ``augment`` ("rawboost"): each fold's model also trains on a perturbed copy of its training chunks
    (``featcache.corpus_features(augment=...)``); held-out and calibration rows stay clean.
    ``exclude_families``: those families' spoofs never train any fold and are not held out; every other
    family keeps the speaker fold it has without the option, so the two runs compare family by family.
    ``extra_features(corpus_dir, rows)``: more columns per row (e.g. an experiment's learnt embedding),
    appended after the feature mask; not combined with ``augment``.
    ``cross_folds``: each family is held out against every bona fide speaker fold in turn (n_speaker_folds
    times the models), and its EER is the mean over those folds. Without it each family meets one fold, so a
    family's EER also measures how hard that fold's voices are; crossing separates the two effects.
    ``mlp_seed``: each fold's model is the GBM blended with an MLP (``detector.mlp``), as `train gbm --mlp`
    ships it; the blend's weights come from the fold's calibration bona fide rows.
    ``exclude_groups``: those speaker groups' rows (bona fide and the spoofs made from their voices) never
    train and their bona fide speech is never tested; a held-out family's test spoofs stay the same, so that
    paired runs test the same rows. ``train_only_groups``: those groups always train and are never
    in a held-out speaker fold.
    Run once with a group in each, the two runs test the same folds, so they measure what the group's
    speech adds to training (a new bona fide source, say). ``balance_alpha``: each fold's row weights
    (``train_gbm.balanced_weights``). ``per_speaker_far``: each fold's warn / hang-up thresholds hold the
    false-alarm rate averaged over its calibration speakers (``train_gbm.calibrate(per_speaker=True)``)
    instead of pooled over their chunks. ``n_seeds`` > 1: each fold's booster is the mean of that many
    boosters with seeds ``train_gbm.DEFAULT_SEED``, +1, ... (``train gbm --seeds``, the shipped members' seeds)."""
    from detector.corpus.manifest import load_manifest

    rows = [r for r in load_manifest(corpus_dir) if r["split"] in splits]
    x = corpus_features(corpus_dir, rows)
    x_aug = corpus_features(corpus_dir, rows, augment=augment) if augment else None
    if feature_mask is not None:
        x = x[:, feature_mask]
        x_aug = None if x_aug is None else x_aug[:, feature_mask]
    if extra_features is not None:
        if x_aug is not None:
            raise ValueError("extra_features cannot be combined with augment")
        x = np.concatenate([x, extra_features(corpus_dir, rows)], axis=1)
    y = np.array([r["label"] != "bonafide" for r in rows], dtype=np.int32)
    family = np.array([r["generator"] if r["label"] != "bonafide" else "" for r in rows])
    speaker = np.array([speaker_group(r) for r in rows])
    split = np.array([r["split"] for r in rows])
    families = sorted(set(family) - {""})
    unknown = sorted(set(exclude_families) - set(families))
    if unknown:
        raise ValueError(f"unknown generator family(ies) {', '.join(unknown)}; known: {', '.join(families)}")
    not_held = set(exclude_groups) | set(train_only_groups)
    unknown = sorted(not_held - set(speaker))
    if unknown:
        raise ValueError(f"unknown speaker group(s) {', '.join(unknown)}")
    excluded = np.isin(family, list(exclude_families)) | np.isin(speaker, list(exclude_groups))
    folds = speaker_folds([r for r, s in zip(rows, speaker, strict=True) if s not in not_held], n_speaker_folds)
    ties = tied_groups(set(speaker))
    p = dict(DEFAULT_PARAMS, **({"seed": DEFAULT_SEED} if n_seeds > 1 else {}), **(params or {}))
    p.pop("metric", None)
    results, speaker_far = [], defaultdict(list)
    for n, fam in enumerate(families):
        if fam in exclude_families:
            continue
        by_fold = []
        test_spoof = family == fam
        for k in range(len(folds)) if cross_folds else [n % len(folds)]:
            held_spk = folds[k]
            test_bona = (y == 0) & np.isin(speaker, held_spk)
            # rows of held-out speakers leave training entirely, spoofs made from their voices included
            # (resynthesis, replay), or the model would have heard those voices
            # a train-only group tied to a held-out one (the same person, maybe) leaves training too
            train = ~test_spoof & ~excluded & ~np.isin(speaker, with_ties(held_spk, ties))
            cal = train & (split == "dev")
            fit = train & ~cal
            if not (y[fit] == 0).any() or not test_bona.any():
                continue
            sub = [rows[i] for i in np.flatnonzero(fit)]
            x_fit, y_fit, w_fit = x[fit], y[fit], balanced_weights(sub, balance_alpha)
            if x_aug is not None:
                x_fit, y_fit, w_fit = np.concatenate([x_fit, x_aug[fit]]), np.tile(y_fit, 2), np.tile(w_fit, 2)
            model = fit_model(x_fit, y_fit, w_fit, p, rounds, mlp_seed=mlp_seed, n_seeds=n_seeds)
            two_class_cal = cal.any() and len(set(y[cal])) == 2
            cal_rows = cal if two_class_cal else fit
            model.fit_blend(x[cal_rows & (y == 0)])
            test = test_bona | test_spoof
            scores = model.predict(x[test])
            e = eer(y[test], scores)[0]
            e_rec = eer(*recording_means([rows[i] for i in np.flatnonzero(test)], y[test], scores))[0]
            cal_list = [rows[i] for i in np.flatnonzero(cal_rows)]
            cal_scores = model.predict(x[cal_rows])
            th = calibrate(y[cal_rows], cal_scores, cal_list, per_speaker=per_speaker_far, policy_windows=False)
            # the live policy's thresholds, on rolling means of consecutive chunks, as the shipped model has them
            th_live = calibrate(y[cal_rows], cal_scores, cal_list, per_speaker=per_speaker_far)
            miss_hangup = float((scores[y[test] == 1] < th["far_0_1pct"]).mean())
            test_idx = np.flatnonzero(test)
            for spk in held_spk:
                mine = np.flatnonzero((y[test_idx] == 0) & (speaker[test_idx] == spk))
                if mine.size:
                    v = scores[mine]
                    speaker_far[spk].append(((v >= th["far_1pct"]).mean(), (v >= th["far_0_1pct"]).mean(), v.size,
                                             *_live_false_alarms([rows[test_idx[i]] for i in mine], v, th_live)))
            by_fold.append({"fold": k, "held_out_speakers": held_spk, "eer": e, "eer_recording": e_rec,
                            "n_bonafide": int(test_bona.sum()), "miss_hangup": miss_hangup})
            print(f"lofo: {n + 1}/{len(families)} {fam}" + (f" x fold {k + 1}/{len(folds)}" if cross_folds else "")
                  + f": EER {100 * e:.2f} %", file=sys.stderr)
        if not by_fold:
            continue
        attack = next(r["attack_type"] for r in rows if r["generator"] == fam)
        results.append({"family": fam, "attack_type": attack,
                        "eer": float(np.mean([f["eer"] for f in by_fold])),
                        "eer_recording": float(np.mean([f["eer_recording"] for f in by_fold])),
                        "miss_hangup": float(np.mean([f["miss_hangup"] for f in by_fold])),
                        "held_out_speakers": [s for f in by_fold for s in f["held_out_speakers"]],
                        "n_spoof": int(test_spoof.sum()),
                        "n_bonafide": int(np.mean([f["n_bonafide"] for f in by_fold])),
                        "by_fold": by_fold})
    eers = np.array([r["eer"] for r in results])
    rec = np.array([r["eer_recording"] for r in results])
    summary = {"families": results, "worst_eer": float(eers.max()), "mean_eer": float(eers.mean()),
               "worst_eer_recording": float(rec.max()), "mean_eer_recording": float(rec.mean()),
               "speaker_far": {s: {"far_warn": float(np.mean([v[0] for v in vals])),
                                   "far_hangup": float(np.mean([v[1] for v in vals])),
                                   "policy_far_warn": float(np.mean([v[3] for v in vals])),
                                   "policy_far_hangup": float(np.mean([v[4] for v in vals])),
                                   "chunks": int(vals[0][2])} for s, vals in speaker_far.items()},
               "excluded_families": sorted(exclude_families), "cross_folds": cross_folds,
               "excluded_groups": sorted(exclude_groups), "train_only_groups": sorted(train_only_groups),
               "model": "gbm+mlp" if mlp_seed is not None else "gbm", "n_seeds": n_seeds,
               "mean_miss_hangup": float(np.mean([r["miss_hangup"] for r in results])),
               "thresholds_far_over": "speakers" if per_speaker_far else "chunks",
               "n_speaker_folds": len(folds)}
    if out_dir is not None:
        write_report(summary, out_dir)
    return summary


def _live_false_alarms(rows: list[dict], scores: np.ndarray, th: dict) -> tuple[float, float]:
    """Share of one speaker's evidence windows (``train_gbm.evidence_scores``, bona fide only) at or above the
    live policy's warn and hang-up thresholds."""
    zeros = np.zeros(len(rows), dtype=int)
    _, warn = evidence_scores(rows, zeros, scores, window=int(th["warn_window"]))
    _, hang = evidence_scores(rows, zeros, scores, window=int(th["hangup_window"]))
    return float((warn >= th["far_1pct"]).mean()), float((hang >= th["far_0_1pct"]).mean())


def write_report(summary: dict, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    lines = ["# Generalisation protocol: leave one generator family out × leave speakers out", "",
             "Each row: a " + ("GBM blended with an MLP (`train gbm --mlp`)" if summary.get("model") == "gbm+mlp"
                               else "GBM")
             + (f" (the mean of {summary['n_seeds']} boosters with consecutive seeds, `train gbm --seeds "
                f"{summary['n_seeds']}`)" if summary.get("n_seeds", 1) > 1 else "")
             + " trained without that generator family and without "
             + ("one fold of bona fide speakers at a time" if summary.get("cross_folds") else
                "the listed bona fide speakers") + ", tested on exactly those. Features and hyper-parameters as "
             "shipped.", "",
             f"**Worst held-out family EER {100 * summary['worst_eer']:.2f} %, "
             f"mean {100 * summary['mean_eer']:.2f} %** per chunk; per recording (mean chunk score of each "
             f"recording, as `scan` judges a file) worst {100 * summary['worst_eer_recording']:.2f} %, "
             f"mean {100 * summary['mean_eer_recording']:.2f} %.",
             *([f"Families kept out of every fold's training (and not held out): "
                f"{', '.join(summary['excluded_families'])}.", ""] if summary.get("excluded_families") else []),
             *([f"Speaker groups that never train (nor spoofs made from their voices) and whose bona fide "
                f"speech is never tested: "
                f"{', '.join(summary['excluded_groups'])}.", ""] if summary.get("excluded_groups") else []),
             *([f"Speaker groups that always train and are never held out: "
                f"{', '.join(summary['train_only_groups'])}.", ""] if summary.get("train_only_groups") else []),
             *([f"Every family is held out against each of the {summary['n_speaker_folds']} bona fide speaker "
                f"folds in turn; its EER is the mean over the folds (each fold's EER in the last column, folds "
                f"listed at the end)."] if summary.get("cross_folds") else []),
             ""]
    if summary.get("cross_folds"):
        lines += ["| held-out family | attack type | spoof chunks | bona fide chunks (mean per fold) | EER | "
                  "EER per recording | missed at hang-up | EER by speaker fold |", "|---|---|---|---|---|---|---|---|"]
        for r in sorted(summary["families"], key=lambda r: -r["eer"]):
            folds = " / ".join(f"{100 * f['eer']:.1f}" for f in r["by_fold"])
            lines.append(f"| {r['family']} | {r['attack_type']} | {r['n_spoof']} | {r['n_bonafide']} | "
                         f"{100 * r['eer']:.2f} % | {100 * r['eer_recording']:.2f} % | {100 * r['miss_hangup']:.1f} % "
                         f"| {folds} |")
    else:
        lines += ["| held-out family | attack type | spoof chunks | held-out speakers | bona fide chunks | EER | "
                  "EER per recording | missed at hang-up |", "|---|---|---|---|---|---|---|---|"]
        for r in sorted(summary["families"], key=lambda r: -r["eer"]):
            lines.append(f"| {r['family']} | {r['attack_type']} | {r['n_spoof']} | "
                         f"{', '.join(r['held_out_speakers'])} | {r['n_bonafide']} | {100 * r['eer']:.2f} % | "
                         f"{100 * r['eer_recording']:.2f} % | {100 * r['miss_hangup']:.1f} % |")
    over = ("averaged over the calibration speakers, each person counting the same"
            if summary.get("thresholds_far_over") == "speakers" else "pooled over the calibration chunks")
    lines += ["", "## Bona fide false alarms per held-out speaker (fold-calibrated thresholds)", "",
              f"Each fold's thresholds come from its training side's dev bona fide chunks, the false-alarm rate "
              f"{over}. "
              f"Spoof chunks missed at hang-up, mean over the held-out families: "
              f"{100 * summary.get('mean_miss_hangup', float('nan')):.1f} %.", "",
              "Per chunk: each 2-s chunk against per-chunk thresholds. Live policy: the rolling means of consecutive "
              "chunks of a recording that the service compares with its thresholds (the shipped calibration's "
              "windows), against thresholds calibrated on those means.", "",
              "| speaker | chunks | per chunk at warn (1 % dev FAR) | per chunk at hangup (0.1 % dev FAR) | "
              "live policy at warn | live policy at hangup |", "|---|---|---|---|---|---|"]
    for s, v in sorted(summary["speaker_far"].items(), key=lambda kv: -kv[1]["far_hangup"]):
        lines.append(f"| {s} | {v['chunks']} | {100 * v['far_warn']:.2f} % | {100 * v['far_hangup']:.2f} % | "
                     f"{100 * v.get('policy_far_warn', float('nan')):.2f} % | "
                     f"{100 * v.get('policy_far_hangup', float('nan')):.2f} % |")
    if summary.get("cross_folds"):
        folds = {f["fold"]: f["held_out_speakers"] for r in summary["families"] for f in r["by_fold"]}
        lines += ["", "## Speaker folds", ""] + [f"{k + 1}. {', '.join(v)}" for k, v in sorted(folds.items())]
    (out_dir / "lofo.md").write_text("\n".join(lines) + "\n")
    print(f"lofo: wrote {out_dir / 'lofo.md'}", file=sys.stderr)
