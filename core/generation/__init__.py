"""Generation backends behind the :class:`core.ports.Generator` port.

- :mod:`core.generation.scripted`             deterministic fake for tests, demos and benchmarks
- :mod:`core.generation.transformers_backend` any Hugging Face causal LM, in process, streaming,
  continuously batched across concurrent conversations (:mod:`core.generation.batching`)
- :mod:`core.generation.openai_backend`       any OpenAI-compatible ``/v1/chat/completions`` server

Importing this package is cheap: torch and transformers are imported inside the backends.
"""
