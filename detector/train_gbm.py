"""`callguard train gbm`: LightGBM on corpus features, with early stopping on dev, balancing, resume,
calibration and a model card."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.special import expit

from detector.featcache import corpus_features
from detector.features import FEATURE_SCHEMA_VERSION, feature_names
from detector.gbm import CALIBRATION_FILE, MLP_FILE, MODEL_FILE, blended_scores
from detector.metrics import eer, rates_at, recordings_in_order, threshold_at_far
from detector.mlp import MLP, Blend, fit_mlp

log = logging.getLogger(__name__)
OOF_FILE = "gbm.oof_dev.npz"  # out-of-fold scores of the dev rows, written by pooled training for the fusion

DEFAULT_PARAMS = {
    "objective": "binary",
    "learning_rate": 0.05,
    "num_leaves": 31,
    "min_data_in_leaf": 40,
    "feature_fraction": 0.6,
    "bagging_fraction": 0.8,
    "bagging_freq": 1,
    "lambda_l2": 5.0,
    "max_bin": 127,
    "metric": ["binary_logloss", "auc"],
    "num_threads": 2,
    "verbose": -1,
}


def speaker_group(row: dict) -> str:
    """The unit of speaker identity: a voice recorded in several packs counts once."""
    return row.get("group") or row["speaker"]


def balanced_weights(rows: list[dict], alpha: float = 0.0) -> np.ndarray:
    """Each class weighs the same in total; inside a class, each speaker group (bona fide) or generator
    (spoof) gets a mass ∝ (its chunk count) ** ``alpha``. ``alpha = 0``: every voice and every generator
    weighs the same, so the model cannot win by learning a few frequent voices; ``alpha = 1``: every chunk of
    a class weighs the same. Between the two, small groups (a KLettres voice of 10 chunks next to voices of
    1,000) are lifted without each of their chunks weighing a hundred times more than anyone else's."""
    groups = [("b", speaker_group(r)) if r["label"] == "bonafide" else ("s", r["generator"]) for r in rows]
    count = Counter(groups)
    mass = {g: n ** alpha for g, n in count.items()}
    class_mass: Counter = Counter()
    for g, m in mass.items():
        class_mass[g[0]] += m
    w = np.array([mass[g] / class_mass[g[0]] / count[g] for g in groups])
    return w * len(rows) / w.sum()


@dataclass
class FittedModel:
    """A booster and, optionally, the MLP trained beside it on the same rows (``detector.mlp``)."""

    booster: object
    mlp: MLP | None = None
    blend: Blend | None = None

    def logits(self, x: np.ndarray) -> np.ndarray:
        """Per row, the booster's log-odds and the MLP's (NaN without an MLP): shape (rows, 2)."""
        g = self.booster.predict(x, raw_score=True)  # type: ignore[attr-defined]
        m = self.mlp.logit(x) if self.mlp is not None else np.full(len(g), np.nan)
        return np.column_stack([g, m])

    def fit_blend(self, x_bonafide: np.ndarray) -> None:
        """Weigh the two models by their spread on bona fide rows neither was trained on."""
        if self.mlp is not None:
            lg = self.logits(x_bonafide)
            self.blend = Blend.from_bonafide(lg[:, 0], lg[:, 1])

    def predict(self, x: np.ndarray) -> np.ndarray:
        return blended_scores(self.booster, x, self.mlp, self.blend)


DEFAULT_SEED = 7  # the first (or only) boosting seed of `train gbm`, `retrain` and ensembles in `eval --protocol lofo`


def member_seeds(params: dict, n_seeds: int) -> list[int]:
    """The boosting seeds of an ensemble of ``n_seeds`` members: ``params["seed"]`` and the ones after it."""
    if n_seeds < 1:
        raise ValueError(f"an ensemble needs at least one member, not {n_seeds}")
    first = int(params.get("seed", 0))
    return list(range(first, first + n_seeds))


