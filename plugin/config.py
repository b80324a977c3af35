"""Plugin configuration: one TOML file plus ``CALLGUARD_<SECTION>_<KEY>`` environment overrides.

Everything is validated once at start into frozen dataclasses. A problem is reported as a single
``ConfigError`` line that names the key (``ari.url: ...``). Secrets are masked in ``repr`` and never
appear in error messages.
"""

from __future__ import annotations

import os
import re
import socket
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any
from urllib.parse import urlparse, urlunparse

VERDICTS = ("bonafide", "suspicious", "spoof")
ACTIONS = ("annotate", "warn", "hangup")
LEGS = ("caller", "callee")
FORMATS = ("ulaw", "slin16")
DETECTORS = ("gbm", "wavlm", "fused")
ENV_PREFIX = "CALLGUARD_"


class ConfigError(ValueError):
    """One line naming the offending key and the problem."""

    def __init__(self, message: str) -> None:  # keys from the file may hold line breaks: keep it one line
        super().__init__(" ".join(message.splitlines()))


def _mask(value: str) -> str:
    return "***" if value else "''"


def redact_url(url: str) -> str:
    """``url`` with any ``user:password@`` part replaced by ``***@`` (for logs, reprs and errors)."""
    try:
        parsed = urlparse(url)
    except ValueError:
        return "<unparsable URL>"
    if "@" not in parsed.netloc:
        return url
    return urlunparse(parsed._replace(netloc="***@" + parsed.netloc.rsplit("@", 1)[1]))


@dataclass(frozen=True)
class AriConfig:
    url: str = "http://127.0.0.1:8088"
    username: str = "callguard"
    password: str = field(default="", repr=False)
    app: str = "callguard"
    tls_ca_file: str = ""  # https:// url: CA bundle to verify Asterisk's certificate (default: system CAs)

    def __repr__(self) -> str:
        return (f"AriConfig(url={redact_url(self.url)!r}, username={self.username!r}, "
                f"password={_mask(self.password)}, app={self.app!r}, tls_ca_file={self.tls_ca_file!r})")


@dataclass(frozen=True)
class RedisConfig:
    url: str = "redis://127.0.0.1:6379/0"
    password: str = field(default="", repr=False)
    channel: str = "callguard:verdicts"
    stream: str = "callguard:verdicts:log"
    stream_maxlen: int = 100_000
    spool_path: str = "callguard-spool.jsonl"
    spool_max_bytes: int = 10_000_000
    summary_log: str = "callguard-summary.jsonl"
    # rediss:// only: CA bundle to verify the server (default: system CAs); client certificate + key when
    # the server asks for one (redis.conf tls-auth-clients)
    tls_ca_file: str = ""
    tls_cert_file: str = ""
    tls_key_file: str = ""

    def __repr__(self) -> str:
        return (f"RedisConfig(url={redact_url(self.url)!r}, password={_mask(self.password)}, "
                f"channel={self.channel!r}, stream={self.stream!r}, stream_maxlen={self.stream_maxlen}, "
                f"tls_ca_file={self.tls_ca_file!r}, tls_cert_file={self.tls_cert_file!r}, "
                f"tls_key_file={self.tls_key_file!r})")


@dataclass(frozen=True)
class HttpConfig:
    """The plugin's own HTTP endpoint: /health (open) and /metrics (bearer token)."""

    enabled: bool = True
    bind_host: str = "127.0.0.1"
    port: int = 9310  # 0: any free port (tests)
    token: str = field(default="", repr=False)  # empty: /metrics and every other path answer 403

    def __repr__(self) -> str:
        return (f"HttpConfig(enabled={self.enabled}, bind_host={self.bind_host!r}, port={self.port}, "
                f"token={_mask(self.token)})")


@dataclass(frozen=True)
class MediaConfig:
    bind_host: str = "127.0.0.1"
    port: int = 40000  # 0: any free port (tests)
    external_host: str = ""  # address Asterisk sends RTP to; default bind_host
    format: str = "ulaw"
    reorder_window: int = 3


@dataclass(frozen=True)
class TelephonyConfig:
    kind: str = "asterisk"  # asterisk (ARI, [ari]) or freeswitch (Event Socket, [freeswitch])


