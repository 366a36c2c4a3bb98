"""Training pipeline: collect -> preprocess -> tokenize -> train -> evaluate -> save.

Modules (torch/transformers are imported inside functions, so importing
``core.training.data`` stays cheap):

- :mod:`core.training.data`      corpus collection, cleaning, PII scrubbing, splits
- :mod:`core.training.tokenizer` byte-level BPE tokenizer with the chat template
- :mod:`core.training.lstm`      attention-LSTM baseline as a transformers model
- :mod:`core.training.train`     from-scratch training loop (Transformer or LSTM)
- :mod:`core.training.evaluate`  perplexity, Hits@1/20, distinct-n, retrieval baseline
- :mod:`core.training.finetune`  LoRA fine-tuning of any causal LM with peft
"""
