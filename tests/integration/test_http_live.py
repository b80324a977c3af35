"""The HTTP endpoint of a real `callguard serve` (private Asterisk 16 + redis-server with AUTH, stand-in
detector): /health says ARI and Redis are connected, /metrics needs the token and follows a real sipp call
(a guarded leg, scored chunks, verdict latencies), and the token never reaches the service's log."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from plugin.lab import Lab, audio_seconds, free_port, make_bonafide, start_plugin, stop_plugin

pytestmark = pytest.mark.integration

TOKEN = "LiveHttpTok-Qw8eR4tY2uIo"


def _get(url: str, token: str | None = None) -> tuple[int, str]:
    req = urllib.request.Request(url)
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def _samples(text: str) -> dict[str, float]:
    return {s.name: s.value for fam in text_string_to_metric_families(text) for s in fam.samples
            if not s.labels}


def test_health_and_metrics_of_the_live_service_follow_a_real_call(stand_in_pbx: Lab):
    lab = stand_in_pbx
    speech = make_bonafide(lab.root / "media" / "http-speech.ulaw", seconds=8)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    proc = start_plugin(lab, extra_env={"CALLGUARD_HTTP_PORT": str(port), "CALLGUARD_HTTP_TOKEN": TOKEN})
    try:
        code, text = _get(base + "/health")
        body = json.loads(text)
        assert code == 200, body
        assert body["ari"]["connected"] and body["redis"]["connected"] and body["detector"]["up"]
        assert body["legs_guarded"] == 0
        assert _get(base + "/metrics")[0] == 401
        assert _get(base + "/metrics", "not-the-token-at-all")[0] == 401

        call = lab.sipp_call("100", speech, duration_s=audio_seconds(speech) + 0.5, index=30)
        peak_legs, scored = 0.0, 0.0
        deadline = time.monotonic() + audio_seconds(speech) + 20
        while time.monotonic() < deadline:
            code, text = _get(base + "/metrics", TOKEN)
            assert code == 200
            m = _samples(text)
            peak_legs = max(peak_legs, m["callguard_legs_guarded"])
            scored = m["callguard_chunks_scored_total"]
            if call.proc.poll() is not None and m["callguard_legs_guarded"] == 0:
                break
            time.sleep(0.25)
        call.wait(10)
        m = _samples(_get(base + "/metrics", TOKEN)[1])
        assert peak_legs >= 1  # the caller leg was guarded while the call lasted
        assert m["callguard_legs_guarded"] == 0  # ... and released after it
        assert scored >= 1 and m["callguard_verdict_latency_seconds_count"] >= scored
        assert m["callguard_ari_connected"] == 1 and m["callguard_redis_connected"] == 1
        assert 0 < m["callguard_verdict_latency_seconds_sum"] / m["callguard_verdict_latency_seconds_count"] < 5
    finally:
        stop_plugin(lab, proc)
    log_text = (lab.log_dir / "callguard.log").read_text(errors="replace")
    for secret in (TOKEN, lab.ari_password, lab.redis_password):
        assert secret not in log_text
