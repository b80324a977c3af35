"""A small asyncio client for FreeSWITCH's Event Socket (mod_event_socket, inbound mode).

Wire format (text, one frame = header lines ``Name: value`` ended by an empty line, then exactly
``Content-Length`` bytes of body when that header is present):

- on connect FreeSWITCH sends ``Content-Type: auth/request``; we answer ``auth <password>`` and get a
  ``command/reply`` whose ``Reply-Text`` is ``+OK accepted`` or ``-ERR invalid`` (then a
  ``text/disconnect-notice`` and the socket closes);
- ``event plain|json <names>`` subscribes; events arrive as ``text/event-plain`` (the body is itself a
  header block with URL-encoded values, optionally followed by its own ``Content-Length`` body) or
  ``text/event-json`` (a JSON object, the event body under ``_body``);
- ``api <cmd>`` answers with one ``api/response`` frame (body ``+OK ...``/``-ERR ...`` or plain output);
  ``bgapi <cmd>`` answers at once with a ``command/reply`` carrying a ``Job-UUID`` and later a
  ``BACKGROUND_JOB`` event with that ``Job-UUID`` and the result as its body (jobs finish in any order);
- ``sendmsg <uuid>`` with ``call-command: ...`` headers queues a message to a channel (``unicast``,
  ``execute``, ``hangup``); answered by a ``command/reply``;
- ``text/disconnect-notice`` announces that the server closes the connection; ``text/rude-rejection`` is
  sent instead of ``auth/request`` to a peer the server's ACL refuses.

Replies to ``auth``/``event``/``api``/``bgapi``/``sendmsg`` come back in the order the commands were sent,
so one FIFO of futures matches them; events may arrive between a command and its reply. The connection is
kept up with reconnects (0.2 s doubling to ``max_backoff``); after each (re)connect the subscription is
sent again and ``on_connect`` callbacks run. The password is never logged.

Written from the mod_event_socket documentation and source; tested against ``tests/plugin/esl_peer.py``,
not against a live FreeSWITCH.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from urllib.parse import unquote

log = logging.getLogger(__name__)

Event = dict[str, str]  # header name -> value; the event's body (if any) under "_body"
Handler = Callable[[Event], Awaitable[None] | None]

MAX_HEADER_LINES = 4096
MAX_LINE = 64 * 1024
MAX_BODY = 16 * 1024 * 1024


class EslError(RuntimeError):
    """A command FreeSWITCH answered with ``-ERR ...``, or one that could not be sent."""


class EslAuthError(EslError):
    """The password was refused (or the server's ACL rejected us)."""


class EslProtocolError(EslError):
    """A frame that does not follow the protocol: the connection is dropped and made again."""


# ------------------------------------------------------------------------------------------ framing
async def read_frame(reader: asyncio.StreamReader) -> tuple[dict[str, str], bytes]:
    """One frame: headers (not decoded) and the body (empty without ``Content-Length``).
    Raises ``EslProtocolError`` on malformed input and ``asyncio.IncompleteReadError`` at EOF."""
    headers: dict[str, str] = {}
    while True:
        try:
            line = await reader.readuntil(b"\n")
        except asyncio.LimitOverrunError:
            raise EslProtocolError("header line too long") from None
        if len(line) > MAX_LINE:
            raise EslProtocolError("header line too long")
        text = line.rstrip(b"\r\n").decode("utf-8", "replace")
        if not text:
            if headers:
                break
            continue  # blank lines between frames are tolerated
        name, sep, value = text.partition(":")
        if not sep or not name.strip():
            raise EslProtocolError(f"malformed header line {text[:80]!r}")
        headers[name.strip()] = value.strip()
        if len(headers) > MAX_HEADER_LINES:
            raise EslProtocolError("too many header lines")
    body = b""
    if "Content-Length" in headers:
        raw = headers["Content-Length"]
        if not raw.isdigit():
            raise EslProtocolError(f"bad Content-Length {raw[:20]!r}")
        n = int(raw)
        if n > MAX_BODY:
            raise EslProtocolError(f"Content-Length {n} too large")
        body = await reader.readexactly(n)
    return headers, body


def parse_plain_event(body: bytes) -> Event:
    """A ``text/event-plain`` body: URL-encoded header lines, a blank line, then an optional body of
    the event's own ``Content-Length``."""
    head, _, rest = body.partition(b"\n\n")
    event: Event = {}
    for line in head.decode("utf-8", "replace").splitlines():
        if not line.strip():
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise EslProtocolError(f"malformed event header {line[:80]!r}")
        event[unquote(name.strip())] = unquote(value.strip())
    if "Content-Length" in event:
        raw = event["Content-Length"]
        if not raw.isdigit() or int(raw) > len(rest):
            raise EslProtocolError(f"bad event Content-Length {raw[:20]!r}")
        event["_body"] = rest[:int(raw)].decode("utf-8", "replace")
    if "Event-Name" not in event:
        raise EslProtocolError("event without Event-Name")
    return event


def parse_json_event(body: bytes) -> Event:
    try:
        obj = json.loads(body)
    except ValueError:
        raise EslProtocolError("event-json body is not JSON") from None
    if not isinstance(obj, dict) or "Event-Name" not in obj:
        raise EslProtocolError("event-json body is not an event object")
    return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in obj.items()}


