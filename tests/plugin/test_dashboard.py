"""The admin dashboard (issue #9) against the real aiohttp server on a free loopback port: login and session
cookie, CSRF rule, the JSON API over fake live legs (real ``LegState`` objects), a real ``ReviewStore`` and a
real models directory, the verdict feed fed by ``Bus.listeners``."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import math
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np
import pytest
import soundfile as sf

from plugin import metrics
from plugin.bus import Bus, make_message
from plugin.config import HttpConfig, Policy
from plugin.dashboard import Dashboard, Feed, leg_snapshot
from plugin.guard import LegState
from plugin.http import CSRF_HEADER, SESSION_COOKIE, HttpServer, Sessions
from plugin.lab import free_port
from plugin.media import LegTap
from plugin.metrics import ServiceStatus
from plugin.policy import LegEvidence
from plugin.review import ReviewStore
from plugin.telephony import Leg

TOKEN = "dashboard-test-token-7c41e0b2a9"
STATIC = Path(__file__).resolve().parents[2] / "plugin" / "static"


# --------------------------------------------------------------------------------------------- fakes
def fake_leg(call_id: str, scores: list[float | None], *, leg: str = "caller", warn: float = 0.78,
             hangup: float = 0.82, window: int = 3, caller_number: str = "+4930555", caller_name: str = "Alice",
             policy: str = "default", tapped_at: float | None = None) -> LegState:
    """A real LegState fed the way ``Guard._on_result`` feeds it (no telephony, no scoring)."""
    lg = Leg(call_id=call_id, leg=leg, channel_id=call_id if leg == "caller" else f"{call_id}-b",
             tap_channel_id=f"snoop-{call_id}-{leg}", spy="in")
    state = LegState(leg=lg, policy=Policy(name=policy, window=window),
                     evidence=LegEvidence(window=window, min_chunks=2, warn=warn, hangup=hangup),
                     tap=LegTap(key=lg.key, fmt="ulaw", on_chunk=lambda key, chunk: None),
                     caller={"caller_name": caller_name, "caller_number": caller_number},
                     tapped_at=time.time() - 30 if tapped_at is None else tapped_at)
    for i, score in enumerate(scores):
        changed = state.evidence.add(i, score)
        if score is not None:
            state.scores.append(score)
        state.chunk_timings.append({"chunk_index": i, "start_s": 1.5 + 2 * i, "end_s": 3.5 + 2 * i, "score": score,
                                    "queued_s": 0.01, "scoring_s": 0.02, "chunk_end_to_score_s": 0.04})
        if changed:
            state.verdict_history.append({"chunk_index": i, "verdict": state.evidence.verdict, "ts": time.time()})
    return state


def legs_of(*states: LegState) -> dict[str, LegState]:
    return {s.leg.key: s for s in states}


def tone(freq: float, seconds: float = 2.0, rate: int = 8000) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def fill_store(root: Path) -> list[int]:
    """A review store with three items of two calls (the first labelled already)."""
    with ReviewStore(root) as store:
        ids = [store.add(tone(300), call_id="1700000000.1", score=0.91, evidence=0.88, verdict="spoof",
                         reason="spoof", leg="caller", caller_number="+4930555", caller_name="Alice",
                         policy="default", detector="gbm", detector_version="gbm-x", chunk_index=4,
                         chunk_start_s=9.5, created_at=time.time() - 300),
               store.add(tone(440), call_id="1700000000.1", score=0.83, evidence=0.8, verdict="suspicious",
                         reason="suspicious", leg="caller", caller_number="+4930555", caller_name="Alice",
                         policy="default", detector="gbm", detector_version="gbm-x", chunk_index=3,
                         chunk_start_s=7.5, created_at=time.time() - 200),
               store.add(tone(550), call_id="1700000222.7", score=0.12, verdict="bonafide", reason="sample",
                         leg="callee", caller_number="+4940777", caller_name="<b>Bob</b>", policy="protect",
                         detector="gbm", detector_version="gbm-x", chunk_index=0, chunk_start_s=1.0,
                         created_at=time.time() - 100)]
        store.label(ids[0], "synthetic", "carol", note="robotic prosody")
    return ids


def fill_models(root: Path) -> None:
    """A versioned models directory: two versions (the second installed), a promotion log, a calibration."""
    versions = root / "versions"
    for name, info in (("20260101T000000", {"created": "2026-01-01T00:00:00Z", "source": "snapshot"}),
                       ("20260201T000000", {"created": "2026-02-01T00:00:00Z", "source": "retrain",
                                            "parent": "20260101T000000", "decision": "promoted",
                                            "model_version": "gbm-20260201-000000-r",
                                            "metrics": {"eval": {"champion": {"eer": 0.31, "far_hangup": 0.002},
                                                                 "challenger": {"eer": 0.27, "far_hangup": 0.001}},
                                                        "held_out": {"challenger": {"eer": float("nan")}}}})):
        (versions / name).mkdir(parents=True)
        (versions / name / "version.json").write_text(json.dumps(info))
    (versions / "current").write_text("20260201T000000\n")
    with (root / "promotions.jsonl").open("w") as f:
        f.write(json.dumps({"ts": "2026-01-15T00:00:00Z", "event": "refused", "challenger": None,
                            "reasons": ["need reviewed items from at least two calls"]}) + "\n")
        f.write(json.dumps({"ts": "2026-02-01T00:00:00Z", "event": "promoted", "challenger": "20260201T000000",
                            "metrics": {"eval": {"challenger": {"eer": 0.27}}}, "reasons": []}) + "\n")
    (root / "gbm.calibration.json").write_text(json.dumps({
        "version": "gbm-20260201-000000-r", "thresholds": {"eer": 0.5, "far_1pct": 0.78, "far_0_1pct": 0.82},
        "dev": {"eer": 0.29}, "feature_names": ["f"] * 5, "params": {"seed": 1}}))


@dataclass
class Info:
    name: str = "gbm"
    version: str = "gbm-x"
    warn: float = 0.78
    hangup: float = 0.82
    eer: float = 0.5


# --------------------------------------------------------------------------------------------- harness
@dataclass
class Reply:
    status: int
    headers: Any
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)


class Client:
    def __init__(self, session: aiohttp.ClientSession, base: str) -> None:
        self.session, self.base = session, base

    async def request(self, method: str, path: str, **kw: Any) -> Reply:
        kw.setdefault("allow_redirects", False)
        async with self.session.request(method, self.base + path, **kw) as r:
            return Reply(r.status, r.headers, await r.read())

    async def get(self, path: str, **kw: Any) -> Reply:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, **kw: Any) -> Reply:
        return await self.request("POST", path, **kw)

    async def login(self, token: str = TOKEN, reviewer: str = "alice") -> Reply:
        return await self.post("/dashboard/login", data={"token": token, "reviewer": reviewer})

    def cookie(self, name: str) -> str | None:
        for c in self.session.cookie_jar:
            if c.key == name:
                return c.value
        return None


async def _ok_status() -> ServiceStatus:
    return ServiceStatus(ari_connected=True, redis_connected=True, detector_up=True, detector_name="gbm",
                         detector_version="gbm-x", legs_guarded=2)


def serve(scenario: Callable[[Client], Awaitable[Any]], dashboard: Dashboard | None = None, token: str = TOKEN,
          **kwargs: Any) -> Any:
    """Run ``scenario(client)`` against a real HttpServer with ``dashboard`` (default: an empty one) attached;
    the client keeps cookies (also for 127.0.0.1)."""

    async def main() -> Any:
        dash = dashboard if dashboard is not None else Dashboard(**kwargs)
        server = HttpServer(HttpConfig(bind_host="127.0.0.1", port=0, token=token), _ok_status, dashboard=dash)
        host, port = await server.start()
        try:
            async with aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as s:
                return await scenario(Client(s, f"http://{host}:{port}"))
        finally:
            await server.close()

    return asyncio.run(main())


def bearer(token: str = TOKEN) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture(autouse=True)
def _clean_metrics():
    metrics.reset()
    yield
    metrics.reset()


# --------------------------------------------------------------------------------------------- auth
def test_without_auth_the_page_redirects_to_the_login_form_and_the_api_answers_401():
    async def scenario(c: Client) -> list[Reply]:
        return [await c.get("/dashboard"), await c.get("/dashboard/static/dashboard.js"), await c.get("/api/calls"),
                await c.get("/api/review"), await c.post("/api/review/1/label", json={"label": "unsure"}),
                await c.get("/dashboard/login"), await c.get("/health")]

    page, asset, calls, review, label, login, health = serve(scenario)
    assert (page.status, page.headers["Location"]) == (302, "/dashboard/login")
    assert (asset.status, asset.headers["Location"]) == (302, "/dashboard/login")
    assert calls.status == review.status == label.status == 401
    assert calls.headers["WWW-Authenticate"].startswith("Bearer")
    assert login.status == 200 and 'name="token"' in login.text and 'name="reviewer"' in login.text
    assert "default-src 'none'" in login.headers["Content-Security-Policy"]
    assert health.status == 200


def test_a_wrong_token_at_the_login_form_is_refused_without_a_cookie_or_an_echo():
    wrong = "not-the-token-but-long-enough"

    async def scenario(c: Client) -> tuple[Reply, Reply, str | None]:
        refused = await c.login(token=wrong)
        return refused, await c.get("/api/calls"), c.cookie(SESSION_COOKIE)

    refused, after, cookie = serve(scenario)
    assert refused.status == 401 and "Wrong token." in refused.text
    assert wrong not in refused.text and "Set-Cookie" not in refused.headers
    assert cookie is None and after.status == 401
    assert metrics.get("http_auth_failures") == 2  # the login and the API call


def test_the_login_form_needs_the_reviewers_name():
    async def scenario(c: Client) -> tuple[Reply, str | None]:
        return await c.login(reviewer="  \x07 "), c.cookie(SESSION_COOKIE)

    reply, cookie = serve(scenario)
    assert reply.status == 400 and "Enter your name" in reply.text and cookie is None


def test_login_sets_an_httponly_strict_session_cookie_that_opens_the_page_the_api_and_metrics():
    async def scenario(c: Client) -> tuple[Reply, list[Reply], dict]:
        login = await c.login(reviewer="Dana Q.")
        after = [await c.get("/dashboard"), await c.get("/api/calls"), await c.get("/metrics"),
                 await c.get("/dashboard/static/dashboard.js")]
        return login, after, (await c.get("/api/session")).json()

    login, (page, calls, prom, js), session = serve(scenario)
    assert (login.status, login.headers["Location"]) == (303, "/dashboard")
    cookies = {h.split("=", 1)[0]: h for h in login.headers.getall("Set-Cookie")}
    sc = cookies[SESSION_COOKIE]
    for attr in ("HttpOnly", "SameSite=Strict", "Path=/", "Max-Age="):
        assert attr in sc
    value = sc.split(";", 1)[0].split("=", 1)[1]
    assert TOKEN not in value and re.fullmatch(r"v1\.\d+\.[0-9a-f]{64}", value)
    assert page.status == 200 and b'id="calls"' in page.body
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]
    assert page.headers["X-Frame-Options"] == "DENY" and page.headers["X-Content-Type-Options"] == "nosniff"
    assert calls.status == 200 and prom.status == 200 and b"callguard_up" in prom.body
    assert js.status == 200 and js.headers["Content-Type"].startswith("text/javascript")
    assert session["auth"] == "cookie" and session["reviewer"] == "Dana Q."
    assert session["expires"] > time.time() + 3600


def test_sessions_are_hmacs_that_end_with_the_token_or_their_expiry():
    now = [1_000_000.0]
    sessions = Sessions(TOKEN, ttl_s=600, clock=lambda: now[0])
    value = sessions.issue()
    assert sessions.valid(value)
    assert not Sessions(TOKEN + "-rotated", ttl_s=600, clock=lambda: now[0]).valid(value)
    version, expires, mac = value.split(".")
    forged = [f"{version}.{int(expires) + 3600}.{mac}", f"{version}.{expires}.{'0' * 64}",
              f"v2.{expires}.{mac}", value + "0", "", "v1..", "v1.-5." + mac, TOKEN]
    assert not any(sessions.valid(f) for f in forged)
    now[0] += 601
    assert not sessions.valid(value)
    with pytest.raises(ValueError):
        Sessions("")


def test_a_cookie_from_before_a_token_change_is_refused():
    async def first(c: Client) -> str | None:
        await c.login()
        return c.cookie(SESSION_COOKIE)

    cookie = serve(first)
    assert cookie

    async def second(c: Client) -> tuple[Reply, Reply]:
        headers = {"Cookie": f"{SESSION_COOKIE}={cookie}"}
        return await c.get("/api/calls", headers=headers), await c.get("/dashboard", headers=headers)

    api, page = serve(second, token=TOKEN + "-rotated")
    assert api.status == 401 and page.status == 302


def test_posts_with_the_cookie_need_the_csrf_header_or_json_and_a_matching_origin(tmp_path):
    ids = fill_store(tmp_path / "review")

    async def scenario(c: Client) -> list[Reply]:
        await c.login()
        path = f"/api/review/{ids[1]}/label"
        form = await c.post(path, data={"label": "unsure", "reviewer": "x"})
        header = await c.post(path, data=json.dumps({"label": "unsure", "reviewer": "x"}),
                              headers={CSRF_HEADER: "1", "Content-Type": "text/plain"})
        as_json = await c.post(path, json={"label": "replay", "reviewer": "x"})
        foreign = await c.post(path, json={"label": "unsure", "reviewer": "x"},
                               headers={"Origin": "https://evil.example"})
        same = await c.post(path, json={"label": "bona fide", "reviewer": "x"}, headers={"Origin": c.base})
        logout_plain = await c.post("/dashboard/logout")
        return [form, header, as_json, foreign, same, logout_plain]

    form, header, as_json, foreign, same, logout_plain = serve(scenario, review_dir=tmp_path / "review")
    assert form.status == 403 and CSRF_HEADER in form.json()["error"]
    assert header.status == 200 and header.json()["label"] == "unsure"  # the header alone suffices
    assert as_json.status == 200 and as_json.json()["label"] == "replay"
    assert foreign.status == 403 and "cross-origin" in foreign.json()["error"]
    assert same.status == 200 and same.json()["label"] == "bonafide"
    assert logout_plain.status == 403
    assert metrics.get("http_csrf_refused") == 3
    with ReviewStore(tmp_path / "review") as store:
        assert [h["label"] for h in store.get(ids[1])["history"]] == ["unsure", "replay", "bonafide"]


def test_bearer_clients_need_no_csrf_header_and_metrics_works_as_before():
    async def scenario(c: Client) -> list[Reply]:
        return [await c.get("/metrics", headers=bearer()), await c.get("/metrics"),
                await c.get("/metrics", headers=bearer("wrong-token-of-some-length")),
                await c.post("/dashboard/logout", headers=bearer()), await c.get("/api/calls", headers=bearer())]

    ok, missing, wrong, logout, calls = serve(scenario)
    assert ok.status == 200 and b"callguard_legs_guarded 2.0" in ok.body
    assert missing.status == wrong.status == 401
    assert logout.status == 200 and calls.status == 200


def test_logout_clears_the_cookies():
    async def scenario(c: Client) -> tuple[Reply, Reply, Reply]:
        await c.login()
        before = await c.get("/api/calls")
        out = await c.post("/dashboard/logout", headers={CSRF_HEADER: "1"})
        return before, out, await c.get("/api/calls")

    before, out, after = serve(scenario)
    assert before.status == 200 and out.status == 200 and after.status == 401
    assert any(h.startswith(f"{SESSION_COOKIE}=;") or f'{SESSION_COOKIE}=""' in h
               for h in out.headers.getall("Set-Cookie"))


def test_without_a_token_the_dashboard_and_its_login_answer_403():
    async def scenario(c: Client) -> list[Reply]:
        return [await c.get("/dashboard"), await c.get("/dashboard/login"), await c.login(token=""),
                await c.get("/api/calls"), await c.get("/health")]

    *refused, health = serve(scenario, token="")
    assert [r.status for r in refused] == [403, 403, 403, 403] and health.status == 200
    assert "CALLGUARD_HTTP_TOKEN" in refused[0].text


def test_the_token_never_appears_in_logs_or_responses(caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    fill_store(tmp_path / "review")

    async def scenario(c: Client) -> list[Reply]:
        replies = [await c.login(token=TOKEN[:-1] + "x"), await c.login(token=TOKEN + " "), await c.login()]
        for path in ("/dashboard", "/api/calls", "/api/session", "/api/review?labelled=all", "/api/models",
                     "/api/feed", "/metrics"):
            replies.append(await c.get(path))
        replies.append(await c.post("/api/review/2/label", json={"label": "unsure"}))
        return replies

    replies = serve(scenario, review_dir=tmp_path / "review")
    assert replies[1].status == 303  # surrounding blanks of a pasted token are forgiven
    for r in replies:
        assert TOKEN not in r.text and TOKEN not in str(dict(r.headers))
    assert caplog.records and not any(TOKEN in rec.getMessage() for rec in caplog.records)


# --------------------------------------------------------------------------------------------- live calls, feed
def test_calls_snapshot_real_leg_states_with_timeline_rolling_evidence_and_thresholds():
    spoofy = fake_leg("1700000000.1", [0.2, 0.9, None, 0.95, float("nan"), 0.97], tapped_at=1000.0)
    calm = fake_leg("1700000000.5", [0.1, 0.3], leg="callee", caller_name="Bob", tapped_at=900.0)

    async def scenario(c: Client) -> dict:
        return (await c.get("/api/calls", headers=bearer())).json()

    data = serve(scenario, legs=lambda: legs_of(spoofy, calm), detector=Info)
    assert data["detector"] == {"name": "gbm", "version": "gbm-x", "warn": 0.78, "hangup": 0.82, "eer": 0.5}
    assert [leg["key"] for leg in data["legs"]] == ["1700000000.5:callee", "1700000000.1:caller"]  # by tap time
    leg = data["legs"][1]
    assert (leg["call_id"], leg["leg"], leg["caller_name"], leg["caller_number"], leg["policy"]) == (
        "1700000000.1", "caller", "Alice", "+4930555", "default")
    assert (leg["warn"], leg["hangup"], leg["window"]) == (0.78, 0.82, 3)
    assert leg["verdict"] == spoofy.evidence.verdict == "spoof"
    assert leg["evidence"] == pytest.approx(spoofy.evidence.evidence)
    assert leg["scored"] == 4 and leg["errors"] == 2
    points = leg["points"]
    assert [p["chunk_index"] for p in points] == list(range(6))
    assert [p["score"] for p in points] == [0.2, 0.9, None, 0.95, None, 0.97]  # NaN never reaches the JSON
    assert points[-1]["evidence"] == pytest.approx(spoofy.evidence.evidence)
    assert points[1]["evidence"] == pytest.approx((0.2 + 0.9) / 2)
    assert (points[0]["start_s"], points[0]["end_s"]) == (1.5, 3.5)
    assert [v["verdict"] for v in leg["verdict_history"]] == [v["verdict"] for v in spoofy.verdict_history]
    assert data["legs"][0]["verdict"] == "bonafide"


def test_the_timeline_is_bounded_and_keeps_the_evidence_of_its_first_point():
    scores = [0.1 * (i % 10) for i in range(50)]
    snap = leg_snapshot("k", fake_leg("c", scores), max_points=20)
    assert [p["chunk_index"] for p in snap["points"]] == list(range(30, 50))
    assert snap["points"][0]["evidence"] == pytest.approx(sum(scores[28:31]) / 3)


def test_a_broken_legs_source_gives_an_empty_list_not_an_error():
    def broken() -> dict:
        raise RuntimeError("guard went away")

    good = fake_leg("c1", [0.5])
    weird = fake_leg("c2", [0.5])
    weird.leg = None  # type: ignore[assignment]

    async def scenario(c: Client) -> list[dict]:
        return [(await c.get("/api/calls", headers=bearer())).json()]

    assert serve(scenario, legs=broken)[0]["legs"] == []
    assert [leg["key"] for leg in serve(scenario, legs=lambda: legs_of(good) | {"c2:caller": weird})[0]["legs"]] == [
        "c1:caller"]
    assert serve(scenario, legs=lambda: None)[0] == {"ts": pytest.approx(time.time(), abs=60), "detector": None,
                                                      "legs": []}


def _verdict(call_id: str, verdict: str, seq: int, previous: str | None = None) -> dict:
    return make_message("verdict", call_id=call_id, channel_id=call_id, leg="caller", chunk_index=seq,
                        chunk_start_s=1.0 + 2 * seq, score=0.9, detector="gbm", detector_version="gbm-x",
                        verdict=verdict, policy="default", previous_verdict=previous, evidence=0.9,
                        actions=["annotate", "warn"], seq=seq, caller_number="+4930555", caller_name="Alice")


def test_bus_listeners_see_every_published_message_and_a_failing_one_breaks_nothing(tmp_path):
    seen: list[dict] = []

    def broken(msg: dict) -> None:
        raise RuntimeError("listener bug")

    async def main() -> list[bool]:
        bus = Bus(f"redis://127.0.0.1:{free_port()}/0", "", "c", "s", 10, tmp_path / "spool.jsonl", 100_000)
        bus.listeners += [broken, seen.append]
        out = [await bus.publish(_verdict("c1", "suspicious", 1)),
               await bus.publish(make_message("chunk", call_id="c1", channel_id="c1", leg="caller", chunk_index=2,
                                              chunk_start_s=5.0, score=0.5, detector="gbm",
                                              detector_version="x", verdict="suspicious", policy="default"))]
        await bus.redis.aclose()
        return out

    delivered = asyncio.run(main())
    assert delivered == [False, False]  # Redis is not there: spooled, the listener still saw them
    assert [m["type"] for m in seen] == ["verdict", "chunk"] and "_bus" not in seen[0]
    assert len((tmp_path / "spool.jsonl").read_text().splitlines()) == 2
    assert metrics.get("bus_listener_errors") == 2


def test_the_feed_keeps_recent_verdicts_and_summaries_and_polls_after_a_number():
    feed = Feed(maxlen=3)
    feed(make_message("chunk", call_id="c", channel_id="c", leg="caller", chunk_index=0, chunk_start_s=1.0,
                      score=0.1, detector="gbm", detector_version="x", verdict="bonafide", policy="default"))
    for i, v in enumerate(["bonafide", "suspicious", "spoof", "suspicious"], 1):
        feed(_verdict("c1", v, i))
    feed(make_message("summary", call_id="c1", channel_id="c1", leg="caller", chunk_index=None, chunk_start_s=None,
                      score=0.97, detector="gbm", detector_version="x", verdict="spoof", policy="default", seq=0,
                      summary={"final_verdict": "spoof", "max_score": 0.97, "scored": 9, "ended_by": "caller hangup",
                               "chunk_timings": [{"chunk_index": i} for i in range(500)]}))

    async def scenario(c: Client) -> list[Reply]:
        return [await c.get(p, headers=bearer()) for p in (
            "/api/feed", "/api/feed?after=4", "/api/feed?after=5", "/api/feed?after=99", "/api/feed?after=x",
            "/api/feed?after=-1", "/api/feed?limit=1")]

    every, after4, after5, restarted, bad, negative, one = serve(scenario, feed=feed)
    data = every.json()
    assert data["last"] == 5 and data["first"] == 3  # the ring holds 3; chunk messages are not kept
    assert [m["seq"] for m in data["messages"]] == [3, 4, 5]
    assert [m["verdict"] for m in data["messages"]] == ["spoof", "suspicious", "spoof"]
    assert data["messages"][0]["actions"] == ["annotate", "warn"] and data["messages"][0]["caller_name"] == "Alice"
    summary = data["messages"][-1]
    assert summary["type"] == "summary" and "chunk_timings" not in summary["summary"]
    assert summary["summary"]["ended_by"] == "caller hangup"
    assert [m["seq"] for m in after4.json()["messages"]] == [5]
    assert after5.json()["messages"] == []
    assert [m["seq"] for m in restarted.json()["messages"]] == [3, 4, 5]
    assert bad.status == negative.status == 400 and "after" in bad.json()["error"]
    assert [m["seq"] for m in one.json()["messages"]] == [5]


# --------------------------------------------------------------------------------------------- review queue
def test_the_review_queue_lists_filters_and_counts_without_file_paths(tmp_path):
    ids = fill_store(tmp_path / "review")

    async def scenario(c: Client) -> list[Reply]:
        return [await c.get(p, headers=bearer()) for p in (
            "/api/review", "/api/review?labelled=1", "/api/review?labelled=all&limit=2",
            "/api/review?labelled=all&offset=2", f"/api/review/{ids[0]}", "/api/review?labelled=maybe",
            "/api/review?limit=0", "/api/review?limit=x")]

    unl, lab, page1, page2, one, bad, zero, nan = serve(scenario, review_dir=tmp_path / "review")
    u = unl.json()
    assert u["available"] is True
    assert [i["id"] for i in u["items"]] == [ids[2], ids[1]]  # unlabelled, newest first
    assert u["counts"] == {"unlabelled": 2, "synthetic": 1, "total": 3}
    assert u["items"][0]["caller_name"] == "<b>Bob</b>"  # data as is; the page renders it as text
    assert u["items"][0]["audio_url"] == f"/api/review/{ids[2]}/audio.wav"
    assert [i["id"] for i in lab.json()["items"]] == [ids[0]]
    assert len(page1.json()["items"]) == 2 and len(page2.json()["items"]) == 1
    item = one.json()
    assert (item["label"], item["labelled_by"], item["verdict"], item["score"]) == ("synthetic", "carol", "spoof", 0.91)
    assert item["history"][0]["note"] == "robotic prosody"
    for reply in (unl, lab, one):
        assert str(tmp_path) not in reply.text and "audio_path" not in reply.text
    assert bad.status == zero.status == nan.status == 400
    assert "labelled" in bad.json()["error"] and "limit" in zero.json()["error"]


def test_labelling_stores_the_label_with_who_and_when(tmp_path):
    ids = fill_store(tmp_path / "review")
    t0 = time.time()

    async def scenario(c: Client) -> tuple[Reply, Reply, Reply]:
        await c.login(reviewer="Erin")
        named = await c.post(f"/api/review/{ids[1]}/label", json={"label": "bona fide", "reviewer": "frank",
                                                                   "note": "  sounds like a real person "})
        from_login = await c.post(f"/api/review/{ids[2]}/label", json={"label": "replay"})
        return named, from_login, await c.get("/api/review?labelled=0")

    named, from_login, unl = serve(scenario, review_dir=tmp_path / "review")
    t1 = time.time()
    assert named.status == 200 and named.json()["label"] == "bonafide" and named.json()["labelled_by"] == "frank"
    assert from_login.status == 200 and from_login.json()["labelled_by"] == "Erin"
    assert unl.json()["items"] == []
    with ReviewStore(tmp_path / "review") as store:
        a, b = store.get(ids[1]), store.get(ids[2])
        assert (a["label"], a["labelled_by"]) == ("bonafide", "frank")
        assert t0 <= a["labelled_at"] <= t1
        assert a["history"] == [{"label": "bonafide", "reviewer": "frank", "at": a["labelled_at"],
                                 "note": "sounds like a real person"}]
        assert (b["label"], b["labelled_by"]) == ("replay", "Erin") and t0 <= b["labelled_at"] <= t1
        assert store.counts() == {"bonafide": 1, "replay": 1, "synthetic": 1, "total": 3}


@pytest.mark.parametrize("path, body, code, message", [
    ("/api/review/999/label", {"label": "synthetic", "reviewer": "x"}, 404, "no review item 999"),
    ("/api/review/99999999999999999999/label", {"label": "synthetic", "reviewer": "x"}, 404, ""),
    ("/api/review/abc/label", {"label": "synthetic", "reviewer": "x"}, 404, ""),
    ("/api/review/{id}/label", {"label": "deepfake", "reviewer": "x"}, 400,
     "unknown label 'deepfake' (expected one of: bona fide, synthetic, replay, unsure)"),
    ("/api/review/{id}/label", {"label": "synthetic", "reviewer": " "}, 400, "reviewer"),
    ("/api/review/{id}/label", {"label": "synthetic", "reviewer": "x", "note": "n" * 501}, 400, "note"),
    ("/api/review/{id}/label", ["synthetic"], 400, "JSON object"),
    ("/api/review/{id}/label", "not json", 400, "JSON body"),
    ("/api/review/999/audio.wav", None, 404, "no review item 999"),
])
def test_label_and_audio_requests_are_validated(tmp_path, path, body, code, message):
    ids = fill_store(tmp_path / "review")
    path = path.replace("{id}", str(ids[1]))

    async def scenario(c: Client) -> Reply:
        if body is None:
            return await c.get(path, headers=bearer())
        data = body if isinstance(body, str) else json.dumps(body)
        return await c.post(path, data=data, headers={**bearer(), "Content-Type": "application/json"})

    reply = serve(scenario, review_dir=tmp_path / "review")
    assert reply.status == code
    if message:
        assert message in reply.json()["error"]
    with ReviewStore(tmp_path / "review") as store:
        assert store.get(ids[1])["label"] is None  # nothing was written


def test_the_audio_endpoint_serves_the_items_wav_with_ranges(tmp_path):
    ids = fill_store(tmp_path / "review")

    async def scenario(c: Client) -> tuple[Reply, Reply]:
        return (await c.get(f"/api/review/{ids[1]}/audio.wav", headers=bearer()),
                await c.get(f"/api/review/{ids[1]}/audio.wav", headers={**bearer(), "Range": "bytes=0-43"}))

    full, head = serve(scenario, review_dir=tmp_path / "review")
    assert full.status == 200 and full.headers["Content-Type"] == "audio/wav"
    audio, rate = sf.read(io.BytesIO(full.body), dtype="int16")
    assert rate == 8000 and len(audio) == 16000
    with ReviewStore(tmp_path / "review") as store:
        assert np.array_equal(audio, store.audio(ids[1]))
    spectrum = np.abs(np.fft.rfft(audio.astype(np.float64)))
    assert abs(np.argmax(spectrum) * rate / len(audio) - 440) < 2  # the 440 Hz item, not another one
    assert head.status == 206 and head.body == full.body[:44] and head.body.startswith(b"RIFF")


def test_the_audio_of_a_purged_file_is_404(tmp_path):
    ids = fill_store(tmp_path / "review")
    with ReviewStore(tmp_path / "review") as store:
        Path(store.get(ids[2])["audio_path"]).unlink()

    async def scenario(c: Client) -> Reply:
        return await c.get(f"/api/review/{ids[2]}/audio.wav", headers=bearer())

    reply = serve(scenario, review_dir=tmp_path / "review")
    assert reply.status == 404 and "gone" in reply.json()["error"]


def test_without_a_review_store_the_queue_says_so_and_none_is_created(tmp_path):
    async def scenario(c: Client) -> tuple[Reply, Reply]:
        return (await c.get("/api/review", headers=bearer()),
                await c.post("/api/review/1/label", json={"label": "unsure", "reviewer": "x"}, headers=bearer()))

    listing, label = serve(scenario, review_dir=tmp_path / "nothing-here")
    assert listing.status == 200 and listing.json()["available"] is False and "[capture]" in listing.json()["reason"]
    assert label.status == 404
    assert not (tmp_path / "nothing-here").exists()


# --------------------------------------------------------------------------------------------- models
def test_models_lists_versions_with_metrics_and_the_promotion_log(tmp_path):
    fill_models(tmp_path / "models")

    async def scenario(c: Client) -> tuple[Reply, Reply]:
        return (await c.get("/api/models", headers=bearer()),
                await c.get("/api/models", headers=bearer()))

    reply, _ = serve(scenario, models_dir=tmp_path / "models", detector=Info)
    assert reply.status == 200
    data = json.loads(reply.body)  # strict JSON: the NaN in version.json arrives as null
    assert data["running"]["version"] == "gbm-x"
    assert data["current"] == "20260201T000000"
    assert [(v["name"], v["current"]) for v in data["versions"]] == [("20260201T000000", True),
                                                                     ("20260101T000000", False)]
    newest = data["versions"][0]
    assert newest["metrics"]["eval"]["challenger"]["eer"] == 0.27 and newest["decision"] == "promoted"
    assert newest["metrics"]["held_out"]["challenger"]["eer"] is None
    assert [e["event"] for e in data["log"]] == ["promoted", "refused"]
    assert data["installed"] == {"version": "gbm-20260201-000000-r", "dev": {"eer": 0.29},
                                 "thresholds": {"eer": 0.5, "far_1pct": 0.78, "far_0_1pct": 0.82}}
    assert not any(isinstance(v, float) and math.isnan(v) for v in json.loads(reply.body)["versions"][0].values())


def test_models_without_a_directory_or_versions_is_empty_not_an_error(tmp_path):
    async def scenario(c: Client) -> dict:
        return (await c.get("/api/models", headers=bearer())).json()

    assert serve(scenario) == {"running": None, "current": None, "installed": None, "versions": [], "log": []}
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "promotions.jsonl").write_text("{broken\n")
    data = serve(scenario, models_dir=tmp_path / "m")
    assert data["versions"] == [] and data["log"] == [] and "unreadable" in data["log_error"]


# --------------------------------------------------------------------------------------------- page and assets
def test_only_the_dashboard_assets_are_served():
    async def scenario(c: Client) -> list[Reply]:
        return [await c.get(p, headers=bearer()) for p in (
            "/dashboard/static/dashboard.css", "/dashboard/static/login.html", "/dashboard/static/..%2Fhttp.py",
            "/dashboard/static/%2E%2E/dashboard.py", "/dashboard/")]

    css, login, up, dots, slash = serve(scenario)
    assert css.status == 200 and css.headers["Content-Type"].startswith("text/css")
    assert login.status == up.status == dots.status == 404
    assert (slash.status, slash.headers["Location"]) == (302, "/dashboard")


def test_the_page_renders_data_as_text_and_fetches_nothing_external():
    js = (STATIC / "dashboard.js").read_text()
    page = (STATIC / "dashboard.html").read_text() + (STATIC / "login.html").read_text()
    assert "innerHTML" not in js and "outerHTML" not in js and "insertAdjacentHTML" not in js
    assert "document.write" not in js and "eval(" not in js
    assert re.findall(r"https?://[^\s\"'`]+", js) == ["http://www.w3.org/2000/svg"]  # the SVG namespace only
    assert not re.findall(r"(?:src|href)=\"(?:https?:)?//", page)
    for hook in ('data-leg', 'data-item-id', 'data-label', 'data-timeline', 'data-threshold', 'data-audio-for',
                 'data-current-label', 'data-feed-seq', 'data-version'):
        assert hook in js
