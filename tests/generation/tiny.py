"""Tiny random Hugging Face models + tokenizers, built in a temp folder in about a second.

The tokenizer is a byte-level BPE trained in the test on a few sentences (English and
Chinese) with the project's chat format: ``<|system|>``, ``<|user|>``, ``<|assistant|>``,
``<|end|>`` (eos). The output rows of every special token are zeroed, so their logit is 0
while the max of the others is positive: greedy decoding never ends early by chance, and
a test asking for N tokens gets N.
"""

from __future__ import annotations

from pathlib import Path

SPECIALS = ["<|pad|>", "<|end|>", "<|system|>", "<|user|>", "<|assistant|>"]
TEMPLATE = (
    "{% for m in messages %}{{ '<|' + m['role'] + '|>' + m['content'] + '<|end|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>' }}{% endif %}"
)
CORPUS = [
    "hello there, how are you today?",
    "I am fine, thank you very much.",
    "what is your name? my name is bot.",
    "你好，今天天气很好。我们去公园吧！",
    "the quick brown fox jumps over the lazy dog",
] * 4


def build_tokenizer(chat_template: bool = True, eos: str = "<|end|>"):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = SPECIALS if eos in SPECIALS else [*SPECIALS, eos]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, min_frequency=1, special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(CORPUS, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=eos, pad_token="<|pad|>",
        additional_special_tokens=[s for s in specials if s not in (eos, "<|pad|>")],
        clean_up_tokenization_spaces=False,
    )
    if chat_template:
        fast.chat_template = TEMPLATE
    return fast


def build_model_folder(folder: Path, *, arch: str = "llama", chat_template: bool = True, positions: int = 4096, seed: int = 0,
                       kv_heads: int = 4) -> Path:
    """Save a tiny random ``arch`` ("llama", "gpt2", or a Llama-family "mistral", "qwen2",
    "qwen3") model and its tokenizer in ``folder``; ``kv_heads`` < 4 makes attention grouped-query."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, GenerationConfig, GPT2Config, GPT2LMHeadModel, LlamaConfig, LlamaForCausalLM

    eos = "<|end|>" if chat_template else "<|endoftext|>"
    tok = build_tokenizer(chat_template, eos=eos)
    torch.manual_seed(seed)
    common = dict(vocab_size=len(tok), eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id, bos_token_id=None)
    if arch == "llama":
        config = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                             num_key_value_heads=kv_heads, max_position_embeddings=positions, tie_word_embeddings=False, **common)
        model = LlamaForCausalLM(config)
    elif arch in ("mistral", "qwen2", "qwen3"):
        config = AutoConfig.for_model(arch, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, head_dim=8,
                                      num_key_value_heads=kv_heads, max_position_embeddings=positions, tie_word_embeddings=False,
                                      sliding_window=None, **common)
        model = AutoModelForCausalLM.from_config(config)
    else:
        config = GPT2Config(n_embd=32, n_layer=2, n_head=4, n_positions=positions, tie_word_embeddings=False, **common)
        model = GPT2LMHeadModel(config)
    with torch.no_grad():
        model.get_output_embeddings().weight[tok.all_special_ids] = 0.0
    model.generation_config = GenerationConfig(eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder
