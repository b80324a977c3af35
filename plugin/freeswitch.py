"""The FreeSWITCH adapter (Event Socket, inbound): call tracking, media taps, reactions.

Which calls: the dialplan marks a guarded channel with a variable (``callguard``, see
``dialplan/freeswitch/callguard.xml``) before its ``bridge``:

- ``callguard=bridge``: the call is guarded from ``CHANNEL_BRIDGE`` on; both legs are known then
  (the A leg is the caller, ``Other-Leg-Unique-ID`` the callee), so a policy may guard either or both;
- ``callguard=answer``: guarded from ``CHANNEL_ANSWER`` of the inbound leg (calls answered by an IVR or a
  queue before any bridge); only the caller's leg can be tapped until a bridge names the other party,
  whose leg is then tapped too when the call's policy guards the callee.

How a leg is tapped: FreeSWITCH's ``unicast`` call-command sends audio *only from the park loop*
(``switch_ivr_park``), so it cannot stream a bridged channel directly. Each tap is therefore a loopback
pair: ``originate {vars}loopback/<tap id>/<tap context> &eavesdrop(<leg uuid>)``. The A leg eavesdrops on
the guarded channel's read stream only (``eavesdrop_bridge_aleg=true``: what that channel's party says;
``eavesdrop_bridge_bleg`` for the other direction) and writes it into the loopback; the B leg enters the
tap context, which answers and parks it (``CHANNEL_PARK`` with the tap id as destination number); then
``sendmsg <B uuid>`` with ``call-command: unicast`` makes FreeSWITCH bind ``unicast_ip:<port>`` and send the
B leg's read audio -- the eavesdropped speech, 8 kHz L16 (the loopback codec), raw frames without RTP --
to the media endpoint. The source address is chosen here (a port from ``unicast_ports``), so it is
announced to the endpoint (``register`` + ``MediaEndpoint.set_raw_source``) before anything is sent.
Tap channels carry ``process_cdr=false`` (no CDRs) and ids starting with ``callguard-tap-``; they are
killed at call end and swept at start-up.

Reactions: ``uuid_setvar_multi`` (DEEPFAKE_SCORE, DEEPFAKE_VERDICT and ``deepfake_score``, which CDR
templates can use as ``${deepfake_score}``), ``uuid_broadcast <other party> <media> aleg`` (the warning),
``uuid_kill <leg> <cause>`` (hang-up by policy). callguard never hangs up a call when it ends or when
callguard stops: the PBX owns the call.

Written from the FreeSWITCH source and documentation, tested against ``tests/plugin/esl_peer.py``; not
yet run against a live FreeSWITCH.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from plugin.esl import EslClient, EslError, Event
from plugin.media import MediaEndpoint
from plugin.telephony import AdapterTasks, Addr, Call, CallEvents, CallInfo, Leg
from plugin.unicast import RawAudioFeed

log = logging.getLogger(__name__)

TAP_PREFIX = "callguard-tap-"
EVENTS = ("CHANNEL_ANSWER", "CHANNEL_BRIDGE", "CHANNEL_PARK", "CHANNEL_HANGUP_COMPLETE", "BACKGROUND_JOB")
_SAFE_VALUE = re.compile(r"[^A-Za-z0-9_.+-]")


@dataclass
class TapResources:
    tap_id: str
    a_uuid: str  # the eavesdropping loopback leg (killing it ends the pair)
    port: int
    b_uuid: str | None = None  # the parked loopback leg that sends the unicast stream
    stopping: bool = False


def endpoint_of(channel_name: str) -> str:
    """'sofia/internal/1001@10.0.0.5' -> '1001'; 'sofia/gateway/trunk/5551234' -> '5551234'."""
    return channel_name.rsplit("/", 1)[-1].split("@", 1)[0]


def media_path(media: str) -> str:
    """A policy's ``warn_media`` (ARI-style URI) as something ``uuid_broadcast`` plays."""
    kind, _, rest = media.partition(":")
    if kind == "sound" and rest == "beep":
        return "tone_stream://%(250,0,1000)"
    if kind in ("sound", "recording"):
        return rest  # relative paths are looked up under FreeSWITCH's sound_prefix
    if kind == "tone":
        return rest if rest.startswith("tone_stream://") else f"tone_stream://{rest}"
    raise ValueError(f"warn_media {media!r}: FreeSWITCH plays sound:, recording: or tone: media")


