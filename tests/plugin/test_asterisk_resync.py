"""The Asterisk adapter after its events websocket comes back, against a small stateful fake ARI (aiohttp).

A fake is no proof that this works on Asterisk (tests/integration/test_faults.py kills a real one); it is
here because after a real kill -9 no channel survives, so re-tapping calls that are still up can only be
exercised where the PBX keeps its channels while the connection is gone (an ARI/HTTP restart, a network
blip, a proxy in between).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

from aiohttp import web

from plugin.ari import AriClient
from plugin.asterisk import AsteriskAdapter
from plugin.config import parse_config
from plugin.guard import Guard
from plugin.media import MediaEndpoint
from plugin.scoring import DetectorInfo
from plugin.telephony import Call, CallInfo


class FakeAsterisk:
    """Channels and bridges in memory; snoop/externalMedia channels announce themselves with StasisStart
    on the events websocket before the HTTP reply, as Asterisk may do."""

    def __init__(self) -> None:
        self.channels: dict[str, dict[str, Any]] = {}
        self.bridges: dict[str, dict[str, Any]] = {}
        self.sockets: list[web.WebSocketResponse] = []
        self.accepting = True
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self.next_port = 30000

    def add_channel(self, cid: str, name: str = "PJSIP/sipp-00000001") -> None:
        self.channels[cid] = {"id": cid, "name": name, "state": "Up"}

    async def _event(self, event: dict[str, Any]) -> None:
        for ws in self.sockets:
            if not ws.closed:
                await ws.send_str(json.dumps(event))

    async def events(self, request: web.Request) -> web.StreamResponse:
        if not self.accepting:
            return web.Response(status=503, text="restarting")
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.sockets.append(ws)
        async for _ in ws:
            pass
        return ws

    async def drop(self) -> None:
        """The events connection breaks (server side)."""
        for ws in list(self.sockets):
            await ws.close()
        self.sockets.clear()

    async def rest(self, request: web.Request) -> web.Response:
        path = "/" + request.match_info["tail"]
        q = dict(request.query)
        self.requests.append((request.method, path, q))
        parts = path.strip("/").split("/")
        m = request.method
        if m == "GET" and path == "/channels":
            return web.json_response(list(self.channels.values()))
        if m == "GET" and path == "/bridges":
            return web.json_response(list(self.bridges.values()))
        if parts[0] == "channels" and len(parts) == 2 and m in ("GET", "DELETE"):
            ch = self.channels.get(parts[1]) if m == "GET" else self.channels.pop(parts[1], None)
            if ch is None:
                return web.json_response({"message": "Channel not found"}, status=404)
            return web.json_response(ch) if m == "GET" else web.Response(status=204)
        if parts[0] == "bridges" and len(parts) == 2 and m == "DELETE":
            return web.Response(status=204 if self.bridges.pop(parts[1], None) else 404)
        if m == "POST" and len(parts) == 3 and parts[0] == "channels" and parts[2] == "snoop":
            if parts[1] not in self.channels:
                return web.json_response({"message": "Channel not found"}, status=404)
            sid = q["snoopId"]
            self.add_channel(sid, f"Snoop/{parts[1]}-00000001")
            await self._event({"type": "StasisStart", "channel": self.channels[sid], "args": []})
            return web.json_response(self.channels[sid])
        if m == "POST" and path == "/channels/externalMedia":
            cid = q["channelId"]
            self.next_port += 2
            self.add_channel(cid, f"UnicastRTP/127.0.0.1:{self.next_port}-00000001")
            await self._event({"type": "StasisStart", "channel": self.channels[cid], "args": []})
            return web.json_response({**self.channels[cid], "channelvars": {
                "UNICASTRTP_LOCAL_ADDRESS": "127.0.0.1", "UNICASTRTP_LOCAL_PORT": str(self.next_port)}})
        if m == "POST" and path == "/bridges":
            self.bridges[q["bridgeId"]] = {"id": q["bridgeId"], "channels": []}
            return web.json_response(self.bridges[q["bridgeId"]])
        if m == "POST" and len(parts) == 3 and parts[0] == "bridges" and parts[2] == "addChannel":
            if parts[1] not in self.bridges:
                return web.json_response({"message": "Bridge not found"}, status=404)
            self.bridges[parts[1]]["channels"] += q["channel"].split(",")
            return web.Response(status=204)
        return web.Response(status=204)

    def externalmedia_for(self, call_id: str) -> int:
        return sum(1 for m, p, q in self.requests
                   if m == "POST" and p == "/channels/externalMedia"
                   and q["channelId"].startswith(f"cgtap-m-{call_id}-"))

    def subscriptions(self) -> list[str]:
        return [q["eventSource"] for m, p, q in self.requests if m == "POST" and p.endswith("/subscription")]


class FakeScoring:
    def __init__(self) -> None:
        self.info = DetectorInfo(name="fake", version="test", warn=0.6, hangup=0.9, eer=0.5)
        self.shed = 0
        self.on_result = None

    def submit(self, job: Any) -> None:
        pass

    def drop_leg(self, leg: str) -> int:
        return 0


class FakeBus:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def publish(self, msg: dict[str, Any]) -> bool:
        self.messages.append(msg)
        return True

    def write_summary_line(self, msg: dict[str, Any]) -> None:
        pass


async def _until(cond, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        await asyncio.sleep(0.02)
    return cond()


def test_after_the_events_connection_comes_back_surviving_calls_are_tapped_again_and_vanished_ones_end(caplog):
    caplog.set_level(logging.INFO)

    async def main() -> dict[str, Any]:
        fake = FakeAsterisk()
        app = web.Application()
        app.router.add_get("/ari/events", fake.events)
        app.router.add_route("*", "/ari/{tail:.*}", fake.rest)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

        ari = AriClient(f"http://127.0.0.1:{port}", "u", "pw", "callguard", max_backoff=0.3)
        adapter = AsteriskAdapter(ari, ("127.0.0.1", 40000), tap_timeout=2.0)
        config = parse_config({"ari": {"password": "pw"}}, env={}, check_port=False)
        media, bus = MediaEndpoint(), FakeBus()
        guard = Guard(config, adapter, media, FakeScoring(), bus)  # type: ignore[arg-type]
        await adapter.start(guard)
        try:
            return await scenario(fake, ari, adapter, media, bus, guard)
        finally:
            await adapter.close()
            await runner.cleanup()

    async def scenario(fake, ari, adapter, media, bus, guard) -> dict[str, Any]:
        # the start-up sweep (first connection) is done before the calls come
        assert await _until(lambda: ("GET", "/bridges", {}) in fake.requests)
        await asyncio.sleep(0.1)
        calls = {}
        for cid in ("A", "B", "C"):
            callee = f"cgcall-{cid}-b"
            fake.add_channel(cid)
            fake.add_channel(callee, "PJSIP/callee-00000002")
            fake.bridges[f"cgcall-{cid}"] = {"id": f"cgcall-{cid}", "channels": [cid, callee]}
            call = Call(call_id=cid, mode="bridge", caller_channel=cid, callee_channel=callee,
                        info=CallInfo(endpoint="sipp"), started_at=time.time())
            adapter.calls[cid] = call
            adapter.by_channel[cid] = adapter.by_channel[callee] = call
            await guard.call_started(call)
            calls[cid] = call
        assert len(media.taps) == 3
        before = {addr: tap for addr, tap in media.taps.items()}
        tap_of = {tap.key.split(":")[0]: tap for tap in media.taps.values()}

        # the events connection breaks and stays away a moment; meanwhile A's tap vanishes (its call is
        # still up), call C ends for good, and an orphaned tap channel of nobody is left on the PBX
        fake.accepting = False
        await fake.drop()
        assert await _until(lambda: not ari.connected)
        for res in ("cgtap-s-A-caller", "cgtap-m-A-caller"):
            fake.channels.pop(res)
        fake.bridges.pop("cgtap-b-A-caller")
        for cid in ("C", "cgcall-C-b"):
            fake.channels.pop(cid)
        fake.bridges.pop("cgcall-C")
        fake.add_channel("cgtap-s-Z-caller", "Snoop/gone-00000009")
        n_subs = len(fake.subscriptions())
        await asyncio.sleep(0.5)
        fake.accepting = True

        retapped = await _until(lambda: guard.legs.get("A:caller") is not None
                                and guard.legs["A:caller"].retaps == 1 and fake.externalmedia_for("A") == 2
                                and "cgtap-s-Z-caller" not in fake.channels
                                and any(m["type"] == "summary" for m in bus.messages))
        await asyncio.sleep(0.2)
        return {"fake": fake, "channels": set(fake.channels), "bridges": dict(fake.bridges),
                "calls_left": set(adapter.calls), "legs": set(guard.legs), "taps": dict(media.taps),
                "retaps": guard.legs["A:caller"].retaps, "messages": list(bus.messages),
                "before": before, "tap_of": tap_of,
                "retapped": retapped, "gap": ari.last_gap_s, "subs": fake.subscriptions()[n_subs:]}

    r = asyncio.run(main())
    fake, taps = r["fake"], r["taps"]
    assert r["retapped"], fake.requests[-20:]
    # A: still up, tap gone -> tapped again; the same LegTap (evidence, chunk numbering) at a new address
    a_addrs = [addr for addr, tap in taps.items() if tap is r["tap_of"]["A"]]
    assert len(a_addrs) == 1 and a_addrs[0] not in r["before"]
    assert {"cgtap-s-A-caller", "cgtap-m-A-caller"} <= r["channels"]
    assert r["bridges"]["cgtap-b-A-caller"]["channels"] == ["cgtap-s-A-caller", "cgtap-m-A-caller"]
    # B: still up, tap intact -> left alone
    assert fake.externalmedia_for("B") == 1
    assert [addr for addr, tap in taps.items() if tap is r["tap_of"]["B"]] == \
        [addr for addr, tap in r["before"].items() if tap is r["tap_of"]["B"]]
    # C: vanished -> ended, its summary published once, its tap gone from the media endpoint
    summaries = [m for m in r["messages"] if m["type"] == "summary"]
    assert [m["call_id"] for m in summaries] == ["C"]
    assert summaries[0]["summary"]["ended_by"] == "vanished while ARI was disconnected"
    assert r["tap_of"]["C"] not in taps.values() and r["calls_left"] == {"A", "B"}
    assert r["legs"] == {"A:caller", "B:caller"} and r["retaps"] == 1
    # the calls still up are subscribed to again; the orphan is deleted
    for cid in ("A", "B"):
        assert f"channel:{cid},channel:cgcall-{cid}-b,bridge:cgcall-{cid}" in r["subs"]
    assert "cgtap-s-Z-caller" not in r["channels"]
    # one line with the gap's length
    assert r["gap"] is not None and r["gap"] >= 0.5
    gap_lines = [rec.getMessage() for rec in caplog.records if "reconnected after a gap of" in rec.getMessage()]
    assert len(gap_lines) == 1, gap_lines
    assert any("1 call(s) vanished and ended" in rec.getMessage() and "1 set up again" in rec.getMessage()
               and "1 orphaned" in rec.getMessage() for rec in caplog.records)
