"""The Event Socket client against the protocol peer (tests/plugin/esl_peer.py): framing, Content-Length
bodies, auth failure, ACL rejection, disconnect notices, background jobs finishing out of order, events
between a command and its reply, malformed frames, reconnects. The peer is written from the protocol
documentation; these tests show the client follows it, not that a live FreeSWITCH agrees."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from esl_peer import EslPeer

from plugin.esl import EslClient, EslError, EslProtocolError, parse_plain_event, read_frame

PASSWORD = "s3cret-Pa55"


def run(main: Callable[[EslPeer], Awaitable[Any]], **peer_kw: Any) -> Any:
    async def wrapper() -> Any:
        peer = EslPeer(password=PASSWORD, **peer_kw)
        await peer.start()
        try:
            return await asyncio.wait_for(main(peer), 20)
        finally:
            await peer.close()

    return asyncio.run(wrapper())


def client(peer: EslPeer, fmt: str = "plain", password: str = PASSWORD, **kw: Any) -> EslClient:
    return EslClient("127.0.0.1", peer.port, password, events=("CHANNEL_ANSWER", "BACKGROUND_JOB", "HEARTBEAT"),
                     event_format=fmt, connect_timeout=1.0, timeout=2.0, max_backoff=0.2, **kw)


async def until(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    for _ in range(int(timeout / 0.01)):
        if cond():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


def feed(data: bytes) -> asyncio.StreamReader:
    r = asyncio.StreamReader()
    r.feed_data(data)
    r.feed_eof()
    return r


# ------------------------------------------------------------------------------------------ framing
def test_frame_body_is_read_by_content_length_even_with_blank_lines_and_header_lookalikes_inside():
    body = b"line one\n\nContent-Type: command/reply\n\nlast"
    data = b"Content-Type: api/response\nContent-Length: %d\n\n" % len(body) + body + \
        b"Content-Type: command/reply\nReply-Text: +OK\n\n"

    async def main() -> None:
        r = feed(data)
        h1, b1 = await read_frame(r)
        h2, b2 = await read_frame(r)
        assert (h1["Content-Type"], b1) == ("api/response", body)
        assert (h2["Reply-Text"], b2) == ("+OK", b"")

    asyncio.run(main())


@pytest.mark.parametrize("data", [
    b"no colon here\n\n",
    b"Content-Type: api/response\nContent-Length: -5\n\n",
    b"Content-Type: api/response\nContent-Length: 12abc\n\n",
    b"Content-Type: api/response\nContent-Length: 999999999999\n\n",
    b": value without a name\n\n",
])
def test_malformed_frames_raise_a_protocol_error(data: bytes):
    async def main() -> None:
        await read_frame(feed(data))

    with pytest.raises(EslProtocolError):
        asyncio.run(main())


def test_a_body_cut_short_by_eof_is_an_incomplete_read_not_a_short_frame():
    async def main() -> None:
        await read_frame(feed(b"Content-Type: api/response\nContent-Length: 10\n\nabc"))

    with pytest.raises(asyncio.IncompleteReadError):
        asyncio.run(main())


def test_plain_event_headers_are_url_decoded_and_the_event_body_is_cut_by_its_own_length():
    body = "+OK 3f1c\nsecond line\n"
    raw = ("Event-Name: BACKGROUND_JOB\nCaller-Caller-ID-Name: Jos%C3%A9%20P%C3%A9rez%3A%20%25%2B\n"
           f"Content-Length: {len(body)}\n\n{body}trailing-garbage").encode()
    ev = parse_plain_event(raw)
    assert ev["Caller-Caller-ID-Name"] == "José Pérez: %+"
    assert ev["_body"] == body
    with pytest.raises(EslProtocolError):
        parse_plain_event(b"Event-Name: X\nContent-Length: 50\n\nshort")


# ------------------------------------------------------------------------------------------ live peer
@pytest.mark.parametrize("fmt", ["plain", "json"])
def test_auth_subscription_and_events_in_both_formats(fmt: str):
    async def main(peer: EslPeer) -> None:
        c = client(peer, fmt)
        got: list[dict[str, str]] = []
        c.on_event(got.append)
        await c.start(wait=3)
        assert peer.commands[0] == "auth ***"
        assert peer.commands[1] == f"event {fmt} CHANNEL_ANSWER BACKGROUND_JOB HEARTBEAT"
        await peer.place_call(b"", caller_name="Zoë O'Brien: 50% off", bridge=False)
        await until(lambda: any(e["Event-Name"] == "CHANNEL_ANSWER" for e in got))
        ans = next(e for e in got if e["Event-Name"] == "CHANNEL_ANSWER")
        assert ans["Caller-Caller-ID-Name"] == "Zoë O'Brien: 50% off"
        assert not any(e["Event-Name"] == "CHANNEL_CREATE" for e in got)  # not subscribed
        assert await c.bgapi("uuid_exists " + ans["Unique-ID"]) == "true"  # BACKGROUND_JOB body
        await c.close()

    run(main)


def test_wrong_password_is_refused_reported_and_never_logged(caplog: pytest.LogCaptureFixture):
    caplog.set_level(logging.DEBUG)

    async def main(peer: EslPeer) -> None:
        c = client(peer, password="wrong-" + PASSWORD)
        with pytest.raises(TimeoutError):
            await c.start(wait=1.0)
        assert not c.connected
        assert "authentication failed" in (c.last_error or "")
        assert peer.auth_attempts >= 1
        await c.close()

    run(main)
    text = caplog.text
    assert "authentication failed" in text
    assert PASSWORD not in text and "wrong-" not in text


def test_acl_rejection_is_an_auth_error():
    async def main(peer: EslPeer) -> None:
        peer.rude = True
        c = client(peer)
        with pytest.raises(TimeoutError):
            await c.start(wait=0.8)
        assert "ACL" in (c.last_error or "")
        await c.close()

    run(main)


def test_api_replies_match_their_commands_with_events_slipped_in_between():
    async def main(peer: EslPeer) -> None:
        peer.event_before_reply = True
        c = client(peer)
        beats: list[dict[str, str]] = []
        c.on_event(lambda e: beats.append(e) if e["Event-Name"] == "HEARTBEAT" else None)
        await c.start(wait=3)
        uuids = []
        for i in range(5):
            ch = peer.add_channel(f"sofia/internal/{i}", variables={"tag": f"value-{i}"})
            uuids.append(ch.uuid)
        results = await asyncio.gather(*(c.api(f"uuid_getvar {u} tag") for u in uuids))
        assert results == [f"value-{i}" for i in range(5)]
        assert len(beats) >= 5
        with pytest.raises(EslError, match="No such channel"):
            await c.api("uuid_kill not-a-channel")
        with pytest.raises(EslError, match="USAGE"):
            await c.api(f"uuid_setvar {uuids[0]}")
        await c.close()

    run(main)


def test_background_jobs_finishing_in_reverse_order_reach_their_own_callers():
    async def main(peer: EslPeer) -> None:
        c = client(peer)
        await c.start(wait=3)
        chans = [peer.add_channel(f"sofia/internal/{i}", variables={"n": str(i)}) for i in range(4)]
        peer.hold_jobs = True
        tasks = [asyncio.create_task(c.bgapi(f"uuid_getvar {ch.uuid} n")) for ch in chans]
        await until(lambda: len(peer.held_jobs) == 4)
        await peer.release_jobs(reverse=True)
        assert await asyncio.gather(*tasks) == ["0", "1", "2", "3"]
        peer.hold_jobs = False
        with pytest.raises(EslError, match="NO_ANSWER"):
            await c.bgapi("originate {origination_uuid=x}loopback/t/ctx &eavesdrop(nobody)")
        await c.close()

    run(main)


def test_a_malformed_frame_drops_the_connection_fails_waiting_commands_and_reconnects():
    async def main(peer: EslPeer) -> None:
        c = client(peer)
        connects: list[int] = []

        async def on_connect() -> None:
            connects.append(1)

        c.on_connect(on_connect)
        await c.start(wait=3)
        peer.hold_jobs = True
        pending = asyncio.create_task(c.bgapi("status"))
        await until(lambda: len(peer.held_jobs) == 1)
        await peer.send_raw(b"this is not a header line\n\n")
        with pytest.raises(EslError, match="lost"):
            await asyncio.wait_for(pending, 1.5)  # fails at once, not at the 2 s command timeout
        await until(lambda: c.connected and len(connects) == 2)
        assert c.protocol_errors >= 1 and peer.connections == 2
        peer.hold_jobs = False
        assert "ready" in await c.api("status")
        await c.close()

    run(main)


def test_a_malformed_event_is_skipped_and_the_connection_kept():
    async def main(peer: EslPeer) -> None:
        c = client(peer)
        got: list[dict[str, str]] = []
        c.on_event(got.append)
        await c.start(wait=3)
        bad = b"Core-UUID: x\n\n"  # no Event-Name
        await peer.send_raw(b"Content-Type: text/event-plain\nContent-Length: %d\n\n" % len(bad) + bad)
        notjson = b"{not json"
        await peer.send_raw(b"Content-Type: text/event-json\nContent-Length: %d\n\n" % len(notjson) + notjson)
        await peer.place_call(b"", bridge=False)
        await until(lambda: any(e["Event-Name"] == "CHANNEL_ANSWER" for e in got))
        assert c.protocol_errors == 2 and peer.connections == 1 and c.connected
        await c.close()

    run(main)


def test_disconnect_notice_then_reconnect_and_subscribe_again():
    async def main(peer: EslPeer) -> None:
        c = client(peer, fmt="json")
        got: list[dict[str, str]] = []
        c.on_event(got.append)
        await c.start(wait=3)
        await peer.disconnect_notice()
        await until(lambda: peer.connections == 2 and c.connected)
        await peer.wait_subscribed()
        assert c.reconnects == 1 and c.last_gap_s is not None and c.last_gap_s < 2
        await peer.place_call(b"", bridge=False)
        await until(lambda: any(e["Event-Name"] == "CHANNEL_ANSWER" for e in got))
        await c.close()
        assert peer.commands[-1] == "exit"

    run(main)


def test_refused_connections_are_retried_until_the_server_listens_again():
    async def main(peer: EslPeer) -> None:
        await peer.stop_listening()
        c = client(peer)
        await c.start(wait=None)
        await asyncio.sleep(0.5)
        assert not c.connected and "refused" in (c.last_error or "")
        with pytest.raises(EslError, match="not connected"):
            await c.api("status")
        await peer.resume_listening()
        await asyncio.wait_for(c.wait_connected(), 3)
        assert "ready" in await c.api("status")
        await c.close()

    run(main)


def test_newlines_in_commands_or_sendmsg_headers_are_refused_before_sending():
    async def main(peer: EslPeer) -> None:
        c = client(peer)
        await c.start(wait=3)
        ch = peer.add_channel("sofia/internal/x")
        with pytest.raises(ValueError):
            await c.api(f"uuid_setvar {ch.uuid} a b\n\napi uuid_kill {ch.uuid}")
        with pytest.raises(ValueError):
            await c.sendmsg(ch.uuid, {"call-command": "execute\nexecute-app-name: hangup"})
        assert await c.sendmsg(ch.uuid, {"call-command": "unicast", "local-port": "9"}) == "+OK"
        assert peer.sendmsgs == [(ch.uuid, {"call-command": "unicast", "local-port": "9"})]
        assert ch.uuid in peer.channels
        await c.close()

    run(main)


def test_json_event_values_that_are_not_strings_are_kept_as_json():
    from plugin.esl import parse_json_event

    ev = parse_json_event(json.dumps({"Event-Name": "X", "n": 3, "_body": "b"}).encode())
    assert ev == {"Event-Name": "X", "n": "3", "_body": "b"}