def ensemble_entry(seeds: list[int], members: list) -> dict:
    """The calibration file's ``ensemble`` entry for a model made by ``booster_mean.mean_booster(members)``."""
    return {"seeds": seeds, "rounds": [m.current_iteration() for m in members],
            "combined": "mean of the members' log-odds (detector.booster_mean)"}


def fit_model(x: np.ndarray, y: np.ndarray, weights: np.ndarray, params: dict, rounds: int,
              mlp_seed: int | None = None, n_seeds: int = 1) -> FittedModel:
    """A booster of ``rounds`` rounds and, given ``mlp_seed``, an MLP on the same rows (its blend weights
    still to be fitted on held-out bona fide rows with ``FittedModel.fit_blend``). ``n_seeds`` > 1: the
    booster is the mean of that many boosters with consecutive seeds (``detector.booster_mean``)."""
    import lightgbm as lgb

    from detector.booster_mean import mean_booster

    p = {k: v for k, v in params.items() if k != "metric"}
    member_params = [p] if n_seeds == 1 else [dict(p, seed=s) for s in member_seeds(p, n_seeds)]
    boosters = [lgb.train(mp, lgb.Dataset(x, y, weight=weights), num_boost_round=rounds) for mp in member_params]
    return FittedModel(mean_booster(boosters), fit_mlp(x, y, seed=mlp_seed) if mlp_seed is not None else None)


def held_out_blend(logits: np.ndarray, labels: np.ndarray) -> tuple[Blend | None, np.ndarray]:
    """From held-out log-odds (``FittedModel.logits`` columns; column 1 all NaN without an MLP): the blend
    weighed on their bona fide rows, as the thresholds are, and each row's score (the booster's probability
    without an MLP)."""
    if np.isnan(logits[:, 1]).all():
        return None, expit(logits[:, 0])
    blend = Blend.from_bonafide(logits[labels == 0, 0], logits[labels == 0, 1])
    return blend, blend.probability(logits[:, 0], logits[:, 1])


EVIDENCE_WINDOW = 3  # chunks the live policy averages for its warn decision (plugin.config.Policy.window)
# Chunks averaged for the hang-up decision: 10 s of speech. Hanging up is the costly action, and a longer mean
# narrows the bona fide tail (out-of-fold on train+dev, 0.1 % false alarms: 0.9979 on 3 chunks, 0.9958 on 5),
# so a real spoof crosses the hang-up line sooner in a call than it would with the warn window.
HANGUP_WINDOW = 5


def evidence_scores(rows: list[dict], labels: np.ndarray, scores: np.ndarray,
                    window: int = EVIDENCE_WINDOW, with_groups: bool = False) -> tuple[np.ndarray, ...]:
    """The live policy's evidence: the mean of ``window`` consecutive chunk scores of one recording (corpus
    job, in time order), every full window once; a recording shorter than the window gives its mean.
    Returns (labels, evidence), and with ``with_groups`` also each window's speaker group."""
    ev, ev_y, ev_g = [], [], []
    for idx in recordings_in_order(rows):
        s = scores[idx]
        if len(s) < window:
            ev.append(float(s.mean()))
        else:
            c = np.concatenate([[0.0], np.cumsum(s)])
            ev.extend(((c[window:] - c[:-window]) / window).tolist())
        if with_groups:
            ev_g.extend([speaker_group(rows[idx[0]])] * (len(ev) - len(ev_y)))
        ev_y.extend([int(labels[idx[0]])] * (len(ev) - len(ev_y)))
    if with_groups:
        return np.array(ev_y), np.array(ev), np.array(ev_g)
    return np.array(ev_y), np.array(ev)


