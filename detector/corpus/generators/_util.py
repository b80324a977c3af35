"""Helpers shared by the generator modules: running a tool, reading its WAV, joining sentences."""

from __future__ import annotations

import io
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import soundfile as sf


def need(binary: str, package: str) -> str | None:
    return None if shutil.which(binary) else f"`{binary}` not found: apt-get install {package}"


def run(cmd: list[str], timeout: float = 300, stdin: bytes | None = None) -> bytes:
    proc = subprocess.run(cmd, input=stdin, capture_output=True, timeout=timeout, check=False)
    if proc.returncode != 0:
        err = proc.stderr.decode(errors="replace").strip().splitlines()
        raise RuntimeError(f"{cmd[0]} failed ({proc.returncode}): {err[-1] if err else ''}")
    return proc.stdout


def read_wav_bytes(data: bytes) -> tuple[np.ndarray, int]:
    x, sr = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    return x.mean(axis=1), int(sr)


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    x, sr = sf.read(str(path), dtype="float32", always_2d=True)
    return x.mean(axis=1), int(sr)


def join(pieces: list[np.ndarray], sr: int, rng: np.random.Generator) -> np.ndarray:
    """Sentences one after another with natural pauses (the chunker removes pauses anyway)."""
    out: list[np.ndarray] = []
    for p in pieces:
        if p.size:
            out.append(p.astype(np.float32))
            out.append(np.zeros(int(sr * rng.uniform(0.15, 0.7)), np.float32))
    return np.concatenate(out) if out else np.zeros(0, np.float32)


def tempdir() -> tempfile.TemporaryDirectory:
    return tempfile.TemporaryDirectory(prefix="callguard-gen-")


def import_with_shim(name: str):
    """Import a module whose __init__ needs pkg_resources (gone from setuptools >= 81): shim it.

    pyworld 0.3.x reads its version and pysptk its example-audio path through pkg_resources.
    """
    import importlib

    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != "pkg_resources":
            raise
    import importlib.metadata
    import sys
    import types

    shim = types.ModuleType("pkg_resources")

    class _Dist:
        def __init__(self, dist: str) -> None:
            self.version = importlib.metadata.version(dist)

    shim.get_distribution = _Dist  # type: ignore[attr-defined]
    shim.resource_filename = lambda pkg, res: str(__import__("pathlib").Path(  # type: ignore[attr-defined]
        importlib.import_module(pkg).__file__).parent / res)
    for mod in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[mod]
    sys.modules["pkg_resources"] = shim
    try:
        return importlib.import_module(name)
    finally:
        del sys.modules["pkg_resources"]


def import_pyworld():
    return import_with_shim("pyworld")


def through_wav_tool(x: np.ndarray, sr: int, argv: Callable[[Path, Path, Path], list[str]],
                     subtype: str = "FLOAT") -> tuple[np.ndarray, int]:
    """Run a command-line audio tool on ``x``: it is written to ``in.wav`` (``subtype``) in a fresh temporary
    directory, ``argv(directory, in.wav, out.wav)`` is run, and ``out.wav`` is read back (mono float32, NaN
    made 0). ``argv`` may write files of its own (a script) into the directory first."""
    with tempdir() as d:
        src, out = Path(d, "in.wav"), Path(d, "out.wav")
        sf.write(str(src), x.astype(np.float32), sr, subtype=subtype)
        run(argv(Path(d), src, out))
        y, rate = read_wav(out)
    return np.nan_to_num(y).astype(np.float32), rate
