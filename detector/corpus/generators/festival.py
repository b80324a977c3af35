"""Festival voices (diphone, cluster unit selection and HTS), one festival process per batch."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from detector.corpus.generators._util import join, need, read_wav, run, tempdir

FAMILY = "festival"
ATTACK_TYPE = "tts"
KIND = "tts"
VOICES = {"kal_diphone": "en", "rab_diphone": "en", "don_diphone": "en", "ked_diphone": "en",
          "cmu_us_slt_arctic_hts": "en", "cmu_us_awb_arctic_hts": "en", "lp_diphone": "it", "pc_diphone": "it",
          "msu_ru_nsh_clunits": "ru", "el_diphone": "es"}
VOICE_ROOT = Path("/usr/share/festival/voices")


def _installed() -> dict[str, str]:
    found = {p.name for p in VOICE_ROOT.glob("*/*") if p.is_dir()} if VOICE_ROOT.is_dir() else set()
    return {v: lang for v, lang in VOICES.items() if v in found}


def check() -> str | None:
    msg = need("festival", "festival")
    if msg:
        return msg
    if not _installed():
        return "no festival voice installed: apt-get install festvox-kallpc16k festvox-us-slt-hts festvox-ru"
    return None


def voices() -> list[tuple[str, str]]:
    return sorted(_installed().items())


def _scm_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def synthesize(texts: list[str], voice: str, language: str, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    with tempdir() as td:
        d = Path(td)
        stretch = float(rng.uniform(0.85, 1.2))
        lines = [f"(voice_{voice})", f"(Parameter.set 'Duration_Stretch {stretch:.3f})"]
        for i, t in enumerate(texts):
            lines.append(f"(utt.save.wave (utt.synth (Utterance Text {_scm_string(t)})) \"{d}/{i}.wav\" 'riff)")
        (d / "job.scm").write_text("\n".join(lines) + "\n", encoding="utf-8")
        run(["festival", "-b", str(d / "job.scm")], timeout=600)
        pieces, sr = [], 16000
        for i in range(len(texts)):
            f = d / f"{i}.wav"
            if f.is_file():
                x, sr = read_wav(f)
                pieces.append(x)
    return join(pieces, sr, rng), sr
