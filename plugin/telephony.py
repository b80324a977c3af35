"""What callguard needs from a PBX, independent of Asterisk: the adapter interface and its data types.

An adapter reports calls starting and ending (``CallEvents``), taps a leg's audio to the media endpoint,
removes taps, and carries out reactions (annotate, warn, hang up). ``plugin.asterisk`` implements it
over ARI, ``plugin.freeswitch`` over its Event Socket; both build on ``AdapterTasks``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Protocol

Addr = tuple[str, int]


@dataclass(frozen=True)
class CallInfo:
    """Route-matching facts about a new call (what ``config.Config.policy_for`` looks at)."""

    context: str = ""
    endpoint: str = ""
    caller_id: str = ""
    exten: str = ""
    caller_name: str = ""


@dataclass
class Leg:
    """One guarded direction of a call."""

    call_id: str
    leg: str  # "caller" or "callee"
    channel_id: str  # the channel this leg's speaker is on (annotations go here), or the tapped one
    tap_channel_id: str  # the channel the tap attaches to
    spy: str  # "in" (audio the channel sends us) or "out" (audio sent to the channel)

    @property
    def key(self) -> str:
        return f"{self.call_id}:{self.leg}"


@dataclass
class Call:
    call_id: str
    mode: str  # "bridge" (answered and bridged by callguard) or "dial" (the dialplan's own Dial())
    caller_channel: str
    info: CallInfo
    policy: str = "default"
    callee_channel: str | None = None
    legs: dict[str, Leg] = field(default_factory=dict)
    started_at: float = 0.0
    ended: bool = False
    globals_set: bool = False  # Dial() calls: annotations were stored in globals (see plugin.asterisk)


class CallEvents(Protocol):
    async def call_started(self, call: Call) -> None: ...

    async def call_ended(self, call: Call, reason: str) -> None: ...


class TelephonyAdapter(Protocol):
    async def start(self, events: CallEvents) -> None: ...

    async def close(self) -> None: ...

    def legs_of(self, call: Call, guarded: tuple[str, ...]) -> list[Leg]:
        """The legs of ``call`` that can be tapped, restricted to ``guarded`` ("caller", "callee")."""
        ...

    async def tap(self, leg: Leg, register: Callable[[Addr], None]) -> float:
        """Start tapping ``leg``; ``register(addr)`` is called with the media source address before any
        audio flows. Returns the set-up time in seconds."""
        ...

    async def stop_tap(self, leg: Leg) -> None: ...

    async def annotate(self, leg: Leg, variables: dict[str, str]) -> None: ...

    async def warn(self, leg: Leg, media: str) -> None:
        """Play ``media`` to the party talking with ``leg``'s speaker."""
        ...

    async def hangup(self, leg: Leg, reason: str = "normal") -> None: ...

    def find_leg(self, call_id: str, leg: str) -> Leg | None: ...


class AdapterTasks:
    """What both adapters do alike around their PBX connection: keep their background tasks (so a task
    is never garbage-collected mid-flight and ``close`` can cancel them) and, on every (re)connect, sweep
    left-overs of an earlier run the first time and resynchronise with the PBX after that."""

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()
        self._first_connect = True

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _cancel_tasks(self) -> None:
        for t in list(self._tasks):
            t.cancel()

    async def _on_connect(self) -> None:
        if self._first_connect:
            self._first_connect = False
            await self.sweep()
            return
        await self.resync()

    async def sweep(self) -> int:
        """Remove tap resources nobody here owns (left by an earlier run); returns how many."""
        raise NotImplementedError

    async def resync(self) -> dict[str, int]:
        """After a reconnect: compare what is tracked with what the PBX has now; returns counts."""
        raise NotImplementedError
