"""Ending a call on the Asterisk adapter when ARI goes away in the middle of the clean-up requests."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import aiohttp
import pytest

from plugin.asterisk import AsteriskAdapter, TapResources
from plugin.telephony import Call, CallInfo


class DroppedAri:
    """Every REST request fails the way aiohttp does when Asterisk closes the connection."""

    app = "callguard"
    base = "http://127.0.0.1:1/ari"

    def __init__(self) -> None:
        self.attempts: list[str] = []

    async def _fail(self, path: str) -> Any:
        self.attempts.append(path)
        raise aiohttp.ServerDisconnectedError()

    async def delete(self, path: str, **params: Any) -> Any:
        return await self._fail(path)

    async def post(self, path: str, **params: Any) -> Any:
        return await self._fail(path)

    async def unsubscribe(self, *sources: str) -> None:
        await self._fail("/applications/callguard/subscription")


@pytest.mark.parametrize("mode", ["bridge", "dial"])
def test_a_call_ended_while_ari_drops_mid_clean_up_leaves_no_call_tap_or_channel_in_the_books(mode):
    async def main() -> tuple[AsteriskAdapter, DroppedAri]:
        ari = DroppedAri()
        adapter = AsteriskAdapter(ari, ("127.0.0.1", 40000))  # type: ignore[arg-type]
        call = Call(call_id="A", mode=mode, caller_channel="A", callee_channel="A-b",
                    info=CallInfo(endpoint="sipp"), started_at=time.time())
        call.globals_set = mode == "dial"
        adapter.calls["A"] = call
        adapter.by_channel["A"] = adapter.by_channel["A-b"] = call
        adapter.taps["A:caller"] = TapResources(snoop="cgtap-s-A-caller", media="cgtap-m-A-caller",
                                                bridge="cgtap-b-A-caller")
        await adapter._end_call(call, "caller hung up")
        await asyncio.sleep(0)
        return adapter, ari

    adapter, ari = asyncio.run(main())
    assert adapter.calls == {} and adapter.by_channel == {} and adapter.taps == {}
    # it did try to delete the tap's channels and bridge (and the call's, for bridge calls) in Asterisk
    assert {"/channels/cgtap-s-A-caller", "/channels/cgtap-m-A-caller", "/bridges/cgtap-b-A-caller"} <= \
        set(ari.attempts)
    if mode == "bridge":
        assert "/bridges/cgcall-A" in ari.attempts
