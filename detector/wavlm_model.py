"""The WavLM spoof classifier: a ``transformers.WavLMModel`` backbone, mean pooling over time, one logit.

Training extra only (imports torch and transformers); the product scores with the exported ONNX graph
through ``detector.wavlm_onnx``, which needs neither.

Input is what the rest of the product handles: 8 kHz mono float32 chunks, shape ``[batch, samples]``. The
graph itself normalises each chunk to zero mean and unit RMS, so the training and the shipped path see the
same thing and the score cannot depend on level (the Asterisk snoop delivers 8 kHz audio 6 dB quieter).

Two ways to build the backbone:

- ``compact_config()`` (default, trained from scratch): the convolutional front end is fed the 8 kHz
  samples directly. Its strides (5, 2, 2, 2, 2, 2) give a 160-sample hop, i.e. 20 ms frames (100 per 2-s
  chunk, the token rate WavLM-base has at 16 kHz and the RTP packet size), with a slim 64→256-channel
  stack instead of 7×512, and a 4-layer × 256 transformer. Upsampling telephone audio to 16 kHz would
  only double the cost of the front end (which dominates) without adding information above 4 kHz.
- ``--init DIR``: a pretrained Hugging Face WavLM checkpoint (16 kHz models); the chunk is upsampled ×2
  inside the graph with a fixed windowed-sinc filter so the ONNX interface stays 8 kHz.
"""

from __future__ import annotations

import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from detector.torch_cpu import pin_torch_cpu_isa

pin_torch_cpu_isa()  # before torch is imported: the same weights from a retrain on any machine

import torch  # noqa: E402
from torch import nn  # noqa: E402
from transformers import WavLMConfig, WavLMModel  # noqa: E402

INPUT_RATE = 8000
ONNX_OPSET = 17

# Chosen by measurement on the 2-core box (see models/wavlm.md): ~12-19 ms per 2-s chunk on one
# onnxruntime thread, ~0.7 s per training step of 16 chunks on two torch threads.
COMPACT_CONFIG: dict[str, Any] = {
    "hidden_size": 256,
    "num_hidden_layers": 4,
    "num_attention_heads": 4,
    "intermediate_size": 1024,
    "conv_dim": (64, 128, 128, 192, 256, 256),
    "conv_stride": (5, 2, 2, 2, 2, 2),
    "conv_kernel": (10, 3, 3, 3, 3, 2),
    "num_conv_pos_embeddings": 64,  # 64 frames = 1.28 s of relative context in the positional conv
    "num_conv_pos_embedding_groups": 16,
    "num_buckets": 160,
    "max_bucket_distance": 400,
    "hidden_dropout": 0.1,
    "attention_dropout": 0.1,
    "activation_dropout": 0.0,
    "feat_proj_dropout": 0.1,
    "layerdrop": 0.05,
    "mask_time_prob": 0.05,  # SpecAugment-style time masks on the features (training only)
    "mask_time_length": 5,
}


def compact_config(**overrides: Any) -> WavLMConfig:
    """The from-scratch configuration (``COMPACT_CONFIG``), with optional overrides (tests use tiny ones)."""
    return WavLMConfig(**{**COMPACT_CONFIG, **overrides})


def backbone_hop(config: WavLMConfig) -> int:
    return int(np.prod(config.conv_stride))


def _upsample_kernel(taps: int = 31) -> torch.Tensor:
    """Hann-windowed sinc for ×2 interpolation (odd length, centre tap 1, even offsets 0: samples kept)."""
    n = np.arange(taps) - (taps - 1) // 2
    h = np.sinc(n / 2.0) * np.hanning(taps + 2)[1:-1]
    return torch.tensor(h, dtype=torch.float32).view(1, 1, taps)


