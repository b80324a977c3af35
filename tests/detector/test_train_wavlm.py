"""WavLM training: augmentation, balanced dev subset, resume after a kill, fine-tuning from a local checkpoint."""

from __future__ import annotations

import json

import numpy as np
import pytest

from detector.train_gbm import balanced_weights
from detector.train_wavlm import TrainSettings, augment, dev_subset, sampling_weights

# a model small enough to train a few steps in seconds; same code paths as the compact config
TINY = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 64,
        "conv_dim": (16, 16, 16, 16, 16, 32), "num_conv_pos_embeddings": 8, "num_conv_pos_embedding_groups": 4}


def _settings(**kw) -> TrainSettings:
    base = dict(steps=6, batch_size=4, lr=1e-3, warmup_steps=2, eval_every=3, patience=100, checkpoint_every=2,
                threads=1, dev_max=24, config_overrides=TINY)
    return TrainSettings(**{**base, **kw})


class _Kill(Exception):
    pass


def _kill_at(step_no: int):
    def on_step(step: int) -> None:
        if step == step_no:
            raise _Kill
    return on_step


def test_augmentation_keeps_shape_and_range_and_changes_the_audio():
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 8000
    x = np.stack([0.3 * np.sin(2 * np.pi * 220 * t), 0.9 * np.sin(2 * np.pi * 440 * t)]).astype(np.float32)
    y = augment(x, rng)
    assert y.shape == x.shape and y.dtype == np.float32
    assert np.all(np.abs(y) <= 1.0)
    assert not np.allclose(y, x)
    # same generator state, same augmentation: needed for exact resume
    assert np.array_equal(augment(x, np.random.default_rng(5)), augment(x, np.random.default_rng(5)))


def test_sampling_balances_classes_and_tempers_speaker_sizes():
    rows = ([{"label": "bonafide", "speaker": "big"}] * 900 + [{"label": "bonafide", "speaker": "small"}] * 9
            + [{"label": "spoof", "generator": "g1"}] * 50 + [{"label": "spoof", "generator": "g2"}] * 200)
    assert np.allclose(sampling_weights(rows, 0.0), balanced_weights(rows))
    w = sampling_weights(rows, 0.5)
    assert w[:909].sum() == pytest.approx(w[909:].sum())  # classes weigh the same
    big, small = w[:900].sum(), w[900:909].sum()
    assert big / small == pytest.approx(10.0)  # sqrt(900 / 9): the small speaker is lifted, not equalised
    assert w[959:].sum() / w[909:959].sum() == pytest.approx(2.0)


def test_dev_subset_is_stratified_and_fixed():
    dev = [{"path": f"b{i}", "label": "bonafide"} for i in range(300)] + \
          [{"path": f"s{i}", "label": "spoof"} for i in range(700)]
    sub = dev_subset(dev, 200, seed=3)
    assert len(sub) == 200
    assert sum(r["label"] == "bonafide" for r in sub) == 100
    assert sub == dev_subset(dev, 200, seed=3)
    assert dev_subset(dev[:50], 200, seed=3) == dev[:50]


def test_killed_run_resumes_to_the_same_weights_as_an_uninterrupted_one(tiny_corpus, tmp_path):
    torch = pytest.importorskip("torch")
    from detector.train_wavlm import CKPT_FILE, train_wavlm

    s = _settings()
    train_wavlm(tiny_corpus, tmp_path / "m_a", tmp_path / "run_a", s, export=False)
    with pytest.raises(_Kill):  # killed after step 5; the last checkpoint is from step 4
        train_wavlm(tiny_corpus, tmp_path / "m_b", tmp_path / "run_b", s, export=False, on_step=_kill_at(5))
    res = train_wavlm(tiny_corpus, tmp_path / "m_b", tmp_path / "run_b", s, export=False)
    assert res["resumed_from_step"] == 4 and res["steps_done"] == 6
    a = torch.load(tmp_path / "run_a" / CKPT_FILE, weights_only=False)
    b = torch.load(tmp_path / "run_b" / CKPT_FILE, weights_only=False)
    assert a["state"]["step"] == b["state"]["step"] == 6
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    sa, sb = a["optimizer"]["state"], b["optimizer"]["state"]
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k]["exp_avg"], sb[k]["exp_avg"]) and int(sa[k]["step"]) == int(sb[k]["step"]) == 6
    assert a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"] == 6
    assert [h["dev_eer"] for h in a["state"]["history"]] == [h["dev_eer"] for h in b["state"]["history"]]


def test_changed_settings_start_afresh_instead_of_resuming(tiny_corpus, tmp_path):
    pytest.importorskip("torch")
    from detector.train_wavlm import train_wavlm

    train_wavlm(tiny_corpus, tmp_path / "m", tmp_path / "run", _settings(steps=2, eval_every=2), export=False)
    res = train_wavlm(tiny_corpus, tmp_path / "m", tmp_path / "run", _settings(steps=2, eval_every=2, lr=2e-3),
                      export=False)
    assert res["resumed_from_step"] == 0


