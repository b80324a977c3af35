"""An Event Socket peer written from the mod_event_socket documentation and source, for tests.

A real asyncio TCP server speaking the inbound protocol (``auth/request``, ``auth``, ``event plain|json``,
``api``, ``bgapi`` + ``BACKGROUND_JOB``, ``sendmsg``, ``exit``, ``text/disconnect-notice``,
``text/rude-rejection``) with a tiny model of FreeSWITCH channels: calls that are answered and bridged,
``uuid_setvar``/``uuid_setvar_multi``/``uuid_getvar``/``uuid_broadcast``/``uuid_kill``/``uuid_exists``/
``show channels as json``, and ``originate {vars}loopback/<exten>/<context> &eavesdrop(<uuid>)`` creating a
loopback pair whose B leg parks (``CHANNEL_PARK``). A ``sendmsg`` with ``call-command: unicast`` to a
*parked* channel binds ``local-ip:local-port`` and sends the eavesdropped party's audio to
``remote-ip:remote-port`` as FreeSWITCH's park loop does: raw frames, no RTP header, 20 ms each, L16 in
host byte order (little-endian) at the loopback leg's 8 kHz; to a channel that is not parked it is
accepted and nothing is sent (FreeSWITCH streams unicast only from ``switch_ivr_park``).

Fault knobs: wrong password, ACL rejection, events slipped in before replies, background jobs held and
released in reverse order, raw bytes (malformed frames), abrupt drops, disconnect notices, refusing
connections. It is a test double, not FreeSWITCH: passing against it shows the client follows the
documented protocol, not that a live FreeSWITCH behaves the same.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import socket
import time
import uuid
from dataclasses import dataclass, field
from urllib.parse import quote

DISCONNECT_TEXT = "Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"
RUDE_TEXT = "Access Denied, go away.\n"


@dataclass
class Channel:
    uuid: str
    name: str
    context: str = "default"
    dest: str = ""
    cid_num: str = ""
    cid_name: str = ""
    direction: str = "inbound"
    state: str = "CS_EXECUTE"
    answered: bool = False
    parked: bool = False
    partner: str | None = None
    variables: dict[str, str] = field(default_factory=dict)
    audio: bytes = b""  # what this channel's party says: L16 little-endian, 8 kHz
    # loopback tap legs
    loopback_other: str | None = None
    eavesdrop_target: str | None = None
    eavesdrop_read: bool = True  # eavesdrop_bridge_aleg (read stream) vs bridge_bleg (write stream)
    unicast: tuple[tuple[str, int], tuple[str, int], str] | None = None  # local, remote, flags
    streamer: asyncio.Task[None] | None = None


@dataclass
class Conn:
    writer: asyncio.StreamWriter
    authed: bool = False
    fmt: str | None = None
    events: set[str] = field(default_factory=set)


class EslPeer:
    def __init__(self, password: str = "ClueCon", host: str = "127.0.0.1") -> None:
        self.password = password
        self.host = host
        self.port = 0
        self.server: asyncio.base_events.Server | None = None
        self.conns: list[Conn] = []
        self.channels: dict[str, Channel] = {}
        self.api_log: list[str] = []  # every api / bgapi command, in order
        self.sendmsgs: list[tuple[str, dict[str, str]]] = []
        self.commands: list[str] = []  # first line of every command ("auth ***" for auth)
        self.auth_attempts = 0
        self.connections = 0
        # fault knobs
        self.reject_auth = False
        self.rude = False
        self.event_before_reply = False
        self.hold_jobs = False
        self.held_jobs: list[dict[str, str]] = []
        self.frame_interval = 0.001  # seconds between unicast frames (20 ms of audio each)
        self.streamed_frames: dict[str, int] = {}  # tap B-leg uuid -> frames sent
        self._seq = 0
        self._tasks: set[asyncio.Task[None]] = set()

    # ------------------------------------------------------------------ server
    async def start(self) -> int:
        self.server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self.server.sockets[0].getsockname()[1]
        return self.port

    async def stop_listening(self) -> None:
        """Refuse new connections (the port stays reserved by nobody: connects are refused)."""
        if self.server:
            self.server.close()
            await self.server.wait_closed()
            self.server = None

    async def resume_listening(self) -> None:
        if self.server is None:
            self.server = await asyncio.start_server(self._serve, self.host, self.port)

    async def close(self) -> None:
        for ch in self.channels.values():
            if ch.streamer:
                ch.streamer.cancel()
        await self.drop()
        await self.stop_listening()
        for t in list(self._tasks):
            t.cancel()

    async def drop(self) -> None:
        """Every connection breaks (no goodbye)."""
        for c in list(self.conns):
            c.writer.close()
        self.conns.clear()
        await asyncio.sleep(0)

    async def disconnect_notice(self) -> None:
        for c in list(self.conns):
            await self._send(c, "text/disconnect-notice", DISCONNECT_TEXT.encode())
            c.writer.close()
        self.conns.clear()

    async def send_raw(self, data: bytes) -> None:
        for c in self.conns:
            c.writer.write(data)
            await c.writer.drain()

    async def wait_subscribed(self, n: int = 1, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while sum(1 for c in self.conns if c.fmt) < n:
            if time.monotonic() > deadline:
                raise TimeoutError("no subscribed client")
            await asyncio.sleep(0.01)

    def _spawn(self, coro) -> asyncio.Task[None]:  # type: ignore[no-untyped-def]
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def _send(self, c: Conn, ctype: str, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        head = "".join(f"{k}: {v}\n" for k, v in (headers or {}).items())
        if body:
            head = f"Content-Length: {len(body)}\n" + head
        frame = f"Content-Type: {ctype}\n{head}\n".encode() + body
        try:
            c.writer.write(frame)
            await c.writer.drain()
        except (ConnectionError, RuntimeError):
            pass

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        c = Conn(writer)
        self.connections += 1
        if self.rude:
            await self._send(c, "text/rude-rejection", RUDE_TEXT.encode())
            writer.close()
            return
        self.conns.append(c)
        await self._send(c, "auth/request")
        try:
            while True:
                lines = []
                while True:
                    line = await reader.readline()
                    if not line:
                        return
                    text = line.decode().rstrip("\r\n")
                    if not text:
                        if lines:
                            break
                        continue
                    lines.append(text)
                if not await self._command(c, lines):
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            if c in self.conns:
                self.conns.remove(c)
            with contextlib.suppress(Exception):
                writer.close()

    async def _reply(self, c: Conn, text: str, **headers: str) -> None:
        if self.event_before_reply and c.fmt:
            await self._deliver(c, self._event("HEARTBEAT", None, {"Event-Info": "System Ready", "Up-Time": "0 years"}))
        await self._send(c, "command/reply", headers={"Reply-Text": text, **headers})

    async def _command(self, c: Conn, lines: list[str]) -> bool:
        first = lines[0]
        extra = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
        verb, _, rest = first.partition(" ")
        self.commands.append("auth ***" if verb == "auth" else first)
        if not c.authed:
            if verb != "auth":
                await self._reply(c, "-ERR command not found")
                return True
            self.auth_attempts += 1
            if rest != self.password or self.reject_auth:
                await self._reply(c, "-ERR invalid")
                await self._send(c, "text/disconnect-notice", DISCONNECT_TEXT.encode())
                c.writer.close()
                return False
            c.authed = True
            await self._reply(c, "+OK accepted")
            return True
        if verb == "exit":
            await self._reply(c, "+OK bye")
            await self._send(c, "text/disconnect-notice", DISCONNECT_TEXT.encode())
            c.writer.close()
            return False
        if verb == "event":
            fmt, _, names = rest.partition(" ")
            if fmt not in ("plain", "json", "xml"):
                await self._reply(c, "-ERR invalid event format")
                return True
            c.fmt = fmt
            c.events |= set(names.split())
            await self._reply(c, f"+OK event listener enabled {fmt}")
            return True
        if verb == "api":
            self.api_log.append(rest)
            out = await self._api(rest)
            if self.event_before_reply and c.fmt:
                await self._deliver(c, self._event("HEARTBEAT", None, {"Event-Info": "System Ready"}))
            await self._send(c, "api/response", out.encode())
            return True
        if verb == "bgapi":
            self.api_log.append(rest)
            job = extra.get("Job-UUID") or str(uuid.uuid4())
            await self._reply(c, f"+OK Job-UUID: {job}", **{"Job-UUID": job})
            self._spawn(self._bg(job, rest))
            return True
        if verb == "sendmsg":
            target = rest.strip()
            self.sendmsgs.append((target, extra))
            ch = self.channels.get(target)
            if ch is None:
                await self._reply(c, f"-ERR invalid session id [{target}]")
                return True
            await self._reply(c, "+OK")
            if extra.get("call-command") == "unicast":
                self._unicast(ch, extra)
            elif extra.get("call-command") == "hangup":
                await self.hangup(target, extra.get("hangup-cause", "NORMAL_CLEARING"))
            return True
        await self._reply(c, "-ERR command not found")
        return True

    # ------------------------------------------------------------------ events
    def _event(self, name: str, ch: Channel | None, extra: dict[str, str] | None = None,
               body: str | None = None) -> dict[str, str]:
        self._seq += 1
        ev = {"Event-Name": name, "Core-UUID": "peer-core", "FreeSWITCH-Hostname": "peer",
              "Event-Date-Timestamp": str(int(time.time() * 1e6)), "Event-Sequence": str(self._seq)}
        if ch is not None:
            ev.update({"Unique-ID": ch.uuid, "Channel-Name": ch.name, "Channel-State": ch.state,
                       "Call-Direction": ch.direction, "Answer-State": "answered" if ch.answered else "ringing",
                       "Caller-Context": ch.context, "Caller-Destination-Number": ch.dest,
                       "Caller-Caller-ID-Number": ch.cid_num, "Caller-Caller-ID-Name": ch.cid_name,
                       "Caller-Unique-ID": ch.uuid})
            if ch.partner:
                ev["Other-Leg-Unique-ID"] = ch.partner
            ev.update({f"variable_{k}": v for k, v in ch.variables.items()})
        ev.update(extra or {})
        if body is not None:
            ev["_body"] = body
        return ev

    async def _deliver(self, c: Conn, ev: dict[str, str]) -> None:
        if c.fmt == "json":
            await self._send(c, "text/event-json", json.dumps(ev).encode())
            return
        body = ev.get("_body")
        head = "".join(f"{k}: {quote(v, safe='')}\n" for k, v in ev.items() if k != "_body")
        if body is not None:
            head += f"Content-Length: {len(body.encode())}\n"
        data = (head + "\n").encode() + (body.encode() if body is not None else b"")
        await self._send(c, "text/event-plain", data)

    async def fire(self, ev: dict[str, str]) -> None:
        for c in list(self.conns):
            if c.fmt and ({"ALL", ev["Event-Name"]} & c.events):
                await self._deliver(c, ev)

    # ------------------------------------------------------------------ calls
    def add_channel(self, name: str, **kw) -> Channel:  # type: ignore[no-untyped-def]
        ch = Channel(uuid=kw.pop("uuid", None) or str(uuid.uuid4()), name=name, **kw)
        self.channels[ch.uuid] = ch
        return ch

    async def place_call(self, caller_audio: bytes, callee_audio: bytes = b"", *,
                         variables: dict[str, str] | None = None, context: str = "default", dest: str = "1000",
                         caller_id: str = "5551234", caller_name: str = "Test Caller",
                         bridge: bool = True) -> tuple[str, str]:
        """A SIP call arrives, is answered and (``bridge``) bridged to a callee; returns (a, b) uuids."""
        a = self.add_channel(f"sofia/internal/{caller_id}@peer", context=context, dest=dest, cid_num=caller_id,
                             cid_name=caller_name, variables=dict(variables or {}), audio=caller_audio)
        b = self.add_channel(f"sofia/internal/{dest}@peer", context=context, dest=dest, cid_num=caller_id,
                             cid_name=caller_name, direction="outbound", audio=callee_audio)
        await self.fire(self._event("CHANNEL_CREATE", a))
        a.answered = True
        await self.fire(self._event("CHANNEL_ANSWER", a))
        if bridge:
            await self.bridge(a.uuid, b.uuid)
        return a.uuid, b.uuid

    async def bridge(self, a_uuid: str, b_uuid: str) -> None:
        """The callee ``b_uuid`` is created, answers and is bridged to ``a_uuid`` (also later, after an IVR)."""
        a, b = self.channels[a_uuid], self.channels[b_uuid]
        await self.fire(self._event("CHANNEL_CREATE", b))
        b.answered = True
        await self.fire(self._event("CHANNEL_ANSWER", b))
        a.partner, b.partner = b.uuid, a.uuid
        await self.fire(self._event("CHANNEL_BRIDGE", a, {"Bridge-A-Unique-ID": a.uuid,
                                                           "Bridge-B-Unique-ID": b.uuid}))

    async def hangup(self, uid: str, cause: str = "NORMAL_CLEARING") -> bool:
        ch = self.channels.pop(uid, None)
        if ch is None:
            return False
        if ch.streamer:
            ch.streamer.cancel()
        ch.state = "CS_HANGUP"
        ch.variables["hangup_cause"] = cause
        await self.fire(self._event("CHANNEL_HANGUP", ch, {"Hangup-Cause": cause}))
        await self.fire(self._event("CHANNEL_HANGUP_COMPLETE", ch, {"Hangup-Cause": cause}))
        if ch.partner and ch.partner in self.channels:
            await self.hangup(ch.partner, cause)
        if ch.loopback_other and ch.loopback_other in self.channels:
            await self.hangup(ch.loopback_other, cause)
        for other in list(self.channels.values()):  # eavesdroppers on this channel end with it
            if other.eavesdrop_target == uid:
                await self.hangup(other.uuid, "NORMAL_CLEARING")
        return True

    # ------------------------------------------------------------------ api
    async def _api(self, cmd: str) -> str:
        verb, _, rest = cmd.partition(" ")
        args = rest.split(" ")
        if verb == "status":
            return "UP 0 years, 0 days\nFreeSWITCH (Version peer) is ready\n"
        if verb == "uuid_exists":
            return "true" if args[0] in self.channels else "false"
        if verb == "show" and rest.startswith("channels"):
            rows = [{"uuid": ch.uuid, "name": ch.name, "dest": ch.dest, "context": ch.context,
                     "cid_name": ch.cid_name} for ch in self.channels.values()]
            return json.dumps({"row_count": len(rows), "rows": rows}) if rows else json.dumps({"row_count": 0})
        if verb not in ("uuid_setvar", "uuid_setvar_multi", "uuid_getvar", "uuid_broadcast", "uuid_kill"):
            return f"-ERR {verb} Command not found!\n"
        ch = self.channels.get(args[0]) if args and args[0] else None
        if ch is None:
            return "-ERR No such channel!\n"
        if verb == "uuid_setvar":
            if len(args) < 2:
                return "-USAGE: <uuid> <var> [value]\n"
            name, value = args[1], " ".join(args[2:])
            if value:
                ch.variables[name] = value
            else:
                ch.variables.pop(name, None)
            return "+OK\n"
        if verb == "uuid_setvar_multi":
            for pair in " ".join(args[1:]).split(";"):
                name, _, value = pair.partition("=")
                if value:
                    ch.variables[name] = value
                else:
                    ch.variables.pop(name, None)
            return "+OK\n"
        if verb == "uuid_getvar":
            return ch.variables.get(args[1], "_undef_")
        if verb == "uuid_broadcast":
            if len(args) < 2:
                return "-USAGE: <uuid> <path> [aleg|bleg|both]\n"
            leg = args[2] if len(args) > 2 else "aleg"
            hearer = ch.uuid if leg == "aleg" else ch.partner
            await self.fire(self._event("PLAYBACK_START", self.channels.get(hearer or "") or ch,
                                        {"Playback-File-Path": args[1]}))
            return "+OK Message sent\n"
        # uuid_kill
        self._spawn(self.hangup(ch.uuid, args[1] if len(args) > 1 else "NORMAL_CLEARING"))
        return "+OK\n"

    async def _bg(self, job: str, cmd: str) -> None:
        result = await self._bg_result(cmd)
        ev = self._event("BACKGROUND_JOB", None, {"Job-UUID": job, "Job-Command": cmd.split(" ", 1)[0],
                                                  "Job-Command-Arg": cmd.partition(" ")[2]}, body=result)
        if self.hold_jobs:
            self.held_jobs.append(ev)
            return
        await self.fire(ev)

    async def release_jobs(self, reverse: bool = True) -> None:
        jobs, self.held_jobs = self.held_jobs, []
        for ev in reversed(jobs) if reverse else jobs:
            await self.fire(ev)

    async def _bg_result(self, cmd: str) -> str:
        verb, _, rest = cmd.partition(" ")
        if verb != "originate":
            out = await self._api(cmd)
            return out
        m = re.fullmatch(r"(?:\{(?P<vars>[^}]*)\})?loopback/(?P<exten>[^/ ]+)/(?P<ctx>[^/ ]+)(?:/XML)?"
                         r" &eavesdrop\((?P<target>[^)]+)\)", rest.strip())
        if m is None:
            return "-ERR CHAN_NOT_IMPLEMENTED\n"
        variables = dict(kv.split("=", 1) for kv in (m["vars"] or "").split(",") if "=" in kv)
        target = self.channels.get(m["target"])
        if target is None:
            return "-ERR NO_ANSWER\n"
        a_uuid = variables.get("origination_uuid") or str(uuid.uuid4())
        a = self.add_channel(f"loopback/{m['exten']}-a", uuid=a_uuid, context=m["ctx"], dest=m["exten"],
                             direction="outbound", variables=variables)
        b = self.add_channel(f"loopback/{m['exten']}-b", context=m["ctx"], dest=m["exten"], direction="inbound")
        a.loopback_other, b.loopback_other = b.uuid, a.uuid
        a.variables["other_loopback_leg_uuid"] = b.uuid
        b.variables["other_loopback_leg_uuid"] = a.uuid
        a.eavesdrop_target = target.uuid
        a.eavesdrop_read = not (variables.get("eavesdrop_bridge_bleg") == "true"
                                and variables.get("eavesdrop_bridge_aleg") != "true")
        await self.fire(self._event("CHANNEL_CREATE", a))
        await self.fire(self._event("CHANNEL_CREATE", b))
        b.answered = b.parked = True  # the tap context answers and parks the B leg
        await self.fire(self._event("CHANNEL_ANSWER", b))
        await self.fire(self._event("CHANNEL_PARK", b))
        a.answered = True
        await self.fire(self._event("CHANNEL_ANSWER", a))
        return f"+OK {a_uuid}\n"

    # ------------------------------------------------------------------ unicast
    def _unicast(self, ch: Channel, h: dict[str, str]) -> None:
        local = (h.get("local-ip") or "127.0.0.1", int(h.get("local-port") or 8025))
        remote = (h.get("remote-ip") or "127.0.0.1", int(h.get("remote-port") or 8026))
        ch.unicast = (local, remote, h.get("flags", ""))
        if not ch.parked:
            return  # FreeSWITCH streams unicast only from the park loop: accepted, silent
        if (h.get("transport") or "udp") != "udp":
            return
        ch.streamer = self._spawn(self._stream(ch, local, remote))

    def _tap_audio(self, b: Channel) -> bytes:
        a = self.channels.get(b.loopback_other or "")
        if a is None or a.eavesdrop_target is None:
            return b""
        target = self.channels.get(a.eavesdrop_target)
        if target is None:
            return b""
        if a.eavesdrop_read:
            return target.audio
        partner = self.channels.get(target.partner or "")
        return partner.audio if partner else b""

    async def _stream(self, ch: Channel, local: tuple[str, int], remote: tuple[str, int]) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind(local)  # as switch_ivr_activate_unicast does; a failed bind means no audio
        except OSError:
            sock.close()
            return
        sock.setblocking(False)
        audio = self._tap_audio(ch)
        frame = 320  # 20 ms of L16 at the loopback leg's 8 kHz
        sent = 0
        try:
            for i in range(0, len(audio) - frame + 1, frame):
                if ch.uuid not in self.channels:
                    break
                with contextlib.suppress(BlockingIOError, OSError):
                    sock.sendto(audio[i:i + frame], remote)
                sent += 1
                self.streamed_frames[ch.uuid] = sent
                await asyncio.sleep(self.frame_interval)
        finally:
            sock.close()