class SpoofWavLM(nn.Module):
    """WavLM backbone + AdaptiveAvgPool1d over time + Linear → one logit per chunk (spoof if > 0)."""

    def __init__(self, backbone: WavLMModel, backbone_rate: int = INPUT_RATE) -> None:
        super().__init__()
        if backbone_rate not in (INPUT_RATE, 2 * INPUT_RATE):
            raise ValueError(f"backbone rate must be {INPUT_RATE} or {2 * INPUT_RATE} Hz, got {backbone_rate}")
        self.backbone = backbone
        self.backbone_rate = backbone_rate
        self.pool = nn.AdaptiveAvgPool1d(1)
        self.head = nn.Linear(backbone.config.hidden_size, 1)
        self.upsample = backbone_rate != INPUT_RATE
        if self.upsample:
            self.register_buffer("up_kernel", _upsample_kernel(), persistent=False)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        x = audio - audio.mean(dim=1, keepdim=True)
        x = x / torch.sqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)
        if self.upsample:
            k = self.up_kernel.shape[-1]
            x = nn.functional.conv_transpose1d(x.unsqueeze(1), self.up_kernel, stride=2, padding=(k - 1) // 2,
                                               output_padding=1).squeeze(1)
        hidden = self.backbone(x).last_hidden_state  # [B, T, H]
        pooled = self.pool(hidden.transpose(1, 2)).squeeze(-1)
        return self.head(pooled).squeeze(-1)

    def meta(self, init: str | None = None) -> dict[str, Any]:
        """What is needed to rebuild this architecture (saved in checkpoints and the calibration file)."""
        return {"config": self.backbone.config.to_dict(), "backbone_rate": self.backbone_rate, "init": init,
                "n_params": sum(p.numel() for p in self.parameters())}


def build_model(init_dir: Path | str | None = None, seed: int = 7,
                config_overrides: dict[str, Any] | None = None) -> SpoofWavLM:
    """From scratch (compact config, seeded init) or fine-tuned from a local HF WavLM checkpoint directory."""
    torch.manual_seed(seed)
    if init_dir is None:
        return SpoofWavLM(WavLMModel(compact_config(**(config_overrides or {}))), backbone_rate=INPUT_RATE)
    backbone = WavLMModel.from_pretrained(str(init_dir), local_files_only=True)
    if config_overrides:
        for k, v in config_overrides.items():
            setattr(backbone.config, k, v)
    # a pretrained model with a 320-sample hop was trained on 16 kHz speech: feed it 16 kHz
    rate = 2 * INPUT_RATE if backbone_hop(backbone.config) >= 320 else INPUT_RATE
    return SpoofWavLM(backbone, backbone_rate=rate)


def model_from_meta(meta: dict[str, Any]) -> SpoofWavLM:
    """Rebuild the architecture saved by ``SpoofWavLM.meta`` (weights are loaded separately)."""
    cfg = dict(meta["config"])
    for k in ("architectures", "transformers_version", "model_type", "dtype", "torch_dtype"):
        cfg.pop(k, None)
    return SpoofWavLM(WavLMModel(WavLMConfig(**cfg)), backbone_rate=int(meta["backbone_rate"]))


def export_onnx(model: SpoofWavLM, path: Path | str, chunk_samples: int = 16000) -> None:
    """ONNX (opset 17, TorchScript exporter) with dynamic batch and length axes; written atomically."""
    path = Path(path)
    was_training = model.training
    model.eval()
    tmp = path.with_name(path.name + ".tmp")
    dummy = torch.randn(2, chunk_samples, generator=torch.Generator().manual_seed(0)) * 0.1
    try:
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about shape checks that are constant here
            torch.onnx.export(model, (dummy,), str(tmp), input_names=["audio"], output_names=["logit"],
                              opset_version=ONNX_OPSET, dynamic_axes={"audio": {0: "batch", 1: "samples"},
                                                                      "logit": {0: "batch"}},
                              dynamo=False)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
        model.train(was_training)


def torch_logits(model: SpoofWavLM, chunks: np.ndarray, batch: int = 64) -> np.ndarray:
    """Eval-mode logits for ``[N, samples]`` float32 chunks (used for dev selection and parity tests)."""
    was_training = model.training
    model.eval()
    out = []
    with torch.no_grad():
        for i in range(0, len(chunks), batch):
            out.append(model(torch.from_numpy(np.ascontiguousarray(chunks[i: i + batch], dtype=np.float32))))
    model.train(was_training)
    return torch.cat(out).numpy().astype(np.float64) if out else np.zeros(0)


def cosine_with_warmup(step: int, total: int, warmup: int) -> float:
    """LR multiplier: linear warm-up, then cosine decay to 5 % of the peak."""
    if step < warmup:
        return (step + 1) / max(warmup, 1)
    t = (step - warmup) / max(total - warmup, 1)
    return 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * min(t, 1.0)))
