"""The verdict bus: JSON messages on a Redis pub/sub channel and in a capped stream.

Every chunk score, every verdict change and one summary per tapped leg are published (PUBLISH on
``redis.channel``) and appended (``XADD redis.stream MAXLEN ~ stream_maxlen``, field ``msg``) in one
round trip. Message ids are deterministic (call, channel, type, chunk), so a consumer can drop repeats.

Delivery is exactly-once into the stream: each message gets a (producer, sequence number) when it is
first published, kept with it in the spool, and one Lua script does XADD + PUBLISH only if that sequence
number is above the producer's high-water mark (hash ``<stream>:producers``), atomically. A retry of a
message whose first attempt did reach Redis (reply lost, client timeout, redis-py's own retry) is skipped.

When Redis is unreachable, messages go to a bounded local spool file (JSON lines) and a background task
delivers them in order once Redis answers again; while the spool holds anything, new messages queue
behind it so the order is kept. A full spool drops new messages and counts them (``bus_spool_dropped``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import socket
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from redis.exceptions import NoPermissionError, RedisError, ResponseError

from plugin import metrics
from plugin.redis_conn import RedisTls, make_redis

log = logging.getLogger(__name__)

SCHEMA = "callguard.verdict/1"
SCHEMA_FILE = Path(__file__).resolve().parent / "schemas" / "verdict.schema.json"
PRODUCERS_TTL_S = 7 * 24 * 3600  # the high-water marks outlive any spool backlog

# KEYS: stream, producers hash. ARGV: producer, seq, maxlen, channel, data, type, id, ttl.
# Returns 1 when appended and published, 0 when this producer already delivered that sequence number.
DELIVER_LUA = """
local last = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
local seq = tonumber(ARGV[2])
if seq <= last then return 0 end
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[3], '*', 'msg', ARGV[5], 'type', ARGV[6], 'id', ARGV[7])
redis.call('PUBLISH', ARGV[4], ARGV[5])
redis.call('HSET', KEYS[2], ARGV[1], seq)
redis.call('EXPIRE', KEYS[2], ARGV[8])
return 1
"""


def message_id(call_id: str, channel_id: str, kind: str, seq: int | str) -> str:
    return f"{call_id}/{channel_id}/{kind}/{seq}"


def make_message(kind: str, *, call_id: str, channel_id: str, leg: str, chunk_index: int | None,
                 chunk_start_s: float | None, score: float | None, detector: str, detector_version: str,
                 verdict: str, policy: str, seq: int | str | None = None, **extra: Any) -> dict[str, Any]:
    """Build one bus message; ``extra`` adds type-specific fields (evidence, error, summary, ...)."""
    msg: dict[str, Any] = {
        "schema": SCHEMA,
        "id": message_id(call_id, channel_id, kind, seq if seq is not None else chunk_index
                         if chunk_index is not None else 0),
        "type": kind,
        "ts": round(time.time(), 6),
        "call_id": call_id,
        "channel_id": channel_id,
        "leg": leg,
        "chunk_index": chunk_index,
        "chunk_start_s": chunk_start_s,
        "score": None if score is None else round(float(score), 6),
        "detector": detector,
        "detector_version": detector_version,
        "verdict": verdict,
        "policy": policy,
    }
    msg.update(extra)
    return msg


class Spool:
    """A bounded JSON-lines file of messages waiting for Redis."""

    def __init__(self, path: str | Path, max_bytes: int) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.dropped = 0

    def __len__(self) -> int:
        if not self.path.exists():
            return 0
        with self.path.open("rb") as f:
            return sum(1 for _ in f)

    def has_items(self) -> bool:
        try:
            return self.path.stat().st_size > 0
        except FileNotFoundError:
            return False

    def append(self, msg: dict[str, Any]) -> bool:
        line = json.dumps(msg, separators=(",", ":")) + "\n"
        size = self.path.stat().st_size if self.path.exists() else 0
        if size + len(line) > self.max_bytes:
            self.dropped += 1
            metrics.inc("bus_spool_dropped")
            if self.dropped == 1 or self.dropped % 100 == 0:
                log.warning("bus spool %s full (%d bytes): dropped %d message(s)", self.path, size, self.dropped)
            return False
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(line)
        return True

    def read(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text().splitlines():
            with contextlib.suppress(ValueError):
                out.append(json.loads(line))
        return out

    def pop_front(self, n: int) -> None:
        """Forget the first ``n`` messages (delivered); what was appended meanwhile stays, in order."""
        if n <= 0 or not self.path.exists():
            return
        lines = self.path.read_bytes().splitlines(keepends=True)
        rest = lines[n:]
        if not rest:
            self.path.unlink(missing_ok=True)
            return
        tmp = self.path.with_suffix(".tmp")
        tmp.write_bytes(b"".join(rest))
        os.replace(tmp, self.path)

    def keep(self, remaining: list[dict[str, Any]]) -> None:
        """Replace the spool's content with ``remaining`` (atomically)."""
        if not remaining:
            self.path.unlink(missing_ok=True)
            return
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(json.dumps(m, separators=(",", ":")) + "\n" for m in remaining))
        os.replace(tmp, self.path)


