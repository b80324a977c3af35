import json

import numpy as np
import pytest

from detector.outside_report import ChunkedSet, detector_figures
from detector.scoring import Thresholds
from plugin.cli import main
from tests.detector.test_outside import _fake_archive


def _rows(source: str, job: str, n: int) -> list[dict]:
    return [{"job": job, "start_s": 2.0 * i, "source": source, "speaker": f"{source}/x", "label": "bonafide"}
            for i in range(n)]


def test_false_alarms_are_counted_per_chunk_per_recording_and_per_policy_window(monkeypatch):
    from detector import outside

    monkeypatch.setattr(outside, "ARCHIVES", {"a": None, "b": None})
    rows = _rows("a", "r1", 4) + _rows("b", "r2", 2)
    data = ChunkedSet(rows, [np.zeros(16000, np.float32)] * len(rows))
    scores = np.array([0.99, 0.99, 0.99, 0.1, 0.95, 0.2])
    t = Thresholds(eer=0.5, warn=0.9, hangup=0.97, warn_window=3, hangup_window=3)
    f = detector_figures(data, scores, t)
    assert f["chunks"] == 6 and f["recordings"] == 2
    assert f["chunks_at_warn"] == pytest.approx(4 / 6) and f["chunks_at_hangup"] == pytest.approx(3 / 6)
    # recording means: r1 0.7675, r2 0.575, both under warn
    assert f["recordings_at_warn"] == 0.0
    # windows of 3: r1 gives [0.99, 0.6933]; r2 is shorter than the window and gives its mean 0.575
    assert f["windows_warn"] == 3 and f["windows_at_warn"] == pytest.approx(1 / 3)
    assert f["windows_at_hangup"] == pytest.approx(1 / 3)
    assert f["sources"]["b"]["chunks"] == 2 and f["sources"]["b"]["chunks_at_warn"] == pytest.approx(0.5)
    assert f["highest"][0][1] == "r1"


def test_eval_outside_writes_a_report_of_false_alarms_on_the_shipped_thresholds(tiny_models, tmp_path, monkeypatch,
                                                                                capsys):
    _fake_archive(tmp_path, monkeypatch)
    out = tmp_path / "report"
    status = main(["eval", "--protocol", "outside", "--models-dir", str(tiny_models), "--outside-cache",
                   str(tmp_path), "--out", str(out), "--law", "alaw"])
    assert status == 0
    figures = json.loads(capsys.readouterr().out)
    assert set(figures) == {"gbm"} and figures["gbm"]["chunks"] >= 4
    report = (out / "report.md").read_text()
    assert "G.711 alaw" in report and "| pkg | pkg-1.0.tar.gz | two people |" in report
    assert "| gbm `gbm-" in report


def test_eval_outside_fails_with_a_clear_message_on_a_tampered_archive(tiny_models, tmp_path, monkeypatch, capsys):
    _fake_archive(tmp_path, monkeypatch)
    (tmp_path / "pkg-1.0.tar.gz").write_bytes(b"tampered")
    status = main(["eval", "--protocol", "outside", "--models-dir", str(tiny_models), "--outside-cache",
                   str(tmp_path), "--out", str(tmp_path / "report")])
    assert status == 2
    assert "expected" in capsys.readouterr().out and not (tmp_path / "report").exists()