def calibrate(labels: np.ndarray, scores: np.ndarray, rows: list[dict] | None = None,
              per_speaker: bool = False, policy_windows: bool = True) -> dict[str, float]:
    """Thresholds: ``eer`` per chunk; ``far_1pct`` (warn) and ``far_0_1pct`` (hang-up) at 1 % / 0.1 % of bona
    fide false alarms, measured per chunk, or, given the rows, on the live policy's evidence: the mean of
    ``EVIDENCE_WINDOW`` consecutive chunks of a recording for warn and of ``HANGUP_WINDOW`` for hang-up, which
    is what each threshold is compared with in service. ``warn_window`` / ``hangup_window`` say which (1: per
    chunk; ``policy_windows=False`` keeps both per chunk even with the rows). ``per_speaker`` (needs the
    rows): the false-alarm rate is averaged over speaker groups, each person counting the same
    (``metrics.threshold_at_far``), instead of pooled over chunks."""
    if per_speaker and rows is None:
        raise ValueError("per-speaker calibration needs the rows")
    e, t_eer = eer(labels, scores)
    windows = (EVIDENCE_WINDOW, HANGUP_WINDOW) if rows is not None and policy_windows else (1, 1)

    def threshold(window: int, far: float) -> float:
        if rows is None:
            return threshold_at_far(scores[labels == 0], far)
        if not per_speaker:
            ev_y, ev = evidence_scores(rows, labels, scores, window=window)
            return threshold_at_far(ev[ev_y == 0], far)
        ev_y, ev, ev_g = evidence_scores(rows, labels, scores, window=window, with_groups=True)
        return threshold_at_far(ev[ev_y == 0], far, ev_g[ev_y == 0])

    return {"eer": t_eer, "far_1pct": threshold(windows[0], 0.01), "far_0_1pct": threshold(windows[1], 0.001),
            "dev_eer": e, "warn_window": windows[0], "hangup_window": windows[1],
            "far_averaged_over": "speakers" if per_speaker else "chunks"}


def evidence_windows(thresholds: dict) -> dict[str, int]:
    """The calibration file's ``evidence_windows`` entry for thresholds made by ``calibrate``."""
    return {"warn": int(thresholds.get("warn_window", 1)), "hangup": int(thresholds.get("hangup_window", 1))}


KEPT_HEADINGS = ("## Results and changes (hand-written", "## Notes kept from the card of")


def hand_written_notes(card: Path) -> str:
    """The hand-written sections of an existing model card (from its first ``## Results and changes
    (hand-written, <date>)`` or earlier kept-notes heading to the end), to append to the card a retrain writes:
    the measurements and reasons recorded there would otherwise be lost with the file. Marked as written for
    the model they describe; their headings move one level down."""
    try:
        lines = card.read_text().splitlines()
    except OSError:
        return ""
    start = next((i for i, line in enumerate(lines) if line.startswith(KEPT_HEADINGS)), None)
    if start is None:
        return ""
    old = lines[0].split("`")[1] if lines[0].count("`") >= 2 else "the previous model"
    kept = ["#" + line if line.startswith("## ") else line for line in lines[start:]]
    return (f"\n## Notes kept from the card of `{old}`\n\nWritten for that model, not this one; kept on "
            "retraining.\n\n" + "\n".join(kept).rstrip() + "\n")


