"""`callguard retrain` end to end on the committed fixture corpus plus synthetic reviewed items: a challenger
continues the champion, is compared on the frozen eval split and on held-out reviewed calls, and is promoted
or refused with its metrics logged; rollback restores the previous model byte for byte."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from detector import versions
from detector.corpus.manifest import COLUMNS
from detector.gbm import GBMDetector
from detector.retrain import RetrainSettings, decide, retrain, split_reviewed
from detector.train_gbm import train_gbm

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "corpus"
SMALL = {"min_data_in_leaf": 3, "num_leaves": 7, "learning_rate": 0.1}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("corpus")
    shutil.copytree(FIXTURE, out, dirs_exist_ok=True)  # feature caches land in the copy, not in the repo
    return out


@pytest.fixture(scope="module")
def champion_dir(corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("champion")
    train_gbm(corpus, out, out / "run", rounds=30, early_stopping=1000, params=SMALL)
    shutil.rmtree(out / "run")
    return out


def _robot(seed: int) -> np.ndarray:
    """A buzzy, perfectly periodic 'voice' no corpus family sounds like."""
    rng = np.random.default_rng(seed)
    t = np.arange(16000) / 8000
    f0 = 110 + 15 * seed % 60
    x = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 25))
    x *= 0.5 + 0.5 * np.sin(2 * np.pi * 3 * t) ** 2
    return (0.25 * x / np.abs(x).max() + 0.002 * rng.normal(size=16000)).astype(np.float32)


def _reviewed(out: Path, calls: dict[str, str], per_call: int = 4, source: Path = FIXTURE) -> Path:
    """An export-like review directory: each call's chunks are robot audio with the given review label."""
    (out / "chunks" / "review").mkdir(parents=True, exist_ok=True)
    rows = []
    for ci, (call, label) in enumerate(calls.items()):
        for j in range(per_call):
            rel = f"chunks/review/{call}-{j}.wav"
            sf.write(out / rel, _robot(10 * ci + j), 8000, subtype="PCM_16")
            spoof = label in ("synthetic", "replay")
            rows.append({"path": rel, "label": "spoof" if spoof else "bonafide",
                         "attack_type": "unknown" if spoof else "bonafide",
                         "generator": "live-synthetic" if spoof else "bonafide", "speaker": f"call-{call}",
                         "group": f"call-{call}", "split": "review", "source": "review", "call_id": call,
                         "review_label": label, "start_s": 2.0 * j})
    with (out / "manifest.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS + ["call_id", "review_label"], restval="")
        w.writeheader()
        w.writerows(rows)
    return out


def _models(champion_dir: Path, tmp_path: Path) -> Path:
    models = tmp_path / "models"
    shutil.copytree(champion_dir, models)
    return models


def test_holdout_is_by_call_and_deterministic():
    rows = [{"call_id": f"c{i // 3}", "n": i} for i in range(30)]
    train, held = split_reviewed(rows, 0.3)
    assert {r["call_id"] for r in train}.isdisjoint({r["call_id"] for r in held})
    assert held and train and len(train) + len(held) == 30
    assert split_reviewed(list(reversed(rows)), 0.3)[1] == [r for r in reversed(rows) if r in held]
    two = [{"call_id": "a"}, {"call_id": "b"}]
    t, h = split_reviewed(two, 0.99)
    assert len(t) == 1 and len(h) == 1


def test_decision_rule_tolerates_small_eval_losses_only_and_needs_a_held_out_gain():
    s = RetrainSettings()
    ev = {"eer": 0.20, "far_hangup": 0.01}
    held = {"balanced_error": 0.5, "log_loss": 0.7}
    better = {"balanced_error": 0.25, "log_loss": 0.5}
    assert decide(ev, {"eer": 0.204, "far_hangup": 0.011}, held, better, s) == (True, [])
    ok, why = decide(ev, {"eer": 0.21, "far_hangup": 0.01}, held, better, s)
    assert not ok and "eval EER" in why[0]
    ok, why = decide(ev, {"eer": 0.2, "far_hangup": 0.02}, held, better, s)
    assert not ok and "false alarms" in why[0]
    ok, why = decide(ev, ev, held, {"balanced_error": 0.5, "log_loss": 0.69}, s)
    assert not ok and "held-out" in why[0]
    assert decide(ev, ev, held, {"balanced_error": 0.5, "log_loss": 0.6}, s)[0]


def test_challenger_is_promoted_logged_and_rolled_back_byte_for_byte(corpus, champion_dir, tmp_path):
    models = _models(champion_dir, tmp_path)
    before = {f: (models / f).read_bytes() for f in versions.MODEL_FILES if (models / f).is_file()}
    review = _reviewed(tmp_path / "review", {f"call{i}": "synthetic" for i in range(6)})
    champ_scores = GBMDetector.load(models).score([_robot(999)])
    # eval tolerance opened wide: the fixture's eval split is 19 chunks, one chunk moves its EER by points
    record = retrain(corpus, review, models, RetrainSettings(rounds=40, early_stopping=20, eer_tolerance=1.0,
                                                              far_tolerance=1.0))
    assert record["event"] == "promoted", record["reasons"]
    held = record["metrics"]["held_out"]
    assert held["challenger"]["log_loss"] < held["champion"]["log_loss"]
    assert record["reviewed"]["held_out_calls"] >= 1 and record["reviewed"]["train_calls"] >= 1
    assert set(record["metrics"]["eval"]["challenger"]) >= {"eer", "far_hangup"}
    log = versions.read_log(models)
    assert [e["event"] for e in log] == ["promoted"] and log[0]["metrics"] == json.loads(json.dumps(record["metrics"]))
    cur = versions.current_version(models)
    assert cur.name == record["challenger"]
    # the promoted model is installed at the top level (where `serve` loads it) and scores robots higher
    assert (models / "gbm.txt").read_bytes() == (cur.path / "gbm.txt").read_bytes()
    new = GBMDetector.load(models)
    assert new.version == record["challenger_model"] and new.calibration["retrain"]["parent"] == record["champion"]
    assert new.score([_robot(999)])[0] > champ_scores[0]
    listed = versions.list_versions(models)
    assert [v["current"] for v in listed] == [False, True] and listed[1]["decision"] == "promoted"

    left, restored = versions.rollback(models, reason="test")
    assert left == record["challenger"] and restored.name == record["champion"]
    after = {f: (models / f).read_bytes() for f in versions.MODEL_FILES if (models / f).is_file()}
    assert after == before
    assert versions.current_version(models).name == record["champion"]
    assert versions.read_log(models)[-1]["event"] == "rollback"
    with pytest.raises(versions.VersionError):
        versions.rollback(models)


def test_challenger_worse_on_held_out_calls_is_refused_and_logged(corpus, champion_dir, tmp_path):
    models = _models(champion_dir, tmp_path)
    before = (models / "gbm.txt").read_bytes()
    rows = {f"call{i}": "synthetic" for i in range(8)}
    # the calls the hold-out picks are labelled the other way: whatever the challenger learns, it gets worse there
    held = {c for c in rows if c in {r["call_id"] for r in split_reviewed([{"call_id": c} for c in rows], 0.3)[1]}}
    rows.update({c: "bonafide" for c in held})
    review = _reviewed(tmp_path / "review", rows)
    record = retrain(corpus, review, models, RetrainSettings(rounds=40, early_stopping=20, eer_tolerance=1.0,
                                                              far_tolerance=1.0))
    assert record["event"] == "refused"
    assert any("held-out" in r for r in record["reasons"])
    h = record["metrics"]["held_out"]
    assert h["challenger"]["log_loss"] > h["champion"]["log_loss"]
    assert (models / "gbm.txt").read_bytes() == before
    assert versions.current_version(models).name == record["champion"]
    assert not (versions.versions_dir(models) / record["challenger"]).exists()  # refused: files deleted
    assert versions.read_log(models)[-1]["event"] == "refused"


def test_challenger_worse_on_eval_than_the_tolerance_is_refused(corpus, champion_dir, tmp_path):
    models = _models(champion_dir, tmp_path)
    review = _reviewed(tmp_path / "review", {f"call{i}": "synthetic" for i in range(6)})
    # a negative tolerance demands an eval gain this tiny corpus cannot give: the eval guard must refuse
    record = retrain(corpus, review, models, RetrainSettings(rounds=20, early_stopping=10, eer_tolerance=-1.0,
                                                              keep_refused=True))
    assert record["event"] == "refused" and any("eval EER" in r for r in record["reasons"])
    info = json.loads((versions.versions_dir(models) / record["challenger"] / "version.json").read_text())
    assert info["decision"] == "refused" and "eval" in info["metrics"]


def test_reviewed_items_from_one_call_only_are_refused_before_training(corpus, champion_dir, tmp_path):
    models = _models(champion_dir, tmp_path)
    review = _reviewed(tmp_path / "review", {"only": "synthetic"})
    record = retrain(corpus, review, models, RetrainSettings(rounds=5))
    assert record["event"] == "refused" and record["challenger"] is None
    assert "two calls" in record["reasons"][0]


def test_watch_version_reports_each_promotion_once(champion_dir, tmp_path):
    models = _models(champion_dir, tmp_path)
    assert versions.watch_version(models) is None  # not versioned yet
    first = versions.ensure_versioned(models)
    seen = versions.watch_version(models)
    assert seen == first and versions.watch_version(models, seen) is None
    name = versions.new_version_name(models)
    shutil.copytree(first.path, versions.versions_dir(models) / name)
    versions.promote(models, name)
    assert versions.watch_version(models, seen).name == name


def test_rollback_refuses_a_version_of_an_older_feature_schema_and_keeps_the_installed_model(champion_dir, tmp_path):
    models = _models(champion_dir, tmp_path)
    first = versions.ensure_versioned(models)
    cal = json.loads((first.path / "gbm.calibration.json").read_text())
    (first.path / "gbm.calibration.json").write_text(json.dumps({**cal, "feature_schema": cal["feature_schema"] - 1}))
    name = versions.new_version_name(models)
    shutil.copytree(first.path, versions.versions_dir(models) / name)
    (versions.versions_dir(models) / name / "gbm.calibration.json").write_text(json.dumps(cal))
    versions.promote(models, name)
    installed = (models / "gbm.calibration.json").read_bytes()
    with pytest.raises(versions.VersionError, match="feature schema"):
        versions.rollback(models)
    assert versions.current_version(models).name == name
    assert (models / "gbm.calibration.json").read_bytes() == installed
    GBMDetector.load(models)  # still serves


def test_a_kept_refused_challenger_can_be_promoted_by_hand_logged_and_rolled_back(corpus, champion_dir, tmp_path,
                                                                                 capsys):
    from plugin.cli import main

    models = _models(champion_dir, tmp_path)
    before = (models / "gbm.txt").read_bytes()
    review = _reviewed(tmp_path / "review", {f"call{i}": "synthetic" for i in range(6)})
    # an impossible eval tolerance: refused whatever it learns, but kept in versions/
    record = retrain(corpus, review, models, RetrainSettings(rounds=20, early_stopping=10, eer_tolerance=-1.0,
                                                              keep_refused=True))
    assert record["event"] == "refused"
    name = record["challenger"]
    args = ["models", "--models-dir", str(models), "promote"]
    with pytest.raises(SystemExit):  # --reason is required: an override is always explained
        main([*args, name])
    assert main([*args, "no-such-version", "--reason", "x"]) == 1
    assert main([*args, name, "--reason", "reviewed by hand"]) == 0
    assert versions.current_version(models).name == name
    assert (models / "gbm.txt").read_bytes() == (versions.versions_dir(models) / name / "gbm.txt").read_bytes()
    last = versions.read_log(models)[-1]
    assert last["event"] == "manual_promotion" and last["to"] == name and last["reason"] == "reviewed by hand"
    assert last["from"] == record["champion"]
    assert main([*args, name, "--reason", "again"]) == 1  # already installed
    assert main(["models", "--models-dir", str(models), "rollback"]) == 0
    assert (models / "gbm.txt").read_bytes() == before
    capsys.readouterr()


def test_a_champion_with_an_mlp_gives_a_challenger_with_a_refitted_mlp_and_blend(corpus, tmp_path):
    champion = tmp_path / "champion"
    train_gbm(corpus, champion, tmp_path / "run", rounds=30, early_stopping=1000, params=SMALL, mlp_seed=0)
    models = _models(champion, tmp_path)
    before = {f: (models / f).read_bytes() for f in versions.MODEL_FILES if (models / f).is_file()}
    assert "gbm.mlp.npz" in before
    review = _reviewed(tmp_path / "review", {f"call{i}": "synthetic" for i in range(6)})
    record = retrain(corpus, review, models, RetrainSettings(rounds=40, early_stopping=20, eer_tolerance=1.0,
                                                              far_tolerance=1.0))
    assert record["event"] == "promoted", record["reasons"]
    new, old = GBMDetector.load(models), GBMDetector.load(champion)
    assert new.mlp is not None and not np.array_equal(new.mlp.w1, old.mlp.w1)  # learnt from the reviewed calls
    assert new.blend is not None and new.blend != old.blend
    assert new.score([_robot(999)])[0] > old.score([_robot(999)])[0]
    versions.rollback(models, reason="test")
    assert {f: (models / f).read_bytes() for f in versions.MODEL_FILES if (models / f).is_file()} == before


@pytest.mark.parametrize("from_scratch", [False, True])
def test_a_seed_ensemble_champion_stays_an_ensemble_when_retrained(corpus, tmp_path, from_scratch):
    champion = tmp_path / "champion"
    cal = train_gbm(corpus, champion, tmp_path / "run", rounds=30, early_stopping=1000, params=SMALL, n_seeds=3)
    models = _models(champion, tmp_path)
    review = _reviewed(tmp_path / "review", {f"call{i}": "synthetic" for i in range(6)})
    record = retrain(corpus, review, models, RetrainSettings(rounds=40, early_stopping=20, eer_tolerance=1.0,
                                                              far_tolerance=1.0, keep_refused=True,
                                                              from_scratch=from_scratch))
    out = versions.versions_dir(models) / record["challenger"]
    new = json.loads((out / "gbm.calibration.json").read_text())
    trees = GBMDetector.load(out).booster.num_trees()
    if from_scratch:  # three new members, each early-stopped on its own
        assert new["ensemble"]["seeds"] == [7, 8, 9] and trees == sum(new["ensemble"]["rounds"])
    else:  # the champion's averaged trees and the new ones on top
        assert new["ensemble"] == cal["ensemble"] and trees == sum(cal["ensemble"]["rounds"]) + record["new_rounds"]
    assert "The mean of 3 boosters" in (out / "gbm.md").read_text()
    # the challenger was calibrated on the whole model's scores, not on its first trees
    from detector.corpus.manifest import load_train_dev
    from detector.featcache import corpus_features
    from detector.metrics import eer

    _, dev = load_train_dev(corpus)
    labels = np.array([r["label"] != "bonafide" for r in dev], dtype=np.int32)
    scores = GBMDetector.load(out).score_features(corpus_features(corpus, dev))
    assert eer(labels, scores)[0] == pytest.approx(new["dev"]["eer"])
