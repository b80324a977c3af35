import json

import numpy as np
import pytest

from detector.outside_report import ChunkedSet, detector_figures
from detector.scoring import Thresholds
from plugin.cli import main
from tests.detector.test_outside import _fake_archive


def _rows(source: str, call: str, n: int) -> list[dict]:
    return [{"call": call, "start_s": 2.0 * i, "source": source} for i in range(n)]


def test_false_alarms_are_counted_per_chunk_per_policy_decision_and_per_person(monkeypatch):
    from detector import outside

    monkeypatch.setattr(outside, "ARCHIVES", {"a": None, "b": None})
    rows = _rows("a", "a/p1", 6) + _rows("b", "b/p2", 2)
    data = ChunkedSet(rows, [np.zeros(16000, np.float32)] * len(rows))
    scores = np.array([0.1, 0.1, 0.99, 0.99, 0.99, 0.99, 0.95, 0.2])
    t = Thresholds(eer=0.5, warn=0.9, hangup=0.97, warn_window=3, hangup_window=5)
    f = detector_figures(data, scores, t)
    assert f["chunks"] == 8 and f["calls"] == 2
    assert f["chunks_at_warn"] == pytest.approx(5 / 8) and f["chunks_at_hangup"] == pytest.approx(4 / 8)
    # p1: 3-chunk means 0.1, 0.1, 0.397, 0.693, 0.99, 0.99 -> warned; 5-chunk means from chunk 5: 0.636, 0.812
    # -> not hung up. p2: 0.95 then 0.575 -> warned at its first chunk; too short to hang up on
    assert f["calls_warned"] == 2 and f["calls_hung_up"] == 0 and f["calls_long_enough_to_hang_up"] == 1
    assert f["decisions_warn"] == 8 and f["decisions_at_warn"] == pytest.approx(3 / 8)
    assert f["decisions_hangup"] == 2 and f["decisions_at_hangup"] == 0.0
    assert f["per_call"]["b/p2"]["hung_up"] is None and f["sources"]["b"]["chunks_at_warn"] == pytest.approx(0.5)


def test_a_persons_recordings_are_one_call_in_order(tmp_path, monkeypatch):
    from detector import outside

    _fake_archive(tmp_path, monkeypatch)
    recs = outside.outside_recordings(tmp_path)
    twice = [recs[0], recs[1], recs[0]]  # the same person in two files
    data = ChunkedSet.cut(twice, "ulaw")
    calls = {r["call"] for r in data.rows}
    assert calls == {"pkg/spk_a", "pkg/spk_b"}
    starts = [r["start_s"] for r in data.rows if r["call"] == "pkg/spk_a"]
    assert starts == sorted(starts) and starts[-1] >= len(recs[0].audio) / 8000  # the second file comes after


def test_eval_outside_writes_a_report_of_false_alarms_on_the_shipped_thresholds(tiny_models, tmp_path, monkeypatch,
                                                                                capsys):
    _fake_archive(tmp_path, monkeypatch)
    out = tmp_path / "report"
    status = main(["eval", "--protocol", "outside", "--models-dir", str(tiny_models), "--outside-cache",
                   str(tmp_path), "--out", str(out), "--law", "alaw"])
    assert status == 0
    figures = json.loads(capsys.readouterr().out)
    assert set(figures) == {"gbm"} and figures["gbm"]["chunks"] >= 4 and figures["gbm"]["calls"] == 2
    report = (out / "report.md").read_text()
    assert "G.711 alaw" in report and "| pkg | pkg-1.0.tar.gz | two people |" in report
    assert "| gbm `gbm-" in report and "2 people (calls)" in report
    assert sum(line.startswith(("| pkg/spk_a |", "| pkg/spk_b |")) for line in report.splitlines()) == 2


def test_eval_outside_fails_with_a_clear_message_on_a_tampered_archive(tiny_models, tmp_path, monkeypatch, capsys):
    _fake_archive(tmp_path, monkeypatch)
    (tmp_path / "pkg-1.0.tar.gz").write_bytes(b"tampered")
    status = main(["eval", "--protocol", "outside", "--models-dir", str(tiny_models), "--outside-cache",
                   str(tmp_path), "--out", str(tmp_path / "report")])
    assert status == 2
    assert "expected" in capsys.readouterr().out and not (tmp_path / "report").exists()
