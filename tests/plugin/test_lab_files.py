"""Generated lab configs, shipped snippets and docker-compose.yml are well-formed; CLI commands register."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from plugin.cli import build_parser
from plugin.config import load_config
from plugin.lab import Lab

REPO = Path(__file__).resolve().parents[2]


def test_lab_configs_render_completely_and_keep_secrets_out_of_the_plugin_config(tmp_path):
    lab = Lab(root=tmp_path / "lab")
    lab.write()
    for conf in (lab.etc).glob("*.conf"):
        assert "%{" not in conf.read_text(), conf.name
    assert f"bindport = {lab.ports.http}" in (lab.etc / "http.conf").read_text()
    assert lab.ari_password in (lab.etc / "ari.conf").read_text()
    assert oct((lab.etc / "ari.conf").stat().st_mode & 0o777) == "0o600"
    text = lab.plugin_config.read_text()
    assert lab.ari_password not in text and lab.redis_password not in text
    env = {"CALLGUARD_ARI_PASSWORD": lab.ari_password, "CALLGUARD_REDIS_PASSWORD": lab.redis_password}
    cfg = load_config(lab.plugin_config, env=env)
    assert cfg.ari.url == lab.ari_url and cfg.media.port == lab.ports.media
    assert cfg.policy_for(endpoint="sipp").allows("spoof", "hangup")
    ports = [lab.ports.http, lab.ports.sip, lab.ports.sip2, lab.ports.redis, lab.ports.media]
    assert len(set(ports)) == len(ports)


def test_sipp_scenario_template_renders_to_xml(tmp_path):
    import string
    import xml.etree.ElementTree as ET

    class T(string.Template):
        delimiter = "%"

    text = T((REPO / "dialplan" / "lab" / "sipp-uac.xml.tmpl").read_text()).substitute(
        audio="/x.ulaw", duration_ms=1000, caller_name="n", marker="/m")
    root = ET.fromstring(text.encode("latin-1"))
    assert root.tag == "scenario" and root.find(".//exec[@rtp_stream]") is not None


@pytest.mark.skipif(not shutil.which("docker-compose"), reason="docker-compose not installed")
def test_docker_compose_file_is_valid_and_demands_the_secrets():
    env = dict(os.environ, CALLGUARD_ARI_PASSWORD="a", CALLGUARD_REDIS_PASSWORD="b")
    ok = subprocess.run(["docker-compose", "-f", str(REPO / "docker-compose.yml"), "config", "-q"], env=env,
                        capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    env.pop("CALLGUARD_ARI_PASSWORD")
    missing = subprocess.run(["docker-compose", "-f", str(REPO / "docker-compose.yml"), "config", "-q"], env=env,
                             capture_output=True, text=True, timeout=60)
    assert missing.returncode != 0 and "CALLGUARD_ARI_PASSWORD" in missing.stderr
    for path in ("dialplan/docker/asterisk/Dockerfile", "dialplan/docker/callguard/Dockerfile",
                 "dialplan/docker/caller/Dockerfile", "dialplan/docker/callguard.toml"):
        assert (REPO / path).is_file(), path


def test_docker_plugin_config_is_valid():
    cfg = load_config(REPO / "dialplan" / "docker" / "callguard.toml",
                      env={"CALLGUARD_ARI_PASSWORD": "x", "CALLGUARD_DETECTOR_MODELS_DIR": str(REPO / "models")},
                      check_port=False)
    assert cfg.media.external_host == "callguard"


@pytest.mark.parametrize("command", ["serve", "lab"])
def test_commands_register_with_the_cli(command):
    parser = build_parser(command)
    args = parser.parse_args([command, "--config", "x.toml"] if command == "serve" else [command, "stop"])
    assert callable(args.func)
