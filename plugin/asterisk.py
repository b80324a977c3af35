"""The Asterisk adapter (ARI, tested on 16.28): call tracking, media taps, reactions.

Two ways in (dialplan examples in ``dialplan/extensions.conf``):

(a) ``Stasis(callguard,dial,<dial string>[,<timeout>])``: callguard rings the caller, originates the
    other party into the app, answers the caller over ARI when the other party answers, and bridges both
    legs in a mixing bridge of its own.
(b) ``Stasis(callguard,tap)`` just before the administrator's own ``Dial()``: callguard subscribes to the
    channel explicitly (so it still sees the hang-up after the channel leaves Stasis), hands it straight
    back with ``continue`` and taps it from outside: ``spy=in`` hears the caller, ``spy=out`` hears what
    the caller is sent, i.e. the called party.

A tap is a snoop channel + an ExternalMedia channel in a private mixing bridge. Every resource gets an id
starting with ``cgtap-`` and is deleted at call end; ids are also swept at start-up, so a crashed
plugin leaves nothing behind after its restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from plugin.ari import REQUEST_FAILURES, AriClient, AriError, Event
from plugin.telephony import AdapterTasks, Addr, Call, CallEvents, CallInfo, Leg

log = logging.getLogger(__name__)

TAP_PREFIX = "cgtap-"
CALL_PREFIX = "cgcall-"


@dataclass
class TapResources:
    snoop: str
    media: str
    bridge: str
    whispers: list[str] = field(default_factory=list)
    whisper: str | None = None  # Dial() calls: the leg's whisper snoop, up and ready to play a warning
    arming: asyncio.Task[str | None] | None = None  # the task making ``whisper``


def endpoint_of(channel_name: str) -> str:
    """'PJSIP/alice-0000002a' -> 'alice'."""
    rest = channel_name.split("/", 1)[-1]
    head, sep, tail = rest.rpartition("-")
    return head if sep and tail and all(c in "0123456789abcdef" for c in tail) else rest


def _safe(s: str) -> str:
    return "".join(c if c.isalnum() or c in ".-_" else "_" for c in s)


class AsteriskAdapter(AdapterTasks):
    def __init__(self, ari: AriClient, media_addr: Addr, media_format: str = "ulaw",
                 tap_timeout: float = 5.0) -> None:
        super().__init__()
        self.ari = ari
        self.media_addr = media_addr
        self.media_format = media_format
        self.tap_timeout = tap_timeout
        self.events: CallEvents | None = None
        self.calls: dict[str, Call] = {}
        self.by_channel: dict[str, Call] = {}
        self.taps: dict[str, TapResources] = {}  # leg key -> resources
        self.playbacks: list[dict[str, Any]] = []  # (id, channel, started, finished) for reports and tests
        # channels that went away before their set-up task ran (events arrive back to back): bounded
        self._gone: deque[str] = deque(maxlen=256)

    # ------------------------------------------------------------------ lifecycle
    async def start(self, events: CallEvents) -> None:
        self.events = events
        self.ari.on_event(self._on_event)
        self.ari.on_connect(self._on_connect)
        await self.ari.start(wait=None)
        try:
            await asyncio.wait_for(self.ari.wait_connected(), 10)
        except TimeoutError:
            log.warning("ARI not reachable yet at %s: retrying in the background", self.ari.base)

    async def close(self) -> None:
        for call in list(self.calls.values()):
            await self._end_call(call, "plugin stopping", hang_up=False)
        self._cancel_tasks()
        await self.ari.close()

    async def resync(self) -> dict[str, int]:
        """After the events websocket came back (ARI restarted, Asterisk restarted, network blip): compare
        what we track with what Asterisk has now (``GET /channels``, ``GET /bridges``). Calls whose channels
        vanished are ended (their legs' summaries are published, their taps removed from the media
        endpoint); calls still up are subscribed to again and any of their taps that is gone is set up
        again; tap resources nobody owns any more are deleted."""
        counts = {"up": 0, "ended": 0, "taps_kept": 0, "retapped": 0, "orphans": 0}
        try:
            channels = {c["id"] for c in await self.ari.get("/channels") or []}
            bridges = {b["id"] for b in await self.ari.get("/bridges") or []}
        except (AriError, aiohttp.ClientError, OSError, TimeoutError) as exc:
            log.warning("resynchronisation after reconnect failed (%s): next reconnect tries again", exc)
            return counts
        # taps being set up register their ids before creating anything: taken now, nothing of ours is missed
        owned = {x for r in self.taps.values() for x in (r.snoop, r.media, r.bridge, *r.whispers)}
        for call in list(self.calls.values()):
            if call.ended:
                continue
            needed = [call.caller_channel]
            if call.mode == "bridge" and call.callee_channel and call.legs:
                needed.append(call.callee_channel)
            if not all(cid in channels for cid in needed):
                counts["ended"] += 1
                await self._end_call(call, "vanished while ARI was disconnected")
                continue
            counts["up"] += 1
            sources = [f"channel:{cid}" for cid in needed]
            bridge_id = f"{CALL_PREFIX}{_safe(call.call_id)}"
            if call.mode == "bridge" and bridge_id in bridges:
                sources.append(f"bridge:{bridge_id}")
            try:
                await self.ari.subscribe(*sources)
            except (AriError, aiohttp.ClientError, OSError) as exc:
                log.warning("call %s: subscribing again failed: %s", call.call_id, exc)
            for leg in list(call.legs.values()):
                res = self.taps.get(leg.key)
                if res is not None and {res.snoop, res.media} <= channels and res.bridge in bridges:
                    counts["taps_kept"] += 1
                    continue
                counts["retapped"] += 1
                tap_lost = getattr(self.events, "tap_lost", None)
                if tap_lost is not None:
                    self._spawn(tap_lost(call, leg))
        for cid in channels:
            if cid.startswith(TAP_PREFIX) and cid not in owned:
                counts["orphans"] += 1
                with contextlib.suppress(AriError, aiohttp.ClientError, OSError):
                    await self.ari.delete(f"/channels/{cid}")
        for bid in bridges:
            if bid.startswith(TAP_PREFIX) and bid not in owned:
                counts["orphans"] += 1
                with contextlib.suppress(AriError, aiohttp.ClientError, OSError):
                    await self.ari.delete(f"/bridges/{bid}")
        gap = self.ari.last_gap_s
        log.info("resynchronised with Asterisk after a %s gap: %d call(s) still up (%d tap(s) kept, %d set up "
                 "again), %d call(s) vanished and ended, %d orphaned tap resource(s) deleted",
                 "?" if gap is None else f"{gap:.2f} s", counts["up"], counts["taps_kept"], counts["retapped"],
                 counts["ended"], counts["orphans"])
        return counts

    async def sweep(self) -> int:
        """Start-up: delete tap channels/bridges left by an earlier run (ids ``cgtap-``) and adopt calls an
        earlier run had bridged (``cgcall-`` bridges): they are guarded again, or ended if half gone."""
        n = 0
        adopt: list[Event] = []
        try:
            for ch in await self.ari.get("/channels") or []:
                if ch["id"].startswith(TAP_PREFIX):
                    await self.ari.delete(f"/channels/{ch['id']}")
                    n += 1
            for br in await self.ari.get("/bridges") or []:
                if br["id"].startswith(TAP_PREFIX):
                    await self.ari.delete(f"/bridges/{br['id']}")
                    n += 1
                elif br["id"].startswith(CALL_PREFIX):
                    adopt.append(br)
            for br in adopt:  # only now: the new taps reuse the ids of the stale ones just deleted
                await self._adopt(br)
        except (AriError, OSError) as exc:
            log.warning("sweep of stale taps failed: %s", exc)
        if n:
            log.info("removed %d stale tap channel(s)/bridge(s)", n)
        return n

    async def _adopt(self, bridge: Event) -> None:
        call_id = bridge["id"][len(CALL_PREFIX):]
        callee_id = f"{CALL_PREFIX}{call_id}-b"
        members = set(bridge.get("channels") or [])
        if members != {call_id, callee_id}:
            log.info("ending half-gone call %s left by an earlier run", call_id)
            for cid in members:
                await self.ari.delete(f"/channels/{cid}")
            await self.ari.delete(f"/bridges/{bridge['id']}")
            return
        ch = await self.ari.get(f"/channels/{call_id}")
        call = Call(call_id=call_id, mode="bridge", caller_channel=call_id, info=_info(ch),
                    callee_channel=callee_id, started_at=time.time())
        self.calls[call_id] = call
        self.by_channel[call_id] = call
        self.by_channel[callee_id] = call
        log.info("adopted call %s bridged by an earlier run", call_id)
        if self.events:
            self._spawn(self.events.call_started(call))

    # ------------------------------------------------------------------ events
    async def _on_event(self, ev: Event) -> None:
        kind = ev.get("type")
        ch = ev.get("channel")
        cid = ch.get("id") if isinstance(ch, dict) else None
        if not isinstance(cid, str) or not cid:  # malformed (or a channel-less event, e.g. a playback's)
            cid = None
        if kind == "StasisStart":
            if cid is None:
                log.warning("ignoring a StasisStart event without a channel id")
                return
            if cid.startswith((TAP_PREFIX, CALL_PREFIX)):
                return  # our own snoop / external media / originated callee channels
            args = ev.get("args") or []
            usable = isinstance(args, list) and all(isinstance(a, str) for a in args)
            mode = args[0] if usable and args else ""
            if mode == "dial" and len(args) >= 2:
                self._spawn(self._bridge_call(ch, args[1:]))
            elif mode == "tap":
                self._spawn(self._dial_call(ch))
            else:
                log.warning("channel %.80s entered Stasis with args %.200r; expected 'dial,<target>' or 'tap': "
                            "sending it back to the dialplan", ch.get("name"), args)
                self._spawn(self._continue(cid))
        elif kind in ("StasisEnd", "ChannelDestroyed", "ChannelHangupRequest"):
            if cid is None:
                return
            call = self.by_channel.get(cid)
            if call is None and kind != "StasisEnd":
                self._gone.append(cid)
            if call is None or call.ended:
                return
            if kind == "StasisEnd" and call.mode == "dial" and cid == call.caller_channel:
                return  # expected: we sent it back to the dialplan
            reason = ev.get("cause_txt") or kind
            self._spawn(self._end_call(call, f"{'caller' if cid == call.caller_channel else 'callee'} "
                                             f"{reason}".strip()))
        elif kind in ("PlaybackStarted", "PlaybackFinished"):
            pb = ev.get("playback")
            if not isinstance(pb, dict):
                return
            for rec in self.playbacks:
                if rec["id"] == pb.get("id"):
                    rec["started" if kind == "PlaybackStarted" else "finished"] = time.time()
            # a Dial() leg's whisper snoop stays up after its warning for the next one (suspicious, then
            # spoof); it goes with the leg's tap at the end of the call

    async def _continue(self, channel_id: str) -> None:
        with contextlib.suppress(AriError):
            await self.ari.post(f"/channels/{channel_id}/continue")

    # ------------------------------------------------------------------ way (a): callguard bridges
    async def _bridge_call(self, ch: Event, args: list[str]) -> None:
        call_id = ch["id"]
        call = Call(call_id=call_id, mode="bridge", caller_channel=call_id, info=_info(ch), started_at=time.time())
        self.calls[call_id] = call
        self.by_channel[call_id] = call
        target = args[0]
        # isdecimal, not isdigit: int('\u00b2') fails; at most 6 digits: int() refuses 5000 of them
        timeout = int(args[1]) if len(args) > 1 and args[1].isdecimal() and len(args[1]) <= 6 else 30
        callee_id = f"{CALL_PREFIX}{_safe(call_id)}-b"
        bridge_id = f"{CALL_PREFIX}{_safe(call_id)}"
        call.callee_channel = callee_id
        self.by_channel[callee_id] = call
        answered = self.ari.expect(lambda e: e.get("type") == "StasisStart"
                                   and e["channel"]["id"] == callee_id)
        gone = self.ari.expect(lambda e: e.get("type") == "ChannelDestroyed" and e["channel"]["id"] == callee_id)
        try:
            caller = ch.get("caller") if isinstance(ch.get("caller"), dict) else {}
            # the caller hears ringing (180) until the other party answers; only then is it answered
            await asyncio.gather(
                self.ari.post(f"/channels/{call_id}/ring"),
                self.ari.post("/bridges", type="mixing", bridgeId=bridge_id, name=bridge_id),
                self.ari.post("/channels", endpoint=target, app=self.ari.app, appArgs=f"callee,{call_id}",
                              channelId=callee_id, timeout=timeout,
                              callerId=f'"{caller.get("name", "")}" <{caller.get("number", "")}>'),
            )
            done, _ = await asyncio.wait({answered, gone}, timeout=timeout + 5,
                                         return_when=asyncio.FIRST_COMPLETED)
            if answered not in done:
                raise RuntimeError(f"{target} did not answer")
            if call.ended:
                return
            await self.ari.post(f"/channels/{call_id}/answer")
            await self.ari.post(f"/bridges/{bridge_id}/addChannel", channel=f"{call_id},{callee_id}")
        except (TimeoutError, AriError, RuntimeError, OSError) as exc:
            log.warning("call %s: could not connect to %s: %s", call_id, target, exc)
            await self._end_call(call, f"dial failed: {exc}")
            return
        finally:
            for fut in (answered, gone):
                if not fut.done():
                    fut.cancel()
        log.info("call %s: %s bridged to %s", call_id, ch.get("name"), target)
        if not call.ended and self.events:
            await self.events.call_started(call)

    # ------------------------------------------------------------------ way (b): the dialplan's Dial()
    async def _dial_call(self, ch: Event) -> None:
        call_id = ch["id"]
        call = Call(call_id=call_id, mode="dial", caller_channel=call_id, info=_info(ch), started_at=time.time())
        self.calls[call_id] = call
        self.by_channel[call_id] = call
        try:
            await self.ari.subscribe(f"channel:{call_id}")
        except AriError as exc:
            log.warning("call %s: explicit subscription failed (%s): hang-up may be seen late", call_id, exc)
        await self._continue(call_id)  # never hold the caller up: Dial() runs while the tap is set up
        if call_id in self._gone:  # hung up before this task ran: its ChannelDestroyed found no call
            await self._end_call(call, "caller hung up during set-up")
        if self.events and not call.ended:
            await self.events.call_started(call)

    # ------------------------------------------------------------------ the adapter interface
    def legs_of(self, call: Call, guarded: tuple[str, ...]) -> list[Leg]:
        legs = []
        if "caller" in guarded:
            legs.append(Leg(call.call_id, "caller", call.caller_channel, call.caller_channel, "in"))
        if "callee" in guarded:
            if call.mode == "bridge" and call.callee_channel:
                legs.append(Leg(call.call_id, "callee", call.callee_channel, call.callee_channel, "in"))
            elif call.mode == "dial":
                legs.append(Leg(call.call_id, "callee", call.caller_channel, call.caller_channel, "out"))
        return legs

    def find_leg(self, call_id: str, leg: str) -> Leg | None:
        call = self.calls.get(call_id)
        return None if call is None or call.ended else call.legs.get(leg)

    async def tap(self, leg: Leg, register: Callable[[Addr], None]) -> float:
        t0 = time.monotonic()
        base = f"{_safe(leg.call_id)}-{leg.leg}"
        res = TapResources(snoop=f"{TAP_PREFIX}s-{base}", media=f"{TAP_PREFIX}m-{base}",
                           bridge=f"{TAP_PREFIX}b-{base}")
        self.taps[leg.key] = res
        snoop_up = self.ari.expect(lambda e: e.get("type") == "StasisStart" and e["channel"]["id"] == res.snoop)
        media_up = self.ari.expect(lambda e: e.get("type") == "StasisStart" and e["channel"]["id"] == res.media)
        try:
            host, port = self.media_addr
            _, _, em = await asyncio.gather(
                self.ari.post(f"/channels/{leg.tap_channel_id}/snoop", spy=leg.spy, whisper="none",
                              app=self.ari.app, snoopId=res.snoop),
                self.ari.post("/bridges", type="mixing", bridgeId=res.bridge, name=res.bridge),
                self.ari.post("/channels/externalMedia", app=self.ari.app, channelId=res.media,
                              external_host=f"{host}:{port}", format=self.media_format,
                              encapsulation="rtp", transport="udp"),
            )
            vars_ = (em or {}).get("channelvars") or {}
            addr = vars_.get("UNICASTRTP_LOCAL_ADDRESS")
            rport = vars_.get("UNICASTRTP_LOCAL_PORT")
            if not addr or not rport:
                addr, rport = await asyncio.gather(self.ari.get_var(res.media, "UNICASTRTP_LOCAL_ADDRESS"),
                                                   self.ari.get_var(res.media, "UNICASTRTP_LOCAL_PORT"))
            if not addr or not rport:
                raise RuntimeError("ExternalMedia channel has no UNICASTRTP_LOCAL_ADDRESS/PORT")
            register((addr, int(rport)))
            await asyncio.gather(self.ari.wait(snoop_up, self.tap_timeout),
                                 self.ari.wait(media_up, self.tap_timeout))
            await self.ari.post(f"/bridges/{res.bridge}/addChannel", channel=f"{res.snoop},{res.media}")
            self._spawn(self._no_cdr(res.snoop, res.media))
            call = self.calls.get(leg.call_id)
            if call is not None and call.mode != "bridge":
                # a Dial() call's warning is whispered through a snoop channel: make it now, off the tap's
                # path, so a warning starts with one request instead of a snoop set-up (~20 ms) first
                res.arming = self._spawn(self._arm_whisper(leg, res))
        except BaseException:
            for fut in (snoop_up, media_up):
                if not fut.done():
                    fut.cancel()
            await self.stop_tap(leg)
            raise
        return time.monotonic() - t0

    async def _arm_whisper(self, leg: Leg, res: TapResources) -> str | None:
        """Create the whisper snoop of a Dial() call's leg (caller's leg: mixed into what the caller sends,
        which the called party hears; callee's leg: into what the caller hears). None on failure (the
        warning then fails open: logged, never escalated)."""
        call = self.calls.get(leg.call_id)
        if call is None or call.ended:
            return None
        whisper_id = f"{TAP_PREFIX}w-{_safe(leg.call_id)}-{leg.leg}-{len(res.whispers)}"
        res.whispers.append(whisper_id)  # deleted with the tap, whatever happens next
        up = self.ari.expect(lambda e: e.get("type") == "StasisStart" and e["channel"]["id"] == whisper_id)
        try:
            await self.ari.post(f"/channels/{call.caller_channel}/snoop", spy="none",
                                whisper="in" if leg.leg == "caller" else "out", app=self.ari.app,
                                snoopId=whisper_id)
            await self.ari.wait(up, self.tap_timeout)
        except Exception as exc:  # fail open: the warning is then logged as failed, never escalated
            if not up.done():
                up.cancel()
            log.warning("whisper channel for %s/%s: %s: %s", leg.call_id, leg.leg, exc.__class__.__name__, exc)
            return None
        if call.ended or self.taps.get(leg.key) is not res:  # the call ended meanwhile: its clean-up ran
            with contextlib.suppress(AriError, OSError):
                await self.ari.delete(f"/channels/{whisper_id}")
            return None
        self._spawn(self._no_cdr(whisper_id))
        res.whisper = whisper_id
        return whisper_id

    async def _whisper_of(self, leg: Leg, res: TapResources) -> str:
        """The leg's whisper snoop: the one made when it was tapped, or a new one if that failed."""
        if res.whisper is None:
            if res.arming is None or res.arming.done():  # none yet, or it failed, or the one made is gone
                res.arming = self._spawn(self._arm_whisper(leg, res))
            await asyncio.shield(res.arming)
        if res.whisper is None:
            raise RuntimeError("no whisper channel to play the warning into")
        return res.whisper

    async def _no_cdr(self, *channel_ids: str) -> None:
        """Keep tap channels out of the PBX's call records (best effort)."""
        for cid in channel_ids:
            with contextlib.suppress(AriError, OSError):
                await self.ari.post(f"/channels/{cid}/variable", variable="CDR_PROP(disable)", value="1")

    async def stop_tap(self, leg: Leg) -> None:
        res = self.taps.pop(leg.key, None)
        if res is None:
            return
        await self._delete_all(res)

    async def _delete_all(self, res: TapResources) -> None:
        for path in (f"/channels/{res.media}", f"/channels/{res.snoop}",
                     *(f"/channels/{w}" for w in res.whispers), f"/bridges/{res.bridge}"):
            try:
                await self.ari.delete(path)
            except REQUEST_FAILURES as exc:
                log.warning("cleanup of %s failed: %s", path, exc)

    async def annotate(self, leg: Leg, variables: dict[str, str]) -> None:
        call = self.calls.get(leg.call_id)
        if call is not None and call.mode == "dial":
            # ARI sets channel variables only on channels in Stasis (409 otherwise). For Dial() calls
            # the values go to globals named after the channel, e.g. DEEPFAKE_SCORE_1795308046_0; the
            # dialplan's hang-up handler (dialplan/extensions.conf, [callguard-hangup]) copies them to
            # the channel and CDR(deepfake_score) and unsets them.
            uid = global_suffix(leg.channel_id)
            await asyncio.gather(*(self.ari.post("/asterisk/variable", variable=f"{k}_{uid}", value=v)
                                   for k, v in variables.items() if not k.startswith("CDR(")))
            call.globals_set = True
            return
        await asyncio.gather(*(self.ari.post(f"/channels/{leg.channel_id}/variable", variable=k, value=v)
                               for k, v in variables.items()))

    async def warn(self, leg: Leg, media: str) -> str:
        """Play ``media`` to the other party of ``leg``; returns once the playback has started."""
        call = self.calls.get(leg.call_id)
        if call is None or call.ended:
            raise RuntimeError("call already ended")
        pb_id = f"cgpb-{_safe(leg.call_id)}-{leg.leg}-{len(self.playbacks)}"
        rec: dict[str, Any] = {"id": pb_id, "call_id": leg.call_id, "leg": leg.leg, "media": media,
                               "requested": time.time(), "started": None, "finished": None}
        self.playbacks.append(rec)
        started = self.ari.expect(lambda e: e.get("type") == "PlaybackStarted" and e["playback"]["id"] == pb_id)
        try:
            if call.mode == "bridge":
                other = call.callee_channel if leg.leg == "caller" else call.caller_channel
                rec["channel"] = other
                await self.ari.post(f"/channels/{other}/play", media=media, playbackId=pb_id)
            else:
                # not in Stasis: play into the leg's whisper snoop (made when the leg was tapped; made now
                # if that failed or has not finished)
                res = self.taps.get(leg.key)
                if res is None:
                    raise RuntimeError("leg not tapped")
                for attempt in (1, 2):
                    whisper_id = await self._whisper_of(leg, res)
                    rec["channel"] = whisper_id
                    try:
                        await self.ari.post(f"/channels/{whisper_id}/play", media=media, playbackId=pb_id)
                        break
                    except AriError as exc:
                        if exc.status != 404 or attempt == 2:
                            raise
                        res.whisper = None  # gone (hung up by someone): make a new one, once
            await self.ari.wait(started, self.tap_timeout)
        finally:
            if not started.done():
                started.cancel()
        return pb_id

    async def hangup(self, leg: Leg, reason: str = "normal") -> None:
        await self.ari.delete(f"/channels/{leg.channel_id}", reason=reason)

    # ------------------------------------------------------------------ call end
    async def _end_call(self, call: Call, reason: str, hang_up: bool = True) -> None:
        if call.ended:
            return
        call.ended = True
        log.info("call %s ended: %s", call.call_id, reason)
        if self.events:
            try:
                await self.events.call_ended(call, reason)
            except Exception:
                log.exception("call_ended handler failed for %s", call.call_id)
        try:
            await self._release(call, hang_up)
        finally:  # whatever ARI did meanwhile (e.g. the websocket dropped), the call leaves the books
            self.calls.pop(call.call_id, None)
            for cid in (call.caller_channel, call.callee_channel):
                if cid:
                    self.by_channel.pop(cid, None)

    async def _release(self, call: Call, hang_up: bool) -> None:
        """Delete the call's taps (and, for bridge calls, its channels and bridge) in Asterisk."""
        prefix = f"{call.call_id}:"
        for key in [k for k in self.taps if k.startswith(prefix)]:
            res = self.taps.pop(key)
            await self._delete_all(res)
        if call.mode == "bridge":
            if hang_up:
                for cid in (call.caller_channel, call.callee_channel):
                    if cid:
                        with contextlib.suppress(*REQUEST_FAILURES):
                            await self.ari.delete(f"/channels/{cid}")
            with contextlib.suppress(*REQUEST_FAILURES):
                await self.ari.delete(f"/bridges/{CALL_PREFIX}{_safe(call.call_id)}")
        else:
            with contextlib.suppress(*REQUEST_FAILURES):
                await self.ari.unsubscribe(f"channel:{call.caller_channel}")
            if call.globals_set:
                self._spawn(self._unset_globals(call.caller_channel))

    async def _unset_globals(self, channel_id: str, delay: float = 10.0) -> None:
        """Forget a Dial() call's DEEPFAKE_*_<id> globals once its hang-up handler had time to copy them."""
        await asyncio.sleep(delay)
        uid = global_suffix(channel_id)
        for name in ("DEEPFAKE_SCORE", "DEEPFAKE_VERDICT", "DEEPFAKE_CALLEE_SCORE", "DEEPFAKE_CALLEE_VERDICT"):
            with contextlib.suppress(*REQUEST_FAILURES):
                await self.ari.post("/asterisk/variable", variable=f"{name}_{uid}", value="")


def global_suffix(channel_id: str) -> str:
    """The suffix of a Dial() call's globals: the channel id with '.' and other punctuation as '_'."""
    return "".join(c if c.isalnum() else "_" for c in channel_id)


def _info(ch: Event) -> CallInfo:
    def text(obj: Any, key: str) -> str:  # a missing or wrongly typed field is empty, never an error
        value = obj.get(key, "") if isinstance(obj, dict) else ""
        return value if isinstance(value, str) else ""

    dp, caller = ch.get("dialplan"), ch.get("caller")
    return CallInfo(context=text(dp, "context"), endpoint=endpoint_of(text(ch, "name")),
                    caller_id=text(caller, "number"), exten=text(dp, "exten"), caller_name=text(caller, "name"))
