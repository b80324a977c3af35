"""Exactly-once delivery into the stream (against a private redis-server): a retry of a message Redis had
already taken is not appended again, also when the retry comes from the spool of a restarted plugin."""

from __future__ import annotations

import asyncio
import json

from plugin.bus import Bus, make_message


def chunk_msg(i: int) -> dict:
    return make_message("chunk", call_id="c1", channel_id="ch1", leg="caller", chunk_index=i, chunk_start_s=2.0 * i,
                        score=0.3, detector="gbm", detector_version="t", verdict="bonafide", policy="default")


def _bus(lab, spool, retry_s: float = 0.05) -> Bus:
    return Bus(lab.redis_url, lab.redis_password, "cg:t", "cg:t:log", 1000, spool, 1_000_000, retry_s=retry_s)


async def _stream(bus: Bus) -> list[dict]:
    return [json.loads(f["msg"]) for _, f in await bus.redis.xrange("cg:t:log")]


def test_a_retry_of_a_message_redis_already_took_is_not_appended_twice(tmp_path, private_redis):
    async def scenario():
        bus = _bus(private_redis, tmp_path / "spool.jsonl")
        await bus.start()
        stamped = bus._stamp(chunk_msg(0))
        await bus._send(stamped)  # reached Redis...
        await bus._send(stamped)  # ...but the reply was lost, so it is sent again
        await bus.publish(chunk_msg(1))
        got = await _stream(bus)
        skipped = bus.duplicates_skipped
        await bus.close()
        return got, skipped

    got, skipped = asyncio.run(scenario())
    assert [m["chunk_index"] for m in got] == [0, 1] and skipped == 1
    assert all("_bus" not in m for m in got)


def test_a_spool_left_by_a_crashed_plugin_is_delivered_once_in_order_by_the_next_one(tmp_path, private_redis):
    lab = private_redis
    spool = tmp_path / "spool.jsonl"

    async def first_run():
        lab.stop_redis()
        bus = _bus(lab, spool, retry_s=3600)  # its drain loop must not deliver the spool before the "crash"
        await bus.start()
        for i in range(6):
            assert await bus.publish(chunk_msg(i)) is False
        await asyncio.to_thread(lab.start_redis)
        # the crash: the first two spooled messages reached Redis, the spool was never trimmed
        for msg in bus.spool.read()[:2]:
            await bus._send(msg)
        bus._drain_task.cancel()
        await bus.redis.aclose()

    async def second_run():
        bus = _bus(lab, spool)
        await bus.start()
        for _ in range(200):
            if not bus.spool.has_items():
                break
            await asyncio.sleep(0.05)
        await bus.publish(chunk_msg(6))
        got = await _stream(bus)
        skipped = bus.duplicates_skipped
        await bus.close()
        return got, skipped

    asyncio.run(first_run())
    got, skipped = asyncio.run(second_run())
    assert [m["chunk_index"] for m in got] == list(range(7))
    assert len({m["id"] for m in got}) == 7 and skipped == 2
    assert not spool.exists()


def test_a_redis_user_not_allowed_to_run_scripts_still_gets_every_message(tmp_path, private_redis):
    import redis as sync_redis

    lab = private_redis
    admin = sync_redis.Redis(port=lab.ports.redis, password=lab.redis_password)
    admin.execute_command("ACL", "SETUSER", "noscripts", "on", ">pw2", "~*", "&*", "+@all", "-@scripting")
    admin.close()

    async def scenario():
        bus = Bus(f"redis://noscripts@127.0.0.1:{lab.ports.redis}/0", "pw2", "cg:t", "cg:t:log", 1000,
                  tmp_path / "spool.jsonl", 1_000_000)
        await bus.start()
        delivered = [await bus.publish(chunk_msg(i)) for i in range(3)]
        got = await _stream(bus)
        scripts = bus._scripts
        await bus.close()
        return delivered, got, scripts

    delivered, got, scripts = asyncio.run(scenario())
    assert delivered == [True] * 3 and not scripts
    assert [m["chunk_index"] for m in got] == [0, 1, 2]