def model_card(cal: dict, train: list[dict], dev: list[dict]) -> str:
    """The model card written next to the model: what it was trained on, how it did on dev, its limits."""
    def counts(rows: list[dict], key: str) -> str:
        c = Counter(r[key] for r in rows if key != "generator" or r["label"] != "bonafide")
        return ", ".join(f"{k} ({v})" for k, v in sorted(c.items()))

    t = cal["thresholds"]
    w = cal.get("evidence_windows") or {"warn": 1, "hangup": 1}
    pooled = cal.get("calibrated_on", "dev") != "dev"
    blend = cal.get("blend")
    return "\n".join([
        f"# Model card: GBM detector `{cal['version']}`", "",
        "LightGBM over hand-crafted features of 2-second, 8 kHz speech chunks (`detector/features.py`, schema "
        f"{cal['feature_schema']}, {len(cal['feature_names'])} features in groups bispec, lfcc, cqcc, mfcc, spectral, "
        "subband, modulation, phase, periodicity, lpc). Output: probability that the chunk is synthetic or replayed.",
        *(["", "Blended with a one-hidden-layer MLP (64 units) on the same features (`detector/mlp.py`, "
           f"`{MLP_FILE}`, seed {cal.get('mlp_seed')}): each model's log-odds divided by its spread on held-out bona "
           f"fide speech (trees {blend['gbm_logit_sd']:.3f}, MLP {blend['mlp_logit_sd']:.3f}), averaged. The MLP "
           "draws a smooth boundary where trees extrapolate flat, and the two err on different unseen families "
           "(docs/generalisation.md). Explanations (`scan --explain`) cover the trees' half."] if blend else []),
        *_ensemble_lines(cal),
        "", "## Training data", "",
        f"- train: {cal['train']['n_bonafide']} bona fide chunks, {cal['train']['n_spoof']} spoof chunks",
        f"- bona fide speakers (train): {counts([r for r in train if r['label'] == 'bonafide'], 'speaker')}",
        f"- generator families (train): {counts(train, 'generator')}",
        (f"- train and dev pooled ({counts(dev, 'generator')} are dev families); no early stopping, "
         f"{cal['best_iteration']} rounds" if pooled else
         f"- dev (early stopping and calibration only): {cal['dev']['n_bonafide']} bona fide, "
         f"{cal['dev']['n_spoof']} spoof; families {counts(dev, 'generator')}"),
        f"- corpus manifest sha256 `{cal['corpus_manifest_sha256'][:16]}…`",
        *_capture_line(train),
        "",
        "Weights: each class weighs the same; within a class each speaker group (bona fide) or generator family "
        "(spoof) weighs the same.", "",
        f"## Calibration ({cal.get('calibrated_on', 'dev')})", "",
        f"- EER {100 * cal['dev']['eer']:.2f} %, accuracy at the EER threshold "
        f"{100 * cal['dev']['accuracy_at_eer_threshold']:.2f} %, best round {cal['best_iteration']}",
        f"- thresholds: EER {t['eer']:.4f} (per chunk); warn (1 % bona fide false alarms on the live "
        f"policy's {w['warn']}-chunk evidence) {t['far_1pct']:.4f}; "
        f"hangup (0.1 % on {w['hangup']}-chunk evidence) {t['far_0_1pct']:.4f}"
        + ("; each rate is the mean over the calibration speakers (every person counts the same), not over "
           "their chunks" if cal.get("far_averaged_over") == "speakers" else ""), "",
        "## Evaluation", "",
        "See `models/reports/eval/report.md` (unseen speakers and generator families) and "
        "`models/reports/lofo/lofo.md` (leave-one-family-out × leave-speakers-out; "
        "`models/reports/lofo_crossed/lofo.md`: every family against every speaker fold).", "",
        "## Limits", "",
        "- Trained only on speech that Debian/PyPI packages ship and on spoofs made here: few bona fide voices, "
        "mostly classic TTS and signal-processing vocoders. Modern neural TTS and voice conversion are under-"
        "represented; treat scores on them as weak evidence.",
        "- Judges 2-s chunks of speech; the live policy averages several chunks before acting.",
        "- Telephone band (8 kHz) only; wideband input is resampled to 8 kHz.", ""])


def _ensemble_lines(cal: dict) -> list[str]:
    """The card's paragraph on a seed ensemble (``train gbm --seeds``), if the model is one."""
    ens = cal.get("ensemble")
    if not ens:
        return []
    return ["", f"The mean of {len(ens['seeds'])} boosters that differ only in their boosting seed "
            f"({', '.join(map(str, ens['seeds']))}; row and feature bagging), stored as one model: the trees of "
            "all members with every leaf value divided by their number (`detector/booster_mean.py`), so the score "
            "is the members' mean log-odds and explanations are their mean contributions. Averaging narrows the "
            "spread of scores on voices no member was trained on, where false alarms come from "
            "(docs/generalisation.md, \"A seed ensemble\")."]


