"""The ARI client against a small fake ARI server (aiohttp): events that arrive before the HTTP reply are
caught by waits registered before the request; the events websocket reconnects; auth and errors."""

from __future__ import annotations

import asyncio
import json

import pytest
from aiohttp import WSMsgType, web

from plugin.ari import AriClient, AriError


class FakeAri:
    def __init__(self) -> None:
        self.sockets: list[web.WebSocketResponse] = []
        self.connections = 0
        self.auth: list[str | None] = []
        self.drop_first = True

    async def events(self, request: web.Request) -> web.WebSocketResponse:
        self.auth.append(request.headers.get("Authorization"))
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self.connections += 1
        self.sockets.append(ws)
        if self.drop_first and self.connections == 1:
            await ws.close()  # the first connection drops at once: the client must come back
            return ws
        async for msg in ws:
            if msg.type == WSMsgType.CLOSE:
                break
        return ws

    async def answer(self, request: web.Request) -> web.Response:
        # the event is sent before the HTTP reply, as Asterisk may do
        for ws in self.sockets:
            if not ws.closed:
                await ws.send_str(json.dumps({"type": "ChannelStateChange",
                                              "channel": {"id": request.match_info["cid"], "state": "Up"}}))
        await asyncio.sleep(0.05)
        return web.Response(status=204)

    async def missing(self, request: web.Request) -> web.Response:
        return web.json_response({"message": "Channel not found"}, status=404)


async def serve(fake: FakeAri) -> tuple[web.AppRunner, int]:
    app = web.Application()
    app.router.add_get("/ari/events", fake.events)
    app.router.add_post("/ari/channels/{cid}/answer", fake.answer)
    app.router.add_delete("/ari/channels/{cid}", fake.missing)
    app.router.add_get("/ari/channels/{cid}", fake.missing)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    return runner, site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


def test_wait_registered_before_the_request_catches_an_event_sent_before_the_reply():
    async def main():
        fake = FakeAri()
        runner, port = await serve(fake)
        client = AriClient(f"http://127.0.0.1:{port}", "user", "pw", "app", max_backoff=0.2)
        seen = []
        client.on_event(seen.append)
        await client.start()
        while fake.connections < 2 or not client.connected:  # survived the dropped first connection
            await asyncio.sleep(0.02)
        fut = client.expect(lambda e: e["type"] == "ChannelStateChange" and e["channel"]["id"] == "c1")
        await client.post("/channels/c1/answer")
        event = await client.wait(fut, 1.0)
        with pytest.raises(AriError) as exc:
            await client.get("/channels/c1")
        assert await client.delete("/channels/c1") is None  # DELETE of a gone channel is not an error
        reconnects = client.reconnects
        await client.close()
        await runner.cleanup()
        return fake, event, seen, exc.value, reconnects

    fake, event, seen, err, reconnects = asyncio.run(main())
    assert event["channel"]["state"] == "Up" and seen and seen[-1] is event
    assert reconnects >= 1 and fake.connections >= 2
    assert err.status == 404 and "Channel not found" in str(err)
    assert all(a and a.startswith("Basic ") for a in fake.auth)
    assert "pw" not in str(err)


def test_a_wait_times_out_and_is_forgotten():
    async def main():
        fake = FakeAri()
        fake.drop_first = False
        runner, port = await serve(fake)
        client = AriClient(f"http://127.0.0.1:{port}", "user", "pw", "app")
        await client.start()
        fut = client.expect(lambda e: False)
        with pytest.raises(asyncio.TimeoutError):
            await client.wait(fut, 0.1)
        left = len(client._waiters)
        await client.close()
        await runner.cleanup()
        return left

    assert asyncio.run(main()) == 0