@dataclass(frozen=True)
class FreeSwitchConfig:
    """The FreeSWITCH Event Socket (event_socket.conf.xml) and how taps stream (plugin.freeswitch)."""

    host: str = "127.0.0.1"
    port: int = 8021
    password: str = field(default="", repr=False)
    event_format: str = "plain"  # plain or json
    unicast_ip: str = "127.0.0.1"  # FreeSWITCH binds its unicast socket here and sends from it
    unicast_port_min: int = 42000  # ports on the FreeSWITCH host for tap streams, one per tapped leg
    unicast_port_max: int = 42999
    unicast_format: str = "l16"  # l16 (decoded, 8 kHz) or pcmu (flags: native)
    tap_context: str = "callguard-tap"  # dialplan context that answers and parks tap channels
    guard_variable: str = "callguard"  # channel variable marking guarded calls (bridge | answer)

    def __repr__(self) -> str:
        return (f"FreeSwitchConfig(host={self.host!r}, port={self.port}, password={_mask(self.password)}, "
                f"unicast_ip={self.unicast_ip!r}, unicast_ports={self.unicast_port_min}-{self.unicast_port_max})")


@dataclass(frozen=True)
class DetectorConfig:
    name: str = "gbm"
    models_dir: str = ""
    workers: int = 1
    queue_size: int = 16
    loader: str = "detector.scoring:load_detector"  # advanced: "module:function(name, models_dir)"
    # scale-out: "local" (process pool here) or "redis" (chunks on a Redis Stream for `callguard worker`)
    mode: str = "local"
    stream: str = "callguard:chunks"  # the chunk stream (redis mode); workers read it as consumer group
    group: str = "callguard-workers"
    results_prefix: str = "callguard:results"  # each plugin reads results on <prefix>:<its id>
    max_pending: int = 64  # chunks of this plugin in the stream unanswered; beyond it the queue sheds
    result_timeout_ms: int = 15000  # no result by then: the chunk is reported skipped
    claim_idle_ms: int = 5000  # workers claim chunks of a dead worker pending this long (XAUTOCLAIM)
    # hot reload: poll <models_dir>/versions/current this often and switch to a newly installed model
    # without dropping calls or chunks (plugin and workers); 0 disables
    reload_interval_s: float = 5.0


@dataclass(frozen=True)
class Policy:
    name: str
    legs: tuple[str, ...] = ("caller",)
    window: int = 3
    min_chunks: int = 2
    hangup_window: int | None = None  # chunks averaged for hang-up; None: the detector's calibration says
    # hang-up is opt-in per policy: the shipped models still false-alarm on some unseen voices
    # (models/reports/eval/report.md), and a wrongly dropped customer call costs more than a warning
    actions: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: {
        "bonafide": ("annotate",), "suspicious": ("annotate", "warn"), "spoof": ("annotate", "warn")})
    warn_media: str = "sound:beep"
    hangup_grace_s: float = 0.5  # after a warning, wait this long before hanging up (so it is heard)
    capture: bool = True  # chunks of this policy's calls may be captured for review ([capture], off by default)

    def allows(self, verdict: str, action: str) -> bool:
        return action in self.actions.get(verdict, ())


@dataclass(frozen=True)
class Route:
    policy: str
    context: str = ""  # each matcher is a regular expression (full match); empty matches anything
    endpoint: str = ""
    caller_id: str = ""
    exten: str = ""

    def matches(self, context: str, endpoint: str, caller_id: str, exten: str) -> bool:
        pairs = ((self.context, context), (self.endpoint, endpoint), (self.caller_id, caller_id),
                 (self.exten, exten))
        return all(not pat or re.fullmatch(pat, val or "") for pat, val in pairs)


@dataclass(frozen=True)
class Config:
    ari: AriConfig
    redis: RedisConfig
    media: MediaConfig
    detector: DetectorConfig
    policies: Mapping[str, Policy]
    routes: tuple[Route, ...]
    default_policy: str = "default"
    http: HttpConfig = field(default_factory=HttpConfig)
    capture: Any = None  # plugin.review.CaptureConfig ([capture] section, parsed there)
    telephony: TelephonyConfig = field(default_factory=TelephonyConfig)
    freeswitch: FreeSwitchConfig = field(default_factory=FreeSwitchConfig)

    def policy_for(self, context: str = "", endpoint: str = "", caller_id: str = "", exten: str = "") -> Policy:
        for route in self.routes:
            if route.matches(context, endpoint, caller_id, exten):
                return self.policies[route.policy]
        return self.policies[self.default_policy]


