"""Training pipeline: collect -> preprocess -> tokenize -> train -> evaluate -> save.

Modules (torch/transformers are imported inside functions, so importing
``training.data`` stays cheap):

- :mod:`training.data`      corpus collection, cleaning, PII scrubbing, splits
- :mod:`training.tokenizer` byte-level BPE tokenizer with the chat template
- the attention-LSTM baseline model class lives in :mod:`core.generation.lstm` (serving loads it)
- :mod:`training.train`     from-scratch training loop (Transformer or LSTM)
- :mod:`training.evaluate`  perplexity, Hits@1/20, distinct-n, retrieval baseline
- :mod:`training.finetune`  LoRA fine-tuning of any causal LM with peft
"""
