"""A tiny two-class corpus built on the fly from installed packages, in the corpus manifest format."""

from __future__ import annotations

import csv
import glob
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile

from detector.audio import load_audio
from detector.chunking import speech_chunks

SENTENCES = [
    "Please hold the line while we transfer your call to the next available agent.",
    "Your account balance is four hundred and twelve dollars and nine cents.",
    "I am calling from the bank about a payment that needs your approval today.",
    "Could you read me the verification code that we just sent to your phone?",
]


def _write(out: Path, rows: list[dict], signal: np.ndarray, **meta: str) -> None:
    for c in speech_chunks(signal):
        rel = f"chunks/{meta['split']}/{len(rows):05d}.wav"
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        soundfile.write(out / rel, c.audio, 8000, subtype="PCM_16")
        rows.append({"path": rel, "start_s": c.start_s, **meta})


@pytest.fixture(scope="session")
def tiny_corpus(tmp_path_factory) -> Path:
    packs = {"allison": "en_US_f_Allison", "june": "fr_CA_f_June", "menardi": "it_IT_f_Menardi"}
    if not all(glob.glob(f"/usr/share/asterisk/sounds/{d}/*.wav") for d in packs.values()) \
            or not shutil.which("espeak-ng"):
        pytest.skip("speech packages missing (./setup installs them)")
    out = tmp_path_factory.mktemp("tiny_corpus")
    rows: list[dict] = []
    for (spk, d), split in zip(packs.items(), ("train", "dev", "eval"), strict=True):
        files = sorted(glob.glob(f"/usr/share/asterisk/sounds/{d}/*.wav"))[:60]
        _write(out, rows, np.concatenate([load_audio(f) for f in files]), label="bonafide",
               attack_type="bonafide", generator="", voice=spk, speaker=spk, group=spk, language="x", split=split)
    for voice, split in (("en-us", "train"), ("en+f3", "train"), ("fr", "dev"), ("it", "eval")):
        parts = []
        for i, text in enumerate(SENTENCES * 2):
            wav = out / "tts.wav"
            subprocess.run(["espeak-ng", "-v", voice, "-s", str(130 + 10 * i), "-w", str(wav), text], check=True)
            parts.append(load_audio(wav))
        family = "espeak_" + split
        _write(out, rows, np.concatenate(parts), label="spoof", attack_type="tts", generator=family,
               voice=voice, speaker=voice, group=voice, language="x", split=split)
    with (out / "manifest.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    return out


@pytest.fixture(scope="session")
def tiny_models(tiny_corpus, tmp_path_factory) -> Path:
    """A GBM trained on the tiny corpus (seconds), for tests of the scoring paths."""
    from detector.train_gbm import train_gbm

    out = tmp_path_factory.mktemp("tiny_models")
    train_gbm(tiny_corpus, out, out / "run", rounds=40, early_stopping=1000)
    return out


@pytest.fixture
def cpu_capability_after_import():
    """``f(module, **env)``: the kernel instruction set torch reports in a fresh process that first imports
    ``module`` then torch, with the ISA pin variables cleared from the environment and ``env`` added."""
    import os
    import sys

    from detector.torch_cpu import PINNED_CPU_ISA

    def run(module: str, **env_extra: str) -> str:
        pytest.importorskip("torch")
        env = {k: v for k, v in os.environ.items() if k not in PINNED_CPU_ISA}
        env.update(env_extra)
        code = f"import {module}, torch; print(torch.backends.cpu.get_cpu_capability())"
        return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                              check=True).stdout.strip()
    return run
