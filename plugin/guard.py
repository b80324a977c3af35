"""The live path, wired: call events -> taps -> media chunks -> scoring -> policy -> bus messages.

Reactions are not done here: they are driven by the bus messages (``plugin.reactions``), so any other
process can react the same way. Every failure on this path fails open: the call goes on untapped or
unscored, never hung up.
"""

from __future__ import annotations

import asyncio
import logging
import statistics
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from detector.chunking import SpeechChunk
from plugin import metrics
from plugin.bus import Bus, make_message
from plugin.config import Config, Policy
from plugin.logs import call_context
from plugin.media import LegTap, MediaEndpoint
from plugin.policy import LegEvidence
from plugin.review import Capture
from plugin.scoring import ChunkJob, DetectorInfo, ScoreResult, ScoringService
from plugin.telephony import Addr, Call, Leg, TelephonyAdapter

log = logging.getLogger(__name__)


CHUNK_TIMINGS_KEPT = 600  # 20 minutes of speech per leg

def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 6)


@dataclass
class LegState:
    leg: Leg
    policy: Policy
    evidence: LegEvidence
    tap: LegTap
    addr: Addr | None = None
    tap_setup_s: float | None = None
    tapped_at: float | None = None
    # the latest CHUNK_TIMINGS_KEPT chunks' timings (about 0.4 KB each): a long call's summary stays small
    chunk_timings: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=CHUNK_TIMINGS_KEPT))
    timings_seen: int = 0
    verdict_history: list[dict[str, Any]] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    shed_before: int = 0
    first_verdict_at: float | None = None
    caller: dict[str, str] = field(default_factory=dict)
    retaps: int = 0  # times the tap was set up again while the call was up


