"""The exported WavLM graph: onnxruntime matches torch, any length and batch, level invariance, no torch at
scoring time. Parity tolerance: max |logit_onnx - logit_torch| < 1e-4 (measured ~2e-7)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from detector.scoring import ModelError

TOL = 1e-4


def test_missing_model_is_a_clear_model_error(tmp_path):
    from detector.wavlm_onnx import WavLMDetector

    with pytest.raises(ModelError, match="train wavlm"):
        WavLMDetector.load(tmp_path)


def test_shipped_model_scores_with_onnxruntime_alone():
    from detector.scoring import DEFAULT_MODELS_DIR, load_detector

    if not (DEFAULT_MODELS_DIR / "wavlm.onnx").is_file():
        pytest.skip("no shipped wavlm.onnx")
    det = load_detector("wavlm")
    assert det.version.startswith("wavlm-") and det.thresholds.warn <= det.thresholds.hangup
    assert (DEFAULT_MODELS_DIR / "wavlm.onnx").stat().st_size < 50e6
    p = det.score(list(_speechlike(2, 16000, 9)))
    assert p.shape == (2,) and np.all((p > 0) & (p < 1))


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The real (compact) architecture with seeded random weights, exported as a shipped models dir."""
    pytest.importorskip("torch")
    from detector.wavlm_model import build_model, export_onnx

    out = tmp_path_factory.mktemp("wavlm_models")
    model = build_model(seed=3)
    export_onnx(model, out / "wavlm.onnx")
    (out / "wavlm.calibration.json").write_text(json.dumps(
        {"version": "wavlm-test", "thresholds": {"eer": 0.5, "far_1pct": 0.6, "far_0_1pct": 0.7}}))
    return model, out


def _speechlike(n: int, length: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(length) / 8000
    x = [0.2 * np.sin(2 * np.pi * rng.uniform(90, 250) * t) * (1 + np.sin(2 * np.pi * 3 * t))
         + 0.02 * rng.standard_normal(length) for _ in range(n)]
    return np.asarray(x, dtype=np.float32)


def test_onnx_matches_torch_on_random_inputs_of_any_length_and_batch(exported):
    from detector.wavlm_model import torch_logits
    from detector.wavlm_onnx import WavLMDetector

    model, out = exported
    det = WavLMDetector.load(out)
    for n, length in ((1, 16000), (3, 16000), (2, 12000), (1, 24000)):
        x = (np.random.default_rng(n * length).standard_normal((n, length)) * 0.1).astype(np.float32)
        diff = np.abs(det.logits(list(x)) - torch_logits(model, x))
        assert diff.max() < TOL, (n, length, diff.max())


def test_onnx_matches_torch_on_real_speech(exported, tiny_corpus):
    from detector.corpus.manifest import load_chunks, load_manifest
    from detector.wavlm_model import torch_logits
    from detector.wavlm_onnx import WavLMDetector

    model, out = exported
    rows = load_manifest(tiny_corpus)
    pick = [r for r in rows if r["label"] == "bonafide"][:4] + [r for r in rows if r["label"] == "spoof"][:4]
    x = load_chunks(tiny_corpus, pick)
    onnx_logits = WavLMDetector.load(out).logits(list(x))
    assert np.abs(onnx_logits - torch_logits(model, x)).max() < TOL
    assert np.ptp(onnx_logits) > 0  # different inputs, different outputs


def test_scores_do_not_depend_on_level(exported):
    from detector.wavlm_onnx import WavLMDetector

    det = WavLMDetector.load(exported[1])
    x = _speechlike(3, 16000, 1)
    p = det.score(list(x))
    assert np.all((p > 0) & (p < 1))
    assert np.abs(det.score(list(x * 0.5)) - p).max() < 1e-4  # the snoop's -6 dB
    int16 = [(c * 32767).astype(np.int16) for c in x]
    assert np.abs(det.score(int16) - p).max() < 1e-3


def test_a_model_trained_upright_scores_a_voice_and_its_inverse_the_same(exported, tmp_path):
    from detector.wavlm_onnx import WavLMDetector

    models = tmp_path / "models"
    models.mkdir()
    (models / "wavlm.onnx").write_bytes((exported[1] / "wavlm.onnx").read_bytes())
    cal = {"version": "wavlm-up", "model": {"input_polarity": "upright"},
           "thresholds": {"eer": 0.5, "far_1pct": 0.6, "far_0_1pct": 0.7}}
    (models / "wavlm.calibration.json").write_text(json.dumps(cal))
    x = _speechlike(3, 16000, 4)
    x[:, ::7] += 0.3  # a skewed excitation, so that the two orientations differ for the graph
    up = WavLMDetector.load(models)
    assert up.upright
    assert np.array_equal(up.logits(list(-x)), up.logits(list(x)))
    as_recorded = WavLMDetector.load(exported[1])  # no input_polarity: samples as they come
    assert not as_recorded.upright
    assert np.abs(as_recorded.logits(list(-x)) - as_recorded.logits(list(x))).max() > 1e-4

    cal["model"]["input_polarity"] = "sideways"
    (models / "wavlm.calibration.json").write_text(json.dumps(cal))
    with pytest.raises(ModelError, match="input_polarity"):
        WavLMDetector.load(models)


def test_mixed_lengths_are_batched_and_returned_in_order(exported):
    from detector.wavlm_onnx import WavLMDetector

    det = WavLMDetector.load(exported[1])
    det.batch_size = 2
    a, b = _speechlike(3, 16000, 2), _speechlike(2, 12000, 3)
    mixed = [a[0], b[0], a[1], a[2], b[1]]
    one_by_one = np.array([det.logits([c])[0] for c in mixed])
    assert np.abs(det.logits(mixed) - one_by_one).max() < TOL
    assert det.score([]).shape == (0,)


def test_export_is_opset_17_small_and_has_dynamic_axes(exported):
    onnx = pytest.importorskip("onnx")
    path = exported[1] / "wavlm.onnx"
    assert path.stat().st_size < 50e6
    m = onnx.load(str(path))
    assert {o.version for o in m.opset_import if o.domain in ("", "ai.onnx")} == {17}
    dims = m.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param for d in dims] == ["batch", "samples"]


