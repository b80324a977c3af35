"""Call handling that does not depend on the detector's judgement (stand-in detector): taps vanish when a
call ends abruptly on the PBX side, and a plugin killed mid-call leaves nothing behind after its restart,
while the call itself goes on."""

from __future__ import annotations

import os
import re
import signal
import time

import pytest

from plugin.lab import Lab, audio_seconds, make_bonafide, start_plugin, stop_plugin

pytestmark = pytest.mark.integration


def _ari(lab: Lab, path: str) -> list:
    import base64
    import json
    import urllib.request

    req = urllib.request.Request(f"{lab.ari_url}/ari{path}")
    token = base64.b64encode(f"{lab.ari_user}:{lab.ari_password}".encode()).decode()
    req.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


def _wait(cond, timeout: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()


def _children(pid: int) -> list[int]:
    out = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            out += [int(c) for c in f.read().split()]
    return out


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ", 1)[1][0] != "Z"
    except OSError:
        return False


def _taps(lab: Lab) -> tuple[list[str], list[str]]:
    chans = [c["id"] for c in _ari(lab, "/channels") if c["id"].startswith("cgtap-")]
    bridges = [b["id"] for b in _ari(lab, "/bridges") if b["id"].startswith("cgtap-")]
    return chans, bridges


@pytest.fixture(scope="module")
def speech(stand_in_pbx: Lab):
    return make_bonafide(stand_in_pbx.root / "media" / "speech.ulaw", seconds=7)


@pytest.fixture(scope="module")
def long_speech(stand_in_pbx: Lab):
    # long enough to outlive a slow restart of the plugin on a loaded machine; the test hangs up itself
    return make_bonafide(stand_in_pbx.root / "media" / "long.ulaw", seconds=40)


def test_pbx_side_hangup_mid_call_removes_every_tap(stand_in_pbx, speech):
    lab = stand_in_pbx
    proc = start_plugin(lab)
    try:
        calls = [lab.sipp_call(ext, speech, duration_s=audio_seconds(speech) + 0.5, index=10 + i)
                 for i, ext in enumerate(("100", "200"))]
        # two calls, one tap each: snoop + external media channels and a bridge per tap, and for the Dial() call
        # (ext 200) the whisper snoop its warnings will be played into
        assert _wait(lambda: len(_taps(lab)[0]) == 5 and len(_taps(lab)[1]) == 2, 10), _taps(lab)
        assert sum("cgtap-w-" in c for c in _taps(lab)[0]) == 1
        out = lab.asterisk_rx("core show channels concise")
        callers = re.findall(r"^(PJSIP/sipp-[0-9a-f]+)!", out, re.M)
        assert len(callers) == 2, out
        for name in callers:
            lab.asterisk_rx(f"channel request hangup {name}")
        assert _wait(lambda: _taps(lab) == ([], []), 3), _taps(lab)
        assert _wait(lambda: _ari(lab, "/channels") == [] and _ari(lab, "/bridges") == [], 5)
        for c in calls:
            c.wait(10)
    finally:
        stop_plugin(lab, proc)


def test_a_plugin_killed_mid_call_leaves_nothing_after_restart_and_the_call_goes_on(stand_in_pbx, long_speech):
    lab = stand_in_pbx
    proc = start_plugin(lab)
    call = lab.sipp_call("100", long_speech, duration_s=audio_seconds(long_speech) + 0.5, index=20)
    try:
        assert _wait(lambda: len(_taps(lab)[0]) == 2, 10), _taps(lab)
        workers = _children(proc.pid)
        assert workers, "the detector runs in worker processes"
        os.kill(proc.pid, signal.SIGKILL)  # crash: no clean-up at all
        proc.wait(5)
        assert _wait(lambda: not any(_running(p) for p in workers), 5), "orphaned detector workers"

        time.sleep(0.5)
        assert len(_taps(lab)[0]) == 2, "the crashed plugin's taps are still there"
        assert call.proc.poll() is None, "the call went on without the plugin"
        proc = start_plugin(lab)  # restart: stale taps swept, the bridged call adopted and tapped again
        assert _wait(lambda: len(_taps(lab)[0]) == 2 and all("-caller" in c for c in _taps(lab)[0]), 10)
        log = (lab.log_dir / "callguard.log").read_text()
        assert "removed 3 stale tap" in log and "adopted call" in log
        time.sleep(1.0)
        assert call.proc.poll() is None and not call.hung_up_by_pbx, "the call is still up"
        out = lab.asterisk_rx("core show channels concise")
        for name in re.findall(r"^(PJSIP/sipp-[0-9a-f]+)!", out, re.M):
            lab.asterisk_rx(f"channel request hangup {name}")  # end it now: the adopted call is cleaned up too
        assert _wait(lambda: _ari(lab, "/channels") == [] and _ari(lab, "/bridges") == [], 5), \
            (_ari(lab, "/channels"), _ari(lab, "/bridges"))
    finally:
        call.stop()
        stop_plugin(lab, proc)


def test_the_route_policy_decides_which_legs_are_tapped(stand_in_pbx, speech):
    """Ext 300 (callguard bridges) and 400 (Dial() way) are routed to a policy guarding both legs: the
    called party's speech is chunked and scored as leg "callee" in both ways in."""
    import asyncio
    import json

    import redis.asyncio as aioredis

    lab = stand_in_pbx
    proc = start_plugin(lab)

    async def listen(seconds: float) -> list[dict]:
        r = aioredis.Redis.from_url(lab.redis_url, password=lab.redis_password, decode_responses=True)
        ps = r.pubsub()
        await ps.subscribe("callguard:verdicts")
        calls = [lab.sipp_call(ext, speech, duration_s=seconds, index=30 + i, caller_name=f"x{ext}")
                 for i, ext in enumerate(("300", "400"))]
        out: list[dict] = []
        deadline = time.monotonic() + seconds + 8
        while time.monotonic() < deadline:
            raw = await ps.get_message(ignore_subscribe_messages=True, timeout=0.2)
            if raw and raw["type"] == "message":
                out.append(json.loads(raw["data"]))
            if sum(m["type"] == "summary" for m in out) == 4:
                break
        for c in calls:
            c.wait(5)
        await ps.aclose()
        await r.aclose()
        return out

    try:
        msgs = asyncio.run(listen(min(audio_seconds(speech) + 0.5, 9.0)))
    finally:
        stop_plugin(lab, proc)
    for ext, callee_channel_kind in (("300", "cgcall-"), ("400", "")):
        mine = [m for m in msgs if m.get("caller_name") == f"x{ext}"]
        legs = {m["leg"] for m in mine if m["type"] == "chunk"}
        assert legs == {"caller", "callee"}, (ext, legs)
        assert all(m["policy"] == "watch-only" for m in mine)
        callee_chunks = [m for m in mine if m["type"] == "chunk" and m["leg"] == "callee"]
        assert callee_chunks[0]["channel_id"].startswith(callee_channel_kind)
    assert _wait(lambda: _ari(lab, "/channels") == [] and _ari(lab, "/bridges") == [], 5)


def test_calls_go_through_unguarded_when_callguard_is_not_running(stand_in_pbx, speech):
    lab = stand_in_pbx
    stop_plugin(lab)
    time.sleep(0.3)
    calls = {ext: lab.sipp_call(ext, speech, duration_s=3.0, index=40 + i) for i, ext in enumerate(("100", "200"))}
    for ext, call in calls.items():
        assert call.wait(20) == 0, f"ext {ext}: the call failed without callguard"
        assert not call.hung_up_by_pbx
    log = (lab.log_dir / "messages").read_text(errors="replace")
    assert log.count(f"Stasis app '{lab.app}' not registered") >= 2
    assert "[100@from-external:4] Dial(" in log and "[200@from-external:3] Dial(" in log


def test_spoof_verdicts_warn_then_hang_up_in_both_ways_in_and_spare_the_others(stand_in_pbx, speech):
    """The reaction machinery on real calls, with a stand-in detector whose verdict is known in advance
    (loud speech scores 0.95 -> spoof, normal speech 0.05): warning played (PlaybackStarted awaited by the
    adapter, and Asterisk logs the playback), SIP BYE to the spoofing caller, the other call untouched."""
    import csv
    import json

    import numpy as np

    from detector.audio import g711_decode, g711_encode, to_float, to_int16

    lab = stand_in_pbx
    x = to_float(g711_decode(speech.read_bytes(), "ulaw"))
    loud = lab.root / "media" / "loud.ulaw"
    loud.write_bytes(g711_encode(to_int16(np.clip(x * 12.0, -1, 1)), "ulaw").tobytes())
    proc = start_plugin(lab)
    dur = audio_seconds(speech) + 0.5
    try:
        calls = {"loud100": lab.sipp_call("100", loud, duration_s=dur, index=50, caller_name="loud100"),
                 "loud200": lab.sipp_call("200", loud, duration_s=dur, index=51, caller_name="loud200"),
                 "normal": lab.sipp_call("100", speech, duration_s=dur, index=52, caller_name="normal")}
        rcs = {k: c.wait(dur + 15) for k, c in calls.items()}
        assert calls["loud100"].hung_up_by_pbx and calls["loud200"].hung_up_by_pbx
        assert not calls["normal"].hung_up_by_pbx and rcs["normal"] == 0
        for k in ("loud100", "loud200"):
            assert calls[k].marker.stat().st_mtime - calls[k].started < dur - 1.0
        assert _wait(lambda: _ari(lab, "/channels") == [] and _ari(lab, "/bridges") == [], 5)
    finally:
        stop_plugin(lab, proc)
    log = (lab.log_dir / "callguard.log").read_text()
    reacted = [json.loads(line.split("reacted to ", 1)[1].split(": ", 1)[1].replace("'", '"'))
               for line in log.splitlines() if "reacted to " in line]
    spoofs = [r for r in reacted if r["verdict"] == "spoof" and r["type"] == "verdict"]
    assert len(spoofs) >= 2 and all("hangup_s" in r for r in spoofs)
    assert any("warn_started_s" in r for r in reacted), "no warning reached PlaybackStarted"
    pbx_log = (lab.log_dir / "messages").read_text(errors="replace")
    assert "Playing 'beep" in pbx_log
    rows = list(csv.reader((lab.log_dir / "cdr-custom" / "callguard.csv").read_text().splitlines()))
    assert any(r[1] == "200" and r[4] == "spoof" for r in rows), "Dial() way: no spoof annotation in the CDR"
