"""The FreeSWITCH path end to end through the Event Socket peer (tests/plugin/esl_peer.py): the real
Service (config selects the FreeSWITCH adapter), the real MediaEndpoint receiving raw unicast datagrams,
the real ScoringService with the stand-in detector (tests/plugin/fakedet.py: loud chunks score 0.95,
quiet ones 0.05), the real verdict bus on a private Redis and the real reactor, whose reactions go back to
the peer as uuid_setvar_multi / uuid_broadcast / uuid_kill. The call audio is fixture speech from
tests/fixtures/corpus, made loud (-> "spoof" for the stand-in) or quiet (-> "bonafide").

The peer follows the protocol documentation and FreeSWITCH's source; none of this has run against a live
FreeSWITCH (see README, "FreeSWITCH")."""

from __future__ import annotations

import asyncio
import csv
import json
import re
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from esl_peer import EslPeer

from detector.audio import g711_encode, load_audio
from plugin.config import ConfigError, parse_config
from plugin.freeswitch import TAP_PREFIX, endpoint_of, media_path
from plugin.lab import Lab, free_port
from plugin.media import LegTap
from plugin.service import Service
from plugin.unicast import RawAudioFeed

HERE = Path(__file__).resolve().parent
CORPUS = HERE.parent / "fixtures" / "corpus"
PASSWORD = "fs-event-socket-pw"


def speech(label: str, n: int, rms: float) -> bytes:
    """``n`` fixture chunks of ``label`` joined by 0.3 s pauses, scaled to speech RMS ``rms``, as
    little-endian L16 at 8 kHz (what unicast sends for a loopback leg)."""
    rows = [r for r in csv.DictReader(open(CORPUS / "manifest.csv")) if r["label"] == label][:n]
    parts = []
    for r in rows:
        x = load_audio(CORPUS / r["path"]).astype(np.float64)
        voiced = x[np.abs(x) > 0.01 * np.abs(x).max()]
        parts += [np.clip(x * (rms / float(np.sqrt(np.mean(voiced ** 2)))), -0.99, 0.99), np.zeros(2400)]
    x = np.concatenate(parts)
    return (x * 32767).astype("<i2").tobytes()


def config(peer: EslPeer, lab: Lab, tmp_path: Path, port_min: int, fs: dict[str, Any] | None = None,
           **policy: Any) -> Any:
    protect = {"legs": ["caller", "callee"], "window": 2, "min_chunks": 2, "on_bonafide": ["annotate"],
               "on_suspicious": ["annotate", "warn"], "on_spoof": ["annotate", "warn", "hangup"],
               "hangup_grace_s": 0, "warn_media": "sound:beep", **policy}
    return parse_config({
        "telephony": {"kind": "freeswitch"},
        "freeswitch": {"port": peer.port, "unicast_port_min": port_min, "unicast_port_max": port_min + 20,
                       **(fs or {})},
        "redis": {"url": lab.redis_url, "spool_path": str(tmp_path / "spool.jsonl"),
                  "summary_log": str(tmp_path / "summary.jsonl")},
        "media": {"bind_host": "127.0.0.1", "port": 0},
        "detector": {"loader": f"{HERE / 'fakedet.py'}:load", "workers": 1},
        "http": {"enabled": False},
        "policies": {"protect": protect},
        "default_policy": "protect",
    }, env={"CALLGUARD_FREESWITCH_PASSWORD": PASSWORD, "CALLGUARD_REDIS_PASSWORD": lab.redis_password},
        check_port=False)


async def until(cond: Any, timeout: float = 30.0, what: str = "condition") -> None:
    for _ in range(int(timeout / 0.02)):
        if cond():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def summaries(tmp_path: Path) -> list[dict[str, Any]]:
    path = tmp_path / "summary.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def run_service(tmp_path: Path, lab: Lab, scenario: Any, port_min: int | None = None,
                fs: dict[str, Any] | None = None, **policy: Any) -> Any:
    async def main() -> Any:
        peer = EslPeer(password=PASSWORD)
        await peer.start()
        service = Service(config(peer, lab, tmp_path, port_min or free_port(), fs, **policy))
        try:
            await service.start()
            await peer.wait_subscribed()
            return await asyncio.wait_for(scenario(peer, service), 90)
        finally:
            await service.close()
            await peer.close()

    return asyncio.run(main())


