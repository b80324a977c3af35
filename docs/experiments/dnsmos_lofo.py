"""Model-selection experiment: do the internal features of a speech-quality model trained on human ratings
(DNSMOS P.808, Microsoft, MIT licence) help the GBM generalise to unseen generator families and speakers?

The ONNX file ships inside the ``speechmos`` PyPI wheel, so nothing is downloaded at run time. Experiment
only: neither speechmos nor librosa is a project dependency.

    .venv/bin/pip install --no-deps speechmos && .venv/bin/pip install librosa onnx
    .venv/bin/python docs/experiments/dnsmos_lofo.py [--corpus data/corpus_v6] [--rounds 200]

The P.808 model is a small CNN over a 120-band log-mel (16 kHz, 20-ms frames, 10-ms hop) ending in global
max pooling and three dense layers. It was built for 9-s inputs; the time axis is made dynamic (the
convolutions and the global pooling allow any length) so each 2-s chunk (8 kHz, resampled to 16 kHz) is
scored alone. Per chunk: the pooled convolutional features, the first dense layer's activations and the
predicted MOS. Protocol: ``detector.lofo.run_lofo`` over train+dev only (eval is never read), handcrafted
features alone, handcrafted + DNSMOS, DNSMOS alone.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from lofo_variants import cached_columns, run_variants  # noqa: E402

POOLED = "mos_estimator_small_1/global_max_pooling2d_1/Max:0"
DENSE = "mos_estimator_small_1/dense_3/Relu:0"


def session():
    """The P.808 model with a dynamic time axis and two internal tensors as extra outputs."""
    import onnx
    import onnxruntime as ort
    import speechmos

    model = onnx.load(Path(speechmos.__file__).parent / "dnsmos_models" / "model_v8.onnx")
    model.graph.input[0].type.tensor_type.shape.dim[1].dim_param = "frames"
    for name in (POOLED, DENSE):
        model.graph.output.append(onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, None))
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])


def log_mels(chunks: np.ndarray) -> np.ndarray:
    """As speechmos.dnsmos does: 120 mels, 321-point FFT, hop 160, dB re the chunk's maximum, (+40)/40."""
    import librosa
    from scipy.signal import resample_poly

    x = resample_poly(chunks.astype(np.float64), 2, 1, axis=1).astype(np.float32)
    m = librosa.feature.melspectrogram(y=x, sr=16000, n_fft=321, hop_length=160, n_mels=120)
    ref = m.max(axis=(1, 2), keepdims=True)
    db = 10 * np.log10(np.maximum(m, 1e-10)) - 10 * np.log10(np.maximum(ref, 1e-10))
    db = np.maximum(db, db.max(axis=(1, 2), keepdims=True) - 80.0)
    return np.transpose((db + 40) / 40, (0, 2, 1)).astype(np.float32)


def dnsmos_features(corpus_dir: Path, rows: list[dict]) -> np.ndarray:
    """Cached per corpus: features/dnsmos_<rows-hash>.npy."""
    def make_compute():
        sess = session()

        def compute(chunks: np.ndarray) -> np.ndarray:
            mos, pooled, dense = sess.run(["Identity:0", POOLED, DENSE], {"input_1": log_mels(chunks)})
            return np.concatenate([pooled.reshape(len(mos), -1), dense, mos], axis=1)

        return compute

    return cached_columns(corpus_dir, rows, "dnsmos", make_compute)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=Path("data/corpus_v6"))
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--variants", default="handcrafted+dnsmos,dnsmos",
                    help="comma-separated: handcrafted, handcrafted+dnsmos, dnsmos")
    args = ap.parse_args()
    from detector.features import feature_names

    none = np.zeros(len(feature_names()), dtype=bool)
    variants = {"handcrafted": {}, "handcrafted+dnsmos": {"extra_features": dnsmos_features},
                "dnsmos": {"extra_features": dnsmos_features, "feature_mask": none}}
    run_variants(args.corpus, variants, args.variants.split(","), args.rounds)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