# --------------------------------------------------------------------------------------------- parsing

_SCALAR_SECTIONS: dict[str, type] = {"ari": AriConfig, "redis": RedisConfig, "media": MediaConfig,
                                     "detector": DetectorConfig, "http": HttpConfig,
                                     "telephony": TelephonyConfig, "freeswitch": FreeSwitchConfig}
_SECRET_KEYS = {"ari.password", "redis.password", "http.token", "freeswitch.password"}
HTTP_TOKEN_MIN_LEN = 16
RELOAD_INTERVAL_RANGE_S = (0.1, 86400.0)  # detector.reload_interval_s: 0 (off) or within this range


def _coerce(key: str, value: Any, kind: type) -> Any:
    if kind is bool:
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower() if isinstance(value, str | int) else None
        if text in ("true", "yes", "on", "1"):
            return True
        if text in ("false", "no", "off", "0"):
            return False
        raise ConfigError(f"{key}: expected true or false")
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        try:
            return float(value)
        except (ValueError, OverflowError):  # OverflowError: an integer beyond float's range
            raise ConfigError(f"{key}: expected a number, got {value!r}") from None
    if kind is int:
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        try:
            return int(value)
        except (TypeError, ValueError, OverflowError):  # OverflowError: inf
            raise ConfigError(f"{key}: expected an integer, got {value!r}") from None
    if kind is str:
        if not isinstance(value, str | int | float) or isinstance(value, bool):
            raise ConfigError(f"{key}: expected a string")
        return str(value)
    return value


def _section(name: str, raw: Mapping[str, Any], env: Mapping[str, str]) -> Any:
    cls = _SCALAR_SECTIONS[name]
    known = {f.name: f for f in fields(cls)}
    values = dict(raw)
    for k in values:
        if k not in known:
            raise ConfigError(f"{name}.{k}: unknown key (known: {', '.join(known)})")
    for k in known:
        env_key = f"{ENV_PREFIX}{name.upper()}_{k.upper()}"
        if env_key in env:
            values[k] = env[env_key]
    kinds = {"int": int, "str": str, "bool": bool, "float": float}
    out = {}
    for k, v in values.items():
        kind = kinds.get(str(known[k].type), str)
        try:
            out[k] = _coerce(f"{name}.{k}", v, kind)
        except ConfigError:
            if f"{name}.{k}" in _SECRET_KEYS:  # never echo a secret, even a malformed one
                raise ConfigError(f"{name}.{k}: expected a string") from None
            raise
    return cls(**out)


def _check_url(key: str, url: str, schemes: tuple[str, ...]) -> None:
    shown = redact_url(url)  # a URL may carry a password: errors show it masked
    try:
        parsed = urlparse(url)
    except ValueError:
        raise ConfigError(f"{key}: bad URL {shown!r}") from None
    if parsed.scheme not in schemes or not parsed.hostname:
        raise ConfigError(f"{key}: bad URL {shown!r} (expected {' or '.join(s + '://host[:port]' for s in schemes)})")
    try:
        _ = parsed.port
    except ValueError:
        raise ConfigError(f"{key}: bad port in URL {shown!r}") from None


def _check_file(key: str, path: str) -> None:
    if path and not os.access(path, os.R_OK):
        reason = "no such file" if not os.path.exists(path) else "not readable by this user"
        raise ConfigError(f"{key}: {reason}: {path!r}")


def _check_host(key: str, host: str) -> None:
    try:
        socket.getaddrinfo(host, None)
    except (OSError, ValueError):  # ValueError: NUL, or a label too long for IDNA (UnicodeError)
        raise ConfigError(f"{key}: cannot resolve {host!r}") from None


def _str_list(key: str, value: Any, allowed: tuple[str, ...]) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{key}: expected a list of strings from {', '.join(allowed)}")
    for v in value:
        if v not in allowed:
            raise ConfigError(f"{key}: unknown value {v!r} (expected {', '.join(allowed)})")
    return tuple(value)


