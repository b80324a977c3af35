"""Fixtures for plugin unit tests: a private redis-server on a free loopback port."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from plugin.lab import Lab, LabPorts, free_port


@pytest.fixture
def private_redis(tmp_path: Path) -> Iterator[Lab]:
    if not shutil.which("redis-server"):
        pytest.skip("redis-server not installed")
    port = free_port()
    lab = Lab(root=tmp_path / "redis", ports=LabPorts(http=0, sip=0, sip2=0, rtp_start=0, rtp_end=0, redis=port,
                                                         media=0, sipp_base=0))
    for d in ("run", "lib", "log"):
        (lab.root / d).mkdir(parents=True, exist_ok=True)
    lab.start_redis()
    try:
        yield lab
    finally:
        lab.stop_redis()