# ------------------------------------------------------------------------------------------ end to end
def test_a_spoofed_caller_is_tapped_scored_annotated_warned_and_hung_up_while_the_callee_stays_bonafide(
        tmp_path, private_redis):
    spoof, bonafide = speech("spoof", 5, 0.5), speech("bonafide", 5, 0.05)

    async def scenario(peer: EslPeer, service: Service) -> dict[str, Any]:
        a, b = await peer.place_call(spoof, bonafide, variables={"callguard": "bridge"}, dest="2001",
                                     caller_id="5550100")
        await until(lambda: any(cmd.startswith(f"uuid_kill {a}") for cmd in peer.api_log), what="hang-up")
        await until(lambda: len(summaries(tmp_path)) == 2, what="both legs' summaries")
        await until(lambda: not any(ch.dest.startswith(TAP_PREFIX) for ch in peer.channels.values()),
                    what="tap channels gone")
        adapter = service.adapter
        assert adapter is not None
        # the adapter forgets the call after its taps' kills are answered: wait for it (a leak still times out)
        await until(lambda: not adapter.calls and not adapter.taps, what="the adapter to forget the call")
        return {"a": a, "b": b, "api": list(peer.api_log), "sendmsgs": list(peer.sendmsgs),
                "frames": dict(peer.streamed_frames), "media_port": service.media.transport.get_extra_info(
                    "sockname")[1], "unknown": service.media.unknown_packets, "taps": dict(service.media.taps),
                "raw": dict(service.media.raw_sources), "adapter_taps": dict(adapter.taps),
                "calls": dict(adapter.calls), "left": set(peer.channels)}

    r = run_service(tmp_path, private_redis, scenario)
    a, b, api = r["a"], r["b"], r["api"]
    # one loopback tap per leg, each eavesdropping on that leg's read stream only
    originates = [c for c in api if c.startswith("originate ")]
    assert len(originates) == 2
    for target in (a, b):
        cmd = next(c for c in originates if c.endswith(f"&eavesdrop({target})"))
        assert "eavesdrop_bridge_aleg=true" in cmd and "process_cdr=false" in cmd
        assert re.search(rf"loopback/{TAP_PREFIX}[0-9a-f]+/callguard-tap ", cmd)
    # unicast was asked of the parked B legs, towards the media endpoint, from ports in the range
    unicasts = [h for _, h in r["sendmsgs"] if h.get("call-command") == "unicast"]
    assert len(unicasts) == 2
    assert all(h["remote-port"] == str(r["media_port"]) and h["transport"] == "udp" and "flags" not in h
               for h in unicasts)
    assert len({h["local-port"] for h in unicasts}) == 2
    assert sum(r["frames"].values()) > 400 and r["unknown"] == 0
    # reactions: the caller judged spoof (annotated, the callee warned, the caller hung up); callee bonafide
    assert f"uuid_setvar_multi {a} DEEPFAKE_SCORE=0.9500;DEEPFAKE_VERDICT=spoof;deepfake_score=0.9500" in api
    assert f"uuid_broadcast {b} tone_stream://%(250,0,1000) aleg" in api
    assert f"uuid_kill {a} NORMAL_CLEARING" in api
    assert f"uuid_setvar_multi {b} DEEPFAKE_SCORE=0.0500;DEEPFAKE_VERDICT=bonafide;deepfake_score=0.0500" in api
    assert not any(c.startswith(f"uuid_broadcast {a}") or c.startswith(f"uuid_kill {b}") for c in api)
    by_leg = {s["leg"]: s for s in summaries(tmp_path)}
    caller, callee = by_leg["caller"]["summary"], by_leg["callee"]["summary"]
    assert by_leg["caller"]["verdict"] == "spoof" and by_leg["callee"]["verdict"] == "bonafide"
    assert caller["scored"] >= 2 and callee["scored"] >= 1  # the hang-up may come before its 2nd chunk
    assert caller["rtp"]["packets"] > 100 and caller["rtp"]["malformed"] == 0
    assert caller["ended_by"].startswith("caller NORMAL_CLEARING")
    # nothing left behind: no tap channels, no taps in the endpoint or the adapter
    assert r["left"] == set() and r["taps"] == {} and r["raw"] == {} and r["adapter_taps"] == {}
    assert r["calls"] == {}


