"""The CPU-trained neural vocoder families: training learns, generation is deterministic, missing weights skip."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")
try:
    from detector.corpus.generators._util import import_pyworld

    import_pyworld()
except ImportError:
    pytest.skip("pyworld (F0 for the vocoders) is not installed", allow_module_level=True)

from detector.corpus import build as buildmod  # noqa: E402
from detector.corpus.neural_vocoders import FAMILIES, TRAIN_COMMAND, synth, weights_problem  # noqa: E402
from detector.corpus.neural_vocoders.train import train  # noqa: E402

TINY = {"hifigan": {"ch": 32}, "nsf": {"ch": 8, "dilations": (1, 2, 4), "blocks": 1}, "mbmelgan": {"ch": 32},
        "wavernn": {"hidden": 32, "cond": 8, "fold": 400, "overlap": 40}}


def _voiced(seconds: float, f0: float, seed: int) -> np.ndarray:
    """A crude vowel-like signal: glottal-ish harmonics with a slow F0 glide and a little noise, at 8 kHz."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(8000 * seconds)) / 8000
    f = f0 * (1 + 0.1 * np.sin(2 * np.pi * 0.7 * t))
    ph = 2 * np.pi * np.cumsum(f) / 8000
    x = sum(np.sin(k * ph) / k for k in range(1, 12) if k * f0 < 3800)
    x = x * (0.6 + 0.4 * np.sin(2 * np.pi * 2.5 * t)) + 0.01 * rng.standard_normal(t.size)
    return (0.5 * x / np.max(np.abs(x))).astype(np.float32)


DATA = [("spk_a", _voiced(2.0, 120.0, 1)), ("spk_b", _voiced(2.0, 210.0, 2))]


@pytest.mark.parametrize("family", FAMILIES)
def test_tiny_vocoder_loss_decreases(family, tmp_path):
    # the autoregressive family starts from a uniform 256-way guess and learns it more slowly per step
    steps, seg = (80, 800) if family == "wavernn" else (40, 1600)
    rec = train(family, tmp_path, seed=3, steps=steps, data=DATA, seg=seg, batch=4, config=TINY[family],
                quality=False, log_every=1000)
    assert rec["steps_done"] == steps
    assert rec["loss_last"] < rec["loss_first"] * 0.95, rec
    assert (tmp_path / f"{family}.pt").is_file() and (tmp_path / f"{family}.json").is_file()
    # the kernels' instruction set is recorded (the pin itself is checked in a fresh process below)
    assert rec["cpu_capability"] == torch.backends.cpu.get_cpu_capability()


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    d = tmp_path_factory.mktemp("vocoders")
    for fam in FAMILIES:
        train(fam, d, seed=5, steps=3, data=DATA, seg=1600, batch=2, config=TINY[fam], quality=False)
    return d


@pytest.mark.parametrize("family", FAMILIES)
def test_generator_is_deterministic_from_saved_weights(family, tiny_weights, monkeypatch):
    monkeypatch.setenv("CALLGUARD_VOCODERS_DIR", str(tiny_weights))
    synth._CACHE.clear()
    from detector.corpus.generators import load_all

    mod = load_all()[family]
    assert mod.check() is None
    assert mod.ATTACK_TYPE == "neural"
    src = _voiced(1.5, 150.0, 9)
    src16 = np.repeat(src, 2)  # a 16 kHz source must work too
    outs = [mod.transform(src16, 16000, np.random.default_rng(11)) for _ in range(2)]
    (y1, sr1, v1), (y2, sr2, v2) = outs
    assert sr1 == sr2 == 8000 and v1 == v2
    assert y1.dtype == np.float32 and abs(len(y1) - len(src)) <= 80 and np.any(y1)
    np.testing.assert_array_equal(y1, y2)
    synth._CACHE.clear()  # a fresh load gives the same samples too
    y3 = mod.transform(src16, 16000, np.random.default_rng(11))[0]
    np.testing.assert_array_equal(y1, y3)


def test_nsf_voice_conversion_variant_changes_pitch_setting(tiny_weights, monkeypatch):
    monkeypatch.setenv("CALLGUARD_VOCODERS_DIR", str(tiny_weights))
    from detector.corpus.generators import nsf

    voices = {nsf.transform(_voiced(1.0, 150.0, 4), 8000, np.random.default_rng(s))[2] for s in range(12)}
    assert "copy" in voices
    vc = [v for v in voices if v.startswith("vc_")]
    assert vc
    for v in vc:
        st = abs(float(v.split("_f0")[1].split("st")[0]))
        warp = float(v.split("warp")[1])
        assert 2.0 <= st <= 4.0 and 0.9 <= warp <= 1.1


