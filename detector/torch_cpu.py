"""Pin torch's CPU kernels to one instruction set, so that training gives the same weights on any machine.

Torch picks its CPU kernels by instruction set (AVX-512, AVX2, ...) and they round differently: the same
seed trained 20 steps gives other weights with AVX-512 than with AVX2 (measured: ``ATEN_CPU_CAPABILITY``
avx512 / avx2 / default, and oneDNN's ISA, each changed the weights' hash). Pinning every machine to AVX2
(x86-64 servers of the last decade have it) takes the machine out of what we train here, the corpus's neural
vocoders and the WavLM detector (a vocoder retrained with the pin gave a byte-identical weights file; a WavLM
retrain has not been checked that way). The variables only take effect before torch's first
kernel runs, so modules that train call ``pin_torch_cpu_isa()`` before they import torch; a value already in
the environment wins. Costs about 8 % of training speed on an AVX-512 machine.
"""

from __future__ import annotations

import os

PINNED_CPU_ISA = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_CBWR": "AVX2"}


def pin_torch_cpu_isa() -> None:
    for var, value in PINNED_CPU_ISA.items():
        os.environ.setdefault(var, value)
