import glob
import hashlib
import io
import tarfile

import numpy as np
import pytest
import soundfile

from detector import outside
from detector.audio import load_audio
from detector.outside import Archive, OutsideError, parse_rttm, parse_segments, solo_speech, telephone


def test_parse_rttm_groups_speaker_turns_by_file():
    text = ("SPEAKER trn00 1 3.168 0.800 <NA> <NA> MEO069 <NA> <NA>\n"
            "SPEAKER trn00 1 5.496 0.574 <NA> <NA> MEE068 <NA> <NA>\n"
            "SPEAKER dev01 1 1.0 2.0 <NA> <NA> FEE005 <NA> <NA>\n"
            "; a comment\n")
    turns = parse_rttm(text)
    assert set(turns) == {"trn00", "dev01"}
    assert turns["trn00"][0] == pytest.approx((3.168, 3.968, "MEO069"))
    assert turns["dev01"] == [(1.0, 3.0, "FEE005")]


def test_parse_segments_reads_start_end_speaker_lines():
    assert parse_segments("0,6.3,speakerA\n6.3,11.3,speakerB\n\n") == [(0.0, 6.3, "speakerA"), (6.3, 11.3, "speakerB")]


def test_solo_speech_drops_overlapping_talk_and_speakers_with_too_little_alone():
    rate = 100
    x = np.arange(1000, dtype=np.float32)
    turns = [(0.0, 4.0, "a"), (3.0, 6.0, "b"), (8.0, 8.5, "c"), (8.2, 10.0, "a")]
    solo = solo_speech(x, rate, turns, min_seconds=1.0)
    assert set(solo) == {"a", "b"}  # c talks alone for 0.2 s only
    np.testing.assert_array_equal(solo["a"], np.concatenate([x[0:300], x[850:1000]]))
    np.testing.assert_array_equal(solo["b"], x[400:600])


def test_telephone_is_g711_at_minus_3_dbfs_and_refuses_unknown_laws():
    x = np.sin(np.arange(8000) / 7.0).astype(np.float32) * 0.05
    linear = telephone(x, "none")
    assert np.abs(linear).max() == pytest.approx(0.7, rel=1e-4)
    for law in ("ulaw", "alaw"):
        coded = telephone(x, law)
        assert not np.array_equal(coded, linear)
        assert np.abs(coded - linear).max() < 0.03  # G.711 quantisation at this level
    with pytest.raises(ValueError, match="unknown law"):
        telephone(x, "gsm")


def _allison_speech(seconds: float = 12.0) -> np.ndarray:
    files = sorted(glob.glob("/usr/share/asterisk/sounds/en_US_f_Allison/*.wav"))[:40]
    if not files:
        pytest.skip("asterisk sounds missing (./setup installs them)")
    x = np.concatenate([load_audio(f, 16000) for f in files])
    return x[: int(seconds * 16000)]


def _fake_archive(tmp_path, monkeypatch) -> tuple[str, np.ndarray]:
    """A pinned 'PyPI archive' in the cache: a two-speaker wav with its RTTM, and a file that is not speech."""
    speech = _allison_speech()
    wav = io.BytesIO()
    soundfile.write(wav, speech, 16000, format="WAV")
    rttm = "SPEAKER talk 1 0.0 7.0 <NA> <NA> spk_a <NA> <NA>\nSPEAKER talk 1 6.0 6.0 <NA> <NA> spk_b <NA> <NA>\n"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in (("pkg-1.0/tests/talk.wav", wav.getvalue()), ("pkg-1.0/tests/talk.rttm", rttm.encode()),
                           ("pkg-1.0/setup.py", b"print('not audio')")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    (tmp_path / "pkg-1.0.tar.gz").write_bytes(buf.getvalue())
    sha = hashlib.sha256(buf.getvalue()).hexdigest()
    monkeypatch.setattr(outside, "ARCHIVES", {"pkg": Archive("pkg", "1.0", "pkg-1.0.tar.gz", sha, "two people")})
    monkeypatch.setattr(outside, "RECORDINGS", (("pkg", "*/tests/talk.wav", "rttm:*/tests/*.rttm"),))
    return sha, speech


def test_outside_recordings_unpack_a_checked_archive_and_cut_each_speaker_alone(tmp_path, monkeypatch):
    _, speech = _fake_archive(tmp_path, monkeypatch)
    recs = outside.outside_recordings(tmp_path, rate=16000)
    assert [(r.source, r.speaker, r.name) for r in recs] == [("pkg", "spk_a", "talk.wav"), ("pkg", "spk_b", "talk.wav")]
    np.testing.assert_allclose(recs[0].audio, speech[: 6 * 16000], atol=1e-4)   # 0-6 s: a alone
    np.testing.assert_allclose(recs[1].audio, speech[7 * 16000:], atol=1e-4)    # 7-12 s: b alone
    assert not (tmp_path / "pkg" / "pkg-1.0" / "setup.py").exists()  # only speech and labels are unpacked
    (tmp_path / "pkg-1.0.tar.gz").unlink()  # unpacked and checked once: the archive is not needed again
    assert len(outside.outside_recordings(tmp_path, rate=16000)) == 2


def test_fetch_refuses_an_archive_whose_checksum_differs(tmp_path, monkeypatch):
    _fake_archive(tmp_path, monkeypatch)
    (tmp_path / "pkg-1.0.tar.gz").write_bytes(b"tampered")
    with pytest.raises(OutsideError, match="sha256 .* expected"):
        outside.fetch("pkg", tmp_path)


def test_fetch_says_how_to_proceed_when_pypi_cannot_be_reached(tmp_path, monkeypatch):
    _fake_archive(tmp_path, monkeypatch)
    (tmp_path / "pkg-1.0.tar.gz").unlink()
    monkeypatch.setattr(outside, "PYPI_JSON", (tmp_path / "no-index" / "{project}.json").as_uri())
    with pytest.raises(OutsideError, match="cannot download pkg-1.0.tar.gz .* copy the file into"):
        outside.fetch("pkg", tmp_path)