def _policy(name: str, raw: Any) -> Policy:
    key = f"policies.{name}"
    if not isinstance(raw, Mapping):
        raise ConfigError(f"{key}: expected a table")
    known = {"legs", "window", "min_chunks", "hangup_window", "warn_media", "hangup_grace_s", "on_bonafide",
             "on_suspicious", "on_spoof", "capture"}
    for k in raw:
        if k not in known:
            raise ConfigError(f"{key}.{k}: unknown key (known: {', '.join(sorted(known))})")
    base = Policy(name=name)
    actions = dict(base.actions)
    for verdict in VERDICTS:
        if f"on_{verdict}" in raw:
            actions[verdict] = _str_list(f"{key}.on_{verdict}", raw[f"on_{verdict}"], ACTIONS)
    for verdict in ("bonafide", "suspicious"):
        if "hangup" in actions[verdict]:
            raise ConfigError(f"{key}.on_{verdict}: hangup is only allowed on spoof")
    legs = _str_list(f"{key}.legs", raw.get("legs", list(base.legs)), LEGS)
    window = _coerce(f"{key}.window", raw.get("window", base.window), int)
    min_chunks = _coerce(f"{key}.min_chunks", raw.get("min_chunks", base.min_chunks), int)
    if window < 1:
        raise ConfigError(f"{key}.window: must be >= 1, got {window}")
    if min_chunks < 1:
        raise ConfigError(f"{key}.min_chunks: must be >= 1, got {min_chunks}")
    hangup_window = raw.get("hangup_window")
    if hangup_window is not None:
        hangup_window = _coerce(f"{key}.hangup_window", hangup_window, int)
        if hangup_window < 1:
            raise ConfigError(f"{key}.hangup_window: must be >= 1, got {hangup_window}")
    warn_media = _coerce(f"{key}.warn_media", raw.get("warn_media", base.warn_media), str)
    if not re.fullmatch(r"(sound|recording|tone|digits|number):\S+", warn_media):
        raise ConfigError(f"{key}.warn_media: expected an ARI media URI like 'sound:beep', got {warn_media!r}")
    grace = raw.get("hangup_grace_s", base.hangup_grace_s)
    if isinstance(grace, bool) or not isinstance(grace, int | float) or not 0 <= grace <= 10:
        raise ConfigError(f"{key}.hangup_grace_s: expected seconds between 0 and 10, got {grace!r}")
    return Policy(name=name, legs=legs, window=window, min_chunks=min_chunks, hangup_window=hangup_window,
                  actions=actions, warn_media=warn_media, hangup_grace_s=float(grace),
                  capture=_coerce(f"{key}.capture", raw.get("capture", base.capture), bool))


def _check_udp_port(host: str, port: int) -> None:
    if port == 0:
        return
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.bind((host, port))
    except OSError as exc:
        reason = "port in use" if exc.errno == 98 else exc.strerror
        raise ConfigError(f"media.port: cannot bind UDP {host}:{port} ({reason})") from None
    finally:
        sock.close()


