"""Small corpus builds shared by the corpus tests (one build per session, a few tens of seconds)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
NEEDED = ["espeak-ng", "festival", "flite", "pico2wave", "ffmpeg"]


def run_build(out: Path, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "plugin.cli", "corpus", "build", "--size", "small", "--out", str(out), *extra]
    e = dict(os.environ, OMP_NUM_THREADS="1")
    if env:
        e.update(env)
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600, env=e)


@pytest.fixture(scope="session")
def small_corpus(tmp_path_factory) -> Path:
    missing = [b for b in NEEDED if not shutil.which(b)]
    if missing:
        pytest.skip(f"speech tools missing ({', '.join(missing)}): run ./setup")
    out = tmp_path_factory.mktemp("corpus_small")
    proc = run_build(out, "--seed", "7")
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out
