"""Fuzzing ARI event handling: the client's dispatch of raw websocket text (invalid JSON, JSON that is not an
object, deep nesting, multi-megabyte messages) and the Asterisk adapter's event handler (unknown types,
missing ``channel``/``id``/``args``, wrong field types) log and go on: nothing raises out of a handler, no
spawned task dies with an error, no call state or event wait is left behind, and valid events still work.

The adapter runs behind the real AriClient dispatch; its REST calls are refused (HTTP 400) as Asterisk refuses
a request about a channel that does not exist. Default suite: a small sample. Dedicated run:
CALLGUARD_FUZZ_EXAMPLES (README, "Tests").
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp import WSMsgType, web
from fuzzing import fuzz_settings
from hypothesis import given
from hypothesis import strategies as st

from plugin.ari import AriClient, AriError
from plugin.asterisk import CALL_PREFIX, TAP_PREFIX, AsteriskAdapter


class RefusingAri(AriClient):
    """The real client's event dispatch and waits; every REST call is refused."""

    def __init__(self) -> None:
        super().__init__("http://127.0.0.1:9", "user", "pw", "callguard")
        self.requests: list[tuple[str, str]] = []

    async def request(self, method: str, path: str, *, ok_missing: bool = False, **params: Any) -> Any:
        self.requests.append((method, path))
        raise AriError(400, method, path, "Bad request")


class Events:
    def __init__(self) -> None:
        self.started: list[str] = []
        self.ended: list[str] = []

    async def call_started(self, call) -> None:  # type: ignore[no-untyped-def]
        self.started.append(call.call_id)

    async def call_ended(self, call, reason: str) -> None:  # type: ignore[no-untyped-def]
        assert isinstance(reason, str)
        self.ended.append(call.call_id)


# allow_subnormal=False: native libraries loaded by earlier tests (onnxruntime, torch) may have set the
# processor to flush subnormals to zero in this process, and hypothesis refuses to generate them then
junk = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_subnormal=False), st.text(max_size=8),
                 st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=4), st.integers(), max_size=2))
ids = st.one_of(st.sampled_from(["c1", "c2", "1795308046.0", "", f"{TAP_PREFIX}s-c1-caller", f"{CALL_PREFIX}c1-b"]),
                junk)
arg_words = st.sampled_from(["dial", "tap", "PJSIP/bob", "30", "\u00b2", "\u0663", "9" * 5000, "", "callee"])
args = st.one_of(st.tuples(st.sampled_from(["dial", "tap"]), arg_words, arg_words).map(list),
                 st.lists(arg_words, max_size=4), st.lists(st.one_of(arg_words, junk), max_size=4), junk)
playbacks = st.one_of(junk, st.fixed_dictionaries({}, optional={
    "id": junk, "target_uri": st.one_of(junk, st.just(f"channel:{TAP_PREFIX}w-c1-caller-0"))}))
EVENT_TYPES = ["StasisStart", "StasisEnd", "ChannelDestroyed", "ChannelHangupRequest", "PlaybackStarted",
               "PlaybackFinished", "ChannelStateChange", "ChannelVarset", "Dial", "NoSuchEvent", ""]
channel_fields = {"name": st.one_of(st.just("PJSIP/alice-0000002a"), junk),
                  "caller": st.one_of(junk, st.fixed_dictionaries({}, optional={"number": junk, "name": junk})),
                  "dialplan": st.one_of(junk, st.fixed_dictionaries({}, optional={"context": junk, "exten": junk}))}
channels = st.one_of(st.fixed_dictionaries({}, optional={"id": ids, **channel_fields}), junk)
live_ids = st.sampled_from(["c1", "c2", "1795308046.0"])
any_event = st.fixed_dictionaries({}, optional={
    "type": st.one_of(st.sampled_from(EVENT_TYPES), junk), "channel": channels, "args": args, "cause_txt": junk,
    "playback": playbacks, "application": junk})
