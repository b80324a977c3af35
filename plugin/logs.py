"""Log set-up for the console command: human-readable lines, or JSON lines for log collectors.

JSON records carry ``ts``, ``level``, ``logger`` and ``msg``, plus the call context (``call_id``, ``leg``,
``channel_id``) when the log call passes it with ``extra=call_context(...)``, so a collector can select
one call's lines without parsing messages.
"""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Any

CONTEXT_KEYS = ("call_id", "leg", "channel_id")
FORMATS = ("text", "json")


def call_context(call_id: str, leg: str | None = None, channel_id: str | None = None) -> dict[str, str]:
    """``extra=`` for a log call about one call (or one leg of it)."""
    ctx = {"call_id": call_id}
    if leg:
        ctx["leg"] = leg
    if channel_id:
        ctx["channel_id"] = channel_id
    return ctx


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {"ts": round(record.created, 3), "level": record.levelname, "logger": record.name,
                               "msg": record.getMessage()}
        for key in CONTEXT_KEYS:
            value = getattr(record, key, None)
            if value is not None:
                out[key] = str(value)
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def setup(verbose: bool = False, fmt: str | None = None) -> None:
    """Configure the root logger; ``fmt`` (or env CALLGUARD_LOG_FORMAT) is ``text`` or ``json``."""
    fmt = (fmt or os.environ.get("CALLGUARD_LOG_FORMAT") or "text").lower()
    if fmt not in FORMATS:
        print(f"callguard: unknown log format {fmt!r} (use text or json); using text", file=sys.stderr)
        fmt = "text"
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler], force=True)