def parse_config(raw: Mapping[str, Any], env: Mapping[str, str] | None = None, *,
                 check_port: bool = True) -> Config:
    """Validate a parsed TOML document (plus environment overrides) into a ``Config``."""
    env = os.environ if env is None else env
    for section in raw:
        if section not in (*_SCALAR_SECTIONS, "policies", "routes", "default_policy", "capture"):
            raise ConfigError(f"{section}: unknown section")
    sections = {}
    for name in _SCALAR_SECTIONS:
        body = raw.get(name, {})
        if not isinstance(body, Mapping):
            raise ConfigError(f"{name}: expected a table")
        sections[name] = _section(name, body, env)
    ari: AriConfig = sections["ari"]
    redis: RedisConfig = sections["redis"]
    media: MediaConfig = sections["media"]
    det: DetectorConfig = sections["detector"]
    http: HttpConfig = sections["http"]

    _check_url("ari.url", ari.url, ("http", "https"))
    if "@" in urlparse(ari.url).netloc:
        raise ConfigError("ari.url: must not contain credentials (use ari.username and ari.password)")
    _check_file("ari.tls_ca_file", ari.tls_ca_file)
    if ari.tls_ca_file and urlparse(ari.url).scheme != "https":
        raise ConfigError("ari.tls_ca_file: only used with an https:// ari.url")
    if not ari.username:
        raise ConfigError("ari.username: missing")
    tel: TelephonyConfig = sections["telephony"]
    fs: FreeSwitchConfig = sections["freeswitch"]
    if tel.kind not in ("asterisk", "freeswitch"):
        raise ConfigError(f"telephony.kind: unknown PBX {tel.kind!r} (expected asterisk or freeswitch)")
    if not ari.password and tel.kind == "asterisk":
        raise ConfigError("ari.password: missing password (set it in the file or CALLGUARD_ARI_PASSWORD)")
    if tel.kind == "freeswitch":
        _check_freeswitch(fs)
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", ari.app):
        raise ConfigError(f"ari.app: invalid application name {ari.app!r}")
    _check_url("redis.url", redis.url, ("redis", "rediss"))
    for k in ("tls_ca_file", "tls_cert_file", "tls_key_file"):
        _check_file(f"redis.{k}", getattr(redis, k))
        if getattr(redis, k) and urlparse(redis.url).scheme != "rediss":
            raise ConfigError(f"redis.{k}: only used with a rediss:// redis.url (TLS)")
    if bool(redis.tls_cert_file) != bool(redis.tls_key_file):
        raise ConfigError("redis.tls_cert_file: a client certificate needs both tls_cert_file and tls_key_file")
    if not redis.channel:
        raise ConfigError("redis.channel: must not be empty")
    if not redis.stream:
        raise ConfigError("redis.stream: must not be empty")
    if redis.stream_maxlen < 1:
        raise ConfigError(f"redis.stream_maxlen: must be >= 1, got {redis.stream_maxlen}")
    if redis.spool_max_bytes < 1024:
        raise ConfigError(f"redis.spool_max_bytes: must be >= 1024, got {redis.spool_max_bytes}")
    if media.format not in FORMATS:
        raise ConfigError(f"media.format: unknown format {media.format!r} (expected {', '.join(FORMATS)})")
    if not 0 <= media.port <= 65535:
        raise ConfigError(f"media.port: out of range: {media.port}")
    _check_host("media.bind_host", media.bind_host)
    if not 0 <= media.reorder_window <= 50:
        raise ConfigError(f"media.reorder_window: must be 0..50, got {media.reorder_window}")
    if det.name not in DETECTORS:
        raise ConfigError(f"detector.name: unknown detector {det.name!r} (expected {', '.join(DETECTORS)})")
    if det.workers < 1:
        raise ConfigError(f"detector.workers: must be >= 1, got {det.workers}")
    if det.queue_size < 1:
        raise ConfigError(f"detector.queue_size: must be >= 1, got {det.queue_size}")
    if det.models_dir and not Path(det.models_dir).is_dir():
        raise ConfigError(f"detector.models_dir: no such directory {det.models_dir!r}")
    if ":" not in det.loader:
        raise ConfigError(f"detector.loader: expected 'module:function', got {det.loader!r}")
    if det.mode not in ("local", "redis"):
        raise ConfigError(f"detector.mode: expected 'local' or 'redis', got {det.mode!r}")
    for k in ("max_pending", "result_timeout_ms", "claim_idle_ms"):
        if getattr(det, k) < 1:
            raise ConfigError(f"detector.{k}: must be >= 1, got {getattr(det, k)}")
    check_reload_interval(det.reload_interval_s)
    if det.mode == "redis" and det.result_timeout_ms <= det.claim_idle_ms:
        raise ConfigError("detector.result_timeout_ms: must exceed detector.claim_idle_ms (a dead worker's "
                          "chunk is claimed by another after claim_idle_ms)")
    if not 0 <= http.port <= 65535:
        raise ConfigError(f"http.port: out of range: {http.port}")
    if http.enabled:
        _check_host("http.bind_host", http.bind_host)
    if http.token and len(http.token) < HTTP_TOKEN_MIN_LEN:
        raise ConfigError(f"http.token: too short (at least {HTTP_TOKEN_MIN_LEN} characters, e.g. "
                          "`openssl rand -hex 32`)")
    if http.token and (not http.token.isprintable() or any(c.isspace() for c in http.token)):
        raise ConfigError("http.token: must be printable and contain no spaces")

    raw_policies = raw.get("policies", {})
    if not isinstance(raw_policies, Mapping):
        raise ConfigError("policies: expected a table of named policies")
    policies = {name: _policy(name, body) for name, body in raw_policies.items()}
    if "default" not in policies:
        policies["default"] = Policy(name="default")
    default_policy = raw.get("default_policy", "default")
    if not isinstance(default_policy, str) or default_policy not in policies:
        raise ConfigError(f"default_policy: unknown policy {default_policy!r}")

    raw_routes = raw.get("routes", [])
    if not isinstance(raw_routes, list):
        raise ConfigError("routes: expected an array of tables ([[routes]])")
    routes = []
    for i, body in enumerate(raw_routes):
        key = f"routes[{i}]"
        if not isinstance(body, Mapping):
            raise ConfigError(f"{key}: expected a table")
        for k in body:
            if k not in {"policy", "context", "endpoint", "caller_id", "exten"}:
                raise ConfigError(f"{key}.{k}: unknown key")
        pol = body.get("policy")
        if not pol:
            raise ConfigError(f"{key}.policy: missing")
        if not isinstance(pol, str) or pol not in policies:
            raise ConfigError(f"{key}.policy: unknown policy {pol!r} (defined: {', '.join(sorted(policies))})")
        for k in ("context", "endpoint", "caller_id", "exten"):
            try:
                re.compile(str(body.get(k, "")))
            except (re.error, OverflowError, RecursionError) as exc:  # a{99999999999}, ((((...
                raise ConfigError(f"{key}.{k}: bad regular expression ({exc})") from None
        routes.append(Route(**{k: str(v) for k, v in body.items()}))

    if check_port:
        _check_udp_port(media.bind_host, media.port)
    return Config(ari=ari, redis=redis, media=media, detector=det, policies=policies, routes=tuple(routes),
                  default_policy=default_policy, http=http, capture=_capture(raw.get("capture", {}), env),
                  telephony=tel, freeswitch=fs)


