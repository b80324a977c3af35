"""What callguard needs from a PBX, independent of Asterisk: the adapter interface and its data types.

An adapter reports calls starting and ending (``CallEvents``), taps a leg's audio to the media endpoint,
removes taps, and carries out reactions (annotate, warn, hang up). ``plugin.asterisk`` implements it
over ARI; a FreeSWITCH adapter would implement the same protocol over its Event Socket.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

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
