"""Reactions follow the local policy: annotate, warn once per level, hang up only on spoof when allowed,
and a failing action never turns into a hang-up. (A recording fake adapter; the real one is exercised by
tests/integration.)"""

from __future__ import annotations

import asyncio

from plugin.config import Policy
from plugin.reactions import Reactor
from plugin.telephony import Leg

LEG = Leg(call_id="c1", leg="caller", channel_id="c1", tap_channel_id="c1", spy="in")
GUARD = Policy(name="guard", hangup_grace_s=0.0, actions={"bonafide": ("annotate",), "suspicious": ("annotate", "warn"),
                                                          "spoof": ("annotate", "warn", "hangup")})
WATCH = Policy(name="watch", actions={"bonafide": ("annotate",), "suspicious": ("annotate",),
                                      "spoof": ("annotate", "warn")})


class RecordingAdapter:
    def __init__(self, fail: set[str] | None = None) -> None:
        self.calls: list[tuple[str, object]] = []
        self.fail = fail or set()

    def find_leg(self, call_id: str, leg: str) -> Leg | None:
        return LEG if (call_id, leg) == ("c1", "caller") else None

    async def _do(self, what: str, arg: object) -> None:
        self.calls.append((what, arg))
        if what in self.fail:
            raise RuntimeError(f"{what} broke")

    async def annotate(self, leg: Leg, variables: dict[str, str]) -> None:
        await self._do("annotate", variables)

    async def warn(self, leg: Leg, media: str) -> None:
        await self._do("warn", media)

    async def hangup(self, leg: Leg, reason: str = "normal") -> None:
        await self._do("hangup", leg.channel_id)


def msg(verdict: str, policy: str = "guard", n: int = 1, kind: str = "verdict", call_id: str = "c1") -> dict:
    return {"type": kind, "id": f"{call_id}/{kind}/{n}", "call_id": call_id, "leg": "caller", "verdict": verdict,
            "policy": policy, "score": 0.5, "evidence": 0.5, "ts": 0.0}


def react(adapter: RecordingAdapter, *messages: dict) -> list[str]:
    reactor = Reactor("redis://127.0.0.1:1/0", "", "ch", adapter, {"guard": GUARD, "watch": WATCH})

    async def main() -> None:
        for m in messages:
            await reactor.handle(m)
        await reactor.redis.aclose()

    asyncio.run(main())
    return [what for what, _ in adapter.calls]


def test_spoof_under_a_hangup_policy_annotates_warns_then_hangs_up():
    a = RecordingAdapter()
    assert react(a, msg("spoof")) == ["annotate", "warn", "hangup"]
    variables = a.calls[0][1]
    assert variables == {"DEEPFAKE_SCORE": "0.5000", "DEEPFAKE_VERDICT": "spoof", "CDR(deepfake_score)": "0.5000"}


def test_suspicious_warns_once_and_never_hangs_up():
    a = RecordingAdapter()
    assert react(a, msg("suspicious", n=1), msg("bonafide", n=2), msg("suspicious", n=3)) == \
        ["annotate", "warn", "annotate", "annotate"]


def test_a_policy_without_hangup_does_not_hang_up_on_spoof():
    assert "hangup" not in react(RecordingAdapter(), msg("spoof", policy="watch"))


def test_failing_annotate_or_warn_is_logged_and_changes_nothing_else():
    assert react(RecordingAdapter(fail={"annotate", "warn"}), msg("suspicious")) == ["annotate", "warn"]
    assert react(RecordingAdapter(fail={"annotate", "warn"}), msg("spoof", n=2))[-1] == "hangup"


def test_unknown_calls_unknown_policies_and_repeated_messages_are_ignored():
    a = RecordingAdapter()
    assert react(a, msg("spoof", call_id="other"), msg("spoof", policy="nope")) == []
    assert react(RecordingAdapter(), msg("spoof"), msg("spoof")).count("hangup") == 1


def test_chunk_messages_only_annotate():
    assert react(RecordingAdapter(), msg("spoof", kind="chunk")) == ["annotate"]


def test_while_redis_is_away_the_local_reactor_still_warns_and_hangs_up_and_ignores_the_later_delivery(tmp_path):
    from plugin.bus import Bus
    from plugin.lab import free_port

    adapter = RecordingAdapter()
    seen_before_redis: list[str] = []

    async def main() -> None:
        url = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens: every publish is spooled
        reactor = Reactor(url, "", "ch", adapter, {"guard": GUARD})
        bus = Bus(url, "", "ch", "log", 100, tmp_path / "spool.jsonl", 1_000_000, retry_s=60)
        bus.on_undelivered = reactor.handle
        m = msg("spoof")
        assert await bus.publish(dict(m)) is False
        for _ in range(100):
            if "hangup" in [w for w, _ in adapter.calls]:
                break
            await asyncio.sleep(0.01)
        seen_before_redis.extend(w for w, _ in adapter.calls)
        await reactor.handle(dict(m))  # the same message arriving later through Redis
        await bus.close()
        await reactor.redis.aclose()

    asyncio.run(main())
    assert seen_before_redis == ["annotate", "warn", "hangup"]
    assert [w for w, _ in adapter.calls] == ["annotate", "warn", "hangup"]  # not twice


def test_the_warning_does_not_wait_for_the_annotation_round_trips():
    class SlowAnnotation(RecordingAdapter):
        async def annotate(self, leg: Leg, variables: dict[str, str]) -> None:
            await asyncio.sleep(0.3)  # a slow ARI: three channel-variable requests
            await super().annotate(leg, variables)

    adapter = SlowAnnotation()
    reactor = Reactor("redis://127.0.0.1:1/0", "", "ch", adapter, {"guard": GUARD, "watch": WATCH})

    async def main() -> None:
        import time

        await reactor.handle({**msg("suspicious"), "ts": time.time()})
        await reactor.redis.aclose()

    asyncio.run(main())
    done = reactor.latencies[-1]
    assert [what for what, _ in adapter.calls] == ["warn", "annotate"]  # both were done
    assert done["warn_started_s"] < done["annotate_s"] and done["annotate_s"] >= 0.3