def _check(text: str, what: str) -> str:
    if "\n" in text or "\r" in text:
        raise ValueError(f"{what} must be one line")  # a newline would smuggle in a second command
    return text


# ------------------------------------------------------------------------------------------ client
class EslClient:
    def __init__(self, host: str, port: int, password: str, *, events: Iterable[str] = (),
                 event_format: str = "plain", connect_timeout: float = 4.0, timeout: float = 10.0,
                 max_backoff: float = 2.0) -> None:
        if event_format not in ("plain", "json"):
            raise ValueError("event_format: plain or json")
        self.host, self.port = host, port
        self._password = password  # never logged
        self.events = tuple(events)
        self.event_format = event_format
        self.connect_timeout, self.timeout, self.max_backoff = connect_timeout, timeout, max_backoff
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._replies: deque[asyncio.Future[tuple[dict[str, str], bytes]]] = deque()
        self._jobs: dict[str, asyncio.Future[str]] = {}
        self._handlers: list[Handler] = []
        self._on_connect: list[Callable[[], Awaitable[None]]] = []
        self._waiters: list[tuple[Callable[[Event], bool], asyncio.Future[Event]]] = []
        self._connected = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self._send_lock = asyncio.Lock()
        self._cb_tasks: set[asyncio.Task[None]] = set()
        self._queue: asyncio.Queue[Event] = asyncio.Queue()
        self._consumer: asyncio.Task[None] | None = None
        self.reconnects = 0
        self.lost_at: float | None = None
        self.last_gap_s: float | None = None
        self.last_error: str | None = None
        self.protocol_errors = 0

    # ------------------------------------------------------------------ lifecycle
    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    def on_event(self, handler: Handler) -> None:
        self._handlers.append(handler)

    def on_connect(self, callback: Callable[[], Awaitable[None]]) -> None:
        self._on_connect.append(callback)

    async def start(self, wait: float | None = 10.0) -> None:
        self._closing = False
        self._task = asyncio.create_task(self._loop(), name="esl")
        self._consumer = asyncio.create_task(self._consume(), name="esl-events")
        if wait:
            await asyncio.wait_for(self._connected.wait(), wait)

    async def wait_connected(self) -> None:
        await self._connected.wait()

    async def close(self) -> None:
        self._closing = True
        if self._writer is not None and self.connected:
            with contextlib.suppress(Exception):
                self._writer.write(b"exit\n\n")
                await asyncio.wait_for(self._writer.drain(), 0.5)
        for task in (self._task, self._consumer):
            if task:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._drop("client closed")
        for t in list(self._cb_tasks):
            t.cancel()

    async def _loop(self) -> None:
        backoff = 0.2
        while not self._closing:
            started = time.monotonic()
            try:
                await self._session()
            except asyncio.CancelledError:
                raise
            except EslAuthError as exc:
                self.last_error = str(exc)
                log.error("FreeSWITCH event socket %s:%d: %s (check freeswitch.password and the ACL in "
                          "event_socket.conf.xml)", self.host, self.port, exc)
                backoff = max(backoff, self.max_backoff)
            except (OSError, EslError, asyncio.IncompleteReadError, TimeoutError) as exc:
                self.last_error = _why(exc)
                if self.lost_at is None:
                    self.lost_at = time.time()
                log.warning("FreeSWITCH event socket %s:%d: %s; retrying in %.1f s", self.host, self.port,
                            self.last_error, backoff)
            finally:
                if self._connected.is_set():
                    self.lost_at = time.time()
                self._drop(self.last_error or "connection lost")
            if self._closing:
                return
            if time.monotonic() - started > 5.0:
                backoff = 0.2  # a connection that lived a while: start over with short delays
            await asyncio.sleep(backoff * (0.8 + 0.4 * random.random()))
            backoff = min(backoff * 2, self.max_backoff)

    async def _session(self) -> None:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection(self.host, self.port, limit=MAX_LINE), self.connect_timeout)
        self._reader, self._writer = reader, writer
        headers, body = await asyncio.wait_for(read_frame(reader), self.connect_timeout)
        ctype = headers.get("Content-Type", "")
        if ctype == "text/rude-rejection":
            raise EslAuthError(f"rejected by the server's ACL: {body.decode('utf-8', 'replace').strip()[:80]}")
        if ctype != "auth/request":
            raise EslProtocolError(f"expected auth/request, got {ctype or 'no Content-Type'}")
        # the reply to auth is read by the frame loop below; the command is never logged
        reader_task = asyncio.create_task(self._read_loop(reader))
        try:
            reply = await asyncio.wait_for(self._command(f"auth {self._password}", check=False),
                                           self.connect_timeout)
            if not reply.startswith("+OK"):
                raise EslAuthError("authentication failed")
            if self.events:
                await asyncio.wait_for(self.command(f"event {self.event_format} {' '.join(self.events)}"),
                                       self.connect_timeout)
            if self.lost_at is not None:
                self.last_gap_s = time.time() - self.lost_at
                self.reconnects += 1
                log.info("FreeSWITCH event socket back after %.2f s", self.last_gap_s)
            self.lost_at = None
            self.last_error = None
            self._connected.set()
            for cb in self._on_connect:
                self._spawn(cb())
            await reader_task
        finally:
            if not reader_task.done():
                reader_task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await reader_task

    def _drop(self, why: str) -> None:
        self._connected.clear()
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
        self._writer = self._reader = None
        err = EslError(f"event socket connection lost ({why})")
        self._fail_pending(err)
        for job in list(self._jobs.values()):
            if not job.done():
                job.set_exception(err)
        self._jobs.clear()

    def _spawn(self, coro: Awaitable[None]) -> None:
        task = asyncio.ensure_future(coro)
        self._cb_tasks.add(task)  # type: ignore[arg-type]
        task.add_done_callback(self._cb_tasks.discard)  # type: ignore[arg-type]

    # ------------------------------------------------------------------ reading
    async def _read_loop(self, reader: asyncio.StreamReader) -> None:
        try:
            await self._read_frames(reader)
        except BaseException as exc:  # commands waiting for a reply fail now, not at their timeout
            self._fail_pending(exc)
            raise

    def _fail_pending(self, exc: BaseException) -> None:
        err = exc if isinstance(exc, EslError) else EslError(f"event socket connection lost ({_why(exc)})")
        while self._replies:
            fut = self._replies.popleft()
            if not fut.done():
                fut.set_exception(err)

    async def _read_frames(self, reader: asyncio.StreamReader) -> None:
        while True:
            try:
                headers, body = await read_frame(reader)
            except EslProtocolError:
                self.protocol_errors += 1
                raise
            ctype = headers.get("Content-Type", "")
            if ctype in ("command/reply", "api/response"):
                if not self._replies:
                    self.protocol_errors += 1
                    raise EslProtocolError(f"{ctype} with no command waiting for it")
                fut = self._replies.popleft()
                if not fut.done():
                    fut.set_result((headers, body))
            elif ctype in ("text/event-plain", "text/event-json"):
                try:
                    event = parse_plain_event(body) if ctype == "text/event-plain" else parse_json_event(body)
                except EslProtocolError as exc:  # one bad event: skip it, the framing is still intact
                    self.protocol_errors += 1
                    log.warning("skipping a malformed FreeSWITCH event: %s", exc)
                    continue
                await self._dispatch(event)
            elif ctype == "text/disconnect-notice":
                log.info("FreeSWITCH announced disconnect: %s", body.decode("utf-8", "replace").strip()[:120])
                raise EslError("server disconnected")
            elif ctype == "text/rude-rejection":
                raise EslAuthError("rejected by the server's ACL")
            else:
                log.debug("ignoring a %s frame", ctype or "typeless")

    async def _dispatch(self, event: Event) -> None:
        if event.get("Event-Name") == "BACKGROUND_JOB":
            job = self._jobs.pop(event.get("Job-UUID", ""), None)
            if job is not None and not job.done():
                job.set_result(event.get("_body", ""))
        for pred, fut in list(self._waiters):
            if not fut.done():
                try:
                    hit = pred(event)
                except Exception:
                    hit = False
                if hit:
                    fut.set_result(event)
        self._waiters = [(p, f) for p, f in self._waiters if not f.done()]
        self._queue.put_nowait(event)  # handlers run in order on their own task: they may send commands

    async def _consume(self) -> None:
        while True:
            event = await self._queue.get()
            await self._handle(event)

    async def _handle(self, event: Event) -> None:
        for handler in self._handlers:
            try:
                res = handler(event)
                if res is not None:
                    await res
            except Exception:
                log.exception("event handler failed on %s", event.get("Event-Name"))

    # ------------------------------------------------------------------ event waits
    def expect(self, predicate: Callable[[Event], bool]) -> asyncio.Future[Event]:
        """A future for the first event matching ``predicate``: register it *before* the command that
        causes the event (it may arrive before the command's reply)."""
        fut: asyncio.Future[Event] = asyncio.get_running_loop().create_future()
        self._waiters.append((predicate, fut))
        return fut

    # ------------------------------------------------------------------ commands
    async def _command(self, text: str, *, extra: str = "", check: bool = True) -> str:
        headers, _ = await self._raw(f"{text}\n{extra}\n")
        reply = headers.get("Reply-Text", "")
        if check and reply.startswith("-ERR"):
            raise EslError(f"{text.split(' ', 1)[0]}: {reply}")
        return reply

    async def _raw(self, data: str) -> tuple[dict[str, str], bytes]:
        writer = self._writer
        if writer is None:
            raise EslError("event socket not connected")
        fut: asyncio.Future[tuple[dict[str, str], bytes]] = asyncio.get_running_loop().create_future()
        async with self._send_lock:
            self._replies.append(fut)  # reply order == send order: queue and write without a gap
            writer.write(data.encode())
            await writer.drain()
        return await asyncio.wait_for(asyncio.shield(fut), self.timeout)

    async def command(self, text: str) -> str:
        """A plain command (``event ...``, ``filter ...``, ``noevents``); returns its Reply-Text."""
        return await self._command(_check(text, "command"))

    async def api(self, cmd: str) -> str:
        """``api <cmd>``: the response body; ``-ERR ...`` raises ``EslError``."""
        _, body = await self._raw(f"api {_check(cmd, 'api command')}\n\n")
        text = body.decode("utf-8", "replace")
        if text.startswith(("-ERR", "-USAGE")):
            raise EslError(f"{cmd.split(' ', 1)[0]}: {text.strip()}")
        return text

    async def bgapi(self, cmd: str, timeout: float | None = None) -> str:
        """``bgapi <cmd>``: waits for the job's BACKGROUND_JOB event and returns its body; ``-ERR`` raises."""
        job_id = str(uuid.uuid4())
        fut: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self._jobs[job_id] = fut  # before sending: the job may finish before its command/reply is read
        try:
            reply = await self._command(f"bgapi {_check(cmd, 'bgapi command')}", extra=f"Job-UUID: {job_id}\n")
            # servers that do not take our Job-UUID name their own in the reply
            given = reply.partition("Job-UUID:")[2].strip()
            if given and given != job_id:
                self._jobs[given] = self._jobs.pop(job_id)
            result = await asyncio.wait_for(asyncio.shield(fut), timeout or self.timeout)
        finally:
            self._jobs = {k: v for k, v in self._jobs.items() if v is not fut}
        if result.startswith(("-ERR", "-USAGE")):
            raise EslError(f"{cmd.split(' ', 1)[0]}: {result.strip()}")
        return result

    async def sendmsg(self, channel_uuid: str, headers: dict[str, str]) -> str:
        """``sendmsg <uuid>`` with ``headers`` (e.g. ``call-command: unicast``)."""
        lines = "".join(f"{_check(k, 'header name')}: {_check(str(v), 'header value')}\n"
                        for k, v in headers.items())
        return await self._command(f"sendmsg {_check(channel_uuid, 'uuid')}", extra=lines)


def _why(exc: BaseException) -> str:
    if isinstance(exc, asyncio.IncompleteReadError):
        return "connection closed"
    if isinstance(exc, TimeoutError):
        return "timed out"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    return str(exc) or exc.__class__.__name__
