"""Learning from live calls, part one: capture chunks of live calls into a review store, and label them.

``ReviewStore`` is a directory with one SQLite database (``review.sqlite``: items, their current label and
the full label history) and the captured audio (``audio/<day>/<id>.wav``, 2 s, 8 kHz, 16-bit). Retention is
enforced on every write: items older than ``max_age_days`` and the oldest items beyond ``max_items`` are
deleted with their audio, so the store never grows without bound. Captured audio is personal data.

``Capture`` is what the live path calls once per scored chunk (``offer``). It decides on the event loop
(cheap: a comparison, a random draw) and writes in one background thread fed by a bounded queue; a full queue
drops the item (metric ``capture_dropped`` + log line). Every error is logged and counted
(``capture_errors``), never raised into the call path.

What is captured, when ``[capture] enabled = true`` and the call's policy has ``capture`` (default true):
every chunk once the leg's verdict is ``suspicious`` or ``spoof`` or whose own score reaches the warn
threshold, the last ``lookback`` chunks before that moment, and a random ``bonafide_sample`` share of the
other chunks; at most ``max_per_call`` chunks per leg.
"""

from __future__ import annotations

import atexit
import csv
import datetime as dt
import hashlib
import logging
import os
import queue
import random
import shutil
import sqlite3
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from detector.audio import resample, to_int16
from detector.corpus.manifest import CHUNK_SAMPLES, COLUMNS
from plugin import metrics

log = logging.getLogger(__name__)

RATE = 8000
LABELS = ("bonafide", "synthetic", "replay", "unsure")
LABEL_ALIASES = {"bona fide": "bonafide", "bona-fide": "bonafide", "bona_fide": "bonafide", "real": "bonafide",
                 "human": "bonafide", "spoof": "synthetic", "tts": "synthetic", "?": "unsure"}
# how a review label enters a corpus-like manifest (unsure is never exported)
EXPORT_LABEL = {"bonafide": ("bonafide", "bonafide", "bonafide"),
                "synthetic": ("spoof", "unknown", "live-synthetic"),
                "replay": ("spoof", "replay", "live-replay")}
EXPORT_EXTRA = ["item_id", "call_id", "review_label", "reviewer", "labelled_at", "score", "verdict",
                "detector_version"]
