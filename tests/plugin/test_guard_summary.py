"""A long call's summary keeps only the latest chunks' timings and says how many it left out."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np

from detector.chunking import SpeechChunk
from plugin.config import Policy, parse_config
from plugin.guard import CHUNK_TIMINGS_KEPT, Guard, LegState
from plugin.media import LegTap, MediaEndpoint
from plugin.policy import LegEvidence
from plugin.scoring import ChunkJob, DetectorInfo, ScoreResult
from plugin.telephony import Leg


class FakeScoring:
    info = DetectorInfo(name="fake", version="test", warn=0.6, hangup=0.9, eer=0.5)
    shed = 0
    on_result = on_reload = None


class FakeBus:
    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []

    async def publish(self, msg: dict[str, Any]) -> bool:
        self.messages.append(msg)
        return True

    def write_summary_line(self, msg: dict[str, Any]) -> None:
        pass


def test_a_long_calls_summary_keeps_the_latest_chunk_timings_and_counts_the_rest():
    n = CHUNK_TIMINGS_KEPT + 150

    async def main() -> dict[str, Any]:
        config = parse_config({"ari": {"password": "pw"}}, env={}, check_port=False)
        bus = FakeBus()
        guard = Guard(config, None, MediaEndpoint(), FakeScoring(), bus)  # type: ignore[arg-type]
        leg = Leg(call_id="A", leg="caller", channel_id="A", tap_channel_id="snoop-A", spy="in")
        state = LegState(leg=leg, policy=Policy(name="default", window=3),
                         evidence=LegEvidence(window=3, min_chunks=2, warn=0.6, hangup=0.9),
                         tap=LegTap(key=leg.key, fmt="ulaw", on_chunk=lambda key, chunk: None),
                         tapped_at=time.time())
        guard.legs[leg.key] = state
        audio = np.zeros(16000, np.float32)
        for i in range(n):
            chunk = SpeechChunk(index=i, start_s=2.0 * i, end_s=2.0 * i + 2, audio=audio)
            await guard._on_result(ScoreResult(job=ChunkJob(leg=leg.key, chunk=chunk), score=0.1, error=None,
                                               queued_s=0.0, scoring_s=0.01))
        await guard._publish_summary(state, "caller hung up")
        return next(m for m in bus.messages if m["type"] == "summary")["summary"]

    summary = asyncio.run(main())
    assert summary["scored"] == n
    assert [t["chunk_index"] for t in summary["chunk_timings"]] == list(range(n - CHUNK_TIMINGS_KEPT, n))
    assert summary["chunk_timings_omitted"] == 150
