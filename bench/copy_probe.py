"""Does a model copy a value from its memory block? A probe that needs no sampling.

For each ordered pair of pet names (A, B), the prompt's memory block says "I have a dog
called B." and the reply so far is "Your dog is called"; the probe scores the log-
probability of " A" there. Averaged over pairs with A == B (the value is in the prompt)
and A != B (another value is), the gap between the two is what reading the memory block
is worth: about 0 for a model that answers from habit, several nats for one that copies.
Cheap enough to run on a checkpoint while it trains (docs/training.md, phase 3):

    python3 bench/copy_probe.py runs/default14/checkpoint
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

from core.prompt import MEMORY_INTRO  # noqa: E402

NAMES = ("Rex", "Max", "Biscuit", "Luna", "Pepper", "Ziggy", "Mochi", "Bruno")
SYSTEM = "You are Sunny, a friendly companion."
QUESTION, LEAD = "What is my dog's name?", "Your dog is called"


def value_logprob(model, tok, in_memory: str, asked: str) -> float:  # type: ignore[no-untyped-def]
    messages = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"{MEMORY_INTRO}\n- I have a dog called {in_memory}."},
        {"role": "assistant", "content": "Thanks, I'll keep that in mind."},
        {"role": "user", "content": QUESTION},
    ]
    prompt = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) + LEAD
    context = tok(prompt, add_special_tokens=False)["input_ids"]
    lead = tok(LEAD, add_special_tokens=False)["input_ids"]
    target = tok(f"{LEAD} {asked}", add_special_tokens=False)["input_ids"][len(lead):]
    with torch.no_grad():
        logits = model(torch.tensor([context + target])).logits.log_softmax(-1)[0]
    return sum(logits[len(context) - 1 + i, token].item() for i, token in enumerate(target))


def main(argv: list[str] | None = None) -> tuple[float, float]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a model folder (or a training checkpoint folder)")
    args = parser.parse_args(argv)
    tok = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model).eval()
    same = [value_logprob(model, tok, name, name) for name in NAMES]
    other = [value_logprob(model, tok, b, a) for a, b in itertools.permutations(NAMES, 2)]
    in_prompt, elsewhere = sum(same) / len(same), sum(other) / len(other)
    print(f"log p(value) with it in the memory block: {in_prompt:.2f}   with another value there: {elsewhere:.2f}   "
          f"gap: {in_prompt - elsewhere:.2f} nats")
    return in_prompt, elsewhere


if __name__ == "__main__":
    main()