def test_detector_loads_through_load_detector_without_importing_torch(exported):
    code = ("import sys, numpy as np\n"
            "from detector.scoring import load_detector\n"
            f"d = load_detector('wavlm', {str(exported[1])!r})\n"
            "p = d.score([np.zeros(16000, np.float32) + 0.01 * np.sin(np.arange(16000) / 5)])\n"
            "assert d.name == 'wavlm' and d.version == 'wavlm-test' and d.thresholds.hangup == 0.7\n"
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules\n"
            "print(float(p[0]))\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert 0.0 < float(res.stdout.strip()) < 1.0


def test_fine_tuned_16k_backbone_keeps_the_8k_interface(tmp_path):
    torch = pytest.importorskip("torch")
    from transformers import WavLMModel

    from detector.wavlm_model import build_model, compact_config, export_onnx, torch_logits
    from detector.wavlm_onnx import WavLMDetector

    torch.manual_seed(0)
    WavLMModel(compact_config(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, intermediate_size=64,
                              conv_dim=(16,) * 6 + (32,), conv_stride=(5, 2, 2, 2, 2, 2, 2),
                              conv_kernel=(10, 3, 3, 3, 3, 2, 2), num_conv_pos_embeddings=8,
                              num_conv_pos_embedding_groups=4)).save_pretrained(tmp_path / "ckpt")
    model = build_model(tmp_path / "ckpt")
    assert model.backbone_rate == 16000
    export_onnx(model, tmp_path / "w.onnx")
    x = _speechlike(2, 16000, 4)
    diff = np.abs(WavLMDetector.from_file(tmp_path / "w.onnx").logits(list(x)) - torch_logits(model, x))
    assert diff.max() < TOL


def test_bench_reports_cost_per_chunk(exported):
    from bench.wavlm_bench import bench_wavlm

    res = bench_wavlm(n_chunks=3, models_dir=exported[1])
    assert res["model"].endswith("wavlm.onnx") and res["threads"] == 1
    assert res["one_chunk_ms_per_chunk"] > 0 and res["batched_ms_per_chunk"] > 0
