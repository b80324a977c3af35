"""`callguard train wavlm` and `callguard train fusion` from the command line."""

import json
import shutil

import pytest

from plugin.cli import main


def test_train_wavlm_command_trains_the_compact_model_and_rerun_resumes(tiny_corpus, tmp_path, capsys):
    pytest.importorskip("torch")
    args = ["train", "wavlm", "--corpus", str(tiny_corpus), "--out", str(tmp_path / "models"), "--run-dir",
            str(tmp_path / "run"), "--steps", "2", "--checkpoint-every", "1", "--eval-every", "2",
            "--batch-size", "2", "--threads", "1"]
    assert main(args) == 0
    cal = json.loads((tmp_path / "models" / "wavlm.calibration.json").read_text())
    assert cal["model"]["backbone_rate"] == 8000 and cal["model"]["config"]["num_hidden_layers"] == 4
    assert (tmp_path / "models" / "wavlm.onnx").stat().st_size < 50e6
    capsys.readouterr()
    assert main(args) == 0  # the finished run is found again: no retraining, just export + calibration
    assert "resuming from" in capsys.readouterr().err


def test_train_wavlm_rejects_an_init_dir_that_is_not_a_checkpoint(tmp_path, capsys):
    pytest.importorskip("torch")
    assert main(["train", "wavlm", "--init", str(tmp_path), "--corpus", str(tmp_path)]) == 2
    assert "config.json" in capsys.readouterr().out


def test_train_fusion_without_models_says_what_to_train(tiny_corpus, tiny_models, tmp_path, capsys):
    models = tmp_path / "m"
    shutil.copytree(tiny_models, models, ignore=shutil.ignore_patterns("run"))
    assert main(["train", "fusion", "--corpus", str(tiny_corpus), "--models-dir", str(models)]) == 2
    assert "train wavlm" in capsys.readouterr().out
