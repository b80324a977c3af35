import glob

import numpy as np
import pytest

from detector.audio import load_audio, resample
from detector.chunking import speech_chunks
from detector.features import (
    FEATURE_SCHEMA_VERSION,
    extract_features,
    extract_matrix,
    feature_group,
    feature_names,
)

PROMPTS = sorted(glob.glob("/usr/share/asterisk/sounds/en_US_f_Allison/*.wav"))[20:40]


@pytest.fixture(scope="module")
def chunks():
    if not PROMPTS:
        pytest.skip("asterisk-core-sounds-en-wav is not installed (./setup installs it)")
    return [c.audio for c in speech_chunks(np.concatenate([load_audio(p) for p in PROMPTS]))][:8]


def test_every_required_feature_group_is_present():
    groups = {feature_group(n) for n in feature_names()}
    assert {"bispec", "lfcc", "cqcc", "spectral", "modulation", "phase", "subband"} <= groups
    assert len(feature_names()) == len(set(feature_names()))


def test_features_are_finite_and_in_schema_order(chunks):
    m = extract_matrix(chunks)
    assert m.shape == (len(chunks), len(feature_names()))
    assert np.isfinite(m).all()
    assert list(extract_features(chunks[0]).keys()) == list(feature_names())


def test_features_do_not_depend_on_level(chunks):
    a = extract_matrix(chunks)
    b = extract_matrix([c * 0.05 for c in chunks])  # 26 dB quieter, like the 6 dB snoop loss and more
    spread = a.std(axis=0) + 1e-3
    assert np.max(np.abs(a - b) / spread) < 0.05


def test_one_lost_frame_moves_features_less_than_a_different_chunk_does(chunks):
    base = extract_matrix(chunks)
    lost = []
    for c in chunks:
        c = c.copy()
        c[8000:8160] = 0.0  # one 20 ms frame lost without concealment
        lost.append(c)
    damaged = extract_matrix(lost)
    spread = base.std(axis=0) + 1e-6
    change = np.median(np.abs(damaged - base) / spread, axis=1)
    between = np.median(np.abs(base[1:] - base[:-1]) / spread, axis=1)
    assert np.median(change) < 0.25 * np.median(between)


def test_wideband_input_is_accepted(chunks):
    wide = resample(chunks[0], 8000, 16000)
    f8, f16 = extract_features(chunks[0]), extract_features(wide, rate=16000)
    assert f8.keys() == f16.keys()
    assert np.isfinite(list(f16.values())).all()


def reference_signal() -> np.ndarray:
    """A deterministic 2-s test signal: a gliding harmonic 'vowel', noise, a click and a lost 20 ms frame."""
    rng = np.random.default_rng(1234)
    t = np.arange(16000) / 8000
    f0 = 110 + 30 * np.sin(2 * np.pi * 1.5 * t)
    phase = 2 * np.pi * np.cumsum(f0) / 8000
    x = sum(np.sin(h * phase) / h for h in range(1, 25)) * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t))
    x = 0.2 * x + 0.01 * rng.standard_normal(16000)
    x[5000] += 0.8
    x[9600:9760] = 0.0
    return x.astype(np.float32)


def test_features_match_the_reference_the_shipped_model_was_trained_on():
    """Speed rewrites must not change feature values: the shipped GBM and the corpus feature cache
    (keyed by FEATURE_SCHEMA_VERSION) were computed with the reference implementation."""
    import json
    from pathlib import Path

    fixture = Path(__file__).parents[1] / f"fixtures/features/reference_v{FEATURE_SCHEMA_VERSION}.json"
    ref = json.loads(fixture.read_text())
    got = extract_features(reference_signal())
    assert list(got) == list(ref)
    bad = {n: (ref[n], got[n]) for n in ref if not np.isclose(got[n], ref[n], rtol=1e-3, atol=1e-5)}
    assert not bad


def test_cepstral_features_ignore_a_fixed_channel_tilt():
    """Since schema 2 no feature is a long-term envelope statistic: a fixed filter (the line's or the
    microphone's tilt) only shifts every frame's cepstrum by a constant, which spreads and deltas do not see."""
    from scipy.signal import lfilter

    x = reference_signal()
    tilted = lfilter([1.0, -0.7], [1.0], x).astype(np.float32)
    a, b = extract_features(x), extract_features(tilted)
    cepstral = [n for n in a if feature_group(n) in ("lfcc", "cqcc", "mfcc")]
    assert len(cepstral) == 88
    change = {n: abs(a[n] - b[n]) / (abs(a[n]) + 1e-3) for n in cepstral}
    assert max(change.values()) < 0.15, max(change.items(), key=lambda kv: kv[1])


def test_features_are_the_same_for_an_inverted_voice(chunks):
    """A line, codec or microphone may flip the waveform's sign; schema 3 takes every chunk upright
    (detector.polarity), so the features (and any model on them) cannot tell x from -x."""
    chunks = [*chunks, reference_signal()]
    assert np.array_equal(extract_matrix(chunks), extract_matrix([-c for c in chunks]))
    skews = [extract_features(c)["lpc_res_skew"] for c in chunks]
    assert min(skews) >= 0.0