def check_reload_interval(seconds: float) -> None:
    """``detector.reload_interval_s``: 0 (hot reload off) or a finite number of seconds in range."""
    low, high = RELOAD_INTERVAL_RANGE_S
    if seconds != 0 and not low <= seconds <= high:  # NaN fails both
        raise ConfigError(f"detector.reload_interval_s: expected 0 (off) or seconds between {low:g} and {high:g}, "
                          f"got {seconds!r}")


def _check_freeswitch(fs: FreeSwitchConfig) -> None:
    if not fs.password:
        raise ConfigError("freeswitch.password: missing password (set it in the file or "
                          "CALLGUARD_FREESWITCH_PASSWORD)")
    if any(c in fs.password for c in "\r\n"):
        raise ConfigError("freeswitch.password: must be one line")
    if not 1 <= fs.port <= 65535:
        raise ConfigError(f"freeswitch.port: out of range: {fs.port}")
    _check_host("freeswitch.host", fs.host)
    if fs.event_format not in ("plain", "json"):
        raise ConfigError(f"freeswitch.event_format: expected plain or json, got {fs.event_format!r}")
    if not re.fullmatch(r"[0-9A-Fa-f.:]+", fs.unicast_ip):
        raise ConfigError(f"freeswitch.unicast_ip: expected an IP address, got {fs.unicast_ip!r}")
    if not 1024 <= fs.unicast_port_min <= fs.unicast_port_max <= 65535:
        raise ConfigError("freeswitch.unicast_port_min: expected 1024 <= unicast_port_min <= unicast_port_max "
                          "<= 65535")
    if fs.unicast_format not in ("l16", "pcmu"):
        raise ConfigError(f"freeswitch.unicast_format: expected l16 or pcmu, got {fs.unicast_format!r}")
    for key in ("tap_context", "guard_variable"):
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", getattr(fs, key)):
            raise ConfigError(f"freeswitch.{key}: invalid name {getattr(fs, key)!r}")


def _capture(raw: Any, env: Mapping[str, str]) -> Any:
    from plugin.review import parse_capture  # the review store owns its section

    return parse_capture(raw, env)


def load_config(path: str | Path, env: Mapping[str, str] | None = None, *, check_port: bool = True) -> Config:
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror})") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError, RecursionError) as exc:  # bytes, [[[[...
        raise ConfigError(f"{path}: not valid TOML ({exc})") from None
    return parse_config(raw, env, check_port=check_port)