# events about live channels with damaged details: these reach the call set-up code and the call end
plausible = st.one_of(
    st.fixed_dictionaries({"type": st.just("StasisStart"),
                           "channel": st.fixed_dictionaries({"id": live_ids}, optional=channel_fields), "args": args}),
    st.fixed_dictionaries({"type": st.sampled_from(["StasisEnd", "ChannelDestroyed", "ChannelHangupRequest"]),
                           "channel": st.fixed_dictionaries({"id": live_ids})}, optional={"cause_txt": junk}))
events = st.one_of(any_event, plausible)


def _starts_a_tracked_call(ev: dict) -> bool:
    """A StasisStart a call may legitimately be tracked for (tap mode: tracked until the channel goes)."""
    ch, a = ev.get("channel"), ev.get("args")
    return (ev.get("type") == "StasisStart" and isinstance(ch, dict) and isinstance(ch.get("id"), str)
            and bool(ch["id"]) and not ch["id"].startswith((TAP_PREFIX, CALL_PREFIX)) and isinstance(a, list)
            and all(isinstance(x, str) for x in a) and a[:1] == ["tap"])


async def _drain() -> None:
    """Run every task the handler spawned to its end; any error in one is a failure."""
    me = asyncio.current_task()
    while pending := [t for t in asyncio.all_tasks() if t is not me and not t.done()]:
        for res in await asyncio.gather(*pending, return_exceptions=True):
            if isinstance(res, BaseException) and not isinstance(res, asyncio.CancelledError):
                raise AssertionError(f"a spawned task failed: {res!r}") from res


def _setup() -> tuple[RefusingAri, AsteriskAdapter, Events, list[BaseException]]:
    ari = RefusingAri()
    adapter = AsteriskAdapter(ari, ("127.0.0.1", 40000))
    ev = Events()
    adapter.events = ev  # type: ignore[assignment]
    raised: list[BaseException] = []

    async def handler(event: dict) -> None:
        try:
            await adapter._on_event(event)
        except Exception as exc:  # the client would log it; here it is a failure of the handler
            raised.append(exc)

    ari.on_event(handler)
    return ari, adapter, ev, raised


@pytest.mark.fuzz
@fuzz_settings(50, weight=0.5)
@given(evs=st.lists(events, max_size=8))
def test_adapter_survives_malformed_events_and_leaves_no_state_behind(evs):
    async def main() -> None:
        ari, adapter, ev, raised = _setup()
        for event in evs:
            calls_before = set(adapter.calls)
            n_req = len(ari.requests)
            await ari._on_text(json.dumps(event))
            await _drain()
            assert not raised, f"the adapter's handler raised {raised[0]!r} on {event!r}"
            if not _starts_a_tracked_call(event):
                assert set(adapter.calls) <= calls_before, "a malformed event created call state"
            assert not [f for _, f in ari._waiters if not f.done()], "an event wait was left behind"
            ch = event.get("channel")
            if (event.get("type") == "StasisStart" and isinstance(ch, dict) and isinstance(ch.get("id"), str)
                    and ch["id"] and not ch["id"].startswith((TAP_PREFIX, CALL_PREFIX))):
                # every caller channel in Stasis is acted on: continued, tapped or bridged, never left hanging
                assert len(ari.requests) > n_req
        # every channel goes away: nothing may stay tracked
        for cid in list(adapter.by_channel):
            await ari._on_text(json.dumps({"type": "ChannelDestroyed", "channel": {"id": cid}}))
            await _drain()
        assert not raised
        assert not adapter.calls and not adapter.by_channel and not adapter.taps
        assert set(ev.started) <= set(ev.ended)

    asyncio.run(main())


json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_subnormal=False),
                                     st.text(max_size=10)),
                           lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                   st.dictionaries(st.text(max_size=6), inner, max_size=4)),
                           max_leaves=10)
texts = st.one_of(
    events.map(json.dumps), json_values.map(json.dumps), st.text(max_size=200),
    st.integers(1, 200_000).map(lambda n: "[" * n), st.integers(1, 200_000).map(lambda n: '{"a":' * n),
    events.map(json.dumps).flatmap(lambda s: st.integers(0, len(s)).map(lambda k: s[:k])),
    st.sampled_from(["", "null", "[]", "5", '"StasisStart"', "NaN", "{", '{"type": "StasisStart"}',
                     '{"type": "StasisStart", "channel": null}', '{"type": "StasisEnd", "channel": "c1"}']))


