"""`callguard retrain` from a review store, then `callguard models list` and `callguard models rollback`."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np

from detector.train_gbm import train_gbm
from plugin.cli import main
from plugin.review import ReviewStore

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "corpus"


def _robot(seed: int) -> np.ndarray:
    t = np.arange(16000) / 8000
    f0 = 110 + 15 * seed % 60
    x = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 25)) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t) ** 2)
    return (0.25 * x / np.abs(x).max()).astype(np.float32)


def test_retrain_promotes_then_models_list_and_rollback(tmp_path, capsys):
    corpus = tmp_path / "corpus"
    shutil.copytree(FIXTURE, corpus)
    models = tmp_path / "models"
    train_gbm(corpus, models, tmp_path / "run", rounds=30, early_stopping=1000,
              params={"min_data_in_leaf": 3, "num_leaves": 7, "learning_rate": 0.1})
    original = (models / "gbm.txt").read_bytes()
    with ReviewStore(tmp_path / "rv") as store:
        for c in range(6):
            for j in range(4):
                item = store.add(_robot(10 * c + j), call_id=f"call{c}", score=0.2, verdict="bonafide", chunk_index=j)
                store.label(item, "synthetic", "alice")
        store.label(item, "unsure", "bob")  # dropped from training
    capsys.readouterr()
    # weight 3: since feature schema 3 (the fixture corpus's chunks taken upright), 40 rounds at weight 1 moved the
    # held-out call's log loss by 1.6 % only (0.813 -> 0.801), under the 5 % a promotion needs
    assert main(["retrain", "--store", str(tmp_path / "rv"), "--corpus", str(corpus), "--models-dir", str(models),
                 "--rounds", "40", "--review-weight", "3", "--eer-tolerance", "1", "--far-tolerance", "1"]) == 0
    record = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert record["event"] == "promoted" and record["reviewed"]["items"] == 23
    assert (models / "gbm.txt").read_bytes() != original

    assert main(["models", "--models-dir", str(models), "list"]) == 0
    listing = capsys.readouterr().out
    assert f"* {record['challenger']}" in listing and "promoted" in listing

    assert main(["models", "--models-dir", str(models), "rollback", "--reason", "test"]) == 0
    assert "rolled back" in capsys.readouterr().out
    assert (models / "gbm.txt").read_bytes() == original
    log = [json.loads(line) for line in (models / "promotions.jsonl").read_text().splitlines()]
    assert [e["event"] for e in log] == ["promoted", "rollback"] and log[1]["reason"] == "test"
    assert main(["models", "--models-dir", str(models), "rollback"]) == 1


def test_retrain_without_labels_says_so(tmp_path, capsys):
    with ReviewStore(tmp_path / "rv") as store:
        store.add(_robot(0), call_id="c", score=0.9, verdict="spoof")
    assert main(["retrain", "--store", str(tmp_path / "rv"), "--models-dir", str(tmp_path / "m")]) == 2
    assert "no labelled items" in capsys.readouterr().err
