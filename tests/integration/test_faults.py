"""Faults on real processes (issue #8): a private Asterisk 16 killed with SIGKILL mid-call and started again,
and the private redis-server killed for 60 s while a guarded call keeps producing verdicts. The plugin is a
real `callguard serve` scoring with the stand-in detector (tests/plugin/fakedet.py: loud speech 0.95, normal
0.05), since what is checked is call handling and delivery, not the detector's judgement.

Waits are event-driven (polling for the awaited state with generous time limits); the only fixed wait is
the 60 s outage itself, which is the scenario.
"""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis

from plugin.lab import Lab, audio_seconds, make_bonafide, start_plugin, stop_plugin

pytestmark = pytest.mark.integration

STAND_IN = str(Path(__file__).resolve().parents[2] / "tests" / "plugin" / "fakedet.py") + ":load"
STREAM = "callguard:verdicts:log"
OUTAGE_S = 60.0  # Redis outage
DOWN_S = 15.0  # Asterisk outage before it is started again


@pytest.fixture(scope="module")
def fault_lab(lab_dir: Path) -> Iterator[Lab]:
    missing = [t for t in ("asterisk", "redis-server", "sipp") if not shutil.which(t)]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)}")
    lab = Lab(root=lab_dir / "lab", redis_persist=True)  # Redis keeps its data over a kill -9, like production
    lab.write(detector="gbm", loader=STAND_IN)
    try:
        lab.start_redis()
        lab.start_asterisk()
        yield lab
    finally:
        stop_plugin(lab)
        lab.stop_asterisk()
        lab.stop_redis()


# ------------------------------------------------------------------------------------------------ helpers

def _ari_status(lab: Lab, path: str) -> int | None:
    req = urllib.request.Request(f"{lab.ari_url}/ari{path}")
    token = base64.b64encode(f"{lab.ari_user}:{lab.ari_password}".encode()).decode()
    req.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(req, timeout=1) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code
    except OSError:
        return None


def _ari_list(lab: Lab, path: str) -> list:
    req = urllib.request.Request(f"{lab.ari_url}/ari{path}")
    token = base64.b64encode(f"{lab.ari_user}:{lab.ari_password}".encode()).decode()
    req.add_header("Authorization", f"Basic {token}")
    with urllib.request.urlopen(req, timeout=5) as resp:
        return json.loads(resp.read())


