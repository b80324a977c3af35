"""A private Asterisk + Redis (+ sipp callers) in one run directory, for `callguard lab` and the tests.

Nothing here touches the system's Asterisk or Redis: every file, socket and port is private, ports are
free loopback ports picked at start, and ``stop()`` ends only the processes this lab started.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import secrets
import shutil
import signal
import socket
import string
import subprocess
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from detector.audio import g711_encode, load_audio, to_int16

TEMPLATES = Path(__file__).resolve().parent.parent / "dialplan" / "lab"
ASTERISK = shutil.which("asterisk") or "/usr/sbin/asterisk"
REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"
SIPP = shutil.which("sipp") or "/usr/bin/sipp"
ALLISON = Path("/usr/share/asterisk/sounds/en_US_f_Allison")


class LabError(RuntimeError):
    pass


class _Tmpl(string.Template):
    delimiter = "%"


def free_port(kind: int = socket.SOCK_STREAM, avoid: set[int] | None = None) -> int:
    avoid = avoid or set()
    for _ in range(50):
        with socket.socket(socket.AF_INET, kind) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in avoid and _udp_free(port) and _tcp_free(port):
            return port
    raise LabError("no free loopback port found")


def _udp_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _tcp_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def free_udp_range(size: int, lo: int = 20000, hi: int = 60000,
                   avoid: tuple[tuple[int, int], ...] | list[tuple[int, int]] = ()) -> int:
    """An even base port such that [base, base+size) are free UDP ports right now and overlap none of the
    ``avoid`` ranges ([start, end), e.g. ports picked for something that is not bound yet)."""
    for _ in range(200):
        base = random.randrange(lo, hi - size) & ~1
        if any(base < end and start < base + size for start, end in avoid):
            continue
        if all(_udp_free(p) for p in range(base, base + size)):
            return base
    raise LabError(f"no free UDP range of {size} ports")


def _port_window(needed: int) -> tuple[int, int]:
    """Where to look for port ranges: 20000 up to the kernel's ephemeral range (ports the kernel hands
    out to any socket bound to port 0, which could take a lab port after it was checked), when that leaves
    room; else 20000-60000."""
    try:
        eph_lo = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        eph_lo = 60000
    hi = min(60000, eph_lo)
    return (20000, hi) if hi - 20000 >= 3 * needed else (20000, 60000)


SIPP_PORTS_PER_CALL = 10  # sipp call ``index``: p = sipp_base + 10*index (SIP), p+2, p+4 (RTP), p+6 (control)
SIPP_INDEXES = 100  # call indexes 0..99 always fit (the integration tests use up to 90)
RTP_PORTS_PER_CALL = 16  # Asterisk per bridged call: caller, callee, its loopback twin (RTP+RTCP each), taps:
# 9-11 ports seen; Asterisk picks them at random in the range, so leave it room


@dataclass
class LabPorts:
    http: int
    sip: int
    sip2: int
    rtp_start: int
    rtp_end: int
    redis: int
    media: int
    sipp_base: int

    @classmethod
    def pick(cls, calls: int = 0) -> LabPorts:
        """Free loopback ports for one lab. ``calls``: concurrent sipp calls to make room for (Asterisk's
        RTP range grows with them; sipp call indexes 0..max(99, calls-1) are reserved)."""
        used: set[int] = set()
        out = {}
        for name in ("http", "sip", "sip2", "redis", "media"):
            out[name] = free_port(socket.SOCK_STREAM if name in ("http", "redis") else socket.SOCK_DGRAM,
                                  used)
            used.add(out[name])
        rtp_size = max(200, RTP_PORTS_PER_CALL * calls)
        sipp_size = SIPP_PORTS_PER_CALL * max(SIPP_INDEXES, calls)
        lo, hi = _port_window(rtp_size + sipp_size)
        singles = [(p, p + 1) for p in used]
        rtp = free_udp_range(rtp_size, lo, hi, avoid=singles)
        sipp = free_udp_range(sipp_size, lo, hi, avoid=[*singles, (rtp, rtp + rtp_size)])
        return cls(rtp_start=rtp, rtp_end=rtp + rtp_size - 1, sipp_base=sipp, **out)


@dataclass
class Lab:
    """Paths, ports and processes of one lab instance rooted at ``root``."""

    root: Path
    app: str = "callguard"
    ari_user: str = "callguard"
    ari_password: str = field(default_factory=lambda: secrets.token_hex(12), repr=False)
    redis_password: str = field(default_factory=lambda: secrets.token_hex(12), repr=False)
    ports: LabPorts | None = None
    redis_persist: bool = False  # append-only file with fsync always (fault tests restart Redis)
    _asterisk: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    # ------------------------------------------------------------------ layout
    @property
    def etc(self) -> Path:
        return self.root / "etc"

    @property
    def conf(self) -> Path:
        return self.etc / "asterisk.conf"

    @property
    def log_dir(self) -> Path:
        return self.root / "log"

    @property
    def ari_url(self) -> str:
        assert self.ports
        return f"http://127.0.0.1:{self.ports.http}"

    @property
    def redis_url(self) -> str:
        assert self.ports
        return f"redis://127.0.0.1:{self.ports.redis}/0"

    @property
    def plugin_config(self) -> Path:
        return self.root / "callguard.toml"

    @property
    def state_file(self) -> Path:
        return self.root / "lab.json"

    def write(self, media_format: str = "ulaw", detector: str = "gbm", models_dir: str = "",
              loader: str = "", policies: str | None = None, detector_extra: str = "", http_port: int = 0,
              extra: str = "") -> None:
        """Generate the Asterisk config dir and the plugin's TOML config. ``detector_extra``: more lines of the
        ``[detector]`` table; ``http_port``: the plugin's HTTP port (0: any free one); ``extra``: more tables
        (e.g. ``[capture]``), appended at the end."""
        self.ports = self.ports or LabPorts.pick()
        for d in ("etc", "lib", "spool", "run", "log", "log/cdr-custom", "media", "sipp"):
            (self.root / d).mkdir(parents=True, exist_ok=True)
        values = {
            "etc_dir": str(self.etc), "lib_dir": str(self.root / "lib"), "spool_dir": str(self.root / "spool"),
            "run_dir": str(self.root / "run"), "log_dir": str(self.log_dir), "http_port": self.ports.http,
            "ari_user": self.ari_user, "ari_password": self.ari_password, "rtp_start": self.ports.rtp_start,
            "rtp_end": self.ports.rtp_end, "sip_port": self.ports.sip, "sip_port2": self.ports.sip2,
            "app": self.app,
        }
        for tmpl in sorted(TEMPLATES.glob("*.conf.tmpl")):
            text = _Tmpl(tmpl.read_text()).substitute(values)
            (self.etc / tmpl.name.removesuffix(".tmpl")).write_text(text)
        os.chmod(self.etc / "ari.conf", 0o600)
        det = f'name = "{detector}"\nworkers = 1\nqueue_size = 16\n'
        if models_dir:
            det += f'models_dir = "{models_dir}"\n'
        if loader:
            det += f'loader = "{loader}"\n'
        det += detector_extra
        cfg = (
            "# generated by `callguard lab`: passwords come from the environment of the lab\n"
            'default_policy = "guard-caller"\n\n'
            f'[ari]\nurl = "{self.ari_url}"\nusername = "{self.ari_user}"\napp = "{self.app}"\n\n'
            f'[redis]\nurl = "{self.redis_url}"\nstream_maxlen = 10000\n'
            f'spool_path = "{self.root / "spool" / "callguard-bus.jsonl"}"\n'
            f'summary_log = "{self.log_dir / "callguard-summary.jsonl"}"\n\n'
            f'[media]\nbind_host = "127.0.0.1"\nport = {self.ports.media}\nformat = "{media_format}"\n\n'
            f"[detector]\n{det}\n"
            f"[http]\nport = {int(http_port)}  # 0: any free port, so that several labs never clash\n\n"
        )
        cfg += policies if policies is not None else DEFAULT_LAB_POLICIES
        cfg += extra
        self.plugin_config.write_text(cfg)
        self.save_state()

    def env(self) -> dict[str, str]:
        """Environment for the plugin: secrets travel here, not in the config file."""
        env = dict(os.environ)
        env["CALLGUARD_ARI_PASSWORD"] = self.ari_password
        env["CALLGUARD_REDIS_PASSWORD"] = self.redis_password
        return env

    def save_state(self) -> None:
        state = {"root": str(self.root), "ports": asdict(self.ports) if self.ports else None,
                 "ari_password": self.ari_password, "redis_password": self.redis_password}
        self.state_file.write_text(json.dumps(state))
        os.chmod(self.state_file, 0o600)

    @classmethod
    def load(cls, root: Path) -> Lab:
        state = json.loads((root / "lab.json").read_text())
        return cls(root=root, ari_password=state["ari_password"], redis_password=state["redis_password"],
                   ports=LabPorts(**state["ports"]))

    # ------------------------------------------------------------------ Asterisk
    def asterisk_rx(self, command: str, timeout: float = 15.0) -> str:
        proc = subprocess.run([ASTERISK, "-C", str(self.conf), "-rx", command], capture_output=True,
                              text=True, timeout=timeout, check=False)
        return proc.stdout

    def start_asterisk(self, timeout: float = 30.0) -> None:
        out = open(self.log_dir / "asterisk.out", "ab")  # noqa: SIM115 - lives as long as the process
        self._asterisk = subprocess.Popen([ASTERISK, "-C", str(self.conf), "-f", "-n"], stdout=out,
                                          stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                          start_new_session=True)
        (self.root / "run" / "asterisk.launcher.pid").write_text(str(self._asterisk.pid))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._asterisk.poll() is not None:
                raise LabError(f"asterisk exited with {self._asterisk.returncode}; see {self.log_dir}")
            if (self.root / "run" / "asterisk.ctl").exists():
                with contextlib.suppress(subprocess.TimeoutExpired):
                    if "fully booted" in self.asterisk_rx("core waitfullybooted", timeout=timeout).lower() \
                            or self._ari_up():
                        break
            time.sleep(0.1)
        while time.monotonic() < deadline and not self._ari_up():
            time.sleep(0.1)
        if not self._ari_up():
            raise LabError(f"Asterisk ARI did not answer within {timeout:.0f} s")

    def _ari_up(self) -> bool:
        import base64
        import urllib.request

        req = urllib.request.Request(self.ari_url + "/ari/asterisk/info")
        token = base64.b64encode(f"{self.ari_user}:{self.ari_password}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(req, timeout=1) as resp:
                return resp.status == 200
        except OSError:
            return False

    def asterisk_pid(self) -> int | None:
        pid_file = self.root / "run" / "asterisk.pid"
        with contextlib.suppress(OSError, ValueError):
            return int(pid_file.read_text().strip())
        return None

    def stop_asterisk(self, timeout: float = 10.0) -> None:
        pid = self.asterisk_pid()
        if self._asterisk is None and pid is None:
            return
        with contextlib.suppress(subprocess.TimeoutExpired, OSError):
            self.asterisk_rx("core stop now", timeout=5)
        if self._asterisk is not None:
            try:
                self._asterisk.wait(timeout)
            except subprocess.TimeoutExpired:
                self._asterisk.kill()
                self._asterisk.wait(5)
            self._asterisk = None
        elif pid and _alive(pid):
            _wait_dead(pid, timeout)
            if _alive(pid):
                os.kill(pid, signal.SIGKILL)

    def kill_asterisk(self) -> int:
        """Crash Asterisk: SIGKILL, no shutdown, stale control socket and pid file left as a crash leaves
        them. Returns the pid killed. ``start_asterisk()`` starts it again with the same config and ports."""
        pids = {p for p in (self.asterisk_pid(), self._asterisk.pid if self._asterisk else None) if p}
        pids = {p for p in pids if _alive(p)}
        if not pids:
            raise LabError("Asterisk is not running")
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        if self._asterisk is not None:
            self._asterisk.wait(10)
            self._asterisk = None
        for pid in pids:
            _wait_dead(pid, 10)
        return min(pids)

    # ------------------------------------------------------------------ Redis
    def start_redis(self) -> None:
        """Start (or restart, same port and data dir) the private redis-server. With ``redis_persist`` the
        data survives a kill -9 (append-only file, fsync on every write), as on a production Redis."""
        assert self.ports
        pidfile = self.root / "run" / "redis.pid"
        persist = ["--appendonly", "yes", "--appendfsync", "always"] if self.redis_persist \
            else ["--appendonly", "no"]
        subprocess.run([REDIS, "--port", str(self.ports.redis), "--bind", "127.0.0.1", "--daemonize", "yes",
                        "--pidfile", str(pidfile), "--dir", str(self.root / "lib"), "--save", "",
                        *persist, "--requirepass", self.redis_password,
                        "--logfile", str(self.log_dir / "redis.log")],
                       check=True, capture_output=True, timeout=10)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if self._redis_ping():
                return
            time.sleep(0.05)
        raise LabError("redis-server did not answer PING")

    def _redis_ping(self) -> bool:
        assert self.ports
        try:
            with socket.create_connection(("127.0.0.1", self.ports.redis), timeout=0.5) as s:
                s.sendall(f"AUTH {self.redis_password}\r\nPING\r\n".encode())
                data = b""
                while b"PONG" not in data:
                    chunk = s.recv(100)
                    if not chunk:
                        return False
                    data += chunk
                return True
        except OSError:
            return False

    def redis_pid(self) -> int | None:
        with contextlib.suppress(OSError, ValueError):
            pid = int((self.root / "run" / "redis.pid").read_text().strip())
            return pid if _alive(pid) else None
        return None

    def kill_redis(self) -> int:
        """Crash redis-server: SIGKILL. Returns the pid killed; ``start_redis()`` brings it back."""
        pid = self.redis_pid()
        if pid is None:
            raise LabError("redis-server is not running")
        os.kill(pid, signal.SIGKILL)
        _wait_dead(pid, 10)
        return pid

    def stop_redis(self) -> None:
        pidfile = self.root / "run" / "redis.pid"
        with contextlib.suppress(OSError, ValueError):
            pid = int(pidfile.read_text().strip())
            if _alive(pid):
                os.kill(pid, signal.SIGTERM)
                _wait_dead(pid, 5)
                if _alive(pid):
                    os.kill(pid, signal.SIGKILL)

    # ------------------------------------------------------------------ callers
    def sipp_call(self, exten: str, audio: Path, *, duration_s: float, index: int = 0,
                  caller_name: str = "lab") -> SippCall:
        """Start one sipp caller (non-blocking) that dials ``exten`` and plays raw ulaw ``audio``."""
        assert self.ports
        work = self.root / "sipp" / f"call{index}"
        work.mkdir(parents=True, exist_ok=True)
        marker = work / "remote-bye"
        marker.unlink(missing_ok=True)
        scen = work / "uac.xml"
        scen.write_text(_Tmpl((TEMPLATES / "sipp-uac.xml.tmpl").read_text()).substitute(
            audio=str(audio), duration_ms=int(duration_s * 1000), caller_name=caller_name,
            marker=str(marker)))
        sip_port = self.ports.sipp_base + SIPP_PORTS_PER_CALL * index
        cmd = [SIPP, f"127.0.0.1:{self.ports.sip}", "-sf", str(scen), "-s", exten, "-m", "1", "-l", "1",
               "-i", "127.0.0.1", "-p", str(sip_port), "-mi", "127.0.0.1", "-mp", str(sip_port + 2),
               # sipp uses p, p+2 (media) and p+4 (rtp_stream); its control port defaults to 8888 and counts
               # up from there in every sipp, so dozens of callers would crowd it: give each its own
               "-cp", str(sip_port + 6),
               "-nostdin", "-trace_err", "-timeout", f"{int(duration_s + 30)}s",
               "-timeout_error"]
        log = open(work / "sipp.out", "wb")  # noqa: SIM115
        proc = subprocess.Popen(cmd, cwd=work, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)
        return SippCall(proc=proc, marker=marker, work=work, started=time.time())


@dataclass
class SippCall:
    proc: subprocess.Popen[bytes]
    marker: Path
    work: Path
    started: float

    def wait(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)

    @property
    def hung_up_by_pbx(self) -> bool:
        return self.marker.exists()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z"):
                return False  # a zombie: it has exited, its parent just has not reaped it
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _wait_dead(pid: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.05)


DEFAULT_LAB_POLICIES = """\
[policies.guard-caller]
# guard only the external caller; hang up on spoof once 2 chunks (4 s of speech) back it
legs = ["caller"]
window = 3
min_chunks = 2
on_bonafide = ["annotate"]
on_suspicious = ["annotate", "warn"]
on_spoof = ["annotate", "warn", "hangup"]
warn_media = "sound:beep"

