"""The admin dashboard (issue #9), served by the plugin's HTTP endpoint (``plugin.http``).

One static page (``plugin/static/dashboard.html`` + ``dashboard.js`` + ``dashboard.css``: no build step, no
external fetches) polling a small JSON API:

- ``GET /api/calls``: the legs guarded now, each with its per-chunk score timeline, rolling evidence and
  the warn / hang-up thresholds (a snapshot of ``Guard.legs``, taken on the event loop: cheap, bounded);
- ``GET /api/feed?after=<seq>``: the verdict feed, a bounded ring of recent ``verdict`` and ``summary`` bus
  messages (``Feed``, a ``Bus.listeners`` hook);
- ``GET /api/review?labelled=0|1|all``, ``GET /api/review/<id>``, ``GET /api/review/<id>/audio.wav`` and
  ``POST /api/review/<id>/label`` (JSON ``{label, reviewer, note}``): the review queue of ``capture.dir``
  (``plugin.review.ReviewStore``; every store operation runs in a thread);
- ``GET /api/models``: the running detector, the model versions of ``detector.models_dir`` with their
  metrics and the promotion log (``detector.versions``);
- ``GET /api/session``, ``POST /dashboard/logout``, and the login form ``/dashboard/login``.

The data sources are passed in (callables / directories), so the dashboard runs without a live service.
Authentication is ``plugin.http``'s: bearer token or the session cookie set by the login form.
"""

from __future__ import annotations

import asyncio
import html
import json
import logging
import math
import re
import time
from collections import deque
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote

from aiohttp import web

from plugin import metrics
from plugin.http import LOGIN_PATH, SESSION_COOKIE, same_origin

if TYPE_CHECKING:
    from plugin.http import HttpServer
    from plugin.review import ReviewStore

log = logging.getLogger(__name__)

STATIC_DIR = Path(__file__).resolve().parent / "static"
ASSETS = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}  # the only files served
REVIEWER_COOKIE = "callguard_reviewer"
MAX_REVIEWER = 64
MAX_NOTE = 500
MAX_ITEM_ID = 2**63 - 1
FEED_KINDS = ("verdict", "summary")
# what the feed keeps of a message (a summary's per-chunk timings would make the ring heavy)
FEED_FIELDS = ("id", "type", "ts", "call_id", "channel_id", "leg", "chunk_index", "chunk_start_s", "score",
               "evidence", "verdict", "previous_verdict", "actions", "policy", "caller_name", "caller_number",
               "detector", "detector_version")
SUMMARY_FIELDS = ("chunks", "scored", "errors", "shed", "max_score", "mean_score", "final_verdict", "ended_by")
ITEM_FIELDS = ("id", "created_at", "call_id", "leg", "channel_id", "caller_number", "caller_name", "policy",
               "detector", "detector_version", "chunk_index", "chunk_start_s", "score", "evidence", "verdict",
               "reason", "label", "labelled_by", "labelled_at")
INSTALLED_FIELDS = ("version", "thresholds", "thresholds_basis", "calibrated_on", "dev", "retrain")

PAGE_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; media-src 'self'; "
            "img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
LOGIN_CSP = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; "
             "frame-ancestors 'none'; base-uri 'none'")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

LegsSource = Callable[[], Mapping[str, Any] | None]
DetectorSource = Callable[[], Any]