@pytest.mark.parametrize("family", FAMILIES)
def test_missing_weights_skip_the_family_with_a_clear_message(family, tmp_path, monkeypatch):
    monkeypatch.setenv("CALLGUARD_VOCODERS_DIR", str(tmp_path / "empty"))
    msg = weights_problem(family)
    assert msg and TRAIN_COMMAND in msg and str(tmp_path / "empty" / f"{family}.pt") in msg
    from detector.corpus.generators import load_all

    assert load_all()[family].check() == msg
    info = {"chunks": 1, "build_seconds": 1.0, "seed": 1, "size": "small", "manifest_sha256": "0" * 64,
            "families": {}, "missing_generators": {family: msg}, "missing_sources": [], "n_failed_jobs": 0}
    text = buildmod.summary_text(info)
    assert f"SKIPPED neural vocoder families: {family}" in text and TRAIN_COMMAND in text
    info["missing_generators"] = {family: "skipped on request (--skip)"}
    assert "SKIPPED neural vocoder" not in buildmod.summary_text(info)


def test_small_build_has_neural_vocoder_spoofs_of_same_split_speakers(small_corpus):
    """Only when the vocoders are trained (data/vocoders): their chunks land in their split, made from its humans."""
    import os

    from detector.corpus.manifest import load_manifest
    from detector.corpus.splits import FAMILY_SPLIT

    if os.environ.get("CALLGUARD_VOCODERS_DIR") or any(weights_problem(f) for f in FAMILIES):
        pytest.skip("neural vocoders not trained here (callguard corpus train-vocoders)")
    rows = load_manifest(small_corpus)
    for fam in FAMILIES:
        mine = [r for r in rows if r["generator"] == fam]
        assert mine, fam
        assert {r["split"] for r in mine} == {FAMILY_SPLIT[fam]}
        assert {r["attack_type"] for r in mine} == {"neural"}
        human = {r["speaker"] for r in rows if r["split"] == FAMILY_SPLIT[fam] and r["label"] == "bonafide"}
        assert {r["speaker"] for r in mine} <= human
    # build_info names the weights that made each family (their training differs between machines)
    import hashlib
    import json

    from detector.corpus.neural_vocoders import weights_path

    info = json.loads((small_corpus / "build_info.json").read_text())
    for fam in FAMILIES:
        assert info["vocoder_weights"][fam]["sha256"] == hashlib.sha256(weights_path(fam).read_bytes()).hexdigest()


def test_mbmelgan_pqmf_synthesis_bank_splits_the_band_into_four_power_complementary_bands():
    from detector.corpus.neural_vocoders.models import pqmf_synthesis_filters

    g = pqmf_synthesis_filters(bands=4)
    power = np.abs(np.fft.rfft(g, 1024, axis=1)) ** 2       # [4, 513], 0..4 kHz at 8 kHz
    total = power[:, 20:-20].sum(axis=0)
    assert 10 * np.log10(total.max() / total.min()) < 0.1   # flat sum: no band edge is lost or doubled
    centres = [(k + 0.5) * 512 / 4 for k in range(4)]       # each filter passes its own quarter
    for k, c in enumerate(centres):
        assert np.argmax(power[:, int(c)]) == k


def test_wavernn_folded_sampling_returns_one_bounded_sample_per_input_sample():
    from detector.corpus.neural_vocoders.models import build_model

    torch.manual_seed(0)
    model = build_model("wavernn", {"hidden": 16, "cond": 4, "fold": 200, "overlap": 40}).eval()
    with torch.no_grad():
        for frames in (3, 7, 25):  # shorter than one fold, several folds, several folds with a ragged end
            y = model(torch.zeros(1, 40, frames), None, torch.Generator().manual_seed(1))
            assert y.shape == (1, frames * 80) and torch.isfinite(y).all() and float(y.abs().max()) <= 1.0


def test_vocoder_code_pins_torch_to_avx2_kernels_so_weights_match_across_machines(cpu_capability_after_import):
    # AVX-512 kernels round differently from AVX2 ones; the corpus must not depend on the build machine
    assert cpu_capability_after_import("detector.corpus.neural_vocoders.dsp") == "AVX2"
    # an explicit choice in the environment still wins
    module = "detector.corpus.neural_vocoders.dsp"
    assert cpu_capability_after_import(module, ATEN_CPU_CAPABILITY="default") == "DEFAULT"
