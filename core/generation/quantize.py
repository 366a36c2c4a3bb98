"""int8 linear layers for CPU serving (``[model] quantize = "int8"``).

torch's own dynamic quantization: every ``nn.Linear`` (the output head included; a tied
input embedding keeps its float weights) gets int8 weights, one scale per output
channel, and quantizes its input per call, so the matrix products run on the CPU's int8
instructions (fbgemm/oneDNN; VNNI where present). On the 2-core development machine one
768x2048 layer at 32 rows ran 5x faster than float32 (docs/performance.md); the
perplexity cost is measured by ``bench/quantization.py``. torchao's int8 weight-only
tensors were 15x slower than float32 there without ``torch.compile``, so they are not used.

CPU only: on a GPU use ``dtype = "bfloat16"`` instead.
"""

from __future__ import annotations

import warnings
from typing import Any

from core.errors import GenerationError

QUANTIZATIONS = ("int8",)


def quantize_model(model: Any, kind: str, device: str) -> Any:
    """``model`` with int8 linear layers (in place where torch allows). GenerationError if it cannot."""
    if kind not in QUANTIZATIONS:
        raise GenerationError(f"unknown quantization {kind!r}; expected one of {QUANTIZATIONS}")
    if device != "cpu":
        raise GenerationError(f"int8 quantization runs on the CPU only, not on {device!r}; use dtype = \"bfloat16\" on a GPU")
    import torch

    if getattr(model, "dtype", torch.float32) != torch.float32:
        raise GenerationError("int8 quantization needs a float32 model (dtype = \"float32\" or \"auto\" on a CPU)")
    try:
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic
    except ImportError as exc:
        raise GenerationError(f"this torch ({torch.__version__}) has no dynamic quantization: {exc}") from exc
    with warnings.catch_warnings():
        # torch marks torch.ao.quantization as deprecated in favour of torchao; see the module docstring.
        warnings.simplefilter("ignore", (DeprecationWarning, FutureWarning, UserWarning))
        return quantize_dynamic(model, {torch.nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8, inplace=True)