def _capture_line(rows: list[dict]) -> list[str]:
    """The card's line on the capture stage (room, microphone, codec), for corpora built with it."""
    caps = {lab: [r.get("capture") or "none" for r in rows if r["label"] == lab] for lab in ("bonafide", "spoof")}
    if not any(c != "none" for v in caps.values() for c in v):
        return []
    share = {lab: 100 * sum(c != "none" for c in v) / max(len(v), 1) for lab, v in caps.items()}
    return [f"- capture stage (room / microphone / codec before the telephone channel, same odds for both classes): "
            f"{share['bonafide']:.0f} % of bona fide and {share['spoof']:.0f} % of spoof chunks"]


class _Checkpoint:
    """Saves the booster every ``every`` rounds so an interrupted run resumes where it stopped."""

    def __init__(self, path: Path, every: int) -> None:
        self.path, self.every = path, every
        self.order = 20

    def __call__(self, env: object) -> None:
        it = env.iteration + 1  # type: ignore[attr-defined]
        if it % self.every == 0:
            tmp = self.path.with_suffix(".tmp")
            env.model.save_model(str(tmp))  # type: ignore[attr-defined]
            tmp.replace(self.path)


@dataclass
class _TrainingData:
    """What every member of ``train_gbm`` trains and is early-stopped on. Each member gets LightGBM datasets
    of its own: a resumed member's checkpoint attaches to the datasets it trains on (an initial score that
    would turn off the next member's ``boost_from_average``)."""

    x_train: np.ndarray
    y_train: np.ndarray
    w_train: np.ndarray
    x_dev: np.ndarray
    y_dev: np.ndarray
    w_dev: np.ndarray
    names: list[str]

    def datasets(self) -> tuple[object, object]:
        import lightgbm as lgb

        dtrain = lgb.Dataset(self.x_train, self.y_train, weight=self.w_train, feature_name=self.names,
                             free_raw_data=False)
        return dtrain, lgb.Dataset(self.x_dev, self.y_dev, weight=self.w_dev, reference=dtrain,
                                   feature_name=self.names)


def _train_member(p: dict, data: _TrainingData, rounds: int, ckpt: Path, checkpoint_every: int, resume: bool,
                  stopping: list, label: str, callbacks: list | None) -> tuple[object, int]:
    """One booster, checkpointed to ``ckpt`` every ``checkpoint_every`` rounds (resumed from it when
    ``resume``), cut to its best round. Returns it and the round it resumed from."""
    import lightgbm as lgb

    init_model, done_rounds = None, 0
    if resume and ckpt.is_file():
        init_model = lgb.Booster(model_file=str(ckpt))
        done_rounds = init_model.current_iteration()
        print(f"train gbm: {label}resuming from {ckpt} at round {done_rounds}", file=sys.stderr)

    def progress(env: object) -> None:
        it = env.iteration + 1  # type: ignore[attr-defined]
        if it % 25 == 0:
            res = {f"{d}:{m}": round(float(v), 4) for d, m, v, _ in env.evaluation_result_list}  # type: ignore[attr-defined]
            print(f"\rtrain gbm: {label}round {it}/{rounds} {res}", end="", file=sys.stderr, flush=True)

    dtrain, ddev = data.datasets()
    booster = lgb.train(p, dtrain, num_boost_round=max(rounds - done_rounds, 0), valid_sets=[ddev],
                        valid_names=["dev"], init_model=init_model, keep_training_booster=True,
                        callbacks=[*stopping, _Checkpoint(ckpt, checkpoint_every), progress, *(callbacks or [])])
    print(file=sys.stderr)
    best = booster.best_iteration or booster.current_iteration()
    return lgb.Booster(model_str=booster.model_to_string(num_iteration=best)), done_rounds


