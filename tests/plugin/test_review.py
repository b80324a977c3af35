"""The review store (capture of live chunks, labels with history, retention, export) and ``Capture``."""

from __future__ import annotations

import csv
import logging
import time
from types import SimpleNamespace

import numpy as np
import pytest
import soundfile as sf

from detector.chunking import SpeechChunk
from detector.corpus.manifest import COLUMNS, load_chunks, load_manifest
from plugin import metrics
from plugin.config import ConfigError
from plugin.review import Capture, CaptureConfig, ReviewError, ReviewStore, parse_capture

DET = SimpleNamespace(warn=0.6, hangup=0.9)


def _tone(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(16000) / 8000
    return (0.3 * np.sin(2 * np.pi * (150 + seed) * t) + 0.01 * rng.normal(size=16000)).astype(np.float32)


def _base(call_id: str = "c1", policy: str = "default") -> dict:
    return {"call_id": call_id, "channel_id": f"ch-{call_id}", "leg": "caller", "policy": policy,
            "detector": "gbm", "detector_version": "gbm-test", "caller_number": "+4930123", "caller_name": "Eve"}


def _add(store: ReviewStore, call_id: str = "c1", score: float = 0.95, verdict: str = "spoof", seed: int = 0,
         created_at: float | None = None) -> int:
    return store.add(_tone(seed), call_id=call_id, score=score, verdict=verdict, leg="caller", channel_id="ch",
                     caller_number="+4930123", policy="default", detector="gbm", detector_version="gbm-test",
                     chunk_index=seed, chunk_start_s=2.0 * seed, created_at=created_at)


def test_added_item_keeps_its_audio_and_metadata(tmp_path):
    with ReviewStore(tmp_path / "rv") as store:
        item_id = _add(store, score=0.93, verdict="spoof")
        item = store.get(item_id)
        assert item["call_id"] == "c1" and item["verdict"] == "spoof" and item["score"] == pytest.approx(0.93)
        assert item["detector_version"] == "gbm-test" and item["label"] is None and item["history"] == []
        x, sr = sf.read(item["audio_path"], dtype="int16")
        assert sr == 8000 and x.shape == (16000,)
        assert np.abs(x.astype(np.float32) / 32767 - _tone()).max() < 1e-3


def test_wideband_or_short_audio_is_stored_as_two_seconds_at_8khz(tmp_path):
    with ReviewStore(tmp_path) as store:
        item_id = store.add(np.zeros(24000, np.float32), rate=16000, call_id="c", score=0.5, verdict="bonafide")
        assert store.audio(item_id).shape == (16000,)


def test_labels_keep_who_when_and_the_history_of_relabels(tmp_path):
    with ReviewStore(tmp_path) as store:
        item_id = _add(store)
        store.label(item_id, "bona fide", "alice", at=100.0)
        item = store.label(item_id, "replay", "bob", note="hear the room", at=200.0)
        assert (item["label"], item["labelled_by"], item["labelled_at"]) == ("replay", "bob", 200.0)
        assert [(h["label"], h["reviewer"], h["at"]) for h in item["history"]] == [
            ("bonafide", "alice", 100.0), ("replay", "bob", 200.0)]
        with pytest.raises(ReviewError):
            store.label(item_id, "maybe", "bob")
        with pytest.raises(ReviewError):
            store.label(item_id, "synthetic", " ")
        with pytest.raises(ReviewError):
            store.label(9999, "synthetic", "bob")


def test_listing_puts_unlabelled_first_and_filters(tmp_path):
    with ReviewStore(tmp_path) as store:
        a = _add(store, "c1", created_at=1000.0)
        b = _add(store, "c2", verdict="suspicious", score=0.7, created_at=1001.0)
        c = _add(store, "c3", created_at=1002.0)
        store.label(c, "synthetic", "alice")
        assert [i["id"] for i in store.items()] == [b, a, c]
        assert [i["id"] for i in store.items(labelled=False)] == [b, a]
        assert [i["id"] for i in store.items(label="synthetic")] == [c]
        assert [i["id"] for i in store.items(verdict="suspicious")] == [b]
        assert [i["id"] for i in store.items(call_id="c1")] == [a]
        assert store.counts() == {"unlabelled": 2, "synthetic": 1, "total": 3}


def test_retention_purges_old_and_excess_items_with_their_audio(tmp_path):
    now = [1_000_000.0]
    with ReviewStore(tmp_path, max_items=3, max_age_days=1, clock=lambda: now[0]) as store:
        old = _add(store, "old", created_at=now[0] - 2 * 86400)
        old_path = store.get(old)["audio_path"] if store.get(old) else None
        assert old_path is None  # purged right away: older than a day
        ids = [_add(store, f"c{i}", seed=i, created_at=now[0] + i) for i in range(5)]
        kept = [i["id"] for i in store.items(limit=None)]
        assert sorted(kept) == ids[2:]
        assert len(list((tmp_path / "audio").rglob("*.wav"))) == 3
        store.label(ids[2], "synthetic", "alice")
        now[0] += 3 * 86400  # everything ages out, labelled or not
        assert store.purge() == 3
        assert store.counts()["total"] == 0 and not list((tmp_path / "audio").rglob("*.wav"))
        assert store.db.execute("SELECT COUNT(*) FROM labels").fetchone()[0] == 0


def test_export_writes_a_loadable_corpus_like_manifest(tmp_path):
    with ReviewStore(tmp_path / "rv") as store:
        a, b, c, d = (_add(store, f"c{i}", seed=i) for i in range(4))
        store.label(a, "bona fide", "alice")
        store.label(b, "synthetic", "alice")
        store.label(c, "replay", "bob")
        store.label(d, "unsure", "bob")
        _add(store, "c9")  # unlabelled: not exported
        manifest, n = store.export(tmp_path / "export")
    assert n == 3
    with manifest.open() as f:
        header = next(csv.reader(f))
    assert header[:len(COLUMNS)] == COLUMNS
    rows = load_manifest(tmp_path / "export")
    assert [(r["label"], r["review_label"], r["split"]) for r in rows] == [
        ("bonafide", "bonafide", "review"), ("spoof", "synthetic", "review"), ("spoof", "replay", "review")]
    assert rows[2]["attack_type"] == "replay" and rows[0]["speaker"] == "call-c0" and rows[1]["reviewer"] == "alice"
    chunks = load_chunks(tmp_path / "export", rows)
    assert chunks.shape == (3, 16000)


def test_capture_config_is_off_by_default_and_validated(tmp_path):
    assert parse_capture({}, env={}) == CaptureConfig() and not CaptureConfig().enabled
    cfg = parse_capture({"enabled": True, "dir": str(tmp_path / "rv"), "bonafide_sample": 0.1},
                        env={"CALLGUARD_CAPTURE_MAX_ITEMS": "10"})
    assert cfg.enabled and cfg.max_items == 10 and cfg.bonafide_sample == 0.1
    for bad, key in (({"bonafide_sample": 2}, "capture.bonafide_sample"), ({"max_items": 0}, "capture.max_items"),
                     ({"enabled": "maybe"}, "capture.enabled"), ({"colour": 1}, "capture.colour"),
                     ({"max_age_days": "x"}, "capture.max_age_days")):
        with pytest.raises(ConfigError, match=key):
            parse_capture(bad, env={})


def _capture(tmp_path, **kw) -> tuple[Capture, list[ReviewStore]]:
    stores: list[ReviewStore] = []

    def factory() -> ReviewStore:
        stores.append(ReviewStore(tmp_path / "rv", max_items=1000, max_age_days=30))
        return stores[-1]

    cfg = CaptureConfig(enabled=True, dir=str(tmp_path / "rv"), seed=1, **kw)
    return Capture(cfg, {"default": True, "private": False}, store_factory=factory), stores


def _chunk(i: int) -> SpeechChunk:
    return SpeechChunk(index=i, start_s=2.0 * i, end_s=2.0 * i + 2, audio=_tone(i))


def test_capture_keeps_suspicious_chunks_with_their_lead_up_and_samples_bonafide(tmp_path):
    cap, stores = _capture(tmp_path, bonafide_sample=0.0, lookback=2)
    try:
        reasons = [cap.offer(_base(), _chunk(i), 0.1, "bonafide", 0.1, DET) for i in range(4)]
        assert reasons == [None] * 4
        assert cap.offer(_base(), _chunk(4), 0.7, "bonafide", 0.3, DET) == "suspicious"  # chunk over warn
        assert cap.offer(_base(), _chunk(5), 0.95, "spoof", 0.9, DET) == "spoof"
        assert cap.offer(_base(policy="private"), _chunk(6), 0.99, "spoof", 0.9, DET) is None
        assert cap.offer(_base(), _chunk(7), None, "spoof", 0.9, DET) is None  # a detection error
        assert cap.drain()
        items = sorted(stores[0].items(limit=None), key=lambda i: i["chunk_index"])
        assert [(i["chunk_index"], i["reason"]) for i in items] == [
            (2, "lookback"), (3, "lookback"), (4, "suspicious"), (5, "spoof")]
        assert items[3]["caller_number"] == "+4930123" and items[3]["evidence"] == pytest.approx(0.9)
    finally:
        cap.close()

    cap, stores = _capture(tmp_path / "b", bonafide_sample=0.25, lookback=0, queue_size=500)  # no drops
    try:
        got = [cap.offer(_base(f"call{i}"), _chunk(0), 0.1, "bonafide", 0.1, DET) for i in range(400)]
        assert 60 <= got.count("sample") <= 140  # 25 % of 400, seeded
        again, _ = _capture(tmp_path / "c", bonafide_sample=0.25, lookback=0)
        assert [again._rng.random() < 0.25 for _ in range(400)] == [g == "sample" for g in got]
        again.close()
    finally:
        cap.close()


def test_capture_is_bounded_per_call_and_by_its_queue(tmp_path):
    cap, stores = _capture(tmp_path, max_per_call=3)
    try:
        got = [cap.offer(_base(), _chunk(i), 0.95, "spoof", 0.9, DET) for i in range(10)]
        assert got.count("spoof") == 3
    finally:
        cap.close()

    cap, _ = _capture(tmp_path / "q", queue_size=2)
    block = __import__("threading").Event()
    cap._store_factory = lambda: (block.wait(5), ReviewStore(tmp_path / "q" / "rv"))[1]
    before = metrics.get("capture_dropped")
    try:
        t0 = time.monotonic()
        got = [cap.offer(_base(f"c{i}"), _chunk(i), 0.95, "spoof", 0.9, DET) for i in range(10)]
        assert time.monotonic() - t0 < 0.5  # never blocks the caller
        assert got.count(None) >= 7 and metrics.get("capture_dropped") - before == got.count(None)
    finally:
        block.set()
        cap.close()


def test_capture_fails_open_when_the_store_cannot_be_written(tmp_path, caplog):
    def broken() -> ReviewStore:
        raise OSError("disk full")

    cap = Capture(CaptureConfig(enabled=True, seed=1), store_factory=broken)
    before = metrics.get("capture_errors")
    with caplog.at_level(logging.WARNING, logger="plugin.review"):
        for i in range(3):
            assert cap.offer(_base(), _chunk(i), 0.95, "spoof", 0.9, DET) == "spoof"
        assert cap.drain()
    assert cap.errors == 3 and cap.written == 0 and metrics.get("capture_errors") - before == 3
    assert "disk full" in caplog.text
    # a bad chunk object is an error too, not an exception into the call path
    assert cap.offer(_base(), object(), 0.95, "spoof", 0.9, DET) is None and cap.errors == 4
    cap.close()


def test_capture_disabled_does_nothing(tmp_path):
    cap = Capture(CaptureConfig(enabled=False, dir=str(tmp_path / "rv")))
    assert cap.offer(_base(), _chunk(0), 0.99, "spoof", 0.9, DET) is None
    assert cap._thread is None and not (tmp_path / "rv").exists()
    cap.close()


def test_config_capture_section_and_per_policy_flag(tmp_path):
    from plugin.config import parse_config

    raw = {"ari": {"password": "s3cret"}, "media": {"port": 0},
           "capture": {"enabled": True, "dir": str(tmp_path / "rv"), "max_items": 50},
           "policies": {"hr": {"capture": False}, "sales": {}}}
    cfg = parse_config(raw, {})
    assert cfg.capture.enabled and cfg.capture.max_items == 50 and cfg.capture.bonafide_sample == 0.02
    assert not cfg.policies["hr"].capture and cfg.policies["sales"].capture
    assert Capture.from_config(cfg).policy_capture == {"hr": False, "sales": True, "default": True}
    assert not parse_config({"ari": {"password": "s3cret"}, "media": {"port": 0}}, {}).capture.enabled
    with pytest.raises(ConfigError, match="policies.hr.capture"):
        parse_config({**raw, "policies": {"hr": {"capture": "sometimes"}}}, {})
    with pytest.raises(ConfigError, match="capture.max_items"):
        parse_config({**raw, "capture": {"max_items": -1}}, {})


def test_the_guard_hands_scored_chunks_with_call_metadata_to_capture(tmp_path):
    import asyncio

    from plugin.config import parse_config
    from plugin.guard import Guard, LegState
    from plugin.media import LegTap
    from plugin.policy import LegEvidence
    from plugin.scoring import ChunkJob, DetectorInfo, ScoreResult
    from plugin.telephony import Leg

    class Scoring:
        info = DetectorInfo(name="gbm", version="gbm-x", warn=0.6, hangup=0.9, eer=0.5)
        shed = 0
        on_result = None

    class Bus:
        async def publish(self, msg):
            return True

    cfg = parse_config({"ari": {"password": "s3cret"}, "media": {"port": 0},
                        "capture": {"enabled": True, "dir": str(tmp_path / "rv"), "bonafide_sample": 0.0}}, {})
    guard = Guard(cfg, None, None, Scoring(), Bus())  # type: ignore[arg-type]
    leg = Leg(call_id="1700000000.7", leg="caller", channel_id="chan-7", tap_channel_id="snoop", spy="in")
    policy = cfg.policies["default"]
    guard.legs[leg.key] = LegState(
        leg=leg, policy=policy, evidence=LegEvidence(window=3, min_chunks=1, warn=0.6, hangup=0.9),
        tap=LegTap(key=leg.key, fmt="ulaw", on_chunk=lambda k, c: None),
        caller={"caller_name": "Eve", "caller_number": "+4930123"})

    async def feed():
        for i, score in enumerate((0.1, 0.95)):
            await guard._on_result(ScoreResult(job=ChunkJob(leg=leg.key, chunk=_chunk(i)), score=score, error=None,
                                               queued_s=0.0, scoring_s=0.0))

    asyncio.run(feed())
    assert guard.capture.drain()
    guard.capture.close()
    with ReviewStore(tmp_path / "rv") as store:
        items = sorted(store.items(limit=None), key=lambda i: i["chunk_index"])
    assert [(i["chunk_index"], i["reason"]) for i in items] == [(0, "lookback"), (1, "spoof")]
    it = items[1]
    assert (it["call_id"], it["leg"], it["channel_id"], it["caller_number"], it["policy"]) == (
        "1700000000.7", "caller", "chan-7", "+4930123", "default")
    assert (it["detector"], it["detector_version"], it["score"]) == ("gbm", "gbm-x", pytest.approx(0.95))
