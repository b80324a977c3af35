"""Reactions driven by the verdict bus (Redis pub/sub), so any process could react the same way.

- ``chunk`` and ``verdict`` messages annotate the guarded channel (DEEPFAKE_SCORE, DEEPFAKE_VERDICT and
  CDR(deepfake_score); a callee leg tapped from the caller's channel uses DEEPFAKE_CALLEE_* names),
  when the local policy has ``annotate`` for that verdict;
- a verdict change to ``suspicious`` or ``spoof`` plays the policy's warning to the other party, once
  per verdict level, when the policy has ``warn``;
- ``spoof`` hangs up, only when the local policy (looked up by name, never taken from the message) has
  ``hangup`` for spoof.
Errors are logged and never lead to a hang-up. Messages the bus could not deliver (Redis away) reach
``handle`` directly from the local bus; their later delivery through Redis is ignored by message id.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Mapping
from typing import Any

from redis.exceptions import RedisError

from plugin.config import Policy
from plugin.logs import call_context
from plugin.redis_conn import RedisTls, make_redis
from plugin.telephony import Leg, TelephonyAdapter

log = logging.getLogger(__name__)


class Reactor:
    def __init__(self, url: str, password: str, channel: str, adapter: TelephonyAdapter,
                 policies: Mapping[str, Policy], tls: RedisTls | None = None) -> None:
        self.redis = make_redis(url, password, tls, socket_connect_timeout=2.0)
        self.channel = channel
        self.adapter = adapter
        self.policies = policies
        self._task: asyncio.Task[None] | None = None
        self._warned: dict[str, set[str]] = {}
        self._hung_up: set[str] = set()
        self._seen: set[str] = set()
        self.latencies: list[dict[str, Any]] = []  # per verdict: action -> seconds since the message ts
        self.subscribed = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="reactions")

    async def close(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        await self.redis.aclose()

    async def _run(self) -> None:
        backoff = 0.2
        while True:
            try:
                async with self.redis.pubsub() as ps:
                    await ps.subscribe(self.channel)
                    self.subscribed.set()
                    backoff = 0.2
                    async for raw in ps.listen():
                        if raw.get("type") != "message":
                            continue
                        try:
                            msg = json.loads(raw["data"])
                        except (ValueError, TypeError):
                            log.warning("ignoring a non-JSON bus message")
                            continue
                        asyncio.create_task(self.handle(msg))
            except asyncio.CancelledError:
                raise
            except (RedisError, OSError) as exc:
                self.subscribed.clear()
                log.warning("verdict bus subscription lost (%s); retrying in %.1f s", exc.__class__.__name__,
                            backoff)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 2.0)

    async def handle(self, msg: dict[str, Any]) -> None:
        try:
            await self._handle(msg)
        except Exception:
            log.exception("reaction to %s failed", msg.get("id"))

    async def _handle(self, msg: dict[str, Any]) -> None:
        kind = msg.get("type")
        if kind not in ("chunk", "verdict"):
            if kind == "summary":
                self._warned.pop(f"{msg.get('call_id')}:{msg.get('leg')}", None)
            return
        if msg.get("id") in self._seen:
            return  # redelivered (e.g. from the spool): reactions are idempotent by message id
        self._seen.add(str(msg.get("id")))
        if len(self._seen) > 100_000:
            self._seen.clear()
        policy = self.policies.get(str(msg.get("policy")))
        leg = self.adapter.find_leg(str(msg.get("call_id")), str(msg.get("leg")))
        if policy is None or leg is None:
            return  # unknown policy or a call this process does not handle (or that already ended)
        verdict = str(msg.get("verdict"))
        t_msg = float(msg.get("ts") or time.time())
        done: dict[str, Any] = {"id": msg.get("id"), "verdict": verdict, "type": kind}
        key = f"{leg.call_id}:{leg.leg}"
        # annotation and warning go out together: the warning (what the other party hears) never waits for
        # the channel-variable round trips
        jobs = []
        if policy.allows(verdict, "annotate"):
            score = msg.get("evidence", msg.get("score"))
            jobs.append(self._timed(done, "annotate_s", t_msg, "annotate",
                                    self.adapter.annotate(leg, self._variables(leg, score, verdict))))
        if kind == "verdict" and verdict in ("suspicious", "spoof") and policy.allows(verdict, "warn"):
            warned = self._warned.setdefault(key, set())
            if verdict not in warned:
                warned.add(verdict)
                jobs.append(self._timed(done, "warn_started_s", t_msg, "warn",
                                        self.adapter.warn(leg, policy.warn_media)))
        if jobs:
            await asyncio.gather(*jobs)
        if kind != "verdict":
            return
        if verdict == "spoof" and policy.allows("spoof", "hangup") and key not in self._hung_up:
            if "warn_started_s" in done and policy.hangup_grace_s > 0:
                await asyncio.sleep(policy.hangup_grace_s)  # let the warning be heard first
            self._hung_up.add(key)
            log.warning("hanging up %s (%s leg judged spoof, policy %s)", leg.channel_id, leg.leg, policy.name,
                        extra=call_context(leg.call_id, leg.leg, leg.channel_id))
            if await self._safe("hangup", self.adapter.hangup(leg)):
                done["hangup_s"] = time.time() - t_msg
        self.latencies.append(done)
        log.info("reacted to %s: %s", msg.get("id"), {k: round(v, 4) if isinstance(v, float) else v
                                                     for k, v in done.items()})

    @staticmethod
    def _variables(leg: Leg, score: Any, verdict: str) -> dict[str, str]:
        suffix = "_CALLEE" if leg.leg == "callee" and leg.channel_id == leg.tap_channel_id and leg.spy == "out" \
            else ""
        value = "" if score is None else f"{float(score):.4f}"
        out = {f"DEEPFAKE{suffix}_SCORE": value, f"DEEPFAKE{suffix}_VERDICT": verdict}
        if not suffix:
            out["CDR(deepfake_score)"] = value
        return out

    async def _timed(self, done: dict[str, Any], key: str, t_msg: float, what: str, coro: Any) -> None:
        if await self._safe(what, coro):
            done[key] = time.time() - t_msg

    async def _safe(self, what: str, coro: Any) -> bool:
        try:
            await coro
            return True
        except Exception as exc:
            log.warning("%s failed: %s", what, exc)
            return False
