"""One way to make a Redis client for the bus and the reactions: password (AUTH) and TLS (``rediss://``).

``describe_error`` turns a failed connection into one line that names the problem (wrong password, TLS
handshake, refused, ...) without ever including the password.
"""

from __future__ import annotations

import asyncio
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

import redis.asyncio as aioredis
from redis.exceptions import AuthenticationError, RedisError, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from plugin.config import RedisConfig, redact_url


@dataclass(frozen=True)
class RedisTls:
    """Files for a ``rediss://`` connection; empty values mean: system CAs, no client certificate."""

    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""

    @classmethod
    def from_config(cls, cfg: RedisConfig) -> RedisTls:
        return cls(cfg.tls_ca_file, cfg.tls_cert_file, cfg.tls_key_file)

    def __bool__(self) -> bool:
        return bool(self.ca_file or self.cert_file or self.key_file)


def make_redis(url: str, password: str, tls: RedisTls | None = None, **kwargs: Any) -> aioredis.Redis:
    """An asyncio Redis client for ``url`` (``redis://`` or ``rediss://``), decoding replies to str.

    ``rediss://`` always verifies the server certificate and its host name (against ``tls.ca_file`` or
    the system CAs); there is deliberately no switch to turn verification off.
    """
    tls = tls or RedisTls()
    opts: dict[str, Any] = {"password": password or None, "decode_responses": True, **kwargs}
    if urlparse(url).scheme == "rediss":
        opts.update(ssl_cert_reqs="required", ssl_check_hostname=True)
        if tls.ca_file:
            opts["ssl_ca_certs"] = tls.ca_file
        if tls.cert_file:
            opts.update(ssl_certfile=tls.cert_file, ssl_keyfile=tls.key_file or None)
    elif tls:
        raise ValueError(f"Redis TLS files given but {redact_url(url)!r} is not a rediss:// URL")
    return aioredis.Redis.from_url(url, **opts)


def _causes(exc: BaseException) -> list[BaseException]:
    out: list[BaseException] = []
    cur: BaseException | None = exc
    while cur is not None and cur not in out:
        out.append(cur)
        cur = cur.__cause__ or cur.__context__
    return out


def describe_error(exc: BaseException) -> str:
    """One line naming what went wrong talking to Redis; never contains the password."""
    chain = _causes(exc)
    text = " ".join(str(e) for e in chain)
    if "NOAUTH" in text or "Authentication required" in text or "already authenticated" in text:
        # redis-py 6+ opens with HELLO; a server with requirepass answers "HELLO must be called with the
        # client already authenticated" when no password was sent
        return "authentication required: the server has a password; set redis.password or CALLGUARD_REDIS_PASSWORD"
    if any(isinstance(e, AuthenticationError) for e in chain) or "WRONGPASS" in text:
        if "without any password configured" in text or "no password is set" in text:
            return "authentication failed: a password is set but the server has none (requirepass)"
        return ("authentication failed: wrong password (or user) for this server; check redis.password / "
                "CALLGUARD_REDIS_PASSWORD")
    if any(isinstance(e, ssl.SSLCertVerificationError) for e in chain) or "CERTIFICATE_VERIFY_FAILED" in text:
        return ("TLS handshake failed: the server's certificate is not trusted or does not match the host "
                "(set redis.tls_ca_file to the CA that signed it)")
    if any(isinstance(e, ssl.SSLError) for e in chain) or "SSL" in text:
        reason = next((getattr(e, "reason", None) for e in chain if isinstance(e, ssl.SSLError)), None)
        return (f"TLS handshake failed ({reason or 'SSL error'}): does the server want a client certificate "
                "(redis.tls_cert_file / tls_key_file), or is this not a TLS port?")
    if any(isinstance(e, RedisTimeoutError | TimeoutError | asyncio.TimeoutError) for e in chain):
        return "timed out (is the server up, and is redis:// vs rediss:// right for this port?)"
    if any(isinstance(e, RedisConnectionError | OSError) for e in chain):
        if "closed by server" in text or "Connection reset" in text:
            # TLS 1.3 checks a required client certificate after the handshake: the client may only see the
            # server hang up, just as when a TLS port is spoken to in plain text
            return ("connection closed by the server (a TLS port spoken to without TLS? use rediss://; or, over "
                    "TLS, does the server want a client certificate: redis.tls_cert_file / tls_key_file?)")
        return f"cannot connect: {exc}"
    if isinstance(exc, ResponseError | RedisError):
        return f"server error: {exc.__class__.__name__}"
    return exc.__class__.__name__


async def check(client: aioredis.Redis, timeout: float = 2.0) -> str | None:
    """PING the server: None when it answers, else ``describe_error`` of the failure."""
    try:
        await asyncio.wait_for(client.ping(), timeout)
        return None
    except (RedisError, OSError, TimeoutError) as exc:
        return describe_error(exc)
