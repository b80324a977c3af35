"""TLS for real: a private redis-server with TLS + requirepass (throwaway CA and certificates made with
openssl in a temporary directory), and a private Asterisk 16 with its HTTPS server (http.conf tlsenable)
for the ARI client over https:// and wss://."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from plugin.ari import AriClient
from plugin.bus import Bus, make_message
from plugin.config import parse_config
from plugin.lab import Lab, free_port
from plugin.reactions import Reactor
from plugin.redis_conn import RedisTls, check, make_redis

pytestmark = pytest.mark.integration

REDIS_PASSWORD = "TlsRedisPw-8Jq2Vn5Xc"
WRONG_PASSWORD = "TlsWrongPw-3Rk7Bz1Mw"
BASE = dict(call_id="1700000000.9", channel_id="1700000000.9", leg="caller", detector="gbm",
            detector_version="1", policy="default")


def _need(*tools: str) -> None:
    missing = [t for t in tools if not shutil.which(t)]
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)}")


@dataclass
class Pki:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # a CA that signed nothing here: the server is untrusted under it


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_pki(d: Path) -> Pki:
    """A throwaway CA, a server certificate for 127.0.0.1/localhost and a client certificate."""
    d.mkdir(parents=True, exist_ok=True)
    for ca in ("ca", "other-ca"):
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{ca}.key", "-out", f"{ca}.crt",
                 "-days", "2", "-subj", f"/CN=callguard test {ca}", cwd=d)
    (d / "server.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n")
    (d / "client.ext").write_text("extendedKeyUsage=clientAuth\n")
    for name in ("server", "client"):
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
                 "-subj", f"/CN=callguard test {name}", cwd=d)
        _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
                 "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext", cwd=d)
    for key in d.glob("*.key"):
        os.chmod(key, 0o600)
    return Pki(ca=d / "ca.crt", server_cert=d / "server.crt", server_key=d / "server.key",
               client_cert=d / "client.crt", client_key=d / "client.key", other_ca=d / "other-ca.crt")


@dataclass
class TlsRedis:
    port: int
    pki: Pki
    pidfile: Path

    @property
    def url(self) -> str:
        return f"rediss://127.0.0.1:{self.port}/0"


@pytest.fixture(scope="module")
def tls_dir() -> Iterator[Path]:
    d = Path(tempfile.mkdtemp(prefix="cg-tls-"))
    yield d
    shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def pki(tls_dir: Path) -> Pki:
    _need("openssl")
    return make_pki(tls_dir / "pki")


@pytest.fixture(scope="module")
def tls_redis(tls_dir: Path, pki: Pki) -> Iterator[TlsRedis]:
    _need("redis-server")
    root = tls_dir / "redis"
    root.mkdir()
    port = free_port()
    pidfile = root / "redis.pid"
    cmd = ["redis-server", "--port", "0", "--tls-port", str(port), "--bind", "127.0.0.1",
           "--tls-cert-file", str(pki.server_cert), "--tls-key-file", str(pki.server_key),
           "--tls-ca-cert-file", str(pki.ca), "--tls-auth-clients", "yes", "--requirepass", REDIS_PASSWORD,
           "--daemonize", "yes", "--pidfile", str(pidfile), "--dir", str(root), "--save", "",
           "--appendonly", "no", "--logfile", str(root / "redis.log")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=10, check=False)
    if proc.returncode != 0:
        pytest.skip(f"redis-server cannot start with TLS here: {proc.stderr.strip() or proc.stdout.strip()}")
    server = TlsRedis(port=port, pki=pki, pidfile=pidfile)
    try:
        deadline = time.monotonic() + 10
        while not pidfile.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        yield server
    finally:
        with contextlib.suppress(OSError, ValueError):
            pid = int(pidfile.read_text().strip())
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                os.kill(pid, 0)
                time.sleep(0.05)


def _tls(server: TlsRedis, **over: str) -> RedisTls:
    files = {"ca_file": str(server.pki.ca), "cert_file": str(server.pki.client_cert),
             "key_file": str(server.pki.client_key), **over}
    return RedisTls(**files)


def chunk_msg(i: int) -> dict:
    return make_message("chunk", chunk_index=i, chunk_start_s=1.0 + 2 * i, score=0.4, verdict="bonafide",
                        evidence=0.4, error=None, **BASE)


def test_bus_publishes_over_rediss_with_auth_and_the_reactor_subscribes(tls_redis, tmp_path):
    cfg = parse_config({"ari": {"password": "x"},
                        "redis": {"url": tls_redis.url, "tls_ca_file": str(tls_redis.pki.ca),
                                  "tls_cert_file": str(tls_redis.pki.client_cert),
                                  "tls_key_file": str(tls_redis.pki.client_key)}},
                       env={"CALLGUARD_REDIS_PASSWORD": REDIS_PASSWORD}, check_port=False).redis

    async def scenario() -> tuple[list[bool], list[dict], bool, str | None]:
        tls = RedisTls.from_config(cfg)
        bus = Bus(cfg.url, cfg.password, "cg:tls", "cg:tls:log", 1000, tmp_path / "spool.jsonl", 1_000_000,
                  tmp_path / "summary.jsonl", tls=tls)
        reactor = Reactor(cfg.url, cfg.password, "cg:tls", adapter=None, policies={}, tls=tls)  # type: ignore[arg-type]
        await bus.start()
        await reactor.start()
        try:
            await asyncio.wait_for(reactor.subscribed.wait(), 10)
            problem = await check(bus.redis)
            delivered = [await bus.publish(chunk_msg(i)) for i in range(3)]
            entries = await bus.redis.xrange("cg:tls:log")
            # the connection really is TLS: the server has no plain-text port at all (--port 0)
            info = await bus.redis.info("server")
            return delivered, [json.loads(f["msg"]) for _, f in entries], bool(info.get("redis_version")), problem
        finally:
            await reactor.close()
            await bus.close()

    delivered, got, info_ok, problem = asyncio.run(scenario())
    assert problem is None
    assert delivered == [True, True, True]
    assert [m["chunk_index"] for m in got] == [0, 1, 2] and info_ok
    assert not (tmp_path / "spool.jsonl").exists()


def test_a_wrong_password_is_named_as_such_and_never_shown(tls_redis, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)

    async def scenario() -> tuple[str | None, bool]:
        bus = Bus(tls_redis.url, WRONG_PASSWORD, "cg:tls", "cg:tls:log", 1000, tmp_path / "spool.jsonl",
                  1_000_000, None, tls=_tls(tls_redis))
        await bus.start()
        try:
            problem = await check(bus.redis)
            delivered = await bus.publish(chunk_msg(0))
        finally:
            await bus.close()
        return problem, delivered

    problem, delivered = asyncio.run(scenario())
    assert problem is not None and problem.startswith("authentication failed: wrong password")
    assert delivered is False  # spooled, not lost
    assert (tmp_path / "spool.jsonl").exists()
    for secret in (WRONG_PASSWORD, REDIS_PASSWORD):
        assert secret not in problem and secret not in caplog.text


def test_no_password_says_the_server_wants_one(tls_redis):
    async def scenario() -> str | None:
        client = make_redis(tls_redis.url, "", _tls(tls_redis), socket_connect_timeout=2.0)
        try:
            return await check(client)
        finally:
            await client.aclose()

    assert (asyncio.run(scenario()) or "").startswith("authentication required")


@pytest.mark.parametrize("over, url_scheme, expected", [
    ({"ca_file": "other"}, "rediss", "TLS handshake failed: the server's certificate is not trusted"),
    ({"ca_file": ""}, "rediss", "TLS handshake failed: the server's certificate is not trusted"),
    ({"cert_file": "", "key_file": ""}, "rediss", "client certificate"),
    (None, "redis", "TLS port"),
])
def test_tls_problems_are_named(tls_redis, over, url_scheme, expected):
    async def scenario() -> str | None:
        url = tls_redis.url.replace("rediss://", f"{url_scheme}://")
        if over is None:
            tls = None
        else:
            tls = _tls(tls_redis, **{k: (str(tls_redis.pki.other_ca) if v == "other" else v)
                                     for k, v in over.items()})
        client = make_redis(url, REDIS_PASSWORD, tls, socket_connect_timeout=2.0, socket_timeout=2.0)
        try:
            return await check(client, timeout=3.0)
        finally:
            await client.aclose()

    problem = asyncio.run(scenario())
    assert problem is not None and expected in problem, problem
    assert REDIS_PASSWORD not in problem


# ------------------------------------------------------------------------------ Asterisk HTTPS / WSS
@pytest.fixture(scope="module")
def https_asterisk(tls_dir: Path, pki: Pki) -> Iterator[tuple[Lab, int]]:
    _need("asterisk")
    lab = Lab(root=tls_dir / "ast")
    lab.write()
    tls_port = free_port()
    with (lab.etc / "http.conf").open("a") as f:
        f.write(f"tlsenable = yes\ntlsbindaddr = 127.0.0.1:{tls_port}\ntlscertfile = {pki.server_cert}\n"
                f"tlsprivatekey = {pki.server_key}\n")
    try:
        lab.start_asterisk()
        status = lab.asterisk_rx("http show status")
        if "HTTPS Server Enabled" not in status and f"{tls_port}" not in status:
            pytest.skip(f"this Asterisk does not serve HTTPS (http show status: {status.strip()[:300]})")
        yield lab, tls_port
    finally:
        lab.stop_asterisk()


def test_ari_client_over_https_and_wss_with_the_test_ca(https_asterisk, pki):
    lab, port = https_asterisk

    async def scenario() -> tuple[bool, dict]:
        ari = AriClient(f"https://127.0.0.1:{port}", lab.ari_user, lab.ari_password, lab.app,
                        tls_ca_file=str(pki.ca))
        try:
            await ari.start(wait=15)
            info = await ari.get("/asterisk/info")
            return ari.connected, info
        finally:
            await ari.close()

    connected, info = asyncio.run(scenario())
    assert connected  # the events websocket is up over wss://
    assert "system" in info or "build" in info


def test_ari_client_refuses_an_untrusted_asterisk_certificate(https_asterisk, pki, caplog):
    lab, port = https_asterisk
    caplog.set_level(logging.WARNING, logger="plugin.ari")

    async def scenario() -> bool:
        ari = AriClient(f"https://127.0.0.1:{port}", lab.ari_user, lab.ari_password, lab.app,
                        tls_ca_file=str(pki.other_ca))
        try:
            with contextlib.suppress(TimeoutError):
                await ari.start(wait=3)
            return ari.connected
        finally:
            await ari.close()

    assert asyncio.run(scenario()) is False
    assert any("certificate is not trusted" in r.getMessage() for r in caplog.records)
    assert lab.ari_password not in caplog.text