def _wait(cond, timeout: float, step: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if cond():
                return True
        except (OSError, redis.RedisError):
            pass
        time.sleep(step)
    return bool(cond())


def _redis(lab: Lab) -> redis.Redis:
    return redis.Redis.from_url(lab.redis_url, password=lab.redis_password, decode_responses=True,
                                socket_timeout=5)


def _stream(lab: Lab) -> list[dict[str, Any]]:
    r = _redis(lab)
    try:
        return [json.loads(f["msg"]) for _, f in r.xrange(STREAM)]
    finally:
        r.close()


def _mine(lab: Lab, caller_name: str) -> list[dict[str, Any]]:
    return [m for m in _stream(lab) if m.get("caller_name") == caller_name]


class _Log:
    """The plugin's log from the point this test started it."""

    def __init__(self, lab: Lab) -> None:
        self.path = lab.log_dir / "callguard.log"
        self.offset = self.path.stat().st_size if self.path.exists() else 0

    def text(self) -> str:
        with self.path.open("rb") as f:
            f.seek(self.offset)
            return f.read().decode(errors="replace")


def _alternating_speech(lab: Lab, seconds: float, block_s: float = 10.0) -> Path:
    """Human speech whose level alternates every ``block_s`` seconds between normal and loud, so the stand-in
    detector keeps changing its verdict (bonafide <-> suspicious/spoof) all through the call."""
    from detector.audio import g711_decode, g711_encode, to_float, to_int16

    base = make_bonafide(lab.root / "media" / f"speech{int(seconds)}.ulaw", seconds=seconds)
    x = to_float(g711_decode(base.read_bytes(), "ulaw"))
    gain = np.ones_like(x)
    block = int(block_s * 8000)
    for start in range(block, x.size, 2 * block):
        gain[start:start + block] = 12.0
    out = lab.root / "media" / f"alternating{int(seconds)}.ulaw"
    out.write_bytes(g711_encode(to_int16(np.clip(x * gain, -1, 1)), "ulaw").tobytes())
    return out


class _ReturnWatch(threading.Thread):
    """Polls ARI from the kill on: when it first answers again (Asterisk is back) and when the plugin's app
    is registered again (its events websocket reconnected)."""

    def __init__(self, lab: Lab) -> None:
        super().__init__(daemon=True)
        self.lab = lab
        self.ari_back: float | None = None
        self.app_back: float | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set() and self.app_back is None:
            if self.ari_back is None and _ari_status(self.lab, "/asterisk/info") == 200:
                self.ari_back = time.time()
            if self.ari_back is not None and _ari_status(self.lab, f"/applications/{self.lab.app}") == 200:
                self.app_back = time.time()
            time.sleep(0.05)


# ------------------------------------------------------------------------------------------------ tests

def test_asterisk_killed_mid_call_the_plugin_reconnects_within_5_s_and_guards_the_next_call(fault_lab):
    lab = fault_lab
    long_speech = make_bonafide(lab.root / "media" / "long.ulaw", seconds=60)
    speech = make_bonafide(lab.root / "media" / "speech.ulaw", seconds=12)
    log = _Log(lab)
    proc = start_plugin(lab)
    before = lab.sipp_call("100", long_speech, duration_s=audio_seconds(long_speech) + 0.5, index=60,
                           caller_name="before-crash")
    after = None
    watch = _ReturnWatch(lab)
    try:
        # a guarded call producing scores
        assert _wait(lambda: any(m["type"] == "chunk" for m in _mine(lab, "before-crash")), 40), log.text()[-3000:]
        call_id = _mine(lab, "before-crash")[0]["call_id"]

        t_kill = time.time()
        lab.kill_asterisk()
        assert _wait(lambda: "ARI events connection lost" in log.text(), 15), "the plugin did not notice"
        # Asterisk stays away a while (as a supervised restart may take): long enough for the plugin's retry
        # delays to grow to their cap, so "back within 5 s" depends on the cap, not on a lucky early retry
        time.sleep(max(0.0, t_kill + DOWN_S - time.time()))
        assert _ari_status(lab, "/asterisk/info") is None
        watch.start()
        lab.start_asterisk(timeout=90)
        assert _wait(lambda: watch.app_back is not None, 30), "the plugin's ARI app was not registered again"
        reconnect_s = watch.app_back - watch.ari_back
        print(f"\nAsterisk back (ARI answers) {watch.ari_back - t_kill:.2f} s after the kill; plugin's app "
              f"registered again {reconnect_s:.2f} s after that")
        assert reconnect_s <= 5.0, f"reconnected {reconnect_s:.2f} s after Asterisk was back"

        # the gap is logged, once, with its length
        assert _wait(lambda: "resynchronised with Asterisk" in log.text(), 20), log.text()[-3000:]
        text = log.text()
        gaps = [float(g) for g in re.findall(r"ARI events reconnected after a gap of ([0-9.]+) s", text)]
        assert len(gaps) == 1, gaps
        assert watch.ari_back - t_kill - 1.0 <= gaps[0] <= watch.app_back - t_kill + 1.0, (gaps, t_kill)
        print(f"logged gap {gaps[0]:.2f} s")

        # the vanished call's state is dropped: its leg's summary published, marked as ended by the gap
        assert _wait(lambda: any(m["type"] == "summary" and m["call_id"] == call_id
                                 for m in _stream(lab)), 20), log.text()[-3000:]
        summary = next(m for m in _stream(lab) if m["type"] == "summary" and m["call_id"] == call_id)
        assert summary["summary"]["ended_by"] == "vanished while ARI was disconnected"
        assert summary["summary"]["scored"] >= 1
        assert re.search(r"resynchronised with Asterisk after a [0-9.]+ s gap: 0 call\(s\) still up .* "
                         r"1 call\(s\) vanished and ended", log.text()), log.text()[-3000:]
        assert proc.poll() is None, "callguard serve died"
        before.stop()

        # a new call after the restart is guarded end to end: tapped, scored, verdict on Redis, cleaned up
        after = lab.sipp_call("100", speech, duration_s=audio_seconds(speech) + 0.5, index=61,
                              caller_name="after-crash")
        assert after.wait(audio_seconds(speech) + 40) == 0, "the call after the restart failed"
        assert _wait(lambda: any(m["type"] == "summary" for m in _mine(lab, "after-crash")), 20)
        msgs = _mine(lab, "after-crash")
        assert any(m["type"] == "verdict" for m in msgs), [m["type"] for m in msgs]
        assert sum(m["type"] == "summary" for m in msgs) == 1
        assert _wait(lambda: _ari_list(lab, "/channels") == [] and _ari_list(lab, "/bridges") == [], 10)
        assert proc.poll() is None, "callguard serve died"
        assert "Traceback" not in log.text()
    finally:
        watch.stop.set()
        before.stop()
        if after is not None:
            after.stop()
        stop_plugin(lab, proc)


def test_redis_down_for_60_s_verdicts_are_spooled_and_delivered_once_in_order(fault_lab):
    lab = fault_lab
    audio = _alternating_speech(lab, seconds=95)
    spool = Path(lab.root / "spool" / "callguard-bus.jsonl")
    summary_log = lab.log_dir / "callguard-summary.jsonl"
    log = _Log(lab)
    proc = start_plugin(lab)
    dur = audio_seconds(audio) + 0.5
    call = lab.sipp_call("300", audio, duration_s=dur, index=70, caller_name="redis-outage")
    try:
        assert _wait(lambda: sum(m["type"] == "chunk" for m in _mine(lab, "redis-outage")) >= 2, 40), \
            log.text()[-3000:]
        t_down = time.time()
        lab.kill_redis()

        # the call goes on; what it produces goes to the spool on disk
        assert _wait(lambda: spool.exists() and spool.stat().st_size > 0, 30), log.text()[-3000:]
        counts = []
        while time.time() < t_down + OUTAGE_S:
            counts.append(sum(1 for _ in spool.open()))
            time.sleep(min(5.0, max(0.0, t_down + OUTAGE_S - time.time())))
        assert proc.poll() is None, "callguard serve died while Redis was away"
        assert call.proc.poll() is None, "the call did not outlive the outage"
        lab.start_redis()
        t_up = time.time()
        print(f"\nRedis down {t_up - t_down:.1f} s; spool lines during the outage: {counts}")
        assert counts[-1] > counts[0], "nothing was spooled during the outage"

        assert _wait(lambda: not spool.exists() or spool.stat().st_size == 0, 60), "the spool was not delivered"
        t_drained = time.time()
        assert call.wait(dur + 40) == 0
        assert _wait(lambda: sum(m["type"] == "summary" for m in _mine(lab, "redis-outage")) == 2, 30)
        assert proc.poll() is None
    finally:
        call.stop()
        stop_plugin(lab, proc)

    stream = _stream(lab)
    ids = [m["id"] for m in stream]
    assert len(ids) == len(set(ids)), "a message is in the stream twice"
    mine = [m for m in stream if m.get("caller_name") == "redis-outage"]
    # one producer, one queue: stream order is creation order
    assert [m["ts"] for m in mine] == sorted(m["ts"] for m in mine)

    call_id = mine[0]["call_id"]
    computed = [json.loads(line) for line in summary_log.read_text().splitlines()]
    computed = {s["leg"]: s["summary"] for s in computed if s["call_id"] == call_id}
    assert set(computed) == {"caller", "callee"}
    for leg, summ in computed.items():
        chunks = [m for m in mine if m["leg"] == leg and m["type"] == "chunk"]
        verdicts = [m for m in mine if m["leg"] == leg and m["type"] == "verdict"]
        # every chunk score and every verdict the plugin computed is in the stream exactly once, in order
        assert [m["chunk_index"] for m in chunks] == [t["chunk_index"] for t in summ["chunk_timings"]], leg
        assert [(m["id"].rsplit("/", 1)[1], m["verdict"]) for m in verdicts] == \
            [(str(i + 1), h["verdict"]) for i, h in enumerate(summ["verdict_history"])], leg
        assert sum(m["type"] == "summary" and m["leg"] == leg for m in mine) == 1

    in_outage = [m for m in mine if t_down + 0.5 < m["ts"] < t_up - 0.5]
    delivered = sum(int(n) for n in re.findall(r"delivered (\d+) spooled message", log.text()))
    n_verdicts = sum(len(s["verdict_history"]) for s in computed.values())
    print(f"messages for the call: {len(mine)} ({n_verdicts} verdicts, "
          f"{sum(len(s['chunk_timings']) for s in computed.values())} chunk scores, 2 summaries); "
          f"created during the outage: {len(in_outage)} "
          f"({sum(m['type'] == 'verdict' for m in in_outage)} verdicts); delivered from the spool: {delivered} "
          f"in {t_drained - t_up:.1f} s after Redis was back")
    assert any(m["type"] == "verdict" for m in in_outage), "no verdict was produced during the outage"
    assert delivered >= len(in_outage) > 0
    assert "Traceback" not in log.text()
    assert os.path.getsize(summary_log) > 0


def _workers(pid: int) -> list[int]:
    """The plugin's detector worker processes (spawned multiprocessing children, not its resource tracker)."""
    out = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            for child in f.read().split():
                with open(f"/proc/{child}/cmdline", "rb") as c:
                    if b"spawn_main" in c.read():
                        out.append(int(child))
    return out


def test_a_killed_detector_worker_and_garbage_on_the_media_port_do_not_break_the_call(fault_lab):
    import signal
    import socket

    lab = fault_lab
    speech = make_bonafide(lab.root / "media" / "speech20.ulaw", seconds=20)
    log = _Log(lab)
    proc = start_plugin(lab)
    dur = audio_seconds(speech) + 0.5
    call = lab.sipp_call("100", speech, duration_s=dur, index=80, caller_name="worker-crash")
    try:
        assert _wait(lambda: any(m["type"] == "chunk" for m in _mine(lab, "worker-crash")), 40), log.text()[-3000:]
        workers = _workers(proc.pid)
        assert workers, "no detector worker found"
        for pid in workers:
            os.kill(pid, signal.SIGKILL)
        t_kill = time.time()
        # garbage to the media port, from an address no tap announced
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            for i in range(500):
                s.sendto(os.urandom(12 + i % 300), ("127.0.0.1", lab.ports.media))
        assert call.wait(dur + 40) == 0 and not call.hung_up_by_pbx, "the call did not go on"
        assert _wait(lambda: any(m["type"] == "summary" for m in _mine(lab, "worker-crash")), 20)
        assert proc.poll() is None, "callguard serve died"
    finally:
        call.stop()
        stop_plugin(lab, proc)
    msgs = _mine(lab, "worker-crash")
    chunks = [m for m in msgs if m["type"] == "chunk"]
    errors = [m for m in chunks if m["error"]]
    after = [m for m in chunks if m["ts"] > t_kill and m["score"] is not None]
    print(f"\nchunks {len(chunks)}, detection errors {len(errors)} ({[m['error'] for m in errors]}), "
          f"scored after the worker was killed {len(after)}")
    assert len(errors) <= 1 and all("died" in m["error"] for m in errors)
    assert after, "scoring did not come back after the worker died"
    assert "dropping RTP from unannounced address" in log.text()
    assert "Traceback" not in log.text()


def test_with_redis_and_asterisk_unreachable_at_start_the_plugin_waits_and_then_guards_calls(fault_lab):
    lab = fault_lab
    speech = make_bonafide(lab.root / "media" / "speech.ulaw", seconds=12)
    lab.stop_asterisk()
    lab.kill_redis()
    log = _Log(lab)
    watch = _ReturnWatch(lab)
    errors: list[BaseException] = []

    def bring_back() -> None:
        try:
            assert _wait(lambda: "ARI not reachable yet" in log.text(), 60)
            lab.start_redis()
            watch.start()
            lab.start_asterisk(timeout=90)
        except BaseException as exc:  # reported by the test thread
            errors.append(exc)

    helper = threading.Thread(target=bring_back, daemon=True)
    helper.start()
    proc = None
    call = None
    try:
        proc = start_plugin(lab, timeout=120)
        helper.join(100)
        assert not errors, errors
        assert _wait(lambda: watch.app_back is not None, 30)
        reconnect_s = watch.app_back - watch.ari_back
        text = log.text()
        print(f"\nARI app registered {reconnect_s:.2f} s after Asterisk answered")
        assert "Redis not reachable at start" in text and "ARI not reachable yet" in text
        assert reconnect_s <= 5.0
        call = lab.sipp_call("100", speech, duration_s=audio_seconds(speech) + 0.5, index=90,
                             caller_name="late-start")
        assert call.wait(audio_seconds(speech) + 40) == 0
        assert _wait(lambda: any(m["type"] == "summary" for m in _mine(lab, "late-start")), 20)
        assert any(m["type"] == "verdict" for m in _mine(lab, "late-start"))
        assert proc.poll() is None
    finally:
        if call is not None:
            call.stop()
        stop_plugin(lab, proc)
        helper.join(5)
        watch.stop.set()
        if lab.redis_pid() is None:
            lab.start_redis()
