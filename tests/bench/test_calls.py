"""`bench calls` report maths and parsing on canned verdict-stream messages and Asterisk CLI output (no
Asterisk here; tests/integration/test_bench_calls.py runs the bench against the real lab)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench.calls import (
    expected_chunks,
    judge,
    parse_bridges,
    parse_concise_channels,
    shed_in_log,
    summarize,
    table_rows,
)
from plugin.bus import make_message

SCHEMA = Path(__file__).resolve().parents[2] / "plugin" / "schemas" / "verdict.schema.json"


def chunk(label: str, i: int, latency: float | None, score: float | None = 0.3, leg: str = "caller",
          queued: float = 0.001, scoring: float = 0.012) -> dict:
    timings = {"queued_s": queued, "scoring_s": scoring}
    if latency is not None:
        timings["chunk_end_to_score_s"] = latency
    return make_message("chunk", call_id=f"call-{label}", channel_id=f"ch-{label}", leg=leg, chunk_index=i,
                        chunk_start_s=1.5 + 2 * i, score=score, verdict="bonafide", detector="gbm",
                        detector_version="gbm-test", policy="guard-caller", caller_name=label,
                        caller_number="sipp", evidence=score, error=None if score is not None else "skipped",
                        timings=timings)


def summary(label: str, chunks: int, scored: int, *, setup: float | None = 0.205, onset: float | None = 2.02,
            lost: int = 0, late: int = 0, packets: int = 1000, leg: str = "caller", verdict: str = "bonafide") -> dict:
    s = {"chunks": chunks, "scored": scored, "errors": 0, "shed": 0, "max_score": 0.4, "mean_score": 0.3,
         "final_verdict": verdict, "verdict_history": [], "chunk_timings": [], "tap_setup_s": setup,
         "first_packet_s": None if setup is None else setup + 0.016, "speech_onset_to_first_verdict_s": onset,
         "rtp": {"packets": packets, "malformed": 0, "frames": packets, "concealed": lost, "lost": lost,
                 "late": late, "duplicates": 0, "reordered": 0},
         "ended_by": "caller ChannelHangupRequest", "retaps": 0}
    return make_message("summary", call_id=f"call-{label}", channel_id=f"ch-{label}", leg=leg, chunk_index=None,
                        chunk_start_s=None, score=0.4, verdict=verdict, detector="gbm", detector_version="gbm-test",
                        policy="guard-caller", caller_name=label, caller_number="sipp", summary=s, seq=0)


def call(label: str, kind: str = "bonafide", expected: int = 3, rc: int = 0) -> dict:
    return {"label": label, "kind": kind, "exten": "100", "expected": expected, "rc": rc, "hung_up_by_pbx": False}


def canned() -> tuple[list[dict], list[dict]]:
    """Three calls: A fully scored; B one chunk shed (produced 3, scored 2); C never answered, no tap."""
    lat_a = [0.010, 0.020, 0.030]
    lat_b = [0.100, 0.300]
    msgs = [chunk("A", i, x) for i, x in enumerate(lat_a)] + [chunk("B", i, x) for i, x in enumerate(lat_b)]
    msgs += [summary("A", 3, 3, setup=0.200, onset=2.0, lost=1, late=2),
             summary("B", 3, 2, setup=0.300, onset=2.4, packets=900),
             chunk("stranger", 0, 9.9),  # another caller's traffic on the same stream: ignored
             summary("stranger", 1, 1, setup=5.0)]
    calls = [call("A"), call("B", "synthetic"), call("C", rc=1)]
    return msgs, calls


def test_canned_messages_are_valid_bus_messages():
    jsonschema = pytest.importorskip("jsonschema")
    validator = jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text()))
    for m in canned()[0]:
        validator.validate(json.loads(json.dumps(m)))


def test_counts_per_call_and_in_total():
    msgs, calls = canned()
    r = summarize(msgs, calls)
    assert (r["calls_placed"], r["calls_answered"], r["calls_guarded"], r["legs_tapped"]) == (3, 2, 2, 2)
    assert r["chunks_expected"] == 9 and r["chunks_produced"] == 6 and r["chunks_scored"] == 5
    assert r["chunks_unscored"] == 1 and r["chunk_errors"] == 0
    assert r["calls_with_every_expected_chunk_scored"] == 1
    assert r["chunks_scored_of_expected_pct"] == round(100 * 5 / 9, 1)
    by = {p["label"]: p for p in r["per_call"]}
    assert by["B"]["unscored"] == 1 and by["C"]["guarded"] is False and by["C"]["answered"] is False
    assert r["final_verdicts"] == {"bonafide": {"bonafide": 1, "none": 1}, "synthetic": {"bonafide": 1}}
    assert r["detector_versions"] == ["gbm-test"]


def test_latency_percentiles_are_over_scored_chunks_of_the_bench_calls_only():
    msgs, calls = canned()
    r = summarize(msgs + [chunk("A", 9, None, score=None)], calls)  # an error chunk: counted, no latency
    lat_ms = [10, 20, 30, 100, 300]
    for q in (50, 95, 99):
        assert r[f"chunk_end_to_published_p{q}_ms"] == pytest.approx(np.percentile(lat_ms, q), abs=0.05)
    assert r["chunk_end_to_published_max_ms"] == 300.0  # the stranger's 9.9 s is not in it
    assert r["chunk_errors"] == 1


def test_onset_tap_setup_and_rtp_come_from_the_leg_summaries():
    msgs, calls = canned()
    r = summarize(msgs, calls)
    assert r["first_verdict_after_onset_p50_s"] == pytest.approx(2.2)
    assert r["first_verdict_after_onset_p95_s"] == pytest.approx(np.percentile([2.0, 2.4], 95), abs=1e-3)
    assert r["tap_setup_p50_ms"] == pytest.approx(250.0) and r["tap_setup_max_ms"] == pytest.approx(300.0)
    assert r["rtp"]["packets"] == 1900 and r["rtp"]["lost"] == 1 and r["rtp"]["late"] == 2


def test_callee_legs_count_as_tapped_legs_when_guarded():
    msgs, calls = canned()
    msgs.append(summary("A", 0, 0, leg="callee", onset=None))
    r = summarize(msgs, calls, guarded_legs=("caller", "callee"))
    assert r["legs_tapped"] == 3
    assert r["calls_guarded"] == 2  # a call is guarded when its caller leg is


def test_judge_names_every_shortfall():
    msgs, calls = canned()
    r = summarize(msgs, calls)
    r["chunks_shed"] = 1
    r["leftover"] = {"channels": ["Snoop/x-00000001"], "bridges": []}
    ok, why = judge(r)
    assert not ok
    text = " | ".join(why)
    for part in ("not answered", "not guarded", "5 of 9", "1 chunks shed", "1 channel(s)"):
        assert part in text
    good = summarize([m for m in msgs if m.get("caller_name") == "A"], [call("A")])
    good.update(chunks_shed=0, leftover={"channels": [], "bridges": []})
    assert judge(good) == (True, [])
    assert ("calls_placed", 1) in table_rows(good)


CHANNELS = """\
UnicastRTP/127.0.0.1:33167-0x7f86200239d0!default!s!1!Up!Stasis!callguard!!!!3!9!cgtap-b-1795330396.3-caller!x
Snoop/1795330396.9-00000003!default!s!1!Up!Stasis!callguard!!!!3!8!cgtap-b-1795330396.9-caller!cgtap-s-1
"""

BRIDGES = """\
Bridge-ID                            Chans Type            Technology      Duration
cgtap-b-1795330396.17-caller             2 stasis          simple_bridge   00:00:09
cgcall-1795330396.3                      2 stasis          simple_bridge   00:00:10
6f0b1c9e-2b4e-4a55-9d8c-0a1b2c3d4e5f     0 basic           simple_bridge   00:00:01
"""


def test_asterisk_cli_output_is_parsed():
    assert parse_concise_channels(CHANNELS) == ["UnicastRTP/127.0.0.1:33167-0x7f86200239d0",
                                                "Snoop/1795330396.9-00000003"]
    assert parse_concise_channels("") == []
    assert parse_bridges(BRIDGES) == ["cgtap-b-1795330396.17-caller", "cgcall-1795330396.3",
                                      "6f0b1c9e-2b4e-4a55-9d8c-0a1b2c3d4e5f"]
    assert parse_bridges("Bridge-ID                            Chans Type            Technology      Duration\n") == []


def test_shed_count_is_the_plugins_running_total():
    log = ("... scoring overloaded (queue of 16 full): shed 1 chunk(s) since the last report, ...; 1 shed in all\n"
           "... shed 41 chunk(s) since the last report, latest chunk 2 of leg x:caller; 42 shed in all\n")
    assert shed_in_log(log) == 42 and shed_in_log("nothing shed") == 0


def test_expected_chunks_follow_the_offline_chunker():
    from detector.audio import g711_encode, to_int16

    rate = 8000
    t = np.arange(int(7.0 * rate)) / rate
    f0 = 150 + 20 * np.sin(2 * np.pi * 0.7 * t)
    voiced = sum(np.sin(k * 2 * np.pi * np.cumsum(f0) / rate) / k for k in range(1, 20))
    x = np.concatenate([np.zeros(rate), 0.25 * voiced * (0.6 + 0.4 * np.sin(2 * np.pi * 4 * t)), np.zeros(rate)])
    ulaw = g711_encode(to_int16(x.astype(np.float32)), "ulaw").tobytes()
    assert expected_chunks(ulaw) == 3  # 7 s of continuous voicing: three whole 2-s chunks
    assert expected_chunks(b"\xff" * 8000 * 5) == 0  # silence: none


def test_prometheus_counters_are_parsed_without_labels():
    from bench.calls import parse_metrics

    text = ("# HELP callguard_chunks_shed_total speech chunks dropped\n# TYPE callguard_chunks_shed counter\n"
            "callguard_chunks_shed_total 7.0\ncallguard_media_read_passes_total 1200.0\n"
            'callguard_verdicts_total{verdict="spoof"} 2.0\ncallguard_up 1.0\n')
    assert parse_metrics(text) == {"callguard_chunks_shed_total": 7.0, "callguard_media_read_passes_total": 1200.0,
                                   "callguard_up": 1.0}
