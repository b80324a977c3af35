"""The media endpoint reads its socket in bounded batches: bursts are drained in order without starving the
event loop, one failing handler does not stop the endpoint, nothing is truncated, and the public surface
(start/close/add_tap/remove_tap/taps/transport) behaves as before."""

from __future__ import annotations

import asyncio
import socket
import struct

import pytest

from plugin import metrics
from plugin.media import READ_BATCH, LegTap, MediaEndpoint


class Recorder:
    """Stands in for a LegTap: keeps what it is fed."""

    def __init__(self) -> None:
        self.got: list[bytes] = []

    def feed(self, data: bytes) -> None:
        self.got.append(data)

    def flush(self) -> None: ...


def udp(family: int = socket.AF_INET, host: str = "127.0.0.1") -> socket.socket:
    s = socket.socket(family, socket.SOCK_DGRAM)
    s.bind((host, 0))
    return s


async def wait_for(cond, timeout: float = 3.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond() and loop.time() < deadline:
        await asyncio.sleep(0.005)


def test_a_burst_larger_than_one_batch_arrives_complete_in_order_and_other_callbacks_run_between_batches():
    n, batch = 160, 16  # 160 small datagrams fit any default socket buffer (~210 KB)

    async def main() -> tuple[list[bytes], int, int, list[int]]:
        loop = asyncio.get_running_loop()
        ep = MediaEndpoint(read_batch=batch)
        host, port = await ep.start("127.0.0.1", 0)
        rec = Recorder()
        seen_by_ticker: list[int] = []
        with udp() as s:
            ep.add_tap(s.getsockname(), rec)  # type: ignore[arg-type]
            for i in range(n):  # the whole burst is queued before the loop gets to read any of it
                s.sendto(struct.pack("!I", i), (host, port))

            def tick() -> None:  # a plain callback: runs once per loop pass, as other work does
                seen_by_ticker.append(len(rec.got))
                if len(rec.got) < n and len(seen_by_ticker) < 1000:
                    loop.call_soon(tick)

            loop.call_soon(tick)
            await wait_for(lambda: len(rec.got) >= n)
        ep.close()
        return rec.got, ep.read_passes, ep.full_batches, seen_by_ticker

    got, passes, full, ticks = asyncio.run(main())
    assert [struct.unpack("!I", d)[0] for d in got] == list(range(n))
    assert passes >= n // batch and full >= n // batch - 1  # drained 16 at a time, not one per pass
    # the loop ran the ticker while the burst was only partly read: the endpoint yields between batches
    assert any(0 < k < n for k in ticks)
    assert all(k % batch == 0 for k in ticks if k < n)  # and it read whole batches when it had them


def test_batches_are_bounded_by_default_and_one_pass_reads_many_datagrams():
    assert READ_BATCH >= 32  # a burst of dozens of legs per 5 ms takes one pass, not dozens

    async def main() -> tuple[int, int]:
        ep = MediaEndpoint()
        host, port = await ep.start("127.0.0.1", 0)
        rec = Recorder()
        with udp() as s:
            ep.add_tap(s.getsockname(), rec)  # type: ignore[arg-type]
            for i in range(100):
                s.sendto(bytes([i]) * 172, (host, port))
            await wait_for(lambda: len(rec.got) >= 100)
        ep.close()
        return len(rec.got), ep.read_passes

    before = (metrics.get("media_datagrams"), metrics.get("media_read_passes"))
    got, passes = asyncio.run(main())
    assert got == 100 and passes < 50
    # exported for /metrics: datagrams / read passes is the mean batch
    assert metrics.get("media_datagrams") - before[0] == 100
    assert metrics.get("media_read_passes") - before[1] == passes


def test_a_failing_handler_is_counted_and_the_endpoint_keeps_reading():
    async def main() -> tuple[list[bytes], int]:
        ep = MediaEndpoint()
        host, port = await ep.start("127.0.0.1", 0)
        tap = LegTap(key="raw", fmt="ulaw", on_chunk=lambda k, c: None)
        got: list[bytes] = []

        def raw_feed(t: LegTap, data: bytes) -> None:
            if data == b"boom":
                raise RuntimeError("a decoding bug")
            got.append(data)

        with udp() as s:
            ep.add_tap(s.getsockname(), tap)
            ep.set_raw_source(s.getsockname(), raw_feed)
            for d in (b"one", b"boom", b"two", b"three"):
                s.sendto(d, (host, port))
            await wait_for(lambda: len(got) >= 3)
            assert ep.remove_tap(s.getsockname()) is tap
            assert not ep.raw_sources
        ep.close()
        return got, ep.read_passes

    before = metrics.get("media_feed_errors")
    got, _ = asyncio.run(main())
    assert got == [b"one", b"two", b"three"]
    assert metrics.get("media_feed_errors") - before == 1


def test_large_datagrams_are_not_truncated():
    """Raw unicast sources reject oversized datagrams themselves: they must see the real length."""

    async def main() -> list[int]:
        ep = MediaEndpoint()
        host, port = await ep.start("127.0.0.1", 0)
        rec = Recorder()
        with udp() as s:
            ep.add_tap(s.getsockname(), rec)  # type: ignore[arg-type]
            for size in (12, 9000, 60000):
                s.sendto(b"\x80" * size, (host, port))
            await wait_for(lambda: len(rec.got) >= 3)
        ep.close()
        return [len(d) for d in rec.got]

    assert asyncio.run(main()) == [12, 9000, 60000]


def test_unknown_sources_and_wildcard_announcements_still_demultiplex():
    async def main() -> tuple[int, int, int]:
        ep = MediaEndpoint()
        host, port = await ep.start("127.0.0.1", 0)
        known, wildcard = Recorder(), Recorder()
        with udp() as a, udp() as b, udp() as stranger:
            ep.add_tap(a.getsockname(), known)  # type: ignore[arg-type]
            ep.add_tap(("0.0.0.0", b.getsockname()[1]), wildcard)  # type: ignore[arg-type]
            for s in (a, b, stranger, a):
                s.sendto(b"x" * 20, (host, port))
            await wait_for(lambda: len(known.got) + len(wildcard.got) + ep.unknown_packets >= 4)
        ep.close()
        return len(known.got), len(wildcard.got), ep.unknown_packets

    assert asyncio.run(main()) == (2, 1, 1)


def test_ipv6_endpoint_normalises_four_tuple_source_addresses():
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        probe = udp(socket.AF_INET6, "::1")
    except OSError:
        pytest.skip("no IPv6 loopback")

    async def main() -> tuple[int, int]:
        ep = MediaEndpoint()
        host, port = await ep.start("::1", 0)
        rec = Recorder()
        with probe as s:
            ep.add_tap(s.getsockname()[:2], rec)  # type: ignore[arg-type]
            s.sendto(b"y" * 30, (host, port))
            await wait_for(lambda: len(rec.got) >= 1)
        ep.close()
        return len(rec.got), ep.unknown_packets

    assert asyncio.run(main()) == (1, 0)


def test_start_reports_the_bound_address_a_taken_port_raises_and_close_is_idempotent():
    async def main() -> None:
        ep = MediaEndpoint()
        host, port = await ep.start("127.0.0.1", 0)
        assert host == "127.0.0.1" and port > 0
        assert ep.transport is not None and ep.transport.get_extra_info("sockname") == (host, port)
        sock = ep.transport.get_extra_info("socket")
        assert isinstance(sock, socket.socket) and not sock.getblocking()
        other = MediaEndpoint()
        with pytest.raises(OSError):
            await other.start("127.0.0.1", port)
        ep.close()
        ep.close()
        assert ep.transport.is_closing() and sock.fileno() == -1
        again = MediaEndpoint()  # the port is free again once closed
        assert (await again.start("127.0.0.1", port))[1] == port
        again.close()

    asyncio.run(main())


def test_ulaw_frames_take_the_int16_fast_path_with_the_same_frames_as_the_float_path():
    """A 160-byte u-law packet with nothing pending goes to the chunker as the table's int16 values; odd
    packet sizes (pending samples) take the float path; the frames are the same either way."""
    import numpy as np

    from detector.audio import ULAW_TO_PCM

    rng = np.random.default_rng(3)
    sizes = [160] * 20 + [240, 80] + [160] * 5 + [100, 220] + [160] * 3  # 30 ms, 10 ms, ... keeps whole frames
    payloads = [rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in sizes]
    dgrams = [struct.pack("!BBHII", 0x80, 0, i, sum(sizes[:i]), 5) + p for i, p in enumerate(payloads)]

    fast = LegTap(key="f", fmt="ulaw", on_chunk=lambda k, c: None, reorder_window=0)
    frames: list = []
    push = fast.chunker.push
    fast.chunker.push = lambda fr: (frames.append(fr.copy()), push(fr))[1]  # type: ignore[method-assign]
    for d in dgrams:
        fast.feed(d, now=0.0)
    ref = np.concatenate([ULAW_TO_PCM[np.frombuffer(p, np.uint8)] for p in payloads])
    assert fast.stats.frames == len(frames) == len(ref) // 160
    got = np.concatenate(frames)
    assert got.dtype == np.int16 and np.array_equal(got, ref[: len(got)])
