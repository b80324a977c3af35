"""The shipped WavLM detector: the exported ONNX graph run by onnxruntime (no torch needed).

The graph (``detector.wavlm_model.SpoofWavLM``) takes ``[batch, samples]`` float32 at 8 kHz and returns one
logit per chunk; it normalises every chunk to zero mean and unit RMS itself, so scores do not depend on the
call's level. Probabilities are ``sigmoid(logit)``; thresholds come from ``wavlm.calibration.json``.

A model trained on chunks turned upright (``detector.polarity.upright``; the calibration's
``model.input_polarity`` is ``"upright"``) gets its input turned upright here too, so its score cannot depend on
which way up the line delivers the waveform. Models without that key see the samples as they come.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from scipy.special import expit

from detector import polarity
from detector.scoring import ModelError, Thresholds

MODEL_FILE = "wavlm.onnx"
CALIBRATION_FILE = "wavlm.calibration.json"
UPRIGHT = "upright"  # the calibration's model.input_polarity for models trained on upright chunks
AS_RECORDED = "as_recorded"  # ... and for models that see the samples as they come (the default)


def _session(path: Path, threads: int) -> object:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.add_session_config_entry("session.set_denormal_as_zero", "1")  # denormals cost up to 4x on this CPU
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise ModelError(f"{path}: not a loadable ONNX model ({exc})") from exc


@dataclass
class WavLMDetector:
    session: object
    thresholds: Thresholds
    version: str
    name: str = "wavlm"
    calibration: dict = field(default_factory=dict)
    batch_size: int = 16
    upright: bool = False  # turn each chunk upright before the graph (the model was trained that way)

    @classmethod
    def load(cls, models_dir: Path | str, threads: int = 1) -> WavLMDetector:
        """``wavlm.onnx`` + ``wavlm.calibration.json`` from ``models_dir``; one intra-op thread by default
        (the live path runs one detector per worker)."""
        model_path, cal_path = Path(models_dir) / MODEL_FILE, Path(models_dir) / CALIBRATION_FILE
        if not model_path.is_file() or not cal_path.is_file():
            raise ModelError(f"no WavLM model in {models_dir} (expected {MODEL_FILE} and {CALIBRATION_FILE}); "
                             "train one with `callguard train wavlm`")
        try:
            cal = json.loads(cal_path.read_text())
        except (OSError, ValueError) as exc:
            raise ModelError(f"{cal_path}: unreadable calibration ({exc})") from exc
        input_polarity = (cal.get("model") or {}).get("input_polarity", AS_RECORDED)
        if input_polarity not in (UPRIGHT, AS_RECORDED):
            raise ModelError(f"{cal_path}: unknown model.input_polarity {input_polarity!r} (this code knows "
                             f"{UPRIGHT!r} and {AS_RECORDED!r})")
        return cls(session=_session(model_path, threads), thresholds=Thresholds.from_calibration(cal_path),
                   version=str(cal.get("version", "unknown")), calibration=cal,
                   upright=input_polarity == UPRIGHT)

    @classmethod
    def from_file(cls, onnx_path: Path | str, threads: int = 1, upright: bool = False) -> WavLMDetector:
        """An uncalibrated detector for one ONNX file (training and benchmarks); thresholds are placeholders."""
        return cls(session=_session(Path(onnx_path), threads), thresholds=Thresholds(0.5, 0.5, 0.5),
                   version="uncalibrated", upright=upright)

    def logits(self, chunks: list[np.ndarray] | np.ndarray) -> np.ndarray:
        """One logit per chunk; chunks of equal length are batched together (``batch_size`` at a time)."""
        n = len(chunks)
        out = np.zeros(n, dtype=np.float64)
        if n == 0:
            return out
        arrays = [self._as_float(c) for c in chunks]
        by_len: dict[int, list[int]] = {}
        for i, a in enumerate(arrays):
            by_len.setdefault(a.size, []).append(i)
        for length, idx in by_len.items():
            if length < 400:  # shorter than the conv front end's receptive field: nothing to judge
                raise ValueError(f"chunk of {length} samples is too short for the WavLM detector")
            for s in range(0, len(idx), self.batch_size):
                part = idx[s: s + self.batch_size]
                batch = np.stack([arrays[i] for i in part])
                res = self.session.run(None, {"audio": batch})[0]  # type: ignore[attr-defined]
                out[part] = np.asarray(res, dtype=np.float64).reshape(-1)
        return out

    def score(self, chunks: list[np.ndarray] | np.ndarray) -> np.ndarray:
        """Probability (0..1) that each 2-s 8 kHz chunk is synthetic or replayed."""
        return expit(self.logits(chunks))

    def _as_float(self, chunk: np.ndarray) -> np.ndarray:
        a = np.asarray(chunk)
        a = a.astype(np.float32) / 32768.0 if a.dtype == np.int16 else np.asarray(a, dtype=np.float32).reshape(-1)
        if self.upright:
            a = polarity.upright(a)
        return np.ascontiguousarray(a, dtype=np.float32)
