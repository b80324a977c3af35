import json
import subprocess

import numpy as np
import soundfile

from plugin.cli import main


def _espeak(path, text="This is a synthetic voice calling about your bank account, please confirm the code."):
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(path), text * 2], check=True)


def test_scan_prints_one_json_object_per_file_and_keeps_going_after_errors(tiny_models, tmp_path, capsys):
    good = tmp_path / "synthetic.wav"
    _espeak(good)
    broken = tmp_path / "broken.mp3"
    broken.write_bytes(b"\x00not audio at all" * 50)
    silent = tmp_path / "silent.wav"
    soundfile.write(silent, np.zeros(8000 * 5), 8000)
    status = main(["scan", "--json", "--models-dir", str(tiny_models), str(broken), str(good), str(silent),
                   str(tmp_path / "missing.wav")])
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert status == 1
    assert [o["file"] for o in out] == [str(broken), str(good), str(silent), str(tmp_path / "missing.wav")]
    ok = out[1]
    assert "error" not in ok and ok["detector"] == "gbm"
    assert 0.0 <= ok["score"] <= 1.0 and ok["verdict"] in {"bonafide", "suspicious", "spoof"}
    assert ok["chunks"] and all({"start_s", "score"} <= set(c) for c in ok["chunks"])
    assert ok["score"] == round(float(np.mean([c["score"] for c in ok["chunks"]])), 4)
    assert "no 2-second stretch of speech" in out[2]["error"]
    assert all("error" in o for o in (out[0], out[2], out[3]))


def test_scan_reads_stereo_44k_and_raw_alaw(tiny_models, tmp_path, capsys):
    from detector.audio import g711_encode, load_audio, resample, to_int16

    wav = tmp_path / "voice.wav"
    _espeak(wav)
    x = load_audio(wav)
    stereo = tmp_path / "stereo44k.flac"
    wide = resample(x, 8000, 44100)
    soundfile.write(stereo, np.stack([wide, wide], axis=1), 44100)
    raw = tmp_path / "voice.alaw"
    raw.write_bytes(g711_encode(to_int16(x), "alaw").tobytes())
    assert main(["scan", "--json", "--explain", "--models-dir", str(tiny_models), str(stereo), str(raw)]) == 0
    a, b = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    assert len(a["chunks"]) == len(b["chunks"]) > 0
    assert abs(a["score"] - b["score"]) < 0.25  # same speech through different containers and codecs
    assert len(a["chunks"][0]["top_groups"]) == 3


def test_scan_without_a_model_says_how_to_get_one(tmp_path, capsys):
    assert main(["scan", "--models-dir", str(tmp_path), str(tmp_path / "x.wav")]) == 2
    assert "callguard train gbm" in capsys.readouterr().err