def train_gbm(corpus_dir: Path, out_dir: Path, run_dir: Path, rounds: int = 1500, seed: int = DEFAULT_SEED,
              checkpoint_every: int = 50, early_stopping: int = 100, params: dict | None = None,
              callbacks: list | None = None, pooled: bool = False, oof_folds: int = 5,
              mlp_seed: int | None = None, far_per_speaker: bool = False, n_seeds: int = 1) -> dict:
    """Train, calibrate and save the GBM.

    Default: fit on train, early-stop and calibrate on dev. ``pooled``: fit on train and dev together for
    exactly ``rounds`` rounds and calibrate on out-of-fold scores (``detector.oof``), so that more voices
    and families are learnt from and the thresholds rest on every pooled speaker, each scored by a model
    that never heard it. ``mlp_seed``: also train the MLP (``detector.mlp``) and ship the blend of both.
    ``far_per_speaker``: the warn / hang-up thresholds hold the false-alarm rate averaged over the calibration
    speakers, each person counting the same (``calibrate(per_speaker=True)``), not pooled over chunks.
    ``n_seeds`` > 1: ship the mean of that many boosters with consecutive boosting seeds from ``seed``
    (``detector.booster_mean``), each member trained, checkpointed and resumed in turn; with ``pooled`` the
    out-of-fold scores come from fold ensembles of as many members.
    """
    import lightgbm as lgb

    from detector.corpus.manifest import load_train_dev, manifest_sha256

    train, dev = load_train_dev(corpus_dir)
    if pooled:
        train = train + dev
    x_train, x_dev = corpus_features(corpus_dir, train), corpus_features(corpus_dir, dev)
    y_train = np.array([r["label"] != "bonafide" for r in train], dtype=np.int32)
    y_dev = np.array([r["label"] != "bonafide" for r in dev], dtype=np.int32)
    names = list(feature_names())
    p = dict(DEFAULT_PARAMS, seed=seed, **(params or {}))
    data = _TrainingData(x_train, y_train, balanced_weights(train), x_dev, y_dev, balanced_weights(dev), names)

    run_dir.mkdir(parents=True, exist_ok=True)
    state_path = run_dir / "gbm.state.json"
    data_key = hashlib.sha256(json.dumps([len(train), len(dev), pooled, p, rounds, early_stopping], sort_keys=True,
                                         default=str).encode()).hexdigest()
    same_run = state_path.is_file() and json.loads(state_path.read_text()).get("key") == data_key
    state_path.write_text(json.dumps({"key": data_key}))
    seeds = member_seeds(p, n_seeds)
    members, member_rounds, done_rounds = [], [], 0
    for m, member_seed in enumerate(seeds):
        stopping = [] if pooled else [lgb.early_stopping(early_stopping, first_metric_only=True, verbose=False)]
        label = f"member {m + 1}/{len(seeds)} (seed {member_seed}) " if len(seeds) > 1 else ""
        # a finished member is kept until the model is saved, so an interruption in the out-of-fold fits
        # (most of a pooled run) or in a later member does not train it again
        finished, ckpt = run_dir / f"gbm.member-{member_seed}.txt", run_dir / f"gbm.ckpt-{member_seed}.txt"
        if same_run and finished.is_file():
            booster = lgb.Booster(model_file=str(finished))
            print(f"train gbm: {label}already trained in {finished}", file=sys.stderr)
        else:
            booster, resumed = _train_member(dict(p, seed=member_seed), data, rounds, ckpt, checkpoint_every,
                                             same_run, stopping, label, callbacks)
            done_rounds = max(done_rounds, resumed)
            booster.save_model(str(finished))
            ckpt.unlink(missing_ok=True)
        members.append(booster)
        member_rounds.append(booster.current_iteration())
    from detector.booster_mean import mean_booster

    booster = mean_booster(members)
    best = member_rounds[0]
    mlp = None
    if mlp_seed is not None:
        print("train gbm: fitting the MLP", file=sys.stderr)
        mlp = fit_mlp(x_train, y_train, seed=mlp_seed)
    if pooled:
        from detector.oof import oof_logits

        logits = oof_logits(x_train, y_train, train, p, best, n_folds=oof_folds, mlp_seed=mlp_seed,
                             n_seeds=len(seeds))
        scored = ~np.isnan(logits[:, 0])
        cal_y, logits = y_train[scored], logits[scored]
        cal_rows = [r for r, ok in zip(train, scored, strict=True) if ok]
    else:
        cal_y, cal_rows = y_dev, dev
        logits = np.column_stack([booster.predict(x_dev, raw_score=True),
                                  mlp.logit(x_dev) if mlp is not None else np.full(len(dev), np.nan)])
    blend, cal_scores = held_out_blend(logits, cal_y)
    thresholds = calibrate(cal_y, cal_scores, cal_rows, per_speaker=far_per_speaker)
    dev_rates = rates_at(cal_y, cal_scores, thresholds["eer"])

    out_dir.mkdir(parents=True, exist_ok=True)
    booster.save_model(str(out_dir / MODEL_FILE))
    if mlp is not None:
        mlp.save(out_dir / MLP_FILE)
    else:
        (out_dir / MLP_FILE).unlink(missing_ok=True)
    version = dt.datetime.now(dt.UTC).strftime("gbm-%Y%m%d-%H%M%S")
    calibration = {
        "version": version, "feature_schema": FEATURE_SCHEMA_VERSION, "feature_names": names,
        "best_iteration": best, "params": p, "resumed_from_round": done_rounds,
        **({"ensemble": ensemble_entry(seeds, members)} if len(seeds) > 1 else {}),
        "thresholds": {k: thresholds[k] for k in ("eer", "far_1pct", "far_0_1pct")},
        "thresholds_basis": f"eer per chunk; warn at 1 % of bona fide {thresholds['warn_window']}-chunk and hangup "
                            f"at 0.1 % of bona fide {thresholds['hangup_window']}-chunk evidence windows (the live "
                            "policy's rolling means)" + ("; each false-alarm rate is the mean over the calibration "
                                                         "speakers, each person counting the same"
                                                         if far_per_speaker else ""),
        "far_averaged_over": thresholds["far_averaged_over"],
        "evidence_windows": evidence_windows(thresholds),
        **({"blend": blend.to_json(), "mlp_seed": mlp_seed} if blend is not None else {}),
        "calibrated_on": f"out-of-fold scores of train+dev ({oof_folds} folds by speaker and family)" if pooled
        else "dev",
        "dev": {"eer": thresholds["dev_eer"], "accuracy_at_eer_threshold": dev_rates["accuracy"],
                "n_bonafide": int((cal_y == 0).sum()), "n_spoof": int((cal_y == 1).sum())},
        "train": {"n_bonafide": int((y_train == 0).sum()), "n_spoof": int((y_train == 1).sum()),
                  "speakers": sorted({r["speaker"] for r in train if r["label"] == "bonafide"}),
                  "generators": sorted({r["generator"] for r in train if r["label"] != "bonafide"})},
        "corpus_manifest_sha256": manifest_sha256(corpus_dir),
    }
    (out_dir / CALIBRATION_FILE).write_text(json.dumps(calibration, indent=1))
    if pooled:  # the fusion is fitted on dev: it needs dev scores of models that never saw those rows
        is_dev = np.array([r["split"] == "dev" for r in train])
        oof_all = np.full(len(train), np.nan)
        oof_all[np.flatnonzero(scored)] = cal_scores
        np.savez_compressed(out_dir / OOF_FILE, version=version,
                            paths=np.array([r["path"] for r, d in zip(train, is_dev, strict=True) if d]),
                            scores=oof_all[is_dev])
    else:
        (out_dir / OOF_FILE).unlink(missing_ok=True)
    card = out_dir / "gbm.md"
    card.write_text(model_card(calibration, train, dev) + hand_written_notes(card))
    for member_seed in seeds:
        (run_dir / f"gbm.member-{member_seed}.txt").unlink(missing_ok=True)
    state_path.unlink(missing_ok=True)
    print(f"train gbm: best round {best}, dev EER {thresholds['dev_eer']:.2%}, thresholds "
          f"eer={thresholds['eer']:.3f} warn={thresholds['far_1pct']:.3f} hangup={thresholds['far_0_1pct']:.3f}; "
          f"saved {out_dir / MODEL_FILE}", file=sys.stderr)
    return calibration
