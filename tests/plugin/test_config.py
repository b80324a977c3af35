"""Configuration: one-line errors that name the key, environment overrides, masked secrets."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from plugin.config import ConfigError, load_config, parse_config

EXAMPLE = Path(__file__).resolve().parents[2] / "dialplan" / "callguard.example.toml"


def base(**sections) -> dict:
    raw = {"ari": {"password": "s3cret"}, "media": {"port": 0}}
    for k, v in sections.items():
        raw.setdefault(k, {}).update(v) if isinstance(v, dict) else raw.__setitem__(k, v)
    return raw


def error_of(raw: dict, env: dict | None = None) -> str:
    with pytest.raises(ConfigError) as exc:
        parse_config(raw, env or {})
    msg = str(exc.value)
    assert "\n" not in msg, "errors are one line"
    return msg


def test_example_config_loads_with_password_from_environment():
    cfg = load_config(EXAMPLE, env={"CALLGUARD_ARI_PASSWORD": "pw", "CALLGUARD_MEDIA_PORT": "0"})
    assert cfg.ari.password == "pw"
    assert cfg.policy_for(context="from-pstn", exten="201").name == "protect"
    assert cfg.policy_for(context="from-pstn", exten="301").name == "watch"
    assert cfg.policy_for(endpoint="sbc-east").legs == ("caller", "callee")
    assert cfg.policies["protect"].allows("spoof", "hangup")
    assert not cfg.policies["watch"].allows("spoof", "hangup")


def test_environment_overrides_file_values_and_is_coerced():
    cfg = parse_config(base(redis={"url": "redis://10.0.0.1:6379/0"}),
                       {"CALLGUARD_REDIS_URL": "redis://127.0.0.1:7000/1", "CALLGUARD_DETECTOR_WORKERS": "2"})
    assert cfg.redis.url == "redis://127.0.0.1:7000/1"
    assert cfg.detector.workers == 2


def test_missing_ari_password_names_the_key():
    assert error_of({"media": {"port": 0}}).startswith("ari.password: missing")


@pytest.mark.parametrize("url", ["localhost:8088", "ftp://x", "http://", "http://host:99999"])
def test_bad_ari_url_names_the_key(url):
    assert error_of(base(ari={"url": url})).startswith("ari.url: bad")


def test_bad_redis_url_names_the_key():
    assert error_of(base(redis={"url": "http://127.0.0.1:6379"})).startswith("redis.url: bad URL")


def test_route_to_unknown_policy_names_the_route_and_the_policy():
    msg = error_of(base(routes=[{"endpoint": "x", "policy": "nope"}]))
    assert msg.startswith("routes[0].policy: unknown policy 'nope'")


def test_unknown_action_and_hangup_outside_spoof_are_rejected():
    assert error_of(base(policies={"p": {"on_spoof": ["explode"]}})).startswith("policies.p.on_spoof: unknown")
    assert error_of(base(policies={"p": {"on_suspicious": ["hangup"]}})).startswith(
        "policies.p.on_suspicious: hangup is only allowed on spoof")


def test_unknown_keys_sections_and_values_are_named():
    assert error_of(base(ari={"pasword": "x"})).startswith("ari.pasword: unknown key")
    assert error_of(base(extra={"a": 1})).startswith("extra: unknown section")
    assert error_of(base(media={"format": "gsm"})).startswith("media.format: unknown format 'gsm'")
    assert error_of(base(detector={"name": "magic"})).startswith("detector.name: unknown detector")
    assert error_of(base(detector={"workers": "many"})).startswith("detector.workers: expected an integer")
    assert error_of(base(policies={"p": {"legs": ["third"]}})).startswith("policies.p.legs: unknown value")
    assert error_of(base(default_policy="ghost")).startswith("default_policy: unknown policy")
    assert error_of(base(policies={"p": {"hangup_grace_s": -1}})).startswith("policies.p.hangup_grace_s")


def test_media_port_in_use_is_reported_on_the_media_port_key():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        msg = error_of(base(media={"port": port}))
    assert msg.startswith("media.port: cannot bind UDP 127.0.0.1:") and "in use" in msg


def test_secrets_are_masked_in_repr_and_never_in_errors():
    cfg = parse_config(base(redis={"password": "redis-pw"}), {})
    assert "s3cret" not in repr(cfg) and "redis-pw" not in repr(cfg)
    assert "***" in repr(cfg.ari)
    msg = error_of(base(ari={"url": "bad", "password": "topsecret"}))
    assert "topsecret" not in msg


def test_missing_and_broken_files_are_one_line_errors(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "none.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[ari\nurl=")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad)


def test_serve_check_prints_one_line_error_and_exit_status_2(tmp_path, capsys):
    from plugin.cli import main

    cfg = tmp_path / "c.toml"
    cfg.write_text('[ari]\nurl = "nonsense"\npassword = "x"\n')
    assert main(["serve", "--config", str(cfg), "--check"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "ari.url" in err[0]


def test_a_policy_without_on_spoof_never_hangs_up():
    from plugin.config import Policy

    assert not Policy(name="default").allows("spoof", "hangup")
    assert Policy(name="default").allows("spoof", "warn")


def test_a_policy_may_set_its_own_hangup_window_and_zero_is_refused():
    from plugin.config import ConfigError, parse_config

    base = {"ari": {"password": "x"}, "media": {"port": 0}}
    cfg = parse_config({**base, "policies": {"strict": {"hangup_window": 8}}}, {}, check_port=False)
    assert cfg.policies["strict"].hangup_window == 8
    assert parse_config(base, {}, check_port=False).policies["default"].hangup_window is None  # the model's
    with pytest.raises(ConfigError, match="hangup_window"):
        parse_config({**base, "policies": {"strict": {"hangup_window": 0}}}, {}, check_port=False)
