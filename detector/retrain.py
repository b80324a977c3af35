"""`callguard retrain`: learn from reviewed live-call chunks, produce a challenger GBM, promote it only if it
earns it.

Inputs: the corpus (train and dev for training and calibration; its eval split is the frozen benchmark) and
the reviewed items exported from the review store as a corpus-like directory (``manifest.csv``, split
``review``; see ``plugin.review.ReviewStore.export``). Unsure items are never exported.

1. Reviewed items are split by call (a hash of the call id, so one call's chunks stay on one side and the
   split is the same on every run): about ``holdout`` of the calls are held out for the decision, the rest
   join the training data.
2. The challenger continues training the champion's booster (LightGBM ``init_model``): the new trees fit
   what the champion gets wrong on corpus train + reviewed items, with early stopping on dev. This keeps
   what the champion learnt, takes a fraction of a full training run and needs only the champion's model
   file. ``from_scratch`` instead retrains with the champion's parameters, for when continued training has
   piled up too many trees. A champion that blends an MLP with its trees (`train gbm --mlp`) gets the MLP
   refitted on the same rows (unweighted, as `train gbm` fits it) and the blend re-weighed on dev bona fide.
   Thresholds are recalibrated on dev exactly as `train gbm` does.
3. Champion and challenger are compared on the frozen eval split (EER; bona fide false alarms at each
   model's own hang-up threshold) and on the held-out reviewed calls (balanced error at each model's warn
   threshold; mean log loss). The challenger is promoted only if it is not worse on eval (EER at most
   ``eer_tolerance`` and false alarms at most ``far_tolerance`` above the champion's; defaults 0.5 and 0.2
   percentage points) and better on the held-out reviewed calls (lower balanced error, or the same error and a
   log loss lower by at least ``min_logloss_gain`` relative).
4. Every decision, promoted or refused, goes to ``promotions.jsonl`` with all the metrics.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from detector import versions
from detector.booster_mean import mean_booster
from detector.featcache import corpus_features
from detector.features import FEATURE_SCHEMA_VERSION, feature_names
from detector.gbm import CALIBRATION_FILE, MLP_FILE, MODEL_FILE, GBMDetector
from detector.metrics import eer, rates_at
from detector.mlp import fit_mlp
from detector.train_gbm import (
    DEFAULT_PARAMS,
    DEFAULT_SEED,
    balanced_weights,
    calibrate,
    ensemble_entry,
    evidence_windows,
    held_out_blend,
    member_seeds,
    model_card,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetrainSettings:
    rounds: int = 300  # at most this many new boosting rounds
    early_stopping: int = 50
    holdout: float = 0.3  # share of reviewed calls held out for the decision
    eer_tolerance: float = 0.005  # eval EER may rise by at most 0.5 percentage points
    far_tolerance: float = 0.002  # eval bona fide false alarms at hang-up: at most +0.2 points
    min_logloss_gain: float = 0.05  # with equal held-out error, log loss must drop by 5 % (relative)
    review_weight: float = 1.0  # extra weight on reviewed items (after per-class/per-group balancing)
    from_scratch: bool = False
    seed: int = DEFAULT_SEED
    keep_refused: bool = False  # keep a refused challenger's files in versions/ (its metrics are logged anyway)


def call_hash(call_id: str) -> float:
    """Deterministic position of a call in [0, 1) (the hold-out is decided by call, never by chunk)."""
    return int(hashlib.sha256(str(call_id).encode()).hexdigest()[:12], 16) / float(16 ** 12)


def split_reviewed(rows: list[dict], holdout: float) -> tuple[list[dict], list[dict]]:
    """(training rows, held-out rows). Calls whose hash falls below ``holdout`` are held out; with two or more
    calls, each side gets at least one."""
    calls = sorted({r["call_id"] for r in rows}, key=call_hash)
    held = {c for c in calls if call_hash(c) < holdout}
    if len(calls) >= 2:
        if not held and holdout > 0:
            held = {calls[0]}
        if len(held) == len(calls):
            held.discard(calls[-1])
    return [r for r in rows if r["call_id"] not in held], [r for r in rows if r["call_id"] in held]


def load_reviewed(review_dir: str | Path) -> list[dict]:
    from detector.corpus.manifest import load_manifest

    rows = load_manifest(review_dir)
    for r in rows:
        r["call_id"] = r.get("call_id") or r.get("group") or r["speaker"]
    return [r for r in rows if r["label"] in ("bonafide", "spoof")]


def _log_loss(labels: np.ndarray, scores: np.ndarray) -> float:
    p = np.clip(scores, 1e-6, 1 - 1e-6)
    return float(-np.mean(np.where(labels, np.log(p), np.log(1 - p))))


def eval_metrics(det: GBMDetector, x: np.ndarray, labels: np.ndarray) -> dict:
    s = det.score_features(x)
    bona = s[labels == 0]
    return {"eer": eer(labels, s)[0], "far_hangup": float((bona >= det.thresholds.hangup).mean()),
            "far_warn": float((bona >= det.thresholds.warn).mean()),
            "miss_warn": rates_at(labels, s, det.thresholds.warn)["miss"], "n": int(len(labels))}


def heldout_metrics(det: GBMDetector, x: np.ndarray, labels: np.ndarray) -> dict:
    """Balanced error at the warn threshold over the classes present (held-out reviewed calls may hold one
    class only), log loss, and EER when both classes are there."""
    s = det.score_features(x)
    flagged = s >= det.thresholds.warn
    errs = {}
    if (labels == 0).any():
        errs["bonafide_flagged"] = float(flagged[labels == 0].mean())
    if (labels == 1).any():
        errs["spoof_passed"] = float((~flagged[labels == 1]).mean())
    out = {"balanced_error": float(np.mean(list(errs.values()))), **errs, "log_loss": _log_loss(labels, s),
           "n": int(len(labels)), "n_spoof": int(labels.sum())}
    if 0 < labels.sum() < len(labels):
        out["eer"] = eer(labels, s)[0]
    return out


def decide(champ_eval: dict, chall_eval: dict, champ_held: dict, chall_held: dict,
           settings: RetrainSettings) -> tuple[bool, list[str]]:
    """(promote?, reasons). Not worse on eval within the tolerances, and better on the held-out reviewed."""
    reasons = []
    if chall_eval["eer"] > champ_eval["eer"] + settings.eer_tolerance:
        reasons.append(f"eval EER {chall_eval['eer']:.4f} > champion {champ_eval['eer']:.4f} + "
                       f"tolerance {settings.eer_tolerance}")
    if chall_eval["far_hangup"] > champ_eval["far_hangup"] + settings.far_tolerance:
        reasons.append(f"eval bona fide false alarms at hang-up {chall_eval['far_hangup']:.4f} > champion "
                       f"{champ_eval['far_hangup']:.4f} + tolerance {settings.far_tolerance}")
    e0, e1 = champ_held["balanced_error"], chall_held["balanced_error"]
    l0, l1 = champ_held["log_loss"], chall_held["log_loss"]
    better = e1 < e0 - 1e-12 or (abs(e1 - e0) <= 1e-12 and l1 < l0 * (1 - settings.min_logloss_gain))
    if not better:
        reasons.append(f"not better on held-out reviewed calls: balanced error {e1:.4f} vs champion {e0:.4f}, "
                       f"log loss {l1:.4f} vs {l0:.4f}")
    return not reasons, reasons


def retrain(corpus_dir: str | Path, review_dir: str | Path, models_dir: str | Path,
            settings: RetrainSettings | None = None) -> dict:
    """Train a challenger from the champion in ``models_dir`` and promote it if it earns it. Returns the
    decision record (also appended to ``<models_dir>/promotions.jsonl``)."""
    import lightgbm as lgb

    from detector.corpus.manifest import load_manifest, load_train_dev, manifest_sha256

    settings = settings or RetrainSettings()
    corpus_dir, review_dir, models_dir = Path(corpus_dir), Path(review_dir), Path(models_dir)
    champion_version = versions.ensure_versioned(models_dir)
    champion = GBMDetector.load(champion_version.path)

    train, dev = load_train_dev(corpus_dir)
    eval_rows = [r for r in load_manifest(corpus_dir) if r["split"] == "eval"]
    if not eval_rows:
        raise SystemExit(f"{corpus_dir}: the manifest has no eval rows (the frozen benchmark for the decision)")
    reviewed = load_reviewed(review_dir)
    r_train, r_held = split_reviewed(reviewed, settings.holdout)
    base_record = {"champion": champion_version.name, "champion_model": champion.version,
                   "method": "from_scratch" if settings.from_scratch else "continue",
                   "settings": asdict(settings), "corpus": str(corpus_dir),
                   "reviewed": {"items": len(reviewed), "calls": len({r["call_id"] for r in reviewed}),
                                "train_items": len(r_train), "train_calls": len({r["call_id"] for r in r_train}),
                                "held_out_items": len(r_held), "held_out_calls": len({r["call_id"] for r in r_held}),
                                "held_out_call_ids": sorted({r["call_id"] for r in r_held})}}
    if not r_held or not r_train:
        return versions.log_event(models_dir, {
            "event": "refused", **base_record, "challenger": None,
            "reasons": ["need reviewed (bona fide/synthetic/replay) items from at least two calls: one part trains, "
                        "the held-out part decides"]})

    names = list(feature_names())
    x_train = np.concatenate([corpus_features(corpus_dir, train), corpus_features(review_dir, r_train)])
    y_train = np.array([r["label"] != "bonafide" for r in train + r_train], dtype=np.int32)
    w = balanced_weights(train + r_train)
    w[len(train):] *= settings.review_weight
    x_dev = corpus_features(corpus_dir, dev)
    y_dev = np.array([r["label"] != "bonafide" for r in dev], dtype=np.int32)
    params = dict(DEFAULT_PARAMS, **(champion.calibration.get("params") or {}))
    params["seed"] = settings.seed
    init = None if settings.from_scratch else champion.booster
    start_rounds = 0 if init is None else init.current_iteration()
    # continued training adds trees to the champion, a seed ensemble included (one model file); from scratch,
    # a champion that is the mean of N seeds is replaced by the mean of N new ones
    n_members = len((champion.calibration.get("ensemble") or {}).get("seeds") or [0]) if init is None else 1
    seeds = member_seeds(params, n_members)
    members = []
    for member_seed in seeds:
        dtrain = lgb.Dataset(x_train, y_train, weight=w, feature_name=names, free_raw_data=False)
        ddev = lgb.Dataset(x_dev, y_dev, weight=balanced_weights(dev), reference=dtrain, feature_name=names)
        b = lgb.train(dict(params, seed=member_seed), dtrain, num_boost_round=settings.rounds, valid_sets=[ddev],
                      valid_names=["dev"], init_model=init, keep_training_booster=True,
                      callbacks=[lgb.early_stopping(settings.early_stopping, first_metric_only=True, verbose=False)])
        members.append(lgb.Booster(model_str=b.model_to_string(num_iteration=b.best_iteration or None)))
    booster = mean_booster(members)
    best = booster.current_iteration()  # every tree of the saved model: the champion's and the new ones
    ensemble = (ensemble_entry(seeds, members) if len(members) > 1
                else champion.calibration.get("ensemble") if init is not None else None)
    # a champion's MLP half is refitted on the same rows (it cannot continue like trees)
    mlp = (fit_mlp(x_train, y_train, seed=int(champion.calibration.get("mlp_seed") or 0))
           if champion.mlp is not None else None)
    blend, dev_scores = held_out_blend(
        np.column_stack([booster.predict(x_dev, num_iteration=best, raw_score=True),
                         mlp.logit(x_dev) if mlp is not None else np.full(len(dev), np.nan)]), y_dev)
    thresholds = calibrate(y_dev, dev_scores, dev)  # on the live policy's evidence windows, as `train gbm` does
    dev_rates = rates_at(y_dev, dev_scores, thresholds["eer"])

    name = versions.new_version_name(models_dir)
    out = versions.versions_dir(models_dir) / name
    tmp = versions.versions_dir(models_dir) / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    booster.save_model(str(tmp / MODEL_FILE), num_iteration=best)
    if mlp is not None:
        mlp.save(tmp / MLP_FILE)
    model_version = dt.datetime.now(dt.UTC).strftime("gbm-%Y%m%d-%H%M%S") + "-r"
    all_train = train + r_train
    calibration = {
        "version": model_version, "feature_schema": FEATURE_SCHEMA_VERSION, "feature_names": names,
        "best_iteration": best, "params": params, "resumed_from_round": start_rounds,
        **({"ensemble": ensemble} if ensemble else {}),
        "thresholds": {k: thresholds[k] for k in ("eer", "far_1pct", "far_0_1pct")},
        "evidence_windows": evidence_windows(thresholds),
        **({"blend": blend.to_json(), "mlp_seed": champion.calibration.get("mlp_seed")} if blend else {}),
        "dev": {"eer": thresholds["dev_eer"], "accuracy_at_eer_threshold": dev_rates["accuracy"],
                "n_bonafide": int((y_dev == 0).sum()), "n_spoof": int((y_dev == 1).sum())},
        "train": {"n_bonafide": int((y_train == 0).sum()), "n_spoof": int((y_train == 1).sum()),
                  "speakers": sorted({r["speaker"] for r in train if r["label"] == "bonafide"}),
                  "generators": sorted({r["generator"] for r in all_train if r["label"] != "bonafide"})},
        "corpus_manifest_sha256": manifest_sha256(corpus_dir),
        "retrain": {"parent": champion_version.name, "parent_model": champion.version,
                    "method": base_record["method"], "new_rounds": best - start_rounds,
                    "reviewed_train_items": len(r_train),
                    "review_manifest_sha256": manifest_sha256(review_dir)},
    }
    (tmp / CALIBRATION_FILE).write_text(json.dumps(calibration, indent=1))
    card = model_card(calibration, all_train, dev)
    card += (f"\n## Retrained from live calls\n\nContinues `{champion.version}` (version {champion_version.name}) "
             f"with {len(r_train)} reviewed chunks from {base_record['reviewed']['train_calls']} calls "
             f"({calibration['retrain']['new_rounds']} new rounds, method {base_record['method']}).\n")
    (tmp / "gbm.md").write_text(card)
    tmp.rename(out)
    challenger = GBMDetector.load(out)

    y_eval = np.array([r["label"] != "bonafide" for r in eval_rows], dtype=np.int32)
    x_eval = corpus_features(corpus_dir, eval_rows)
    x_held = corpus_features(review_dir, r_held)
    y_held = np.array([r["label"] != "bonafide" for r in r_held], dtype=np.int32)
    metrics = {"eval": {"champion": eval_metrics(champion, x_eval, y_eval),
                        "challenger": eval_metrics(challenger, x_eval, y_eval)},
               "held_out": {"champion": heldout_metrics(champion, x_held, y_held),
                            "challenger": heldout_metrics(challenger, x_held, y_held)},
               "dev_eer": {"champion": champion.calibration.get("dev", {}).get("eer"),
                           "challenger": thresholds["dev_eer"]}}
    promote, reasons = decide(metrics["eval"]["champion"], metrics["eval"]["challenger"],
                              metrics["held_out"]["champion"], metrics["held_out"]["challenger"], settings)
    record = {"event": "promoted" if promote else "refused", **base_record, "challenger": name,
              "challenger_model": model_version, "new_rounds": best - start_rounds,
              "tolerance": {"eval_eer": settings.eer_tolerance, "eval_far_hangup": settings.far_tolerance,
                            "held_out_min_logloss_gain": settings.min_logloss_gain},
              "metrics": metrics, "reasons": reasons}
    versions.write_version_info(out, {"created": versions._now(), "source": "retrain", "parent": champion_version.name,
                                      "model_version": model_version, "decision": record["event"],
                                      "metrics": metrics, "reasons": reasons})
    if promote:
        versions.promote(models_dir, name)
    elif not settings.keep_refused:
        shutil.rmtree(out, ignore_errors=True)
        record["challenger_files"] = "deleted (refused; metrics kept here)"
    record = versions.log_event(models_dir, record)
    ev, ho = metrics["eval"], metrics["held_out"]
    print(f"retrain: {record['event']} {name}: eval EER {ev['champion']['eer']:.2%} -> {ev['challenger']['eer']:.2%}, "
          f"false alarms at hang-up {ev['champion']['far_hangup']:.2%} -> {ev['challenger']['far_hangup']:.2%}; "
          f"held-out reviewed balanced error {ho['champion']['balanced_error']:.2%} -> "
          f"{ho['challenger']['balanced_error']:.2%}" + ("" if promote else f" ({'; '.join(reasons)})"),
          file=sys.stderr)
    return record