@pytest.mark.fuzz
@fuzz_settings(50, weight=0.5)
@given(text=texts)
def test_client_dispatches_only_json_objects_and_keeps_working(text):
    async def main() -> None:
        ari, adapter, ev, raised = _setup()
        seen: list[Any] = []
        ari.on_event(seen.append)
        await ari._on_text(text)
        await _drain()
        assert not raised
        try:
            parsed = json.loads(text)
        except (ValueError, RecursionError):
            parsed = None
        assert seen == ([parsed] if isinstance(parsed, dict) else []), "only JSON objects reach the handlers"
        # the client still works: a wait registered now is resolved by the next valid event
        fut = ari.expect(lambda e: e["type"] == "ChannelStateChange")
        await ari._on_text('{"type": "ChannelStateChange", "channel": {"id": "c9"}}')
        assert fut.done() and fut.result()["channel"]["id"] == "c9"

    asyncio.run(main())


@pytest.mark.fuzz
def test_multi_megabyte_and_hostile_messages_over_the_websocket_do_not_stop_the_event_stream():
    """Through a real websocket: after garbage, deep nesting, non-objects, a 3 MB event, a 3 MB non-JSON message
    and one beyond aiohttp's 4 MB message limit (which drops the connection), a valid event still arrives."""
    big_event = json.dumps({"type": "StasisStart", "channel": {"id": "x" * 3_000_000}, "args": ["nonsense"]})
    hostile = ["not json", "[" * 500_000, "[]", "5", "null", '{"type": ["StasisStart"]}',
               '{"type": "StasisStart"}', '{"type": "StasisEnd", "channel": "c1"}', big_event, "{" * 3_000_000,
               "a" * 5_000_000]

    async def main() -> tuple[list[dict], bool]:
        sent_sentinel = asyncio.Event()

        async def events_ws(request: web.Request) -> web.WebSocketResponse:
            ws = web.WebSocketResponse(max_msg_size=0)
            await ws.prepare(request)
            if not sent_sentinel.is_set():
                for m in hostile:
                    await ws.send_str(m)
            await ws.send_str(json.dumps({"type": "Sentinel"}))
            sent_sentinel.set()
            async for msg in ws:
                if msg.type == WSMsgType.CLOSE:
                    break
            return ws

        app = web.Application()
        app.router.add_get("/ari/events", events_ws)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        client = AriClient(f"http://127.0.0.1:{port}", "user", "pw", "callguard", max_backoff=0.2)
        got: list[dict] = []
        client.on_event(got.append)
        await client.start()
        for _ in range(300):
            if any(e.get("type") == "Sentinel" for e in got):
                break
            await asyncio.sleep(0.05)
        alive = client._ws_task is not None and not client._ws_task.done()
        await client.close()
        await runner.cleanup()
        return got, alive

    got, alive = asyncio.run(main())
    assert alive, "the events task died"
    assert any(e.get("type") == "Sentinel" for e in got), "the event stream stopped after hostile messages"
    assert all(isinstance(e, dict) for e in got)


@pytest.mark.fuzz
@fuzz_settings(50, weight=0.25)
@given(evs=st.lists(plausible, max_size=8))
def test_a_channel_destroyed_right_after_its_stasis_start_is_not_tracked(evs):
    """Events arrive back to back (one websocket read may hold several): the adapter's set-up tasks run only
    afterwards. A channel whose last event was ChannelDestroyed must not stay tracked as a call."""
    async def main() -> None:
        ari, adapter, ev, raised = _setup()
        for event in evs:
            await ari._on_text(json.dumps(event))  # no draining in between
        await _drain()
        assert not raised
        last = {e["channel"]["id"]: e["type"] for e in evs}
        for cid, kind in last.items():
            if kind == "ChannelDestroyed":
                assert cid not in adapter.by_channel, f"{cid} destroyed but still tracked"
        assert set(ev.started) <= set(ev.ended) | set(adapter.calls)

    asyncio.run(main())