DB_FILE = "review.sqlite"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at REAL NOT NULL,
    call_id TEXT NOT NULL, leg TEXT, channel_id TEXT, caller_number TEXT, caller_name TEXT, policy TEXT,
    detector TEXT, detector_version TEXT,
    chunk_index INTEGER, chunk_start_s REAL,
    score REAL, evidence REAL, verdict TEXT, reason TEXT,
    audio TEXT NOT NULL, sha1 TEXT,
    label TEXT, labelled_by TEXT, labelled_at REAL
);
CREATE INDEX IF NOT EXISTS items_created ON items(created_at);
CREATE INDEX IF NOT EXISTS items_label ON items(label);
CREATE INDEX IF NOT EXISTS items_call ON items(call_id);
CREATE TABLE IF NOT EXISTS labels (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    item_id INTEGER NOT NULL REFERENCES items(id) ON DELETE CASCADE,
    label TEXT NOT NULL, reviewer TEXT NOT NULL, at REAL NOT NULL, note TEXT
);
CREATE INDEX IF NOT EXISTS labels_item ON labels(item_id);
"""


class ReviewError(ValueError):
    """A bad request to the review store (unknown item, unknown label, missing reviewer)."""


def normalise_label(label: str) -> str:
    text = str(label).strip().lower()
    text = LABEL_ALIASES.get(text, text)
    if text not in LABELS:
        raise ReviewError(f"unknown label {label!r} (expected one of: bona fide, synthetic, replay, unsure)")
    return text


def _iso(ts: float | None) -> str:
    return "" if ts is None else dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------------------------- config
@dataclass(frozen=True)
class CaptureConfig:
    """The ``[capture]`` section. Off by default: captured audio is personal data."""

    enabled: bool = False
    dir: str = "callguard-review"
    max_items: int = 5000
    max_age_days: float = 30.0
    bonafide_sample: float = 0.02  # share of ordinary bona fide chunks kept (so review sees normal calls too)
    lookback: int = 4  # chunks kept from before a leg turned suspicious
    max_per_call: int = 60  # per leg, so one long call cannot fill the store
    queue_size: int = 64
    seed: int = -1  # random-sample seed; -1: seeded from the system


def parse_capture(raw: Any, env: Mapping[str, str] | None = None) -> CaptureConfig:
    """Validate the ``[capture]`` table (with ``CALLGUARD_CAPTURE_<KEY>`` overrides); ConfigError names the key."""
    from plugin.config import ConfigError

    env = os.environ if env is None else env
    if not isinstance(raw, Mapping):
        raise ConfigError("capture: expected a table")
    known = {f.name: f for f in fields(CaptureConfig)}
    values = dict(raw)
    for k in values:
        if k not in known:
            raise ConfigError(f"capture.{k}: unknown key (known: {', '.join(known)})")
    for k in known:
        if f"CALLGUARD_CAPTURE_{k.upper()}" in env:
            values[k] = env[f"CALLGUARD_CAPTURE_{k.upper()}"]
    out: dict[str, Any] = {}
    for k, v in values.items():
        kind, key = str(known[k].type), f"capture.{k}"
        if kind == "bool":
            text = str(v).strip().lower() if not isinstance(v, bool) else str(v).lower()
            if text not in ("true", "false", "yes", "no", "on", "off", "1", "0"):
                raise ConfigError(f"{key}: expected true or false")
            out[k] = text in ("true", "yes", "on", "1")
            continue
        if kind in ("int", "float") and isinstance(v, bool):
            raise ConfigError(f"{key}: expected a number, got {v!r}")
        try:
            out[k] = int(v) if kind == "int" else float(v) if kind == "float" else str(v)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected {'an integer' if kind == 'int' else 'a number'}, got {v!r}") from None
    cfg = CaptureConfig(**out)
    if cfg.max_items < 1:
        raise ConfigError(f"capture.max_items: must be >= 1, got {cfg.max_items}")
    if not cfg.max_age_days > 0:
        raise ConfigError(f"capture.max_age_days: must be > 0, got {cfg.max_age_days}")
    if not 0.0 <= cfg.bonafide_sample <= 1.0:
        raise ConfigError(f"capture.bonafide_sample: must be between 0 and 1, got {cfg.bonafide_sample}")
    if not 0 <= cfg.lookback <= 32:
        raise ConfigError(f"capture.lookback: must be 0..32, got {cfg.lookback}")
    if cfg.max_per_call < 1 or cfg.queue_size < 1:
        raise ConfigError("capture.max_per_call and capture.queue_size: must be >= 1")
    if cfg.enabled:
        if not cfg.dir:
            raise ConfigError("capture.dir: must not be empty when capture is enabled")
        probe = Path(cfg.dir).absolute()
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
            raise ConfigError(f"capture.dir: cannot create or write {cfg.dir!r}")
    return cfg


# --------------------------------------------------------------------------------------------- store
class ReviewStore:
    """The review store in ``root``: thread-safe (one connection, one lock), readable while the service
    writes (SQLite WAL)."""

    def __init__(self, root: str | Path, *, max_items: int | None = None, max_age_days: float | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_items, self.max_age_days, self.clock = max_items, max_age_days, clock
        self._lock = threading.RLock()
        self.db = sqlite3.connect(str(self.root / DB_FILE), timeout=10, check_same_thread=False,
                                  isolation_level=None)
        self.db.row_factory = sqlite3.Row
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA foreign_keys=ON")
        self.db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self.db.close()

    def __enter__(self) -> ReviewStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- writing
    def add(self, audio: np.ndarray, *, call_id: str, score: float | None, verdict: str, rate: int = RATE,
            evidence: float | None = None, reason: str = "", detector: str = "", detector_version: str = "",
            leg: str = "", channel_id: str = "", caller_number: str = "", caller_name: str = "",
            policy: str = "", chunk_index: int | None = None, chunk_start_s: float | None = None,
            created_at: float | None = None) -> int:
        """Store one chunk (float in [-1, 1] or int16 at ``rate``) with its metadata; returns the item id.
        Retention is applied right after."""
        pcm = _pcm16(audio, rate)
        created_at = self.clock() if created_at is None else float(created_at)
        day = dt.datetime.fromtimestamp(created_at, dt.UTC).strftime("%Y-%m-%d")
        with self._lock:
            self.db.execute("BEGIN IMMEDIATE")
            path: Path | None = None
            try:
                cur = self.db.execute(
                    "INSERT INTO items (created_at, call_id, leg, channel_id, caller_number, caller_name, policy, "
                    "detector, detector_version, chunk_index, chunk_start_s, score, evidence, verdict, reason, "
                    "audio) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,'')",
                    (created_at, str(call_id), leg, channel_id, caller_number, caller_name, policy, detector,
                     detector_version, chunk_index, chunk_start_s, score, evidence, verdict, reason))
                item_id = int(cur.lastrowid or 0)
                rel = f"audio/{day}/{item_id:08d}.wav"
                path = self.root / rel
                path.parent.mkdir(parents=True, exist_ok=True)
                sf.write(str(path), pcm, RATE, subtype="PCM_16")
                sha1 = hashlib.sha1(path.read_bytes()).hexdigest()[:16]
                self.db.execute("UPDATE items SET audio = ?, sha1 = ? WHERE id = ?", (rel, sha1, item_id))
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                if path is not None:
                    path.unlink(missing_ok=True)
                raise
        self.purge()
        return item_id

    def purge(self, now: float | None = None) -> int:
        """Apply retention: delete items older than ``max_age_days``, then the oldest beyond ``max_items``."""
        now = self.clock() if now is None else now
        with self._lock:
            doomed: list[sqlite3.Row] = []
            if self.max_age_days is not None:
                doomed += self.db.execute("SELECT id, audio FROM items WHERE created_at < ?",
                                          (now - self.max_age_days * 86400.0,)).fetchall()
            if self.max_items is not None:
                n = self.db.execute("SELECT COUNT(*) FROM items").fetchone()[0] - len(doomed)
                if n > self.max_items:
                    gone = {r["id"] for r in doomed}
                    rows = self.db.execute("SELECT id, audio FROM items ORDER BY created_at, id LIMIT ?",
                                           (n - self.max_items + len(doomed),)).fetchall()
                    doomed += [r for r in rows if r["id"] not in gone]
            if not doomed:
                return 0
            self.db.execute("BEGIN IMMEDIATE")
            try:
                self.db.executemany("DELETE FROM items WHERE id = ?", [(r["id"],) for r in doomed])
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
        for r in doomed:
            if r["audio"]:
                (self.root / r["audio"]).unlink(missing_ok=True)
        log.info("review store %s: retention removed %d item(s)", self.root, len(doomed))
        return len(doomed)

    def label(self, item_id: int, label: str, reviewer: str, note: str = "", at: float | None = None) -> dict:
        """Label an item (bona fide / synthetic / replay / unsure). A new label replaces the current one;
        every label stays in the history with who and when."""
        label = normalise_label(label)
        reviewer = str(reviewer).strip()
        if not reviewer:
            raise ReviewError("a label needs the reviewer's name")
        at = self.clock() if at is None else float(at)
        with self._lock:
            if self.db.execute("SELECT 1 FROM items WHERE id = ?", (int(item_id),)).fetchone() is None:
                raise ReviewError(f"no item {item_id} (purged by retention, or never captured)")
            self.db.execute("BEGIN IMMEDIATE")
            try:
                self.db.execute("INSERT INTO labels (item_id, label, reviewer, at, note) VALUES (?,?,?,?,?)",
                                (int(item_id), label, reviewer, at, note))
                self.db.execute("UPDATE items SET label = ?, labelled_by = ?, labelled_at = ? WHERE id = ?",
                                (label, reviewer, at, int(item_id)))
                self.db.execute("COMMIT")
            except BaseException:
                self.db.execute("ROLLBACK")
                raise
        item = self.get(item_id)
        assert item is not None
        return item

    # ---------------------------------------------------------------- reading
    def get(self, item_id: int) -> dict | None:
        with self._lock:
            row = self.db.execute("SELECT * FROM items WHERE id = ?", (int(item_id),)).fetchone()
            if row is None:
                return None
            item = dict(row)
            item["history"] = [dict(r) for r in self.db.execute(
                "SELECT label, reviewer, at, note FROM labels WHERE item_id = ? ORDER BY at, id", (int(item_id),))]
        item["audio_path"] = str(self.root / item["audio"])
        return item

    def items(self, *, labelled: bool | None = None, label: str | None = None, verdict: str | None = None,
              call_id: str | None = None, policy: str | None = None, limit: int | None = 50,
              offset: int = 0) -> list[dict]:
        """Items matching the filters, unlabelled first, then newest first."""
        where, args = [], []
        if labelled is not None:
            where.append("label IS NOT NULL" if labelled else "label IS NULL")
        if label is not None:
            where.append("label = ?")
            args.append(normalise_label(label))
        for col, val in (("verdict", verdict), ("call_id", call_id), ("policy", policy)):
            if val is not None:
                where.append(f"{col} = ?")
                args.append(val)
        sql = "SELECT * FROM items" + (" WHERE " + " AND ".join(where) if where else "")
        sql += " ORDER BY label IS NOT NULL, created_at DESC, id DESC"
        if limit is not None:
            sql += " LIMIT ? OFFSET ?"
            args += [int(limit), int(offset)]
        with self._lock:
            return [dict(r) for r in self.db.execute(sql, args)]

    def counts(self) -> dict[str, int]:
        with self._lock:
            rows = self.db.execute("SELECT COALESCE(label, 'unlabelled') AS k, COUNT(*) AS n FROM items GROUP BY k")
            out = {r["k"]: int(r["n"]) for r in rows}
        out["total"] = sum(out.values())
        return out

    def audio(self, item_id: int) -> np.ndarray:
        item = self.get(item_id)
        if item is None:
            raise ReviewError(f"no item {item_id}")
        x, _ = sf.read(item["audio_path"], dtype="int16")
        return x

    def export(self, out_dir: str | Path) -> tuple[Path, int]:
        """Write the labelled items (unsure ones left out) as a corpus-like directory: ``manifest.csv`` with
        the corpus columns (split ``review``; speaker and group are the call, so one call's chunks stay
        together) plus review columns, and copies of the audio under ``chunks/review/``."""
        out = Path(out_dir)
        (out / "chunks" / "review").mkdir(parents=True, exist_ok=True)
        with self._lock:
            rows = [dict(r) for r in self.db.execute(
                "SELECT * FROM items WHERE label IS NOT NULL AND label != 'unsure' ORDER BY created_at, id")]
        manifest = []
        for it in rows:
            src = self.root / it["audio"]
            if not src.is_file():
                log.warning("review item %s: audio %s missing; not exported", it["id"], src)
                continue
            rel = f"chunks/review/{it['id']:08d}.wav"
            shutil.copyfile(src, out / rel)
            label, attack, generator = EXPORT_LABEL[it["label"]]
            who = f"call-{it['call_id']}"
            manifest.append({
                "path": rel, "label": label, "attack_type": attack, "generator": generator, "voice": "",
                "speaker": who, "group": who, "language": "", "source": "review", "split": "review",
                "codec": "", "snr_db": "", "noise": "", "loss_rate": "", "gain_db": "", "bandlimit": "",
                "agc": "", "seed": "", "job": f"review-{it['id']}", "start_s": it["chunk_start_s"] or 0.0,
                "sha1": it["sha1"] or "", "item_id": it["id"], "call_id": it["call_id"],
                "review_label": it["label"], "reviewer": it["labelled_by"], "labelled_at": _iso(it["labelled_at"]),
                "score": "" if it["score"] is None else it["score"], "verdict": it["verdict"],
                "detector_version": it["detector_version"]})
        tmp = out / "manifest.csv.tmp"
        with tmp.open("w", newline="", encoding="utf-8") as f:
            w = csv.DictWriter(f, fieldnames=COLUMNS + EXPORT_EXTRA)
            w.writeheader()
            w.writerows(manifest)
        tmp.replace(out / "manifest.csv")
        return out / "manifest.csv", len(manifest)


def _pcm16(audio: np.ndarray, rate: int) -> np.ndarray:
    x = np.asarray(audio)
    if x.dtype != np.int16:
        x = to_int16(np.asarray(x, dtype=np.float32))
    if rate != RATE:
        x = to_int16(resample(x.astype(np.float32) / 32768.0, rate, RATE))
    if len(x) != CHUNK_SAMPLES:  # the live chunker always gives 2 s; keep the store uniform regardless
        x = np.resize(x, CHUNK_SAMPLES) if len(x) > CHUNK_SAMPLES else np.pad(x, (0, CHUNK_SAMPLES - len(x)))
    return x


# --------------------------------------------------------------------------------------------- capture
@dataclass
class _Leg:
    lookback: deque
    captured: int = 0


class Capture:
    """Per scored chunk, ``offer(...)`` decides whether to keep it; a background thread writes it."""

    MAX_LEGS = 128  # per-leg state kept (LRU), bounds memory without a call-ended hook

    def __init__(self, config: CaptureConfig, policy_capture: Mapping[str, bool] | None = None,
                 store_factory: Callable[[], ReviewStore] | None = None) -> None:
        self.config = config
        self.policy_capture = dict(policy_capture or {})
        self._store_factory = store_factory or (lambda: ReviewStore(
            config.dir, max_items=config.max_items, max_age_days=config.max_age_days))
        self._rng = random.Random(None if config.seed < 0 else config.seed)
        self._legs: OrderedDict[tuple[str, str], _Leg] = OrderedDict()
        self._queue: queue.Queue[dict | None] = queue.Queue(maxsize=config.queue_size)
        self._thread: threading.Thread | None = None
        self._store: ReviewStore | None = None
        self._closed = False
        self.enqueued = self.written = self.dropped = self.errors = 0

    @classmethod
    def from_config(cls, config: Any) -> Capture:
        """From a ``plugin.config.Config`` (its ``capture`` section and each policy's ``capture`` flag)."""
        cc = getattr(config, "capture", None) or CaptureConfig()
        policies = getattr(config, "policies", {}) or {}
        return cls(cc, {name: bool(getattr(p, "capture", True)) for name, p in policies.items()})

    @property
    def enabled(self) -> bool:
        return self.config.enabled and not self._closed

    def offer(self, base: Mapping[str, Any], chunk: Any, score: float | None, verdict: str,
              evidence: float | None = None, detector: Any = None) -> str | None:
        """Called on the event loop for each scored chunk; never blocks, never raises. ``base``: the call
        metadata (call_id, leg, channel_id, policy, detector, detector_version, caller_number, caller_name);
        ``chunk``: a ``SpeechChunk``; ``detector``: anything with ``warn``/``hangup`` thresholds. Returns
        why the chunk was queued (``suspicious``, ``spoof``, ``sample``) or None."""
        if not self.config.enabled or self._closed or score is None:
            return None
        try:
            return self._offer(base, chunk, float(score), verdict, evidence, detector)
        except Exception as exc:  # fail open
            self._error("capture decision failed", exc)
            return None

    def _offer(self, base: Mapping[str, Any], chunk: Any, score: float, verdict: str, evidence: float | None,
               detector: Any) -> str | None:
        if not self.policy_capture.get(str(base.get("policy", "")), True):
            return None
        key = (str(base.get("call_id", "")), str(base.get("leg", "")))
        leg = self._legs.get(key)
        if leg is None:
            leg = self._legs[key] = _Leg(lookback=deque(maxlen=max(self.config.lookback, 1)))
            while len(self._legs) > self.MAX_LEGS:
                self._legs.popitem(last=False)
        else:
            self._legs.move_to_end(key)
        level = "bonafide"
        if detector is not None:
            level = ("spoof" if score >= float(detector.hangup) else
                     "suspicious" if score >= float(detector.warn) else "bonafide")
        item = {**{k: base.get(k) for k in ("call_id", "leg", "channel_id", "policy", "detector",
                                            "detector_version", "caller_number", "caller_name")},
                "pcm": to_int16(np.asarray(chunk.audio, dtype=np.float32)), "rate": int(getattr(chunk, "rate", RATE)),
                "chunk_index": int(chunk.index), "chunk_start_s": float(chunk.start_s), "score": score,
                "evidence": None if evidence is None else float(evidence), "verdict": verdict,
                "created_at": time.time()}
        flagged = verdict in ("suspicious", "spoof") or level != "bonafide"
        if not flagged:
            if self._rng.random() < self.config.bonafide_sample:
                item["reason"] = "sample"
                return "sample" if self._put(leg, item) else None
            if self.config.lookback:
                leg.lookback.append(item)
            return None
        reason = verdict if verdict in ("suspicious", "spoof") else level
        while leg.lookback:  # the lead-up to a suspicious verdict is worth reviewing too
            before = leg.lookback.popleft()
            before["reason"] = "lookback"
            self._put(leg, before)
        item["reason"] = reason
        return reason if self._put(leg, item) else None

    def _put(self, leg: _Leg, item: dict) -> bool:
        if leg.captured >= self.config.max_per_call:
            metrics.inc("capture_capped")
            return False
        self._start()
        try:
            self._queue.put_nowait(item)
        except queue.Full:
            self.dropped += 1
            metrics.inc("capture_dropped")
            if self.dropped == 1 or self.dropped % 100 == 0:
                log.warning("capture queue full (%d): dropped a chunk of call %s (%d dropped so far)",
                            self.config.queue_size, item.get("call_id"), self.dropped)
            return False
        leg.captured += 1
        self.enqueued += 1
        return True

    def _start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._writer, name="callguard-capture", daemon=True)
            self._thread.start()
            atexit.register(self.close)

    def _writer(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                if self._store is None:
                    self._store = self._store_factory()
                pcm, rate = item.pop("pcm"), item.pop("rate")
                self._store.add(pcm, rate=rate, **{k: ("" if v is None and k in _TEXT else v)
                                                   for k, v in item.items()})
                self.written += 1
                metrics.inc("capture_written")
            except Exception as exc:  # fail open: the call path never sees a capture error
                self._error("capture write failed", exc)
                if self._store is not None and not isinstance(exc, ReviewError | OSError):
                    self._close_store()
            finally:
                self._queue.task_done()

    def _close_store(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            try:
                store.close()
            except Exception:
                pass

    def _error(self, what: str, exc: BaseException) -> None:
        self.errors += 1
        metrics.inc("capture_errors")
        if self.errors == 1 or self.errors % 100 == 0:
            log.warning("%s (%d so far): %s: %s", what, self.errors, exc.__class__.__name__, exc)

    def drain(self, timeout: float = 10.0) -> bool:
        """Wait until every queued item is written (tests, shutdown). True when the queue is empty."""
        end = time.monotonic() + timeout
        while self._queue.unfinished_tasks and time.monotonic() < end:
            time.sleep(0.01)
        return not self._queue.unfinished_tasks

    def close(self, timeout: float = 5.0) -> None:
        """Write what is queued (up to ``timeout``), then stop the writer thread."""
        if self._closed:
            return
        self._closed = True
        if self._thread is not None:
            try:
                self._queue.put(None, timeout=timeout)
            except queue.Full:
                log.warning("capture: writer did not keep up; %d queued chunk(s) not written", self._queue.qsize())
            self._thread.join(timeout)
        self._close_store()


_TEXT = {"call_id", "leg", "channel_id", "policy", "detector", "detector_version", "caller_number", "caller_name"}
