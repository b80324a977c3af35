import glob

import numpy as np
import pytest

from detector.audio import load_audio, resample
from detector.chunking import speech_chunks
from detector.features import extract_features, extract_matrix, feature_group, feature_names

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
