"""What ``[model] quantize = "int8"`` costs in quality and saves in bytes.

    python bench/quantization.py --data runs/data              # bundled model, test split
    python bench/quantization.py --model path/to/model --data runs/data --windows 400

Prints the perplexity of the reply tokens on the test split (``personabot data prepare``
writes it) for the float32 model and for the same model with int8 linear layers
(core/generation/quantize.py), the relative change, and the bytes of weights each reads
per decode step. Speed beside llama.cpp's Q8_0: ``bench/generation_vs_llama.py --quantize``.
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def weight_bytes(model) -> int:
    """Bytes of parameters plus packed int8 weights (quantized layers hold theirs outside parameters())."""
    from torch.ao.nn.quantized.dynamic import Linear as QuantizedLinear

    total = sum(p.numel() * p.element_size() for p in model.parameters())
    for module in model.modules():
        if isinstance(module, QuantizedLinear):
            weight, bias = module._weight_bias()
            total += weight.numel() * weight.element_size() + weight.q_per_channel_scales().numel() * 12  # scale + zero point
            total += 0 if bias is None else bias.numel() * bias.element_size()
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default=str(ROOT / "core" / "assets" / "default_model"))
    parser.add_argument("--data", default="runs/data", help="folder with test.jsonl (personabot data prepare)")
    parser.add_argument("--windows", type=int, default=400, help="test windows scored")
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args()

    import torch

    from core.generation.quantize import quantize_model
    from training.data import load_split
    from training.evaluate import load_model
    from training.train import conversation_windows, evaluate_loss

    if args.threads:
        torch.set_num_threads(args.threads)
    test = load_split(args.data, "test")
    model, tok = load_model(args.model)
    block = int(getattr(model.config, "max_position_embeddings", 256))
    windows = conversation_windows(tok, test, block, "assistant")[: args.windows]
    targets = sum(sum(1 for t in labels[1:] if t != -100) for _, labels in windows)
    print(f"# {args.model}: {len(windows)} test windows of at most {block} tokens from {args.data}, {targets} reply tokens scored")

    def ppl(m) -> float:
        return math.exp(evaluate_loss(m, windows, 16, tok.pad_token_id, math.ceil(len(windows) / 16), m.device))

    base_bytes, base = weight_bytes(model), ppl(model)
    quantized = quantize_model(model, "int8", "cpu")
    q_bytes, q = weight_bytes(quantized), ppl(quantized)
    print(f"{'weights':>28} {'bytes':>10} {'perplexity':>11}")
    print(f"{'float32':>28} {base_bytes / 1e6:>8.1f}MB {base:>11.2f}")
    print(f"{'int8 linear layers':>28} {q_bytes / 1e6:>8.1f}MB {q:>11.2f}")
    print(f"# perplexity {100 * (q / base - 1):+.2f}% with int8 (the tied input embedding stays float32)")


if __name__ == "__main__":
    main()