class Guard:
    def __init__(self, config: Config, adapter: TelephonyAdapter, media: MediaEndpoint,
                 scoring: ScoringService, bus: Bus) -> None:
        self.config, self.adapter, self.media, self.scoring, self.bus = config, adapter, media, scoring, bus
        self.legs: dict[str, LegState] = {}
        scoring.on_result = self._on_result
        scoring.on_reload = self.detector_reloaded  # hot reload (issue #9): live legs take the new thresholds
        self.capture = Capture.from_config(config)  # review store (issue #9); off unless [capture] enabled

    @property
    def detector(self) -> DetectorInfo:
        assert self.scoring.info is not None, "scoring not started"
        return self.scoring.info

    def detector_reloaded(self, old: DetectorInfo, new: DetectorInfo) -> None:
        """Another detector took over (``ScoringService.reload``): every live leg judges its next chunks with
        the new warn/hangup thresholds; the evidence it collected and its verdict so far stay. Legs tapped
        from now on start with them anyway (``self.detector`` is the new info)."""
        refreshed = 0
        for state in list(self.legs.values()):
            try:
                state.evidence.set_thresholds(new.warn, new.hangup, state.policy.hangup_window or new.hangup_window)
                refreshed += 1
            except ValueError as exc:  # checked by the reload already; keep the leg's old thresholds
                log.error("%s leg of %s keeps its thresholds: %s", state.leg.leg, state.leg.call_id, exc)
        log.info("detector reloaded: %s %s -> %s %s, warn %.3f -> %.3f, hangup %.3f -> %.3f; %d live leg(s) "
                 "refreshed", old.name, old.version, new.name, new.version, old.warn, new.warn, old.hangup,
                 new.hangup, refreshed)

    # ------------------------------------------------------------------ CallEvents
    async def call_started(self, call: Call) -> None:
        policy = self.config.policy_for(call.info.context, call.info.endpoint, call.info.caller_id,
                                        call.info.exten)
        call.policy = policy.name
        legs = self.adapter.legs_of(call, policy.legs)
        log.info("call %s (%s, endpoint %s, exten %s): policy %s guards %s", call.call_id, call.mode,
                 call.info.endpoint, call.info.exten, policy.name, ", ".join(lg.leg for lg in legs) or "nothing",
                 extra=call_context(call.call_id))
        await asyncio.gather(*(self._tap_leg(call, leg, policy) for leg in legs))

    async def party_joined(self, call: Call) -> None:
        """A party joined a call guarded already (an answered call bridged to its callee): tap the legs its
        policy guards that are not tapped yet."""
        if call.ended:
            return
        policy = self.config.policy_for(call.info.context, call.info.endpoint, call.info.caller_id,
                                        call.info.exten)
        new = [lg for lg in self.adapter.legs_of(call, policy.legs) if lg.leg not in call.legs]
        if new:
            log.info("call %s: %s joined; policy %s guards it too", call.call_id,
                     ", ".join(lg.leg for lg in new), policy.name, extra=call_context(call.call_id))
        await asyncio.gather(*(self._tap_leg(call, leg, policy) for leg in new))

    async def _tap_leg(self, call: Call, leg: Leg, policy: Policy) -> None:
        det = self.detector
        state = LegState(
            leg=leg, policy=policy,
            evidence=LegEvidence(window=policy.window, min_chunks=policy.min_chunks, warn=det.warn,
                                 hangup=det.hangup, hangup_window=policy.hangup_window or det.hangup_window),
            tap=LegTap(key=leg.key, fmt=self.config.media.format, on_chunk=self._on_chunk,
                       reorder_window=self.config.media.reorder_window),
            shed_before=self.scoring.shed,
            caller={"caller_name": call.info.caller_name, "caller_number": call.info.caller_id})
        self.legs[leg.key] = state
        call.legs[leg.leg] = leg

        def register(addr: Addr) -> None:
            state.addr = addr
            self.media.add_tap(addr, state.tap)

        try:
            state.tap_setup_s = await self.adapter.tap(leg, register)
            state.tapped_at = time.time()
            log.info("tap on %s leg of %s ready in %.0f ms (media from %s:%s)", leg.leg, call.call_id,
                     state.tap_setup_s * 1000, *(state.addr or ("?", 0)),
                     extra=call_context(call.call_id, leg.leg, leg.channel_id))
        except Exception as exc:  # fail open: the call goes on untapped
            log.warning("could not tap %s leg of %s: %s", leg.leg, call.call_id, exc,
                        extra=call_context(call.call_id, leg.leg, leg.channel_id))
            self.legs.pop(leg.key, None)
            call.legs.pop(leg.leg, None)
            self._unregister(state)
            return
        if call.ended:  # the call ended while the tap was being set up: undo it all
            self.legs.pop(leg.key, None)
            self._unregister(state)
            await self.adapter.stop_tap(leg)

    def _unregister(self, state: LegState) -> None:
        """Remove this leg's tap from the media endpoint, and only it: after a PBX restart a new tap may
        have been given the same source address as a dead one."""
        for addr, tap in list(self.media.taps.items()):
            if tap is state.tap:
                self.media.remove_tap(addr)
        state.addr = None

    async def tap_lost(self, call: Call, leg: Leg) -> None:
        """The adapter found this leg's tap gone while the call is still up (e.g. after the PBX connection
        was lost): forget the dead tap and tap the leg again. Its evidence and chunk numbering go on (the new
        media stream has a new SSRC, which the reorder buffer treats as a restart)."""
        state = self.legs.get(leg.key)
        if state is None or call.ended:
            return
        self._unregister(state)
        try:
            await self.adapter.stop_tap(leg)
        except Exception as exc:
            log.warning("removing the dead tap of %s/%s failed: %s", call.call_id, leg.leg, exc)

        def register(addr: Addr) -> None:
            state.addr = addr
            self.media.add_tap(addr, state.tap)

        try:
            setup = await self.adapter.tap(leg, register)
        except Exception as exc:  # fail open
            log.warning("could not tap %s leg of %s again: %s", leg.leg, call.call_id, exc)
            self._unregister(state)
            return
        state.retaps += 1
        log.info("tap on %s leg of %s restored in %.0f ms (media from %s:%s)", leg.leg, call.call_id,
                 setup * 1000, *(state.addr or ("?", 0)))
        if call.ended or self.legs.get(leg.key) is not state:
            self._unregister(state)
            await self.adapter.stop_tap(leg)

    async def call_ended(self, call: Call, reason: str) -> None:
        for name, leg in list(call.legs.items()):
            state = self.legs.pop(leg.key, None)
            if state:
                self._unregister(state)
            self.scoring.drop_leg(leg.key)
            try:
                await self.adapter.stop_tap(leg)
            except Exception as exc:
                log.warning("stop_tap %s/%s failed: %s", call.call_id, name, exc)
            if state is not None:
                await self._publish_summary(state, reason)

    # ------------------------------------------------------------------ media -> scoring -> policy -> bus
    def _on_chunk(self, key: str, chunk: SpeechChunk) -> None:
        if key in self.legs:
            self.scoring.submit(ChunkJob(leg=key, chunk=chunk, meta=time.time()))

    def _base(self, state: LegState, detector: DetectorInfo | None = None) -> dict[str, Any]:
        """Fields common to a leg's messages; ``detector``: the one that scored the chunk (default: current)."""
        det = detector or self.detector
        return {"call_id": state.leg.call_id, "channel_id": state.leg.channel_id, "leg": state.leg.leg,
                "detector": det.name, "detector_version": det.version,
                "policy": state.policy.name, **state.caller}

    async def _on_result(self, result: ScoreResult) -> None:
        state = self.legs.get(result.job.leg)
        if state is None:
            return  # the leg ended while its chunk was being scored
        chunk = result.job.chunk
        now = time.time()
        previous = state.evidence.verdict
        changed = state.evidence.add(chunk.index, result.score)
        if result.score is not None:
            state.scores.append(result.score)
        verdict = state.evidence.verdict or "bonafide"
        timings = {"queued_s": round(result.queued_s, 4), "scoring_s": round(result.scoring_s, 4),
                   "chunk_end_to_score_s": round(now - float(result.job.meta or now), 4)}
        state.timings_seen += 1
        state.chunk_timings.append({"chunk_index": chunk.index, "start_s": chunk.start_s, "end_s": chunk.end_s,
                                    "score": result.score, **timings})
        evidence = state.evidence.evidence
        det = result.detector or self.detector  # the version that scored this chunk (a reload may be under way)
        self.capture.offer(self._base(state, det), chunk, result.score, verdict, evidence, det)  # never raises
        await self.bus.publish(make_message(
            "chunk", chunk_index=chunk.index, chunk_start_s=chunk.start_s, score=result.score,
            verdict=verdict, evidence=None if evidence is None else round(evidence, 6),
            hangup_evidence=_round(state.evidence.hangup_evidence), error=result.error,
            timings=timings, **self._base(state, det)))
        if result.job.meta:  # chunk end -> published, for the /metrics histogram
            metrics.observe_verdict_latency(time.time() - float(result.job.meta))
        if not changed:
            return
        onset = state.tap.stats.speech_onset_at
        if onset is not None:
            timings["speech_onset_to_verdict_s"] = round(now - onset, 4)
        if state.first_verdict_at is None:
            state.first_verdict_at = now
        state.verdict_history.append({"chunk_index": chunk.index, "verdict": verdict, "ts": round(now, 6)})
        log.info("%s leg of %s: %s -> %s (evidence %.3f after %d chunk(s))", state.leg.leg, state.leg.call_id,
                 previous, verdict, evidence or 0.0, state.evidence.n_scored,
                 extra=call_context(state.leg.call_id, state.leg.leg, state.leg.channel_id))
        # a spoof verdict rests on the hang-up window's mean, the others on the warn window's
        decisive = state.evidence.hangup_evidence if verdict == "spoof" else evidence
        await self.bus.publish(make_message(
            "verdict", chunk_index=chunk.index, chunk_start_s=chunk.start_s, score=decisive, verdict=verdict,
            previous_verdict=previous, evidence=None if evidence is None else round(evidence, 6),
            hangup_evidence=_round(state.evidence.hangup_evidence),
            actions=list(state.policy.actions.get(verdict, ())), warn_media=state.policy.warn_media,
            timings=timings, seq=len(state.verdict_history), **self._base(state, det)))
        metrics.inc(metrics.VERDICT_PREFIX + verdict)

    async def _publish_summary(self, state: LegState, reason: str) -> None:
        st = state.tap.stats
        rtp = state.tap.rtp_stats
        first_packet = (st.first_packet_at - state.tapped_at + (state.tap_setup_s or 0.0)
                        if st.first_packet_at and state.tapped_at else None)
        summary = {
            "chunks": st.chunks, "scored": state.evidence.n_scored, "errors": state.evidence.n_errors,
            "shed": self.scoring.shed - state.shed_before,
            "max_score": max(state.scores) if state.scores else None,
            "mean_score": round(statistics.fmean(state.scores), 6) if state.scores else None,
            "final_verdict": state.evidence.verdict or "bonafide",
            "verdict_history": state.verdict_history, "chunk_timings": list(state.chunk_timings),
            "chunk_timings_omitted": state.timings_seen - len(state.chunk_timings),
            "tap_setup_s": None if state.tap_setup_s is None else round(state.tap_setup_s, 4),
            "first_packet_s": None if first_packet is None else round(first_packet, 4),
            "speech_onset_to_first_verdict_s": (round(state.first_verdict_at - st.speech_onset_at, 4)
                                                if state.first_verdict_at and st.speech_onset_at else None),
            "rtp": {"packets": st.packets, "malformed": st.malformed, "frames": st.frames,
                    "concealed": st.concealed, "lost": rtp.lost, "late": rtp.late,
                    "duplicates": rtp.duplicates, "reordered": rtp.reordered},
            "ended_by": reason,
            "retaps": state.retaps,
        }
        msg = make_message("summary", chunk_index=None, chunk_start_s=None,
                           score=summary["max_score"], verdict=summary["final_verdict"], summary=summary,
                           seq=0, **self._base(state))
        self.bus.write_summary_line(msg)
        await self.bus.publish(msg)