class FreeSwitchAdapter(AdapterTasks):
    def __init__(self, esl: EslClient, media_addr: Addr, media: MediaEndpoint, *, unicast_ip: str = "127.0.0.1",
                 unicast_ports: tuple[int, int] = (42000, 42999), unicast_format: str = "l16",
                 unicast_rate: int = 8000, tap_context: str = "callguard-tap", guard_variable: str = "callguard",
                 tap_timeout: float = 5.0, first_audio_s: float = 3.0) -> None:
        super().__init__()
        self.esl = esl
        if not esl.events:
            esl.events = EVENTS
        self.media_addr = media_addr
        self.media = media
        self.unicast_ip = unicast_ip
        self.unicast_ports = unicast_ports
        self.unicast_format = unicast_format
        self.unicast_rate = unicast_rate
        self.tap_context = tap_context
        self.guard_variable = guard_variable
        self.tap_timeout = tap_timeout
        # FreeSWITCH answers sendmsg +OK even when it cannot bind the unicast port (it only logs CRIT), and a
        # parked loopback leg sends a frame every 20 ms even in silence: no datagram after this long means
        # the stream is broken, and the leg is tapped again on another port (twice at most)
        self.first_audio_s = first_audio_s
        self._silent_retaps: dict[str, int] = {}
        self.events: CallEvents | None = None
        self.calls: dict[str, Call] = {}
        self.by_channel: dict[str, Call] = {}
        self.taps: dict[str, TapResources] = {}  # leg key -> resources
        self.warnings: list[dict[str, Any]] = []  # (call, leg, target, media, requested) for reports and tests
        self._ports: set[int] = set()
        self._next_port = unicast_ports[0]

    # ------------------------------------------------------------------ lifecycle
    async def start(self, events: CallEvents) -> None:
        self.events = events
        self.esl.on_event(self._on_event)
        self.esl.on_connect(self._on_connect)
        await self.esl.start(wait=None)
        try:
            await asyncio.wait_for(self.esl.wait_connected(), 10)
        except TimeoutError:
            log.warning("FreeSWITCH event socket not reachable yet at %s:%d: retrying in the background",
                        self.esl.host, self.esl.port)

    async def close(self) -> None:
        for call in list(self.calls.values()):
            await self._end_call(call, "plugin stopping")
        self._cancel_tasks()
        await self.esl.close()

    async def _channels(self) -> list[dict[str, Any]]:
        out = await self.esl.api("show channels as json")
        try:
            return list(json.loads(out).get("rows") or [])
        except (ValueError, AttributeError):
            return []

    async def sweep(self) -> int:
        """Kill tap channels nobody here owns (left by an earlier run, or by a tap whose set-up failed)."""
        owned = {x for r in self.taps.values() for x in (r.a_uuid, r.b_uuid) if x}
        n = 0
        try:
            for row in await self._channels():
                uid = str(row.get("uuid", ""))
                is_tap = str(row.get("dest", "")).startswith(TAP_PREFIX) or TAP_PREFIX in str(row.get("name", ""))
                if is_tap and uid not in owned:
                    with contextlib.suppress(EslError):
                        await self.esl.api(f"uuid_kill {uid}")
                    n += 1
        except (EslError, OSError, TimeoutError) as exc:
            log.warning("sweep of stale tap channels failed: %s", exc)
        if n:
            log.info("killed %d stale tap channel(s)", n)
        return n

    async def resync(self) -> dict[str, int]:
        """After the event socket came back: end calls whose channels vanished meanwhile, set up again taps
        that died, kill orphaned tap channels."""
        counts = {"up": 0, "ended": 0, "retapped": 0, "orphans": 0}
        try:
            alive = {str(r.get("uuid", "")) for r in await self._channels()}
        except (EslError, OSError, TimeoutError) as exc:
            log.warning("resynchronisation after reconnect failed (%s): next reconnect tries again", exc)
            return counts
        for call in list(self.calls.values()):
            needed = [c for c in (call.caller_channel, call.callee_channel) if c]
            if not all(c in alive for c in needed):
                counts["ended"] += 1
                await self._end_call(call, "vanished while the event socket was disconnected")
                continue
            counts["up"] += 1
            for leg in list(call.legs.values()):
                res = self.taps.get(leg.key)
                if res is not None and res.a_uuid in alive and (res.b_uuid is None or res.b_uuid in alive):
                    continue
                counts["retapped"] += 1
                self._lost(call, leg)
        counts["orphans"] = await self.sweep()
        gap = self.esl.last_gap_s
        log.info("resynchronised with FreeSWITCH after a %s gap: %d call(s) still up (%d tap(s) set up again), "
                 "%d call(s) vanished and ended, %d orphaned tap channel(s) killed",
                 "?" if gap is None else f"{gap:.2f} s", counts["up"], counts["retapped"], counts["ended"],
                 counts["orphans"])
        return counts

    # ------------------------------------------------------------------ events
    async def _on_event(self, ev: Event) -> None:
        name = ev.get("Event-Name")
        uid = ev.get("Unique-ID", "")
        mark = ev.get(f"variable_{self.guard_variable}", "").strip().lower()
        if name == "CHANNEL_BRIDGE":
            other = ev.get("Other-Leg-Unique-ID") or ev.get("Bridge-B-Unique-ID") or ""
            call = self.by_channel.get(uid)
            if call is not None and not call.ended:
                if other and call.callee_channel is None:
                    call.callee_channel = other
                    self.by_channel[other] = call
                    joined = getattr(self.events, "party_joined", None)
                    if joined is not None:  # an answered call reaches its callee: tap it if the policy says so
                        self._spawn(joined(call))
                return
            if mark in ("bridge", "true", "yes", "1") and other:
                call = self._new_call(ev, mode="bridge", callee=other)
                self._spawn(self._started(call))
        elif name == "CHANNEL_ANSWER":
            if mark == "answer" and ev.get("Call-Direction") == "inbound" and uid not in self.by_channel:
                call = self._new_call(ev, mode="answer", callee=None)
                self._spawn(self._started(call))
        elif name == "CHANNEL_HANGUP_COMPLETE":
            call = self.by_channel.get(uid)
            if call is not None and not call.ended:
                who = "caller" if uid == call.caller_channel else "callee"
                self._spawn(self._end_call(call, f"{who} {ev.get('Hangup-Cause', 'hung up')}"))
                return
            for key, res in list(self.taps.items()):
                if uid in (res.a_uuid, res.b_uuid) and not res.stopping:
                    self._spawn(self._tap_died(key, res))

    def _new_call(self, ev: Event, mode: str, callee: str | None) -> Call:
        uid = ev["Unique-ID"]
        info = CallInfo(context=ev.get("Caller-Context", ""), endpoint=endpoint_of(ev.get("Channel-Name", "")),
                        caller_id=ev.get("Caller-Caller-ID-Number", ""), exten=ev.get("Caller-Destination-Number", ""),
                        caller_name=ev.get("Caller-Caller-ID-Name", ""))
        call = Call(call_id=uid, mode=mode, caller_channel=uid, info=info, callee_channel=callee,
                    started_at=time.time())
        self.calls[uid] = call
        self.by_channel[uid] = call
        if callee:
            self.by_channel[callee] = call
        log.info("call %s (%s) guarded from %s", uid, ev.get("Channel-Name", "?"), ev.get("Event-Name"))
        return call

    async def _started(self, call: Call) -> None:
        if self.events and not call.ended:
            await self.events.call_started(call)

    async def _tap_died(self, key: str, res: TapResources) -> None:
        await asyncio.sleep(0.3)  # the guarded channel's own hang-up usually follows: let it end the call first
        call_id, _, leg_name = key.rpartition(":")
        call = self.calls.get(call_id)
        if self.taps.get(key) is not res or call is None or call.ended:
            return
        leg = call.legs.get(leg_name)
        if leg is not None:
            log.warning("tap on %s leg of %s ended while the call is up: tapping again", leg_name, call_id)
            self._lost(call, leg)

    def _lost(self, call: Call, leg: Leg) -> None:
        res = self.taps.pop(leg.key, None)
        if res is not None:
            res.stopping = True
            self._ports.discard(res.port)
            self._spawn(self._kill(res))
        tap_lost = getattr(self.events, "tap_lost", None)
        if tap_lost is not None:
            self._spawn(tap_lost(call, leg))

    # ------------------------------------------------------------------ the adapter interface
    def legs_of(self, call: Call, guarded: tuple[str, ...]) -> list[Leg]:
        legs = []
        if "caller" in guarded:
            legs.append(Leg(call.call_id, "caller", call.caller_channel, call.caller_channel, "in"))
        if "callee" in guarded and call.callee_channel:
            legs.append(Leg(call.call_id, "callee", call.callee_channel, call.callee_channel, "in"))
        return legs

    def find_leg(self, call_id: str, leg: str) -> Leg | None:
        call = self.calls.get(call_id)
        return None if call is None or call.ended else call.legs.get(leg)

    def _alloc_port(self) -> int:
        lo, hi = self.unicast_ports
        for _ in range(hi - lo + 1):
            port = self._next_port
            self._next_port = lo if port >= hi else port + 1
            if port not in self._ports:
                self._ports.add(port)
                return port
        raise RuntimeError(f"no free unicast port in {lo}-{hi}")

    async def tap(self, leg: Leg, register: Callable[[Addr], None]) -> float:
        t0 = time.monotonic()
        res = TapResources(tap_id=f"{TAP_PREFIX}{uuid.uuid4().hex[:16]}", a_uuid=str(uuid.uuid4()),
                           port=self._alloc_port())
        self.taps[leg.key] = res
        parked = self.esl.expect(lambda e: e.get("Event-Name") == "CHANNEL_PARK"
                                 and e.get("Caller-Destination-Number") == res.tap_id)
        try:
            addr = (self.unicast_ip, res.port)
            register(addr)  # FreeSWITCH will send from here: announced before anything is sent
            self.media.set_raw_source(addr, RawAudioFeed("l16" if self.unicast_format == "l16" else "pcmu",
                                                         self.unicast_rate))
            variables = {
                "origination_uuid": res.a_uuid, "origination_caller_id_name": "callguard-tap",
                "origination_caller_id_number": res.tap_id, "process_cdr": "false", "loopback_bowout": "false",
                "eavesdrop_enable_dtmf": "false",
                "eavesdrop_bridge_aleg" if leg.spy == "in" else "eavesdrop_bridge_bleg": "true",
            }
            vars_ = ",".join(f"{k}={v}" for k, v in variables.items())
            job = self.esl.bgapi(f"originate {{{vars_}}}loopback/{res.tap_id}/{self.tap_context} "
                                 f"&eavesdrop({leg.tap_channel_id})", timeout=self.tap_timeout)
            _, ev = await asyncio.wait_for(asyncio.gather(job, parked), self.tap_timeout)
            res.b_uuid = ev["Unique-ID"]
            host, port = self.media_addr
            headers = {"call-command": "unicast", "local-ip": self.unicast_ip, "local-port": str(res.port),
                       "remote-ip": host, "remote-port": str(port), "transport": "udp"}
            if self.unicast_format != "l16":
                headers["flags"] = "native"
            await self.esl.sendmsg(res.b_uuid, headers)
            self._spawn(self._watch(leg, res, addr))
        except BaseException:
            if not parked.done():
                parked.cancel()
            await self.stop_tap(leg)
            raise
        return time.monotonic() - t0

    async def _watch(self, leg: Leg, res: TapResources, addr: Addr) -> None:
        await asyncio.sleep(self.first_audio_s)
        tap = self.media.taps.get(addr)
        call = self.calls.get(leg.call_id)
        if self.taps.get(leg.key) is not res or tap is None or tap.stats.packets or call is None or call.ended:
            return
        n = self._silent_retaps.get(leg.key, 0)
        if n >= 2:
            log.warning("no unicast audio for the %s leg of %s on any of 3 ports: left untapped (check that "
                        "FreeSWITCH can bind freeswitch.unicast_ip and reach %s:%d)", leg.leg, leg.call_id,
                        *self.media_addr)
            return
        self._silent_retaps[leg.key] = n + 1
        log.warning("no unicast audio for the %s leg of %s from %s:%d after %.1f s (port taken on the FreeSWITCH "
                    "host?): tapping again on another port", leg.leg, leg.call_id, *addr, self.first_audio_s)
        self._lost(call, leg)

    async def stop_tap(self, leg: Leg) -> None:
        res = self.taps.pop(leg.key, None)
        if res is None:
            return
        res.stopping = True
        self._ports.discard(res.port)
        await self._kill(res)

    async def _kill(self, res: TapResources) -> None:
        for uid in (res.a_uuid, res.b_uuid):
            if uid:
                try:
                    await self.esl.api(f"uuid_kill {uid}")
                except EslError as exc:
                    if "No such channel" not in str(exc):
                        log.warning("removing tap channel %s failed: %s", uid, exc)
                except (OSError, TimeoutError) as exc:
                    log.warning("removing tap channel %s failed: %s", uid, exc)

    async def annotate(self, leg: Leg, variables: dict[str, str]) -> None:
        # CDR(x) is Asterisk's; FreeSWITCH CDRs (mod_cdr_csv templates, mod_xml_cdr) carry channel variables
        pairs = []
        for k, v in variables.items():
            name = k[4:-1] if k.startswith("CDR(") and k.endswith(")") else k
            pairs.append(f"{_SAFE_VALUE.sub('_', name)}={_SAFE_VALUE.sub('_', v)}")
        await self.esl.api(f"uuid_setvar_multi {leg.channel_id} {';'.join(pairs)}")

    async def warn(self, leg: Leg, media: str) -> None:
        """Play ``media`` to the party talking with ``leg``'s speaker (``uuid_broadcast ... aleg``)."""
        call = self.calls.get(leg.call_id)
        if call is None or call.ended:
            raise RuntimeError("call already ended")
        other = call.callee_channel if leg.channel_id == call.caller_channel else call.caller_channel
        if leg.spy == "out":
            other = leg.channel_id
        if not other:
            raise RuntimeError("no other party to warn yet (the call is not bridged)")
        path = media_path(media)
        self.warnings.append({"call_id": leg.call_id, "leg": leg.leg, "target": other, "media": path,
                              "requested": time.time()})
        await self.esl.api(f"uuid_broadcast {other} {path} aleg")

    async def hangup(self, leg: Leg, reason: str = "normal") -> None:
        cause = "NORMAL_CLEARING" if reason == "normal" else re.sub(r"[^A-Z_]", "", reason.upper()) or "CALL_REJECTED"
        await self.esl.api(f"uuid_kill {leg.channel_id} {cause}")

    # ------------------------------------------------------------------ call end
    async def _end_call(self, call: Call, reason: str) -> None:
        if call.ended:
            return
        call.ended = True
        log.info("call %s ended: %s", call.call_id, reason)
        if self.events:
            try:
                await self.events.call_ended(call, reason)
            except Exception:
                log.exception("call_ended handler failed for %s", call.call_id)
        for key in [k for k in self.taps if k.startswith(f"{call.call_id}:")]:
            res = self.taps.pop(key)
            res.stopping = True
            self._ports.discard(res.port)
            await self._kill(res)
        self.calls.pop(call.call_id, None)
        for key in [k for k in self._silent_retaps if k.startswith(f"{call.call_id}:")]:
            del self._silent_retaps[key]
        for cid in (call.caller_channel, call.callee_channel):
            if cid and self.by_channel.get(cid) is call:
                self.by_channel.pop(cid, None)