[policies.watch-only]
legs = ["caller", "callee"]
window = 3
min_chunks = 2
on_bonafide = ["annotate"]
on_suspicious = ["annotate"]
on_spoof = ["annotate", "warn"]

[[routes]]
# lab: ext 300 and 400 reach a called party that talks: guard both legs, never hang up
exten = "[34]00"
policy = "watch-only"

[[routes]]
# lab: other calls from the sipp test endpoint get the hang-up policy
endpoint = "sipp"
policy = "guard-caller"
"""


# ---------------------------------------------------------------------------------------- test audio

def _write_ulaw(path: Path, x: np.ndarray, lead_s: float = 1.5, tail_s: float = 1.0) -> Path:
    pad = lambda s: np.zeros(int(s * 8000), np.float32)  # noqa: E731
    sig = np.concatenate([pad(lead_s), x.astype(np.float32), pad(tail_s)])
    path.write_bytes(g711_encode(to_int16(sig), "ulaw").tobytes())
    return path


def make_bonafide(out: Path, seconds: float = 12.0) -> Path:
    """Recorded human speech (Asterisk's Allison prompts) concatenated with short pauses, raw ulaw."""
    files = sorted(ALLISON.glob("*.wav"))
    if not files:
        raise LabError(f"no recordings in {ALLISON} (package asterisk-core-sounds-en-wav)")
    rng = random.Random(7)
    rng.shuffle(files)
    parts, total = [], 0.0
    for f in files:
        x = load_audio(f)
        if x.size < 8000 * 1.0:
            continue
        parts += [x, np.zeros(int(0.25 * 8000), np.float32)]
        total += x.size / 8000 + 0.25
        if total >= seconds:
            break
    return _write_ulaw(out, np.concatenate(parts)[: int(seconds * 8000)])


SYNTH_TEXT = ("Hello, this is your bank calling about a suspicious transaction on your account. "
              "Please confirm your card number and the security code printed on the back. "
              "We need this information right now to stop the payment from going through.")


def make_synthetic(out: Path, text: str = SYNTH_TEXT, voice: str = "en-us") -> Path:
    """espeak-ng speech, resampled to 8 kHz, raw ulaw."""
    exe = shutil.which("espeak-ng")
    if not exe:
        raise LabError("espeak-ng not installed")
    wav = out.with_suffix(".wav")
    subprocess.run([exe, "-v", voice, "-s", "160", "-w", str(wav), text], check=True, capture_output=True,
                   timeout=60)
    x = load_audio(wav)
    return _write_ulaw(out, x)


def audio_seconds(ulaw: Path) -> float:
    return ulaw.stat().st_size / 8000.0



# ---------------------------------------------------------------------------------------- the plugin

def start_plugin(lab: Lab, timeout: float = 60.0, extra_env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Run `callguard serve` for the lab as a child process; returns once its ARI app is registered."""
    import sys
    import urllib.request

    env = lab.env()
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.update(extra_env or {})
    log_path = lab.log_dir / "callguard.log"
    offset = log_path.stat().st_size if log_path.exists() else 0
    log = open(log_path, "ab")  # noqa: SIM115
    proc = subprocess.Popen([sys.executable, "-m", "plugin.cli", "serve", "--config", str(lab.plugin_config)],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env,
                            cwd=str(TEMPLATES.parent.parent), start_new_session=True)
    (lab.root / "run" / "callguard.pid").write_text(str(proc.pid))
    import base64

    token = base64.b64encode(f"{lab.ari_user}:{lab.ari_password}".encode()).decode()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = (lab.log_dir / "callguard.log").read_text(errors="replace")[-2000:]
            raise LabError(f"callguard serve exited with {proc.returncode}:\n{tail}")
        req = urllib.request.Request(f"{lab.ari_url}/ari/applications/{lab.app}")
        req.add_header("Authorization", f"Basic {token}")
        try:
            with urllib.request.urlopen(req, timeout=1) as resp:
                with log_path.open("rb") as f:
                    f.seek(offset)
                    if resp.status == 200 and b"callguard serving" in f.read():
                        return proc
        except OSError:
            pass
        time.sleep(0.2)
    proc.terminate()
    raise LabError(f"callguard serve did not register its ARI app within {timeout:.0f} s")


def stop_plugin(lab: Lab, proc: subprocess.Popen[bytes] | None = None, timeout: float = 15.0) -> None:
    pid = proc.pid if proc is not None else None
    if pid is None:
        with contextlib.suppress(OSError, ValueError):
            pid = int((lab.root / "run" / "callguard.pid").read_text().strip())
    if pid is None or not _alive(pid):
        return
    os.kill(pid, signal.SIGTERM)
    if proc is not None:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    else:
        _wait_dead(pid, timeout)
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
