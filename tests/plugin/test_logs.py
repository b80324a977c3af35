"""JSON log lines carry the call context a collector selects on; text stays the default."""

from __future__ import annotations

import json
import logging

from plugin.logs import JsonFormatter, call_context


def test_json_lines_carry_level_message_and_call_ids():
    rec = logging.LogRecord("plugin.guard", logging.INFO, __file__, 1, "leg %s: %s", ("caller", "spoof"), None)
    for k, v in call_context("1700.1", "caller", "1700.1").items():
        setattr(rec, k, v)
    out = json.loads(JsonFormatter().format(rec))
    assert out["level"] == "INFO" and out["logger"] == "plugin.guard" and out["msg"] == "leg caller: spoof"
    assert (out["call_id"], out["leg"], out["channel_id"]) == ("1700.1", "caller", "1700.1")


def test_a_record_without_call_context_has_no_call_fields():
    rec = logging.LogRecord("x", logging.WARNING, __file__, 1, "plain", (), None)
    out = json.loads(JsonFormatter().format(rec))
    assert out["msg"] == "plain" and "call_id" not in out


def test_json_setup_writes_one_json_object_per_line_with_the_call_id():
    import subprocess
    import sys

    code = ("import logging; from plugin.logs import setup, call_context; setup(fmt='json'); "
            "logging.getLogger('plugin.guard').warning('hanging up %s', 'c9', extra=call_context('c9', 'caller')); "
            "logging.getLogger('x').info('second')")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 2, proc.stderr
    first, second = (json.loads(ln) for ln in lines)
    assert first["msg"] == "hanging up c9" and first["call_id"] == "c9" and first["leg"] == "caller"
    assert second["msg"] == "second" and "call_id" not in second
