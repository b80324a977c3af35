"""Versioned GBM models: ``<models>/versions/<name>/``, a ``current`` pointer, promotion, rollback.

Layout inside a models directory (default ``models/``)::

    gbm.txt, gbm.calibration.json, gbm.md   the champion, where `load_detector` and `serve` read it
    versions/<name>/                         every version ever installed (same files + version.json)
    versions/current                         the name of the installed version (written last, atomically)
    versions/history.json                    installed versions in order; rollback pops the last one
    promotions.jsonl                         every retrain decision and rollback, with its metrics

Installing a version copies its files over the top-level ones (each via a temporary file and an atomic
rename) and then rewrites ``versions/current``; rollback installs the previous version the same way, so the
top-level files are byte for byte those of that version. A running plugin notices a new version by polling
``watch_version`` (one small read) and loads it from ``versions/<name>/``, which never changes once written.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from detector.gbm import CALIBRATION_FILE, MLP_FILE, MODEL_FILE, check_features
from detector.scoring import ModelError

MODEL_FILES = (MODEL_FILE, CALIBRATION_FILE, "gbm.md", MLP_FILE)
VERSIONS = "versions"
CURRENT = "current"
HISTORY = "history.json"
VERSION_INFO = "version.json"
PROMOTIONS_LOG = "promotions.jsonl"


class VersionError(RuntimeError):
    """No such version, nothing to roll back to, no model to snapshot."""


@dataclass(frozen=True)
class ModelVersion:
    """The installed version: its name and the directory to load it from."""

    name: str
    path: Path


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _atomic_write(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    tmp.replace(path)


def versions_dir(models_dir: str | Path) -> Path:
    return Path(models_dir) / VERSIONS


def new_version_name(models_dir: str | Path) -> str:
    """A fresh, sortable name (UTC time); never reuses an existing directory."""
    base = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
    name, i = base, 1
    while (versions_dir(models_dir) / name).exists():
        i += 1
        name = f"{base}-{i}"
    return name


def current_version(models_dir: str | Path) -> ModelVersion | None:
    path = versions_dir(models_dir) / CURRENT
    try:
        name = path.read_text().strip()
    except OSError:
        return None
    return ModelVersion(name, versions_dir(models_dir) / name) if name else None


def _history(models_dir: str | Path) -> list[str]:
    try:
        return list(json.loads((versions_dir(models_dir) / HISTORY).read_text()))
    except (OSError, ValueError):
        return []


def _write_history(models_dir: str | Path, names: list[str]) -> None:
    _atomic_write(versions_dir(models_dir) / HISTORY, json.dumps(names, indent=1).encode())


def log_event(models_dir: str | Path, record: dict) -> dict:
    """Append one JSON line to ``promotions.jsonl`` (every promotion, refusal and rollback)."""
    record = {"ts": _now(), **record}
    path = Path(models_dir) / PROMOTIONS_LOG
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(record, sort_keys=True, default=float) + "\n")
        f.flush()
        os.fsync(f.fileno())
    return record


def read_log(models_dir: str | Path) -> list[dict]:
    path = Path(models_dir) / PROMOTIONS_LOG
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def write_version_info(version_dir: Path, info: dict) -> None:
    _atomic_write(version_dir / VERSION_INFO, json.dumps(info, indent=1, sort_keys=True, default=float).encode())


def list_versions(models_dir: str | Path) -> list[dict]:
    """Every stored version, oldest first, with its version.json and whether it is installed."""
    root = versions_dir(models_dir)
    cur = current_version(models_dir)
    out = []
    if not root.is_dir():
        return out
    for d in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        try:
            info = json.loads((d / VERSION_INFO).read_text())
        except (OSError, ValueError):
            info = {}
        out.append({"name": d.name, "current": cur is not None and cur.name == d.name, **info})
    return out


def ensure_versioned(models_dir: str | Path) -> ModelVersion:
    """The installed version; a models directory that predates versioning gets its top-level model
    snapshotted as the first version (so that the first promotion can be rolled back)."""
    cur = current_version(models_dir)
    if cur is not None and cur.path.is_dir():
        return cur
    top = Path(models_dir)
    if not (top / MODEL_FILE).is_file():
        raise VersionError(f"no GBM model in {top} to start from (train one with `callguard train gbm`)")
    try:
        origin = json.loads((top / CALIBRATION_FILE).read_text()).get("version", "")
    except (OSError, ValueError):
        origin = ""
    name = new_version_name(models_dir)
    dest = versions_dir(models_dir) / name
    tmp = versions_dir(models_dir) / f".{name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for f in MODEL_FILES:
        if (top / f).is_file():
            shutil.copyfile(top / f, tmp / f)
    write_version_info(tmp, {"created": _now(), "source": "snapshot of the model in place before versioning",
                             "model_version": origin})
    tmp.rename(dest)
    _write_history(models_dir, [*_history(models_dir), name])
    _atomic_write(versions_dir(models_dir) / CURRENT, (name + "\n").encode())
    return ModelVersion(name, dest)


def _install(models_dir: str | Path, name: str) -> ModelVersion:
    src = versions_dir(models_dir) / name
    if not (src / MODEL_FILE).is_file():
        raise VersionError(f"version {name!r} has no {MODEL_FILE} in {src}")
    # a version archived before a feature-schema change cannot be served by this code: refuse it here, while the
    # installed model still works, rather than install a model the service would refuse to load
    try:
        check_features(json.loads((src / CALIBRATION_FILE).read_text()), src / MODEL_FILE)
    except (OSError, ValueError) as exc:
        raise VersionError(f"version {name!r}: unreadable {CALIBRATION_FILE} ({exc})") from exc
    except ModelError as exc:
        raise VersionError(f"version {name!r} cannot be installed: {exc}") from exc
    top = Path(models_dir)
    # the MLP (which only a calibration naming it is read with), then calibration, model last: a cold start
    # that races the copy fails the schema check loudly at worst
    for f in (MLP_FILE, CALIBRATION_FILE, "gbm.md", MODEL_FILE):
        if (src / f).is_file():
            _atomic_write(top / f, (src / f).read_bytes())
        else:
            (top / f).unlink(missing_ok=True)
    _atomic_write(versions_dir(models_dir) / CURRENT, (name + "\n").encode())
    return ModelVersion(name, src)


def promote(models_dir: str | Path, name: str) -> ModelVersion:
    """Install version ``name`` as the champion and remember it in the history."""
    ensure_versioned(models_dir)
    version = _install(models_dir, name)
    _write_history(models_dir, [*_history(models_dir), name])
    return version


def rollback(models_dir: str | Path, reason: str = "") -> tuple[str, ModelVersion]:
    """Reinstall the version installed before the current one; returns (the version left, the one restored)."""
    hist = _history(models_dir)
    cur = current_version(models_dir)
    if cur is not None and hist and hist[-1] != cur.name:
        hist.append(cur.name)  # the pointer was moved by hand: treat it as the latest
    if len(hist) < 2:
        raise VersionError("nothing to roll back to (only one version has been installed)")
    left, previous = hist[-1], hist[-2]
    version = _install(models_dir, previous)
    _write_history(models_dir, hist[:-1])
    log_event(models_dir, {"event": "rollback", "from": left, "to": previous, "reason": reason})
    return left, version


def watch_version(models_dir: str | Path, last: ModelVersion | None = None) -> ModelVersion | None:
    """The installed version if it differs from ``last``, else None. Cheap (one small file read): poll it
    every few seconds. A missing or unreadable pointer is "no change", never an error."""
    cur = current_version(models_dir)
    if cur is None or cur == last or not (cur.path / MODEL_FILE).is_file():
        return None
    return cur


async def watch_versions(models_dir: str | Path, interval: float = 5.0,
                         last: ModelVersion | None = None) -> AsyncIterator[ModelVersion]:
    """Async form for the live service: yields each newly installed version (reads off the event loop)."""
    while True:
        new = await asyncio.to_thread(watch_version, models_dir, last)
        if new is not None:
            last = new
            yield new
        await asyncio.sleep(interval)