@pytest.mark.parametrize("event_format", ["plain", "json"])
def test_answer_mode_guards_the_caller_alone_and_a_bonafide_call_is_only_annotated(tmp_path, private_redis,
                                                                                    event_format):
    bonafide = speech("bonafide", 4, 0.05)

    async def scenario(peer: EslPeer, service: Service) -> dict[str, Any]:
        unguarded, _ = await peer.place_call(bonafide, bonafide, variables={}, dest="3000")
        a, _ = await peer.place_call(bonafide, variables={"callguard": "answer"}, dest="4000", bridge=False)
        await until(lambda: any(c.startswith(f"uuid_setvar_multi {a}") and "bonafide" in c for c in peer.api_log),
                    what="annotation")
        await until(lambda: peer.streamed_frames and all(
            n >= len(bonafide) // 320 for n in peer.streamed_frames.values()), what="stream end")
        await asyncio.sleep(0.5)
        await peer.hangup(a, "NORMAL_CLEARING")
        await until(lambda: len(summaries(tmp_path)) == 1, what="summary")
        await until(lambda: not any(ch.dest.startswith(TAP_PREFIX) for ch in peer.channels.values()),
                    what="tap channels gone")
        return {"a": a, "unguarded": unguarded, "api": list(peer.api_log)}

    r = run_service(tmp_path, private_redis, scenario, fs={"event_format": event_format})
    api = r["api"]
    originates = [c for c in api if c.startswith("originate ")]
    assert len(originates) == 1 and originates[0].endswith(f"&eavesdrop({r['a']})")
    assert not any(r["unguarded"] in c for c in api)
    assert not any(c.startswith(("uuid_broadcast", f"uuid_kill {r['a']}")) for c in api)
    (s,) = summaries(tmp_path)
    assert s["leg"] == "caller" and s["verdict"] == "bonafide" and s["summary"]["scored"] >= 2
    assert s["summary"]["ended_by"] == "caller NORMAL_CLEARING"


def test_an_answered_call_bridged_later_has_its_callee_tapped_too_when_the_policy_guards_it(tmp_path,
                                                                                          private_redis):
    bonafide, spoof = speech("bonafide", 4, 0.05), speech("spoof", 4, 0.5)

    async def scenario(peer: EslPeer, service: Service) -> dict[str, Any]:
        a, b = await peer.place_call(bonafide, spoof, variables={"callguard": "answer"}, dest="4000",
                                     bridge=False)
        await until(lambda: any(c.startswith(f"uuid_setvar_multi {a}") for c in peer.api_log), what="caller scored")
        await peer.bridge(a, b)  # the IVR hands the call to an agent
        await until(lambda: any(c.startswith(f"uuid_kill {b}") for c in peer.api_log), what="callee hung up")
        await until(lambda: len(summaries(tmp_path)) == 2, what="both legs' summaries")
        return {"a": a, "b": b, "api": list(peer.api_log)}

    r = run_service(tmp_path, private_redis, scenario)
    a, b, api = r["a"], r["b"], r["api"]
    originates = [c for c in api if c.startswith("originate ")]
    assert len(originates) == 2
    assert originates[0].endswith(f"&eavesdrop({a})") and originates[1].endswith(f"&eavesdrop({b})")
    assert f"uuid_setvar_multi {b} DEEPFAKE_SCORE=0.9500;DEEPFAKE_VERDICT=spoof;deepfake_score=0.9500" in api
    assert not any(c.startswith(f"uuid_kill {a}") for c in api)
    by_leg = {s["leg"]: s for s in summaries(tmp_path)}
    assert by_leg["caller"]["verdict"] == "bonafide" and by_leg["callee"]["verdict"] == "spoof"


def test_a_call_that_ends_while_the_event_socket_is_down_is_ended_at_resync(tmp_path, private_redis):
    audio = speech("bonafide", 2, 0.05)

    async def scenario(peer: EslPeer, service: Service) -> dict[str, Any]:
        adapter = service.adapter
        assert adapter is not None
        a, _ = await peer.place_call(audio, audio, variables={"callguard": "bridge"}, dest="2002")
        await until(lambda: len(adapter.taps) == 2 and all(t.b_uuid for t in adapter.taps.values()), what="taps")
        await peer.stop_listening()
        await peer.drop()
        await until(lambda: not adapter.esl.connected, what="disconnect")
        await peer.hangup(a)  # nobody hears these events
        stale = peer.add_channel(f"loopback/{TAP_PREFIX}0123456789abcdef-a", dest=f"{TAP_PREFIX}0123456789abcdef")
        await peer.resume_listening()
        await until(lambda: len(summaries(tmp_path)) == 2, what="summaries after resync")
        await until(lambda: stale.uuid not in peer.channels, what="orphan killed")
        await until(lambda: not adapter.calls and not adapter.taps, what="the adapter to forget the call")
        return {"calls": dict(adapter.calls), "taps": dict(adapter.taps), "reconnects": adapter.esl.reconnects}

    r = run_service(tmp_path, private_redis, scenario)
    assert r["calls"] == {} and r["taps"] == {} and r["reconnects"] == 1
    assert all(s["summary"]["ended_by"] == "vanished while the event socket was disconnected"
               for s in summaries(tmp_path))


def test_a_silent_tap_and_a_dead_tap_are_both_set_up_again_while_the_call_goes_on(tmp_path, private_redis):
    audio = speech("bonafide", 4, 0.05)
    port_min = free_port()
    taken = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    taken.bind(("127.0.0.1", port_min))  # the first port FreeSWITCH is told to use: its bind fails, no audio

    async def scenario(peer: EslPeer, service: Service) -> dict[str, Any]:
        adapter = service.adapter
        assert adapter is not None
        adapter.first_audio_s = 1.0
        peer.frame_interval = 0.02  # real time: the call lasts while the taps are replaced
        a, _ = await peer.place_call(audio, variables={"callguard": "answer"}, dest="4001", bridge=False)
        originates = lambda: [c for c in peer.api_log if c.startswith("originate ")]  # noqa: E731
        await until(lambda: len(originates()) == 2, what="re-tap of the silent tap")
        await until(lambda: peer.streamed_frames and max(peer.streamed_frames.values()) > 25, what="audio")
        (res,) = adapter.taps.values()
        await peer.hangup(res.a_uuid)  # the tap's eavesdropping leg dies; the call goes on
        await until(lambda: len(originates()) == 3, what="re-tap of the dead tap")
        await until(lambda: any(c.startswith(f"uuid_setvar_multi {a}") for c in peer.api_log), what="annotation")
        await peer.hangup(a)
        await until(lambda: len(summaries(tmp_path)) == 1, what="summary")
        return {"unicast_ports": [h["local-port"] for _, h in peer.sendmsgs if h.get("call-command") == "unicast"]}

    try:
        r = run_service(tmp_path, private_redis, scenario, port_min=port_min)
    finally:
        taken.close()
    ports = [int(p) for p in r["unicast_ports"]]
    assert ports[0] == port_min and len(set(ports)) == 3
    (s,) = summaries(tmp_path)
    assert s["summary"]["retaps"] == 2 and s["summary"]["rtp"]["packets"] > 0


# ------------------------------------------------------------------------------------------ units
class _Sink:
    def __init__(self) -> None:
        self.chunks: list[Any] = []

    def __call__(self, key: str, chunk: Any) -> None:
        self.chunks.append(chunk)


def _tap() -> tuple[LegTap, _Sink]:
    sink = _Sink()
    return LegTap(key="c:caller", fmt="ulaw", on_chunk=sink), sink


def test_unicast_l16_and_native_pcmu_datagrams_give_the_same_chunks():
    pcm = np.frombuffer(speech("bonafide", 2, 0.1), "<i2")
    ulaw = g711_encode(pcm, "ulaw").tobytes()
    from detector.audio import g711_decode

    pcm_ulaw = g711_decode(ulaw, "ulaw").astype("<i2").tobytes()  # the same G.711-limited signal as L16
    results = []
    for fmt, data, width in (("l16", pcm_ulaw, 2), ("pcmu", ulaw, 1)):
        tap, sink = _tap()
        feed = RawAudioFeed(fmt)
        step = 160 * width
        for i in range(0, len(data), step):
            feed(tap, data[i:i + step])
        results.append((tap.stats.frames, [c.audio.tobytes() for c in sink.chunks]))
        assert tap.stats.malformed == 0 and tap.stats.packets == -(-len(data) // step)
    assert results[0][1] and results[0] == results[1]


def test_unicast_big_endian_bytes_would_not_be_what_we_read():
    # FreeSWITCH's L16 is host order (little-endian): reading it as RTP-style big-endian breaks the audio
    pcm = np.frombuffer(speech("bonafide", 1, 0.1), "<i2")[:1600]
    tap, _ = _tap()
    RawAudioFeed("l16")(tap, pcm.tobytes())
    assert tap.stats.frames == 10
    assert not np.array_equal(pcm.byteswap(), pcm)


def test_unicast_comfort_noise_odd_and_oversized_datagrams():
    tap, _ = _tap()
    feed = RawAudioFeed("pcmu")
    feed(tap, b"\xff" * 320)  # native CNG: the decoded frame size of 0xFF = 20 ms of silence
    assert (feed.cng_frames, tap.stats.frames) == (1, 1)
    tap2, _ = _tap()
    l16 = RawAudioFeed("l16")
    l16(tap2, b"\x01")  # not even one sample
    l16(tap2, b"\x00" * 9000)  # not an audio frame
    assert tap2.stats.malformed == 2 and tap2.stats.frames == 0
    wide = RawAudioFeed("l16", 16000)
    tap3, _ = _tap()
    wide(tap3, b"\x00\x01" * 640)  # 40 ms at 16 kHz -> two 20 ms frames at 8 kHz
    assert tap3.stats.frames == 2
    with pytest.raises(ValueError):
        RawAudioFeed("pcmu", 16000)


def test_names_and_media_mapping():
    assert endpoint_of("sofia/internal/1001@10.0.0.5") == "1001"
    assert endpoint_of("sofia/gateway/trunk/5551234") == "5551234"
    assert media_path("sound:beep").startswith("tone_stream://")
    assert media_path("sound:ivr/ivr-please_hold.wav") == "ivr/ivr-please_hold.wav"
    assert media_path("tone:%(100,100,440)") == "tone_stream://%(100,100,440)"
    with pytest.raises(ValueError):
        media_path("digits:123")


def test_freeswitch_config_needs_its_own_password_not_the_ari_one_and_masks_it():
    with pytest.raises(ConfigError, match="freeswitch.password: missing"):
        parse_config({"telephony": {"kind": "freeswitch"}}, env={}, check_port=False)
    cfg = parse_config({"telephony": {"kind": "freeswitch"}}, env={"CALLGUARD_FREESWITCH_PASSWORD": "hunter22"},
                       check_port=False)
    assert cfg.freeswitch.password == "hunter22" and "hunter22" not in repr(cfg)
    with pytest.raises(ConfigError, match="telephony.kind"):
        parse_config({"telephony": {"kind": "yate"}}, env={"CALLGUARD_ARI_PASSWORD": "x"}, check_port=False)
    with pytest.raises(ConfigError, match="unicast_port_min"):
        parse_config({"telephony": {"kind": "freeswitch"}, "freeswitch": {"unicast_port_min": 50000,
                                                                          "unicast_port_max": 40000}},
                     env={"CALLGUARD_FREESWITCH_PASSWORD": "x"}, check_port=False)
    with pytest.raises(ConfigError, match="ari.password"):
        parse_config({}, env={}, check_port=False)