# --------------------------------------------------------------------------------------------- helpers
def clean(value: Any) -> Any:
    """``value`` made strict-JSON-safe: non-finite floats become None (browsers reject NaN)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [clean(v) for v in value]
    return value


def _num(value: Any, digits: int = 6) -> float | None:
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return round(x, digits) if math.isfinite(x) else None


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(text=json.dumps(clean(data), separators=(",", ":"), default=str), status=status,
                        content_type="application/json", headers={"Cache-Control": "no-store"})


def error(status: int, message: str) -> web.Response:
    return json_response({"error": message}, status=status)


def detector_info(info: Any) -> dict[str, Any] | None:
    if info is None:
        return None
    return {"name": str(getattr(info, "name", "")), "version": str(getattr(info, "version", "")),
            "warn": _num(getattr(info, "warn", None)), "hangup": _num(getattr(info, "hangup", None)),
            "eer": _num(getattr(info, "eer", None))}


def leg_snapshot(key: str, state: Any, max_points: int = 300) -> dict[str, Any]:
    """One guarded leg (a ``plugin.guard.LegState``) as JSON: who, verdict, thresholds and the timeline of its
    last ``max_points`` chunks, each with its score and the rolling evidence (mean of the last ``window``
    scores, as ``plugin.policy.LegEvidence`` computes it) after it."""
    leg, ev = state.leg, state.evidence
    window = max(int(getattr(ev, "window", 1) or 1), 1)
    recent: deque[float] = deque(maxlen=window)
    points = []
    for t in list(state.chunk_timings)[-(max_points + window):]:
        score = _num(t.get("score"))
        if score is not None:
            recent.append(min(max(score, 0.0), 1.0))
        points.append({"chunk_index": t.get("chunk_index"), "start_s": _num(t.get("start_s"), 3),
                       "end_s": _num(t.get("end_s"), 3), "score": score,
                       "evidence": _num(sum(recent) / len(recent)) if recent else None})
    caller = getattr(state, "caller", None) or {}
    policy = getattr(state, "policy", None)
    return {
        "key": key, "call_id": str(leg.call_id), "channel_id": str(leg.channel_id), "leg": str(leg.leg),
        "policy": str(getattr(policy, "name", policy or "")),
        "caller_name": str(caller.get("caller_name") or ""), "caller_number": str(caller.get("caller_number") or ""),
        "verdict": ev.verdict or "pending", "evidence": _num(ev.evidence), "warn": _num(ev.warn),
        "hangup": _num(ev.hangup), "window": window, "scored": int(ev.n_scored), "errors": int(ev.n_errors),
        "tapped_at": _num(getattr(state, "tapped_at", None), 3),
        "verdict_history": clean(list(getattr(state, "verdict_history", []))[-20:]),
        "points": points[-max_points:],
    }


class Feed:
    """The verdict feed: the last ``maxlen`` bus messages of the kinds in ``kinds``, numbered 1, 2, ... in
    arrival order (the number is the feed's own, a client polls with ``after=<last number seen>``).
    Add it to ``Bus.listeners``; ``add`` is quick and never raises."""

    def __init__(self, maxlen: int = 500, kinds: tuple[str, ...] = FEED_KINDS) -> None:
        self.kinds = frozenset(kinds)
        self._ring: deque[dict[str, Any]] = deque(maxlen=maxlen)
        self.seq = 0

    def __call__(self, msg: Mapping[str, Any]) -> None:
        self.add(msg)

    def add(self, msg: Mapping[str, Any]) -> None:
        if msg.get("type") not in self.kinds:
            return
        slim = {k: msg.get(k) for k in FEED_FIELDS if k in msg}
        summary = msg.get("summary")
        if isinstance(summary, Mapping):
            slim["summary"] = {k: summary.get(k) for k in SUMMARY_FIELDS if k in summary}
        self.seq += 1
        slim["seq"] = self.seq
        self._ring.append(clean(slim))

    def since(self, after: int, limit: int = 200) -> dict[str, Any]:
        """Messages numbered above ``after`` (the newest ``limit`` of them), oldest first. An ``after`` beyond
        the last number (the service restarted) counts as 0."""
        if after > self.seq:
            after = 0
        out = [m for m in self._ring if m["seq"] > after]
        first = self._ring[0]["seq"] if self._ring else self.seq + 1
        return {"last": self.seq, "first": first, "messages": out[-limit:] if limit else []}


def _int_param(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise web.HTTPBadRequest(text=json.dumps({"error": f"{name}: expected an integer, got {raw[:40]!r}"}),
                                 content_type="application/json") from None
    if not lo <= value <= hi:
        raise web.HTTPBadRequest(text=json.dumps({"error": f"{name}: must be between {lo} and {hi}"}),
                                 content_type="application/json")
    return value


def _reviewer(value: Any) -> str:
    return _CONTROL.sub("", str(value or "")).strip()[:MAX_REVIEWER]


def _public_item(item: Mapping[str, Any]) -> dict[str, Any]:
    out = {k: item.get(k) for k in ITEM_FIELDS}
    out["audio_url"] = f"/api/review/{int(item['id'])}/audio.wav"
    if "history" in item:
        out["history"] = [dict(h) for h in item["history"]]
    return out


# --------------------------------------------------------------------------------------------- dashboard
class Dashboard:
    """Dashboard routes for the plugin's aiohttp app. Every source is optional:

    ``legs``: returns the live legs (``Guard.legs``: key -> ``LegState``), or None before the guard exists;
    ``detector``: returns the running detector's ``DetectorInfo`` (name, version, warn, hangup) or None;
    ``review_dir``: the review store (``capture.dir``); ``models_dir``: the models directory (versions,
    promotion log); ``feed``: the verdict feed (a new one if not given: add ``dashboard.feed`` to
    ``Bus.listeners``)."""

    def __init__(self, *, legs: LegsSource | None = None, detector: DetectorSource | None = None,
                 review_dir: str | Path | None = None, models_dir: str | Path | None = None,
                 feed: Feed | None = None, max_points: int = 300) -> None:
        self._legs = legs or (lambda: None)
        self._detector = detector or (lambda: None)
        self.review_dir = Path(review_dir) if review_dir else None
        self.models_dir = Path(models_dir) if models_dir else None
        self.feed = feed if feed is not None else Feed()
        self.max_points = max_points
        self._store: ReviewStore | None = None
        self._store_lock = asyncio.Lock()
        self._assets: dict[str, bytes] = {}
        self._server: HttpServer | None = None

    # ---------------------------------------------------------------- wiring
    def attach(self, app: web.Application, server: HttpServer) -> None:
        """Add the routes to ``app``; ``server`` checks tokens and issues sessions."""
        self._server = server
        r = app.router
        r.add_get(LOGIN_PATH, self._login_page)
        r.add_post(LOGIN_PATH, self._login)
        r.add_post("/dashboard/logout", self._logout)
        r.add_get("/dashboard", self._page)
        r.add_get("/dashboard/", self._slash)
        r.add_get("/dashboard/static/{name}", self._asset)
        r.add_get("/api/session", self._session)
        r.add_get("/api/calls", self._calls)
        r.add_get("/api/feed", self._feed)
        r.add_get("/api/review", self._review)
        r.add_get(r"/api/review/{id:\d{1,19}}", self._review_item)
        r.add_get(r"/api/review/{id:\d{1,19}}/audio.wav", self._audio)
        r.add_post(r"/api/review/{id:\d{1,19}}/label", self._label)
        r.add_get("/api/models", self._models)
        app.on_response_prepare.append(self._headers)
        app.on_cleanup.append(self._cleanup)

    async def _headers(self, request: web.Request, response: web.StreamResponse) -> None:
        if request.path.startswith(("/dashboard", "/api/")):
            response.headers.setdefault("X-Content-Type-Options", "nosniff")
            # same-origin, not no-referrer: with no-referrer a browser sends "Origin: null" on form POSTs
            response.headers.setdefault("Referrer-Policy", "same-origin")
            response.headers.setdefault("X-Frame-Options", "DENY")

    async def _cleanup(self, app: web.Application) -> None:
        if self._store is not None:
            store, self._store = self._store, None
            await asyncio.to_thread(store.close)

    async def _read_asset(self, name: str) -> bytes:
        if name not in self._assets:
            self._assets[name] = await asyncio.to_thread((STATIC_DIR / name).read_bytes)
        return self._assets[name]

    # ---------------------------------------------------------------- login / session
    async def _login_form(self, message: str = "", status: int = 200) -> web.Response:
        page = (await self._read_asset("login.html")).decode()
        page = page.replace("{{error}}", html.escape(message))
        return web.Response(text=page, status=status, content_type="text/html",
                            headers={"Cache-Control": "no-store", "Content-Security-Policy": LOGIN_CSP})

    async def _login_page(self, request: web.Request) -> web.Response:
        return await self._login_form()

    async def _login(self, request: web.Request) -> web.StreamResponse:
        assert self._server is not None and self._server.sessions is not None
        if not same_origin(request):
            return await self._login_form("Cross-origin login refused.", status=403)
        try:
            form = await request.post()
        except ValueError:
            return await self._login_form("Could not read the form.", status=400)
        token = form.get("token")
        reviewer = _reviewer(form.get("reviewer"))
        if not isinstance(token, str) or not self._server.token_ok(token.strip()):
            metrics.inc("http_auth_failures")
            log.info("dashboard: login refused (wrong token) from %s", request.remote)
            return await self._login_form("Wrong token.", status=401)
        if not reviewer:
            return await self._login_form("Enter your name: labels record who gave them.", status=400)
        log.info("dashboard: %r logged in from %s", reviewer, request.remote)
        response = web.Response(status=303, headers={"Location": "/dashboard", "Cache-Control": "no-store"})
        ttl = int(self._server.sessions.ttl_s)
        response.set_cookie(SESSION_COOKIE, self._server.sessions.issue(), max_age=ttl, path="/", httponly=True,
                            samesite="Strict", secure=request.secure)
        response.set_cookie(REVIEWER_COOKIE, quote(reviewer, safe=""), max_age=ttl, path="/", httponly=True,
                            samesite="Strict", secure=request.secure)
        return response

    async def _logout(self, request: web.Request) -> web.Response:
        response = json_response({"ok": True, "login": LOGIN_PATH})
        for name in (SESSION_COOKIE, REVIEWER_COOKIE):
            response.del_cookie(name, path="/", httponly=True, samesite="Strict")
        return response

    async def _session(self, request: web.Request) -> web.Response:
        assert self._server is not None
        sessions = self._server.sessions
        expires = sessions.expiry(request.cookies.get(SESSION_COOKIE)) if sessions is not None else None
        auth = "bearer" if self._server.authorized(request.headers.get("Authorization")) else "cookie"
        return json_response({"auth": auth, "expires": expires,
                              "reviewer": _reviewer(unquote(request.cookies.get(REVIEWER_COOKIE, "")))})

    # ---------------------------------------------------------------- page
    async def _page(self, request: web.Request) -> web.Response:
        return web.Response(body=await self._read_asset("dashboard.html"), content_type="text/html",
                            headers={"Cache-Control": "no-store", "Content-Security-Policy": PAGE_CSP})

    async def _slash(self, request: web.Request) -> web.StreamResponse:
        raise web.HTTPFound("/dashboard")

    async def _asset(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        if name not in ASSETS:
            raise web.HTTPNotFound()
        return web.Response(body=await self._read_asset(name), content_type=ASSETS[name],
                            headers={"Cache-Control": "no-cache"})

    # ---------------------------------------------------------------- live calls and feed
    async def _calls(self, request: web.Request) -> web.Response:
        legs_out = []
        try:
            legs = self._legs() or {}
            items = list(legs.items())
        except Exception:  # fail open: the dashboard never breaks the service
            log.exception("dashboard: reading the live legs failed")
            items = []
        for key, state in items:
            try:
                legs_out.append(leg_snapshot(str(key), state, self.max_points))
            except Exception:
                log.exception("dashboard: snapshot of leg %s failed", key)
        legs_out.sort(key=lambda s: (s["tapped_at"] or 0.0, s["key"]))
        return json_response({"ts": round(time.time(), 3), "detector": self._detector_info(), "legs": legs_out})

    def _detector_info(self) -> dict[str, Any] | None:
        try:
            return detector_info(self._detector())
        except Exception:
            return None

    async def _feed(self, request: web.Request) -> web.Response:
        after = _int_param(request, "after", 0, 0, 2**53)
        limit = _int_param(request, "limit", 200, 1, 1000)
        return json_response(self.feed.since(after, limit))

    # ---------------------------------------------------------------- review queue
    async def _open_store(self) -> ReviewStore | None:
        """The review store, opened (in a thread) once it exists; None while there is none. The dashboard
        never creates one: that is the capture's job."""
        if self._store is not None:
            return self._store
        if self.review_dir is None:
            return None
        from plugin.review import DB_FILE, ReviewStore

        async with self._store_lock:
            if self._store is None:
                path = self.review_dir / DB_FILE
                if not await asyncio.to_thread(path.is_file):
                    return None
                self._store = await asyncio.to_thread(ReviewStore, self.review_dir)
        return self._store

    async def _review(self, request: web.Request) -> web.Response:
        which = request.query.get("labelled", "0")
        if which not in ("0", "1", "all"):
            return error(400, "labelled: expected 0 (unlabelled), 1 (labelled) or all")
        limit = _int_param(request, "limit", 50, 1, 500)
        offset = _int_param(request, "offset", 0, 0, 10**9)
        store = await self._open_store()
        if store is None:
            return json_response({"available": False, "items": [], "counts": {"total": 0},
                                  "reason": "no review store yet: enable [capture] to collect chunks of live calls"})
        labelled = None if which == "all" else which == "1"

        def read() -> tuple[list[dict], dict[str, int]]:
            return store.items(labelled=labelled, limit=limit, offset=offset), store.counts()

        items, counts = await asyncio.to_thread(read)
        return json_response({"available": True, "items": [_public_item(i) for i in items], "counts": counts})

    async def _item_or_404(self, request: web.Request) -> tuple[ReviewStore, dict[str, Any]]:
        item_id = int(request.match_info["id"])
        store = await self._open_store()
        if store is None:
            raise web.HTTPNotFound(text=json.dumps({"error": "no review store"}), content_type="application/json")
        item = await asyncio.to_thread(store.get, item_id) if item_id <= MAX_ITEM_ID else None
        if item is None:
            raise web.HTTPNotFound(text=json.dumps({"error": f"no review item {item_id}"}),
                                   content_type="application/json")
        return store, item

    async def _review_item(self, request: web.Request) -> web.Response:
        _, item = await self._item_or_404(request)
        return json_response(_public_item(item))

    async def _audio(self, request: web.Request) -> web.StreamResponse:
        store, item = await self._item_or_404(request)
        root = store.root

        def locate() -> Path | None:
            path = Path(item["audio_path"]).resolve()
            inside = path.is_relative_to(root.resolve())
            return path if inside and path.is_file() else None

        path = await asyncio.to_thread(locate)
        if path is None:
            return error(404, f"the audio of review item {item['id']} is gone")
        # FileResponse reads in the executor and answers Range requests (seeking in <audio>)
        return web.FileResponse(path, headers={"Content-Type": "audio/wav", "Cache-Control": "private, max-age=300"})

    async def _label(self, request: web.Request) -> web.Response:
        from plugin.review import ReviewError, normalise_label

        item_id = int(request.match_info["id"])
        try:
            body = await request.json()
        except ValueError:
            return error(400, "expected a JSON body: {\"label\": ..., \"reviewer\": ..., \"note\": ...}")
        if not isinstance(body, dict):
            return error(400, "expected a JSON object: {\"label\": ..., \"reviewer\": ..., \"note\": ...}")
        try:
            label = normalise_label(str(body.get("label", "")))
        except ReviewError as exc:
            return error(400, str(exc))
        reviewer = _reviewer(body.get("reviewer") or unquote(request.cookies.get(REVIEWER_COOKIE, "")))
        if not reviewer:
            return error(400, "a label needs the reviewer's name (\"reviewer\")")
        note = body.get("note") or ""
        if not isinstance(note, str) or len(note) > MAX_NOTE:
            return error(400, f"note: expected text of at most {MAX_NOTE} characters")
        store, _ = await self._item_or_404(request)
        try:
            item = await asyncio.to_thread(store.label, item_id, label, reviewer, note.strip())
        except ReviewError as exc:  # purged between the check and the label
            return error(404, str(exc))
        log.info("dashboard: review item %d labelled %s by %r", item_id, label, reviewer)
        return json_response(_public_item(item))

    # ---------------------------------------------------------------- models
    async def _models(self, request: web.Request) -> web.Response:
        out: dict[str, Any] = {"running": self._detector_info(), "current": None, "installed": None,
                               "versions": [], "log": []}
        if self.models_dir is not None:
            out.update(await asyncio.to_thread(read_models, self.models_dir))
        return json_response(out)


def read_models(models_dir: Path, log_entries: int = 50) -> dict[str, Any]:
    """The versions (newest first), the installed version's name and calibration summary and the last
    ``log_entries`` promotion-log records (newest first) of ``models_dir``. Blocking: call in a thread."""
    from detector.versions import current_version, list_versions, read_log

    out: dict[str, Any] = {}
    try:
        out["versions"] = list(reversed(list_versions(models_dir)))
    except OSError as exc:
        out["versions"], out["versions_error"] = [], str(exc)
    cur = current_version(models_dir)
    out["current"] = cur.name if cur else None
    try:
        out["log"] = list(reversed(read_log(models_dir)))[:log_entries]
    except (OSError, ValueError) as exc:
        out["log"], out["log_error"] = [], f"promotions.jsonl unreadable: {exc}"
    try:
        cal = json.loads((models_dir / "gbm.calibration.json").read_text())
        out["installed"] = {k: cal[k] for k in INSTALLED_FIELDS if k in cal}
    except (OSError, ValueError):
        out["installed"] = None
    return out