class Bus:
    def __init__(self, url: str, password: str, channel: str, stream: str, stream_maxlen: int,
                 spool_path: str | Path, spool_max_bytes: int, summary_log: str | Path | None = None,
                 retry_s: float = 1.0, tls: RedisTls | None = None) -> None:
        self.channel, self.stream, self.stream_maxlen = channel, stream, stream_maxlen
        self.redis = make_redis(url, password, tls, socket_timeout=2.0, socket_connect_timeout=2.0)
        self.spool = Spool(spool_path, spool_max_bytes)
        self.summary_log = Path(summary_log) if summary_log else None
        self.retry_s = retry_s
        self.published = 0
        self.duplicates_skipped = 0  # retries Redis had already taken (see DELIVER_LUA)
        self.spooled = 0  # messages that went to the spool
        self.producer = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(4)}"
        self.producers_key = f"{stream}:producers"
        self._seq = 0
        self._scripts = True  # False once Redis refused EVAL (ACL, disabled scripting): plain XADD + PUBLISH
        self._lock = asyncio.Lock()
        self._drain_task: asyncio.Task[None] | None = None
        # called with each message that could not be delivered now (spooled): the local reactor acts on
        # it at once, so a Redis outage does not silence warnings and hang-ups of this process's calls
        self.on_undelivered: Callable[[dict[str, Any]], Awaitable[None]] | None = None
        self._local: set[asyncio.Task[None]] = set()
        # called on the event loop with every message given to ``publish`` (delivered or spooled), e.g. the
        # dashboard's verdict feed; must be quick and must not modify the message. Errors are logged, never raised
        self.listeners: list[Callable[[dict[str, Any]], None]] = []

    async def start(self) -> None:
        try:
            await self.redis.ping()
        except (RedisError, OSError) as exc:
            log.warning("Redis not reachable at start (%s): spooling to %s", exc.__class__.__name__,
                        self.spool.path)
        self._drain_task = asyncio.create_task(self._drain_loop(), name="bus-drain")

    async def close(self) -> None:
        if self._drain_task:
            self._drain_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._drain_task
        with contextlib.suppress(Exception):
            await self._drain_once()
        await self.redis.aclose()

    def _stamp(self, msg: dict[str, Any]) -> dict[str, Any]:
        """A copy of ``msg`` carrying its delivery identity (``_bus``: producer, sequence number)."""
        if "_bus" in msg:
            return msg
        self._seq += 1
        return {**msg, "_bus": [self.producer, self._seq]}

    async def _send(self, msg: dict[str, Any]) -> None:
        stamp = msg.get("_bus")
        body = {k: v for k, v in msg.items() if k != "_bus"}
        data = json.dumps(body, separators=(",", ":"))
        if not stamp:  # spooled by an older version: no identity, deliver as is
            stamp = self._stamp(body)["_bus"]
        producer, seq = stamp
        added: Any = None
        if self._scripts:
            try:
                added = await self.redis.eval(DELIVER_LUA, 2, self.stream, self.producers_key, producer, int(seq),
                                              self.stream_maxlen, self.channel, data, body["type"], body["id"],
                                              PRODUCERS_TTL_S)
            except ResponseError as exc:
                refused = isinstance(exc, NoPermissionError) or "unknown command" in str(exc).lower()
                if not refused:
                    raise
                self._scripts = False
                log.warning("Redis refuses the delivery script (%s): delivering without the duplicate check, "
                            "a retry may then appear twice in the stream", exc)
        if added is None:
            async with self.redis.pipeline(transaction=False) as pipe:
                pipe.publish(self.channel, data)
                pipe.xadd(self.stream, {"msg": data, "type": body["type"], "id": body["id"]},
                          maxlen=self.stream_maxlen, approximate=True)
                await pipe.execute()
            added = 1
        if int(added):
            self.published += 1
        else:
            self.duplicates_skipped += 1
            metrics.inc("bus_duplicates_skipped")
            log.info("Redis already had message %s (seq %s): not appended again", body["id"], seq)

    async def publish(self, msg: dict[str, Any]) -> bool:
        """Deliver now, or spool. Returns True when delivered to Redis. Never raises."""
        self._notify(msg)
        async with self._lock:
            msg = self._stamp(msg)
            if not self.spool.has_items():
                try:
                    await self._send(msg)
                    return True
                except (TimeoutError, RedisError, OSError) as exc:
                    metrics.inc("bus_publish_failures")
                    log.warning("Redis publish failed (%s): spooling to %s", exc.__class__.__name__,
                                self.spool.path)
            if self.spool.append(msg):
                self.spooled += 1
        if self.on_undelivered is not None:
            task = asyncio.create_task(self.on_undelivered(msg))
            self._local.add(task)
            task.add_done_callback(self._local.discard)
        return False

    def _notify(self, msg: dict[str, Any]) -> None:
        for listener in list(self.listeners):
            try:
                listener(msg)
            except Exception:  # a broken listener never stops a message
                metrics.inc("bus_listener_errors")
                log.exception("bus listener %r failed on a %s message", listener, msg.get("type"))

    def write_summary_line(self, msg: dict[str, Any]) -> None:
        if self.summary_log is None:
            return
        try:
            self.summary_log.parent.mkdir(parents=True, exist_ok=True)
            with self.summary_log.open("a") as f:
                f.write(json.dumps(msg, separators=(",", ":")) + "\n")
        except OSError as exc:
            log.warning("cannot write summary log %s: %s", self.summary_log, exc)

    async def _drain_once(self, batch: int = 500) -> int:
        """Deliver the spool's oldest messages in order. The lock is held only to read and to trim the
        spool, not while Redis is tried: a slow or unreachable Redis never holds up ``publish``, which
        appends behind the spool meanwhile (so the order is kept)."""
        async with self._lock:
            pending = self.spool.read()[:batch]
        sent = 0
        try:
            for msg in pending:
                await self._send(msg)
                sent += 1
        except (TimeoutError, RedisError, OSError):
            pass
        finally:
            if sent:
                async with self._lock:
                    self.spool.pop_front(sent)
        if sent:
            log.info("delivered %d spooled message(s) to Redis (%d left)", sent, len(self.spool))
        return sent

    async def _drain_loop(self) -> None:
        while True:
            await asyncio.sleep(self.retry_s)
            while self.spool.has_items():
                try:
                    if not await self._drain_once():
                        break
                except Exception:
                    log.exception("spool drain failed")
                    break
