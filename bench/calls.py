"""`callguard bench calls`: end-to-end capacity with a real Asterisk 16 and N concurrent SIP calls.

Everything is real and private (``plugin.lab``): an Asterisk 16 and a redis-server on free loopback ports in a
run directory, ``callguard serve`` as a child process (the shipped detector unless ``loader`` swaps in a
stand-in), and N sipp callers, each a separate process playing raw u-law speech as RTP. The calls dial
extension 100 (callguard answers, dials the called party and bridges both legs; ``exten="200"`` or
``"100,200"`` use the Dial() way or alternate), starting spread over ``stagger`` seconds as calls in progress
are. Every ``synthetic_every``-th call plays espeak-ng speech, the others a recording of a human voice
(Asterisk's Allison prompts); both last ``seconds`` of speech after 1.5 s of silence. The policy guards the
caller (``guard="both"``: also the called party, who is silent in the lab) and never hangs up, so every call
lasts as long as its audio.

The plugin's own reports are the measurements: the messages on the verdict stream (``callguard:verdicts:log``)
-- per chunk ``timings.chunk_end_to_score_s`` (chunk complete -> score published), per leg a summary with
chunks, scores, tap set-up time, speech onset -> first verdict and RTP counters. Besides: chunks expected
(what the offline chunker, the same function, cuts from the audio each call played), CPU time and RSS of the
plugin and its detector processes and of Asterisk (``/proc``), and whether any channel or bridge was left
in Asterisk afterwards (``core show channels concise``, ``bridge show all``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import resource
import secrets
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import numpy as np

from bench.load import _loadavg

CLK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")
STREAM = "callguard:verdicts:log"

BENCH_POLICIES = """\
[policies.guard-caller]
# bench calls: guard the caller, annotate and warn, never hang up (every call lasts as long as its audio)
legs = [%(legs)s]
window = 3
min_chunks = 2
on_bonafide = ["annotate"]
on_suspicious = ["annotate", "warn"]
on_spoof = ["annotate", "warn"]
warn_media = "sound:beep"
"""


# ------------------------------------------------------------------------------ pure helpers (tested)
def pct(values: Iterable[float], q: float, scale: float = 1.0, nd: int = 1) -> float | None:
    v = np.asarray([x for x in values if x is not None], dtype=float)
    return round(float(np.percentile(v, q)) * scale, nd) if v.size else None


def expected_chunks(ulaw: bytes) -> int:
    """Chunks the offline chunker (the live path's own function) cuts from a raw u-law recording."""
    from detector.audio import g711_decode
    from detector.chunking import speech_chunks

    return len(speech_chunks(g711_decode(ulaw, "ulaw")))


def parse_concise_channels(text: str) -> list[str]:
    """Channel names from ``core show channels concise`` (one ``name!context!exten!...`` line each)."""
    return [line.split("!", 1)[0] for line in text.splitlines() if "!" in line]


_BRIDGE_LINE = re.compile(r"^([0-9A-Za-z][\w.:@+-]*)\s+\d+\s+\S+")


def parse_bridges(text: str) -> list[str]:
    """Bridge ids from ``bridge show all`` (header ``Bridge-ID Chans Type Technology``, then one line each)."""
    out = []
    for line in text.splitlines():
        if line.startswith("Bridge-ID") or not line.strip():
            continue
        m = _BRIDGE_LINE.match(line.strip())
        if m:
            out.append(m.group(1))
    return out


def shed_in_log(text: str) -> int:
    """The plugin's own count of shed chunks: its rate-limited overload lines end with ``N shed in all``."""
    counts = [int(n) for n in re.findall(r"(\d+) shed in all", text)]
    return max(counts, default=0)


def parse_metrics(text: str) -> dict[str, float]:
    """Unlabelled samples of a Prometheus text exposition: ``{name: value}``."""
    out = {}
    for line in text.splitlines():
        if line.startswith("#") or "{" in line:
            continue
        parts = line.split()
        if len(parts) == 2:
            with contextlib.suppress(ValueError):
                out[parts[0]] = float(parts[1])
    return out


def _scrape(log_path: Path, token: str) -> dict[str, float]:
    """The plugin's /metrics (its HTTP port is in its log: ``http endpoint on http://HOST:PORT``)."""
    import urllib.request

    m = re.findall(r"http endpoint on (http://[\d.:]+)", log_path.read_text(errors="replace"))
    if not m:
        return {}
    req = urllib.request.Request(m[-1] + "/metrics", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return parse_metrics(resp.read().decode())
    except OSError:
        return {}


def summarize(messages: list[dict[str, Any]], calls: list[dict[str, Any]], *,
              guarded_legs: tuple[str, ...] = ("caller",)) -> dict[str, Any]:
    """The report from the stream messages and what the bench knows of each call.

    ``calls``: one dict per placed call with ``label`` (the caller name it used: messages carry it as
    ``caller_name``), ``kind``, ``exten``, ``expected`` (chunks in its audio), ``rc`` (sipp's exit status)
    and ``hung_up_by_pbx``. Messages of other callers are ignored."""
    labels = {c["label"] for c in calls}
    msgs = [m for m in messages if m.get("caller_name") in labels]
    chunk_msgs = [m for m in msgs if m.get("type") == "chunk"]
    summaries = [m for m in msgs if m.get("type") == "summary"]
    scored_by_leg: dict[tuple[str, str], int] = {}
    errors_by_leg: dict[tuple[str, str], int] = {}
    for m in chunk_msgs:
        key = (m["caller_name"], m["leg"])
        if m.get("score") is None:
            errors_by_leg[key] = errors_by_leg.get(key, 0) + 1
        else:
            scored_by_leg[key] = scored_by_leg.get(key, 0) + 1
    summary_of = {(m["caller_name"], m["leg"]): m["summary"] for m in summaries}

    per_call = []
    for c in calls:
        s = summary_of.get((c["label"], "caller"))
        answered = c.get("rc") == 0 or bool(c.get("hung_up_by_pbx"))
        guarded = s is not None and s.get("tap_setup_s") is not None
        produced = s["chunks"] if s else 0
        scored = scored_by_leg.get((c["label"], "caller"), 0)
        errors = errors_by_leg.get((c["label"], "caller"), 0)
        rtp = (s or {}).get("rtp") or {}
        per_call.append({
            "label": c["label"], "kind": c["kind"], "exten": c["exten"], "sipp_rc": c.get("rc"),
            "answered": answered, "guarded": guarded, "chunks_expected": c["expected"], "chunks": produced,
            "scored": scored, "errors": errors, "unscored": max(0, produced - scored - errors),
            "final_verdict": (s or {}).get("final_verdict"), "max_score": (s or {}).get("max_score"),
            "tap_setup_s": (s or {}).get("tap_setup_s"), "first_packet_s": (s or {}).get("first_packet_s"),
            "onset_to_first_verdict_s": (s or {}).get("speech_onset_to_first_verdict_s"),
            "rtp_packets": rtp.get("packets"), "rtp_lost": rtp.get("lost"), "rtp_late": rtp.get("late"),
            "ended_by": (s or {}).get("ended_by"), "hung_up_by_pbx": bool(c.get("hung_up_by_pbx")),
        })

    leg_summaries = [s for (label, leg), s in summary_of.items() if leg in guarded_legs]
    lat = [m["timings"]["chunk_end_to_score_s"] for m in chunk_msgs
           if m.get("score") is not None and (m.get("timings") or {}).get("chunk_end_to_score_s") is not None]
    queued = [m["timings"].get("queued_s") for m in chunk_msgs if m.get("timings")]
    scoring = [m["timings"].get("scoring_s") for m in chunk_msgs if m.get("timings")]
    onset = [s.get("speech_onset_to_first_verdict_s") for s in leg_summaries]
    setup = [s.get("tap_setup_s") for s in leg_summaries]
    first_pkt = [s.get("first_packet_s") for s in leg_summaries]
    rtp_tot: dict[str, int] = {}
    for s in leg_summaries:
        for k, v in (s.get("rtp") or {}).items():
            rtp_tot[k] = rtp_tot.get(k, 0) + int(v or 0)
    verdicts: dict[str, dict[str, int]] = {}
    for p in per_call:
        by_kind = verdicts.setdefault(p["kind"], {})
        v = p["final_verdict"] or "none"
        by_kind[v] = by_kind.get(v, 0) + 1
    expected = sum(p["chunks_expected"] for p in per_call)
    produced = sum(p["chunks"] for p in per_call)
    scored = sum(p["scored"] for p in per_call)
    return {
        "calls_placed": len(calls),
        "calls_answered": sum(p["answered"] for p in per_call),
        "calls_guarded": sum(p["guarded"] for p in per_call),
        "calls_hung_up_by_callguard": sum(p["hung_up_by_pbx"] for p in per_call),
        "legs_tapped": sum(1 for s in summary_of.values() if s.get("tap_setup_s") is not None),
        "chunks_expected": expected,
        "chunks_produced": produced,
        "chunks_scored": scored,
        "chunk_errors": sum(p["errors"] for p in per_call),
        "chunks_unscored": sum(p["unscored"] for p in per_call),  # shed, or dropped at hang-up
        "chunks_scored_of_expected_pct": round(100 * scored / expected, 1) if expected else None,
        "calls_with_every_expected_chunk_scored": sum(p["scored"] >= p["chunks_expected"] for p in per_call),
        "chunk_end_to_published_p50_ms": pct(lat, 50, 1000),
        "chunk_end_to_published_p95_ms": pct(lat, 95, 1000),
        "chunk_end_to_published_p99_ms": pct(lat, 99, 1000),
        "chunk_end_to_published_max_ms": pct(lat, 100, 1000),
        "chunk_queued_p95_ms": pct(queued, 95, 1000),
        "chunk_scoring_p50_ms": pct(scoring, 50, 1000),
        "first_verdict_after_onset_p50_s": pct(onset, 50, 1, 3),
        "first_verdict_after_onset_p95_s": pct(onset, 95, 1, 3),
        "tap_setup_p50_ms": pct(setup, 50, 1000),
        "tap_setup_p95_ms": pct(setup, 95, 1000),
        "tap_setup_max_ms": pct(setup, 100, 1000),
        "first_packet_p50_ms": pct(first_pkt, 50, 1000),
        "rtp": rtp_tot,
        "final_verdicts": verdicts,
        "detector_versions": sorted({m.get("detector_version") for m in chunk_msgs if m.get("detector_version")}),
        "per_call": per_call,
    }


def judge(r: dict[str, Any]) -> tuple[bool, list[str]]:
    """Every call answered and guarded, every expected chunk scored, nothing left in Asterisk."""
    why = []
    if r["calls_answered"] < r["calls_placed"]:
        why.append(f"{r['calls_placed'] - r['calls_answered']} call(s) not answered/completed")
    if r["calls_guarded"] < r["calls_placed"]:
        why.append(f"{r['calls_placed'] - r['calls_guarded']} call(s) not guarded")
    if r["calls_with_every_expected_chunk_scored"] < r["calls_placed"]:
        why.append(f"{r['calls_placed'] - r['calls_with_every_expected_chunk_scored']} call(s) with expected "
                   f"chunks not scored ({r['chunks_scored']} of {r['chunks_expected']})")
    if r.get("chunks_shed"):
        why.append(f"{r['chunks_shed']} chunks shed")
    left = r.get("leftover") or {}
    if left.get("channels") or left.get("bridges"):
        why.append(f"left in Asterisk: {len(left.get('channels', []))} channel(s), "
                   f"{len(left.get('bridges', []))} bridge(s)")
    return not why, why


# ------------------------------------------------------------------------------ /proc
def proc_cpu_s(pid: int | None) -> float | None:
    if not pid:
        return None
    try:
        parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(parts[11]) + int(parts[12])) / CLK
    except (OSError, IndexError, ValueError):
        return None


def proc_cpu_split(pid: int | None) -> tuple[float, float] | None:
    """(user, system) CPU seconds of a process."""
    if not pid:
        return None
    try:
        parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return int(parts[11]) / CLK, int(parts[12]) / CLK
    except (OSError, IndexError, ValueError):
        return None


def proc_rss_bytes(pid: int | None) -> int | None:
    if not pid:
        return None
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return None


def child_pids(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d.name))
    return sorted(out)


