import numpy as np
import pytest
import soundfile

from detector.audio import AudioError, g711_decode, g711_encode, load_audio


@pytest.mark.parametrize("law", ["ulaw", "alaw"])
def test_g711_round_trip_error_is_within_one_quantisation_step(law):
    pcm = np.arange(-32768, 32768, 7, dtype=np.int16)
    back = g711_decode(g711_encode(pcm, law), law).astype(np.int32)
    err = np.abs(back - pcm)
    # quantisation step grows with magnitude: relative error stays under ~6 %, small values are near exact
    assert np.all(err <= np.maximum(16, np.abs(pcm.astype(np.int32)) * 0.07))


def test_g711_decoding_matches_reference_values():
    assert g711_decode(bytes([0x00, 0x7F, 0x80, 0xFF]), "ulaw").tolist() == [-32124, 0, 32124, 0]
    assert g711_decode(bytes([0xD5, 0x55, 0x2A, 0xAA]), "alaw").tolist() == [8, -8, -32256, 32256]


def test_unknown_law_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown G.711 law"):
        g711_decode(b"\x00", "gsm")


def test_load_audio_downmixes_and_resamples_to_8k(tmp_path):
    t = np.arange(16000 * 2) / 16000
    tone = 0.3 * np.sin(2 * np.pi * 440 * t)
    path = tmp_path / "stereo16k.wav"
    soundfile.write(path, np.stack([tone, tone], axis=1), 16000)
    x = load_audio(path)
    assert len(x) == 16000
    spectrum = np.abs(np.fft.rfft(x))
    assert abs(np.argmax(spectrum) * 8000 / len(x) - 440) < 2


def test_load_audio_reads_raw_ulaw_by_extension(tmp_path):
    pcm = (8000 * np.sin(np.arange(8000) / 5)).astype(np.int16)
    path = tmp_path / "call.ulaw"
    path.write_bytes(g711_encode(pcm, "ulaw").tobytes())
    x = load_audio(path)
    assert len(x) == 8000
    assert np.corrcoef(x, pcm)[0, 1] > 0.999


@pytest.mark.parametrize("content", [b"", b"RIFF\x00\x00garbage-not-audio" * 3])
def test_load_audio_rejects_broken_files_with_the_file_name(tmp_path, content):
    path = tmp_path / "broken.wav"
    path.write_bytes(content)
    with pytest.raises(AudioError, match="broken.wav"):
        load_audio(path)


def test_load_audio_missing_file():
    with pytest.raises(AudioError, match="no such file"):
        load_audio("/nonexistent/x.wav")
