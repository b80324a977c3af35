import json

import numpy as np

from detector.evaluate import calls_section
from detector.scoring import Thresholds
from plugin.cli import main


def test_calls_section_replays_the_policy_per_recording_including_the_first_chunks():
    rows = ([{"job": "b1", "start_s": 2.0 * i} for i in range(6)] + [{"job": "b2", "start_s": 0.0}]
            + [{"job": "s1", "start_s": 2.0 * i} for i in range(6)])
    labels = np.array([0] * 7 + [1] * 6)
    # b1 stays low; b2 is one loud chunk (warned at once, too short to hang up on); s1 climbs: its 3-chunk
    # mean reaches 0.977 at chunk 5, its 5-chunk means (0.726, 0.884) stay under hang-up
    scores = np.array([0.1] * 6 + [0.95] + [0.2, 0.5, 0.95, 0.99, 0.99, 0.99])
    th = Thresholds(eer=0.5, warn=0.9, hangup=0.9, warn_window=3, hangup_window=5)
    lines, summary = calls_section(th, rows, labels, scores)
    assert summary["calls_bonafide_warned"] == 0.5
    assert summary["calls_bonafide_hung_up"] == 0.0  # b1 is the one bona fide call long enough; not hung up on
    assert summary["calls_spoof_warned"] == 1.0 and summary["calls_spoof_hung_up"] == 0.0  # 5-chunk means < 0.9
    assert "| spoof | 1 | 1 (100.00 %) | 1 | 0 (0.00 %) | 5 |" in lines  # first warning at chunk 5


def test_eval_report_has_the_policy_replayed_per_recording(tiny_corpus, tiny_models, tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["eval", "--corpus", str(tiny_corpus), "--models-dir", str(tiny_models), "--out", str(out)]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert 0.0 <= summary["gbm"]["calls_bonafide_warned"] <= 1.0
    report = (out / "report.md").read_text()
    assert "### Live policy per recording, replayed as the plugin decides" in report