# ------------------------------------------------------------------------------ the run
def _audio(lab: Any, seconds: float, synthetic: bool) -> Path:
    """Raw u-law: 1.5 s silence, ``seconds`` of speech, 1 s silence (espeak-ng speech repeated to length)."""
    from plugin.lab import SYNTH_TEXT, make_bonafide, make_synthetic

    media = lab.root / "media"
    if not synthetic:
        return make_bonafide(media / "bonafide.ulaw", seconds=seconds)
    raw = make_synthetic(media / "synthetic-raw.ulaw", text=" ".join([SYNTH_TEXT] * max(1, int(seconds // 10) + 1)))
    data = raw.read_bytes()
    lead, tail = int(1.5 * 8000), b"\xff" * 8000  # 0xFF: u-law silence
    out = media / "synthetic.ulaw"
    out.write_bytes(data[: lead + int(seconds * 8000)] + tail)
    return out


def _read_stream(r: Any, last: str) -> tuple[list[dict[str, Any]], str]:
    out = []
    while True:
        batch = r.xrange(STREAM, min=f"({last}" if last != "-" else "-", count=1000)
        if not batch:
            return out, last
        for mid, fields in batch:
            with contextlib.suppress(KeyError, ValueError, TypeError):
                out.append(json.loads(fields[b"msg"] if b"msg" in fields else fields["msg"]))
            last = mid.decode() if isinstance(mid, bytes) else mid


def run_calls(n_calls: int, seconds: float = 20.0, detector: str = "gbm", *, synthetic_every: int = 5,
              exten: str = "100", guard: str = "caller", stagger: float = 2.0, workers: int = 1,
              queue_size: int | None = None, loader: str = "", models_dir: str = "", keep: str | None = None,
              idle_s: float = 2.0, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """One bounded run (see the module doc); returns the report."""
    from plugin.lab import Lab, LabPorts, audio_seconds, start_plugin, stop_plugin

    say = log or (lambda s: None)
    if n_calls < 1:
        raise ValueError("n_calls must be at least 1")
    missing = [t for t in ("asterisk", "redis-server", "sipp", "espeak-ng") if not shutil.which(t)]
    if missing:
        raise RuntimeError(f"not installed: {', '.join(missing)}")
    # short path: Asterisk's control socket path must stay under 108 bytes
    root = Path(keep).resolve() if keep else Path(tempfile.mkdtemp(prefix="cg-calls-"))
    if keep and root.exists():  # only ever replace an earlier bench run (never an arbitrary directory)
        if (root / "lab" / "lab.json").exists():
            shutil.rmtree(root / "lab")
        elif any(root.iterdir()):
            raise RuntimeError(f"{root} exists and is not an earlier `bench calls` run: choose another --keep")
    lab = Lab(root=root / "lab", ports=LabPorts.pick(calls=n_calls))
    legs = '"caller", "callee"' if guard == "both" else '"caller"'
    lab.write(detector=detector, loader=loader, models_dir=models_dir, policies=BENCH_POLICIES % {"legs": legs})
    extens = [e.strip() for e in exten.split(",") if e.strip()]
    token = secrets.token_hex(16)
    env = {"CALLGUARD_DETECTOR_WORKERS": str(workers), "CALLGUARD_HTTP_TOKEN": token,
           "CALLGUARD_DETECTOR_QUEUE_SIZE": str(queue_size or max(16, n_calls // 2)),
           "OMP_NUM_THREADS": "1"}
    proc = None
    sipps: list[Any] = []
    report: dict[str, Any] = {"calls": n_calls, "seconds_of_speech": seconds, "stagger_s": stagger,
                              "extensions": extens, "guard": guard, "scoring_workers": workers,
                              "queue_size": int(env["CALLGUARD_DETECTOR_QUEUE_SIZE"]),
                              "loadavg_start": _loadavg(), "run_dir": str(root) if keep else None}
    try:
        t_setup = time.monotonic()
        lab.start_redis()
        lab.start_asterisk()
        bona = _audio(lab, seconds, synthetic=False)
        synth = _audio(lab, seconds, synthetic=True) if synthetic_every else None
        expected = {"bonafide": expected_chunks(bona.read_bytes())}
        if synth is not None:
            expected["synthetic"] = expected_chunks(synth.read_bytes())
        proc = start_plugin(lab, timeout=120, extra_env=env)
        report["lab_setup_s"] = round(time.monotonic() - t_setup, 2)
        say(f"lab up in {report['lab_setup_s']} s (Asterisk {lab.ari_url}, plugin pid {proc.pid}); "
            f"placing {n_calls} calls of {seconds:g} s speech")

        import redis

        r = redis.Redis.from_url(lab.redis_url, password=lab.redis_password)
        _, last = _read_stream(r, "-")  # nothing yet; remember where the stream is
        pids = {"plugin": proc.pid, "asterisk": lab.asterisk_pid(), "redis": lab.redis_pid()}
        workers_pids = child_pids(proc.pid)
        # the plugin's own idle cost (ARI websocket, timers, health), before any call
        idle0, idle_t0 = proc_cpu_s(proc.pid), time.monotonic()
        time.sleep(idle_s)
        idle1 = proc_cpu_s(proc.pid)
        if idle0 is not None and idle1 is not None:
            report["plugin_idle_cpu_cores"] = round((idle1 - idle0) / (time.monotonic() - idle_t0), 4)
        cpu0 = {k: proc_cpu_s(p) for k, p in pids.items()}
        split0 = proc_cpu_split(proc.pid)
        wcpu0 = {p: proc_cpu_s(p) for p in workers_pids}
        rss0 = proc_rss_bytes(proc.pid)
        kids0 = resource.getrusage(resource.RUSAGE_CHILDREN)  # the sipp callers land here once reaped
        rss_max = rss0 or 0
        w0 = time.monotonic()

        plan = []
        for i in range(n_calls):
            kind = "synthetic" if synth is not None and synthetic_every and i % synthetic_every == synthetic_every - 1 \
                else "bonafide"
            plan.append({"label": f"{kind[:5]}{i}", "kind": kind, "exten": extens[i % len(extens)],
                         "audio": synth if kind == "synthetic" else bona, "expected": expected[kind]})
        messages: list[dict[str, Any]] = []
        longest = 0.0
        for i, c in enumerate(plan):
            due = w0 + i * stagger / n_calls
            while time.monotonic() < due:
                time.sleep(min(0.02, due - time.monotonic()))
            dur = audio_seconds(c["audio"]) + 0.5
            longest = max(longest, dur)
            sipps.append(lab.sipp_call(c["exten"], c["audio"], duration_s=dur, index=i, caller_name=c["label"]))
        say(f"{n_calls} sipp callers started in {time.monotonic() - w0:.1f} s")
        deadline = time.monotonic() + longest + stagger + 60
        n_legs = n_calls * (2 if guard == "both" else 1)
        last_rss_t = 0.0
        while time.monotonic() < deadline:
            new, last = _read_stream(r, last)
            messages += new
            if time.monotonic() - last_rss_t > 0.5:
                last_rss_t = time.monotonic()
                rss_max = max(rss_max, proc_rss_bytes(proc.pid) or 0)
            done = all(s.proc.poll() is not None for s in sipps)
            if done and sum(m.get("type") == "summary" for m in messages) >= n_legs:
                break
            time.sleep(0.2)
        wall = time.monotonic() - w0
        cpu1 = {k: proc_cpu_s(p) for k, p in pids.items()}
        split1 = proc_cpu_split(proc.pid)
        wcpu1 = {p: proc_cpu_s(p) for p in workers_pids}
        workers_rss = [proc_rss_bytes(p) for p in workers_pids]
        metrics = _scrape(lab.log_dir / "callguard.log", token)
        for s in sipps:
            s.wait(10)
        kids1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        sipp_cpu = (kids1.ru_utime + kids1.ru_stime) - (kids0.ru_utime + kids0.ru_stime)
        calls = [{**{k: v for k, v in c.items() if k != "audio"}, "rc": s.proc.returncode,
                  "hung_up_by_pbx": s.hung_up_by_pbx} for c, s in zip(plan, sipps, strict=True)]
        report.update(summarize(messages, calls, guarded_legs=("caller", "callee") if guard == "both" else ("caller",)))

        # nothing left behind in Asterisk (clean-up runs right after each hang-up: give it a moment)
        left: dict[str, list[str]] = {"channels": [], "bridges": []}
        for _ in range(30):
            left = {"channels": parse_concise_channels(lab.asterisk_rx("core show channels concise")),
                    "bridges": parse_bridges(lab.asterisk_rx("bridge show all"))}
            if not left["channels"] and not left["bridges"]:
                break
            time.sleep(0.2)
        report["leftover"] = left

        def cores(a: float | None, b: float | None) -> float | None:
            return None if a is None or b is None else round((b - a) / wall, 3)

        report["wall_s"] = round(wall, 2)
        report["cpu_cores"] = {k: cores(cpu0[k], cpu1[k]) for k in pids}
        report["cpu_cores"]["sipp_callers"] = round(sipp_cpu / wall, 3)
        report["cpu_cores"]["detector_workers"] = round(sum((wcpu1[p] or 0) - (wcpu0[p] or 0)
                                                            for p in workers_pids) / wall, 3)
        report["plugin_cpu_s"] = None if cpu0["plugin"] is None or cpu1["plugin"] is None \
            else round(cpu1["plugin"] - cpu0["plugin"], 2)
        if split0 and split1:
            report["plugin_cpu_user_s"] = round(split1[0] - split0[0], 2)
            report["plugin_cpu_system_s"] = round(split1[1] - split0[1], 2)
        pkts = report["rtp"].get("packets", 0)
        report["plugin_cpu_us_per_packet"] = round(1e6 * report["plugin_cpu_s"] / pkts, 1) \
            if pkts and report["plugin_cpu_s"] is not None else None
        report["plugin_rss_mb_before_calls"] = round((rss0 or 0) / 2**20, 1)
        report["plugin_rss_mb_max"] = round(rss_max / 2**20, 1)
        report["plugin_children_rss_mb"] = [round((x or 0) / 2**20, 1) for x in workers_rss]  # detector workers,
        # and multiprocessing's helper process
        log_text = (lab.log_dir / "callguard.log").read_text(errors="replace")
        # the plugin's counters (/metrics); its log when they could not be read
        report["chunks_shed"] = int(metrics.get("callguard_chunks_shed_total", shed_in_log(log_text)))
        passes = metrics.get("callguard_media_read_passes_total")
        report["media_datagrams_per_read_pass"] = round(metrics.get("callguard_media_datagrams_total", 0) / passes, 2) \
            if passes else None
        report["media_unknown_source_packets"] = metrics.get("callguard_media_unknown_source_packets_total")
        report["metrics_read"] = bool(metrics)
        report["plugin_errors_logged"] = sum(1 for line in log_text.splitlines() if " ERROR " in line)
        report["loadavg_end"] = _loadavg()
        report["ok"], report["why_not"] = judge(report)
        return report
    finally:
        for s in sipps:
            s.stop()
        with contextlib.suppress(Exception):
            stop_plugin(lab, proc)
        with contextlib.suppress(Exception):
            lab.stop_asterisk()
        with contextlib.suppress(Exception):
            lab.stop_redis()
        if not keep:
            shutil.rmtree(root, ignore_errors=True)


def table_rows(r: dict[str, Any]) -> list[tuple[str, Any]]:
    keys = ("calls_placed", "calls_answered", "calls_guarded", "legs_tapped", "chunks_expected", "chunks_produced",
            "chunks_scored", "chunks_unscored", "chunks_shed", "chunk_errors", "chunk_end_to_published_p50_ms",
            "chunk_end_to_published_p95_ms", "chunk_end_to_published_p99_ms", "chunk_end_to_published_max_ms",
            "first_verdict_after_onset_p50_s", "first_verdict_after_onset_p95_s", "tap_setup_p50_ms",
            "tap_setup_p95_ms", "first_packet_p50_ms", "wall_s", "plugin_idle_cpu_cores", "plugin_cpu_s",
            "plugin_cpu_user_s", "plugin_cpu_system_s",
            "plugin_cpu_us_per_packet", "media_datagrams_per_read_pass",
            "plugin_rss_mb_before_calls", "plugin_rss_mb_max", "loadavg_start", "loadavg_end", "ok")
    rows = [(k, r.get(k)) for k in keys]
    rows += [(f"rtp.{k}", v) for k, v in (r.get("rtp") or {}).items()]
    rows += [(f"cpu_cores.{k}", v) for k, v in (r.get("cpu_cores") or {}).items()]
    left = r.get("leftover") or {}
    rows += [("leftover.channels", len(left.get("channels", []))), ("leftover.bridges", len(left.get("bridges", [])))]
    return rows

