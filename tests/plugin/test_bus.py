"""Bus messages match the committed JSON Schema; Redis outages spool to a bounded file, delivered in order."""

from __future__ import annotations

import asyncio
import json

import jsonschema
import pytest

from plugin.bus import SCHEMA_FILE, Bus, Spool, make_message
from plugin.lab import free_port

VALIDATOR = jsonschema.Draft202012Validator(json.loads(SCHEMA_FILE.read_text()))
BASE = dict(call_id="1700000000.1", channel_id="1700000000.1", leg="caller", detector="gbm",
            detector_version="1", policy="default")


def chunk_msg(i: int, score: float | None = 0.3) -> dict:
    return make_message("chunk", chunk_index=i, chunk_start_s=1.0 + 2 * i, score=score, verdict="bonafide",
                        evidence=score, error=None if score is not None else "RuntimeError: x", **BASE)


def verdict_msg() -> dict:
    return make_message("verdict", chunk_index=2, chunk_start_s=5.0, score=0.97, verdict="spoof",
                        previous_verdict="suspicious", actions=["annotate", "hangup"], seq=2, **BASE)


def summary_msg() -> dict:
    summary = {"chunks": 3, "scored": 3, "errors": 0, "shed": 0, "max_score": 0.97, "mean_score": 0.6,
               "final_verdict": "spoof", "verdict_history": [{"chunk_index": 2, "verdict": "spoof", "ts": 1.0}],
               "chunk_timings": [{"chunk_index": 0, "start_s": 1.0, "end_s": 3.0}], "tap_setup_s": 0.2,
               "first_packet_s": 0.22, "rtp": {}, "ended_by": "caller hangup"}
    return make_message("summary", chunk_index=None, chunk_start_s=None, score=0.97, verdict="spoof",
                        summary=summary, seq=0, **BASE)


def test_chunk_verdict_and_summary_messages_match_the_schema():
    for msg in (chunk_msg(0), chunk_msg(1, None), verdict_msg(), summary_msg()):
        VALIDATOR.validate(msg)


@pytest.mark.parametrize("mutate", [
    lambda m: m.pop("call_id"),
    lambda m: m.__setitem__("verdict", "maybe"),
    lambda m: m.__setitem__("score", 1.5),
    lambda m: m.__setitem__("type", "other"),
    lambda m: m.__setitem__("leg", "both"),
])
def test_schema_rejects_broken_messages(mutate):
    msg = chunk_msg(0)
    mutate(msg)
    with pytest.raises(jsonschema.ValidationError):
        VALIDATOR.validate(msg)


def test_a_verdict_without_actions_or_a_summary_without_summary_is_invalid():
    v = verdict_msg()
    v.pop("actions")
    s = summary_msg()
    s.pop("summary")
    for msg in (v, s):
        with pytest.raises(jsonschema.ValidationError):
            VALIDATOR.validate(msg)


def test_message_ids_are_deterministic_and_distinct():
    assert chunk_msg(3)["id"] == chunk_msg(3)["id"]
    ids = {chunk_msg(i)["id"] for i in range(5)} | {verdict_msg()["id"], summary_msg()["id"]}
    assert len(ids) == 7


def test_spool_is_bounded_and_counts_drops(tmp_path):
    spool = Spool(tmp_path / "s.jsonl", max_bytes=2048)
    accepted = sum(spool.append(chunk_msg(i)) for i in range(20))
    assert 0 < accepted < 20 and spool.dropped == 20 - accepted
    assert (tmp_path / "s.jsonl").stat().st_size <= 2048
    assert [m["chunk_index"] for m in spool.read()] == list(range(accepted))


def test_messages_published_while_redis_is_down_arrive_in_order_once_it_is_up(tmp_path, private_redis):
    lab = private_redis
    lab.stop_redis()  # Redis goes away

    async def scenario() -> list[dict]:
        bus = Bus(lab.redis_url, lab.redis_password, "cg:test", "cg:test:log", 1000, tmp_path / "spool.jsonl",
                  1_000_000, tmp_path / "summary.jsonl", retry_s=0.1)
        await bus.start()
        delivered = [await bus.publish(chunk_msg(i)) for i in range(5)]
        assert delivered == [False] * 5 and bus.spool.has_items()
        await asyncio.to_thread(lab.start_redis)  # Redis is back
        for _ in range(100):
            if not bus.spool.has_items():
                break
            await asyncio.sleep(0.05)
        assert await bus.publish(chunk_msg(5)) is True
        entries = await bus.redis.xrange("cg:test:log")
        await bus.close()
        return [json.loads(fields["msg"]) for _, fields in entries]

    got = asyncio.run(scenario())
    assert [m["chunk_index"] for m in got] == [0, 1, 2, 3, 4, 5]
    for m in got:
        VALIDATOR.validate(m)


def test_publish_reaches_subscribers_and_the_capped_stream(tmp_path, private_redis):
    lab = private_redis

    async def scenario() -> tuple[list[dict], int]:
        bus = Bus(lab.redis_url, lab.redis_password, "cg:test", "cg:test:log", 10, tmp_path / "spool.jsonl",
                  1_000_000)
        await bus.start()
        ps = bus.redis.pubsub()
        await ps.subscribe("cg:test")
        await ps.get_message(timeout=1)  # subscribe confirmation
        for i in range(300):
            await bus.publish(chunk_msg(i))
        got = []
        while len(got) < 300:
            m = await ps.get_message(ignore_subscribe_messages=True, timeout=1)
            if m is None:
                break
            got.append(json.loads(m["data"]))
        length = await bus.redis.xlen("cg:test:log")
        await ps.aclose()
        await bus.close()
        return got, length

    got, length = asyncio.run(scenario())
    assert [m["chunk_index"] for m in got] == list(range(300))
    assert length < 300  # MAXLEN ~ trims the stream


def test_unreachable_redis_at_start_does_not_raise(tmp_path):
    async def scenario() -> bool:
        bus = Bus(f"redis://127.0.0.1:{free_port()}/0", "", "c", "s", 10, tmp_path / "sp.jsonl", 100_000)
        await bus.start()
        ok = await bus.publish(chunk_msg(0))
        await bus.close()
        return ok

    assert asyncio.run(scenario()) is False
    assert (tmp_path / "sp.jsonl").exists()