def test_training_exports_a_calibrated_onnx_model(tiny_corpus, tmp_path):
    pytest.importorskip("torch")
    from detector.train_wavlm import train_wavlm
    from detector.wavlm_onnx import WavLMDetector

    cal = train_wavlm(tiny_corpus, tmp_path / "models", tmp_path / "run", _settings(steps=4, eval_every=2))
    saved = json.loads((tmp_path / "models" / "wavlm.calibration.json").read_text())
    assert saved["version"] == cal["version"]
    t = saved["thresholds"]
    assert set(t) == {"eer", "far_1pct", "far_0_1pct"} and t["far_0_1pct"] >= t["far_1pct"]
    assert saved["dev"]["onnx_torch_max_abs_logit_diff"] < 1e-4
    assert saved["train"]["generators"] and saved["train"]["speakers"]
    assert saved["training"]["best_step"] in (2, 4)
    import torch  # the kernels that trained it are on record (the same process trained it)

    assert saved["training"]["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert saved["model"]["input_polarity"] == "upright"
    det = WavLMDetector.load(tmp_path / "models")
    assert det.upright  # it serves the way it was trained
    from detector.corpus.manifest import load_chunks, load_manifest

    rows = [r for r in load_manifest(tiny_corpus) if r["split"] == "dev"][:5]
    x = load_chunks(tiny_corpus, rows)
    p = det.score(list(x))
    assert p.shape == (5,) and np.all((p > 0) & (p < 1))
    assert np.array_equal(det.score(list(-x)), p)  # blind to the line's polarity


def test_training_batches_are_turned_upright_after_augmentation(tiny_corpus, tmp_path, monkeypatch):
    pytest.importorskip("torch")
    import torch

    from detector import train_wavlm as tw
    from detector.polarity import residual_skewness
    from detector.wavlm_model import build_model as real_build

    seen: list[np.ndarray] = []

    def spying_build(*a, **k):
        model = real_build(*a, **k)
        real_forward = model.forward

        def forward(audio: torch.Tensor) -> torch.Tensor:
            if model.training:
                seen.append(audio.detach().numpy().copy())
            return real_forward(audio)

        model.forward = forward
        return model

    monkeypatch.setattr("detector.wavlm_model.build_model", spying_build)
    for upright in (False, True):
        seen.clear()
        tw.train_wavlm(tiny_corpus, tmp_path / "m", tmp_path / f"run{upright}",
                       _settings(steps=3, eval_every=3, upright=upright), export=False)
        assert len(seen) == 3
        skews = np.array([residual_skewness(c) for batch in seen for c in batch])
        if upright:  # every chunk the network learnt from had the upright orientation
            assert np.all(skews >= 0), skews
        else:  # as recorded (and augmented), some come the other way up
            assert np.any(skews < 0), skews


def test_fine_tuning_starts_from_a_local_checkpoint_and_keeps_its_front_end(tiny_corpus, tmp_path):
    torch = pytest.importorskip("torch")
    from transformers import WavLMModel

    from detector.train_wavlm import BEST_FILE, train_wavlm
    from detector.wavlm_model import compact_config

    # a tiny "pretrained" 16 kHz-style checkpoint (320-sample hop), saved the Hugging Face way
    torch.manual_seed(1)
    cfg = compact_config(**{**TINY, "conv_dim": (16, 16, 16, 16, 16, 16, 32), "conv_stride": (5, 2, 2, 2, 2, 2, 2),
                            "conv_kernel": (10, 3, 3, 3, 3, 2, 2)})
    WavLMModel(cfg).save_pretrained(tmp_path / "ckpt")
    ref = WavLMModel.from_pretrained(tmp_path / "ckpt", local_files_only=True)
    settings = _settings(steps=3, eval_every=3, config_overrides={})
    res = train_wavlm(tiny_corpus, tmp_path / "m", tmp_path / "run", settings, init=tmp_path / "ckpt", export=False)
    model = res["model"]
    assert model.backbone_rate == 16000
    conv = model.backbone.feature_extractor.conv_layers[0].conv.weight
    assert torch.equal(conv, ref.feature_extractor.conv_layers[0].conv.weight)  # frozen
    moved = model.backbone.encoder.layers[0].feed_forward.output_dense.weight
    assert not torch.equal(moved, ref.encoder.layers[0].feed_forward.output_dense.weight)  # fine-tuned
    assert torch.load(tmp_path / "run" / BEST_FILE, weights_only=False)["meta"]["init"] == str(tmp_path / "ckpt")


def test_rawboost_perturbs_every_chunk_it_is_given_and_keeps_its_level():
    from detector.rawboost import rawboost

    t = np.arange(16000) / 8000
    x = (0.2 * np.sin(2 * np.pi * 300 * t) + 0.05 * np.sin(2 * np.pi * 1700 * t)).astype(np.float32)
    for seed in range(8):
        y = rawboost(x, np.random.default_rng(seed))
        assert y.shape == x.shape and y.dtype == np.float32 and np.all(np.isfinite(y))
        assert not np.allclose(y, x, atol=1e-3)
        assert np.sqrt(np.mean(y ** 2)) == pytest.approx(np.sqrt(np.mean(x ** 2)), rel=0.05)
    assert np.array_equal(rawboost(x, np.random.default_rng(3)), rawboost(x, np.random.default_rng(3)))


def test_augmentation_without_rawboost_draws_the_same_as_before():
    """rawboost_p = 0 must not consume random numbers: a run started before the option resumes identically."""
    x = np.random.default_rng(1).standard_normal((3, 16000)).astype(np.float32) * 0.1
    a = augment(x, np.random.default_rng(9))
    b = augment(x, np.random.default_rng(9), rawboost_p=0.0)
    c = augment(x, np.random.default_rng(9), rawboost_p=1.0)
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)


def test_wavlm_code_pins_torch_to_avx2_kernels_so_a_retrain_matches_across_machines(cpu_capability_after_import):
    pytest.importorskip("transformers")
    assert cpu_capability_after_import("detector.wavlm_model") == "AVX2"
    assert cpu_capability_after_import("detector.wavlm_model", ATEN_CPU_CAPABILITY="default") == "DEFAULT"
