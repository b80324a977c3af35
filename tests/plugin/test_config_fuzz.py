"""Fuzzing the config loader: any TOML document, any value of any type in any key and any environment
override either gives a Config or raises ConfigError with one non-empty line that never contains a password.

Default suite: a small sample. Dedicated run: CALLGUARD_FUZZ_EXAMPLES (README, "Tests").
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from fuzzing import fuzz_settings
from hypothesis import given
from hypothesis import strategies as st

from plugin import config as cfgmod
from plugin.config import Config, ConfigError, load_config, parse_config

SECTIONS = dict(cfgmod._SCALAR_SECTIONS)  # ari, redis, media, detector, ... as the loader knows them
KEYS = {name: [f.name for f in dataclasses.fields(cls)] for name, cls in SECTIONS.items()}
POLICY_KEYS = ["legs", "window", "min_chunks", "warn_media", "hangup_grace_s", "on_bonafide", "on_suspicious",
               "on_spoof"]
ROUTE_KEYS = ["policy", "context", "endpoint", "caller_id", "exten"]

# what tomllib can produce: strings, 64-bit ints (bigger here too), floats with inf/nan, booleans, dates and
# times, arrays, tables
scalars = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", "ulaw", "gbm", "sound:beep", "caller", "spoof", "hangup", "default", "http://127.0.0.1:8088",
                     "http://[", "redis://h:99999", "(", "a{99999999999}", "a" * 70, "x\x00y", "\u2028", "9" * 5000,
                     "-1", "1e3", " 7 "]),
    st.integers(), st.integers(-(2 ** 70), 2 ** 70), st.floats(allow_subnormal=False),
    st.sampled_from([float("inf"), float("nan"), 1e400]),
    st.booleans(), st.datetimes(), st.dates(), st.times())
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                      max_leaves=8)
keys = st.one_of(st.text(max_size=12), st.sampled_from(["bad\nkey", "x\ry", "\x1c", "policies", "routes"]))
secrets = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=4, max_size=20).map(
    lambda s: f"pw-{s}-S3CR3T")


SECRET_KEYS = sorted(cfgmod._SECRET_KEYS)  # "ari.password", ...: values that must never be echoed


@st.composite
def documents(draw) -> tuple[dict, dict, list[str]]:
    """A valid document damaged by a few edits, plus environment overrides; returns (raw, env, secrets)."""
    raw: dict = {"media": {"port": 0}}
    planted = []
    for dotted in SECRET_KEYS:
        section, key = dotted.split(".")
        planted.append(draw(secrets))
        raw.setdefault(section, {})[key] = planted[-1]
    env: dict[str, str] = {}
    for _ in range(draw(st.integers(0, 4))):
        what = draw(st.sampled_from(["key", "key", "key", "section", "policy", "route", "default", "env", "drop"]))
        if what == "key":
            section = draw(st.sampled_from(list(SECTIONS)))
            key = draw(st.one_of(st.sampled_from(KEYS[section]), keys))
            if f"{section}.{key}" in SECRET_KEYS:
                continue  # the secrets stay the planted ones: the check is that they never leak
            body = raw.setdefault(section, {})
            if isinstance(body, dict):
                body[key] = draw(values)
        elif what == "section":
            raw[draw(st.one_of(st.sampled_from([*SECTIONS, "policies", "routes"]), keys))] = draw(values)
        elif what == "policy":
            pol = draw(st.dictionaries(st.one_of(st.sampled_from(POLICY_KEYS), keys), values, max_size=4))
            policies = raw.setdefault("policies", {})
            if isinstance(policies, dict):
                policies[draw(st.one_of(st.just("default"), keys))] = pol
        elif what == "route":
            route = draw(st.dictionaries(st.one_of(st.sampled_from(ROUTE_KEYS), keys), values, max_size=4))
            routes = raw.setdefault("routes", [])
            if isinstance(routes, list):
                routes.append(route)
        elif what == "default":
            raw["default_policy"] = draw(values)
        elif what == "env":
            section = draw(st.sampled_from(list(SECTIONS)))
            key = draw(st.sampled_from(KEYS[section]))
            if f"{section}.{key}" in SECRET_KEYS:
                value = draw(secrets)
                planted.append(value)
            else:
                value = draw(st.one_of(st.text(max_size=30), st.sampled_from(["-1", "1e3", "inf", "0x10", "9" * 5000,
                                                                              "yes", "off"])))
            env[f"CALLGUARD_{section.upper()}_{key.upper()}"] = value
        elif what == "drop" and raw:
            raw.pop(draw(st.sampled_from(sorted(raw))))
    return raw, env, planted


def _check_outcome(fn, passwords: list[str]) -> Config | None:
    try:
        cfg = fn()
    except ConfigError as exc:
        msg = str(exc)
        assert msg and len(msg.splitlines()) == 1, f"not one line: {msg!r}"
        for pw in passwords:
            assert pw not in msg, "a password leaked into the error message"
        return None
    assert isinstance(cfg, Config)
    for pw in passwords:
        assert pw not in repr(cfg)
    return cfg


@pytest.mark.fuzz
@fuzz_settings(50, weight=0.5)
@given(doc=documents())
def test_any_document_and_environment_gives_a_config_or_one_line_config_error(doc):
    raw, env, passwords = doc
    cfg = _check_outcome(lambda: parse_config(raw, env, check_port=False), passwords)
    if cfg is not None:  # what was accepted is usable: every route names a policy, the default exists
        assert cfg.default_policy in cfg.policies
        assert all(r.policy in cfg.policies for r in cfg.routes)
        assert cfg.policy_for() is cfg.policies[cfg.default_policy] or cfg.routes


def _toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, str):
        return '"' + "".join(c if c.isalnum() or c in " :/.-_" else f"\\u{ord(c):04x}" for c in v
                             if ord(c) < 0xD800 or ord(c) > 0xDFFF) + '"'
    if isinstance(v, float):
        return "nan" if v != v else "inf" if v == float("inf") else "-inf" if v == float("-inf") else repr(v)
    if isinstance(v, dt.datetime | dt.date | dt.time):
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_toml_value(str(k))} = {_toml_value(x)}" for k, x in v.items()) + "}"
    return str(v)


fragments = st.one_of(
    st.sampled_from(["[ari]", "[redis]", "[media]", "[detector]", "[policies.default]", "[[routes]]", "[policies]",
                     "[ari.sub]", "[[ari]]", "ari = 1", "= 1", "[", "]", '"', "'''", "a = " + "[" * 20000,
                     "a = " + "{b = " * 2000, "port = 99999999999999999999", "port = 0x7fffffff", "port = inf",
                     "url = 'http://['", "bind_host = '" + "a" * 70 + "'", "reorder_window = nan",
                     'policy = ["x"]', "default_policy = []", "context = '(('", "exten = 'a{4294967296}'",
                     "\x00", "\ud7ff", "key = 1979-05-27T07:32:00Z"]),
    st.tuples(st.sampled_from(["url", "port", "format", "window", "legs", "policy", "password", "name", "workers",
                               "on_spoof", "context", "stream_maxlen", "hangup_grace_s", "x"]), values).map(
        lambda kv: f"{kv[0]} = {_toml_value(kv[1])}"),
    st.text(max_size=30))


@pytest.mark.fuzz
@fuzz_settings(30, weight=0.25)
@given(lines=st.lists(fragments, max_size=12), raw_bytes=st.one_of(st.none(), st.binary(max_size=200)))
def test_any_config_file_gives_a_config_or_one_line_config_error(tmp_path, lines, raw_bytes):
    path = tmp_path / "callguard.toml"
    secret = "pw-file-S3CR3T"
    text = f"[ari]\npassword = '{secret}'\n[media]\nport = 0\n" + "\n".join(lines)
    path.write_bytes(raw_bytes if raw_bytes is not None else text.encode("utf-8", "surrogatepass"))
    _check_outcome(lambda: load_config(path, {}, check_port=False), [secret])
