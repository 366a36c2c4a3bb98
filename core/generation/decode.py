"""One batched forward pass for Llama-family models over a static, per-row KV cache.

transformers' continuous batching (paged cache, per-request Python in its scheduler and
sampler) spent more time per decode step than arithmetic on a small CPU model. This
module walks the same weights directly (the model's own modules: norms, projections,
rotary embedding) with a cache laid out as ``[rows, kv_heads, length, head_dim]`` per
layer: row ``r`` holds one conversation's keys and values, each row has its own
position, so one step decodes every active row with a handful of large tensor ops.

- The cache is allocated once for ``rows`` and grows its length by doubling (up to the
  context window) when a longer sequence comes in: memory follows what is in use.
- Positions past a row's length hold stale but finite values; a boolean mask hides them.
- :meth:`DecodeModel.swap` exchanges two rows (the engine keeps active rows contiguous).
- The output head's weight is stored transposed (``[hidden, vocab]`` in memory, the same
  ``[vocab, hidden]`` parameter seen from outside; a tied input embedding shares it). MKL
  multiplies a few rows by it 1.2-2.6x faster than by the usual layout; the head is the
  largest matrix of a small model (docs/performance.md). No second copy is kept, though
  the process's resident memory grew by 16 MiB for the bundled model (measured).

Supported: architectures whose decoder layers are Llama's (``llama``, ``mistral``
without a sliding window, ``qwen2``, ``qwen3`` with its q/k norms). :func:`unsupported`
says why another model is not; the batcher then uses transformers' engine.
"""

from __future__ import annotations

from typing import Any

ARCHITECTURES = ("llama", "mistral", "qwen2", "qwen3")


def unsupported(model: Any) -> str | None:
    """None when :class:`DecodeModel` can run ``model``, else the reason it cannot."""
    config = model.config.get_text_config()
    if config.model_type not in ARCHITECTURES:
        return f"architecture {config.model_type!r} is not one of {ARCHITECTURES}"
    if config.model_type != "llama" and getattr(config, "sliding_window", None) and getattr(config, "use_sliding_window", True):
        return "sliding-window attention"
    if getattr(config, "hidden_act", "silu") != "silu":
        return f"activation {config.hidden_act!r}"
    inner = getattr(model, "model", None)
    if inner is None or not hasattr(inner, "rotary_emb") or not hasattr(model, "lm_head"):
        return "unexpected module layout"
    return None


class DecodeModel:
    """The model's forward over cache rows. Not thread-safe: one engine thread calls it."""

    def __init__(self, model: Any, rows: int, max_length: int, *, initial_length: int = 128) -> None:
        import torch

        reason = unsupported(model)
        if reason:
            raise ValueError(f"fast decode does not support this model: {reason}")
        config = model.config.get_text_config()
        self.model, self.rows, self.max_length = model, rows, max_length
        self.device, self.dtype = model.device, model.dtype
        self.heads = config.num_attention_heads
        self.kv_heads = getattr(config, "num_key_value_heads", None) or self.heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // self.heads
        self.vocab_size = config.vocab_size
        inner = model.model
        _transpose_head(model)
        self.embed, self.norm, self.lm_head, self.rotary = inner.embed_tokens, _norm(inner.norm), model.lm_head, inner.rotary_emb
        self.layers = [self._layer(layer) for layer in inner.layers]
        self.length = 0
        self.allocated = 0  # rows held in memory: grown on use up to ``rows``, so an idle bot stays small
        self.keys: list[Any] = []
        self.values: list[Any] = []
        self.cos = self.sin = torch.empty(0)
        self._grow(1, min(initial_length, max_length))

    def _layer(self, layer: Any) -> tuple[Any, ...]:
        attn, mlp = layer.self_attn, layer.mlp
        q_norm, k_norm = getattr(attn, "q_norm", None), getattr(attn, "k_norm", None)
        scaling = getattr(attn, "scaling", self.head_dim**-0.5)
        return (_norm(layer.input_layernorm), attn.q_proj, attn.k_proj, attn.v_proj, attn.o_proj,
                q_norm and _norm(q_norm), k_norm and _norm(k_norm), scaling,
                _norm(layer.post_attention_layernorm), mlp.gate_proj, mlp.up_proj, mlp.down_proj)

    @property
    def cache_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (*self.keys, *self.values))

    def ensure(self, length: int) -> None:
        """Make room for ``length`` positions per row (doubling); ValueError past the window."""
        if length > self.max_length:
            raise ValueError(f"{length} positions exceed the cache's {self.max_length}")
        if length > self.length:
            self._grow(self.allocated, _doubled(self.length, length, self.max_length))

    def ensure_rows(self, rows: int) -> None:
        """Make rows ``0..rows-1`` exist (doubling); ValueError past the engine's ``rows``."""
        if rows > self.rows:
            raise ValueError(f"row {rows - 1} is past the cache's {self.rows} rows")
        if rows > self.allocated:
            self._grow(_doubled(self.allocated, rows, self.rows), self.length)

    def _grow(self, rows: int, length: int) -> None:
        import torch

        shape = (rows, self.kv_heads, length, self.head_dim)
        keys, values = [], []
        for i in range(len(self.layers)):
            k = torch.zeros(shape, device=self.device, dtype=self.dtype)
            v = torch.zeros(shape, device=self.device, dtype=self.dtype)
            if self.length:
                k[: self.allocated, :, : self.length] = self.keys[i]
                v[: self.allocated, :, : self.length] = self.values[i]
            keys.append(k)
            values.append(v)
        self.keys, self.values, self.allocated = keys, values, rows
        if length == self.length:
            return
        self.length = length
        positions = torch.arange(length, device=self.device)[None]
        probe = torch.zeros(1, device=self.device, dtype=self.dtype)
        cos, sin = self.rotary(probe, positions)
        self.cos, self.sin = cos[0], sin[0]  # [length, head_dim]

    def swap(self, a: int, b: int, length: int) -> None:
        """Exchange the first ``length`` cached positions of rows ``a`` and ``b``."""
        if a == b or length <= 0:
            return
        self.ensure_rows(max(a, b) + 1)
        for cache in (*self.keys, *self.values):
            cache[[a, b], :, :length] = cache[[b, a], :, :length]

    def prefill(self, first: int, chunks: list[Any], starts: list[int]) -> Any:
        """Feed ``chunks[i]`` (token ids [n_i]) to row ``first + i`` at positions ``starts[i]``…, in one
        padded forward pass; logits [len(chunks), vocab] after each chunk's last token."""
        import torch

        lengths = [c.numel() for c in chunks]
        n = max(lengths)
        ids = torch.zeros(len(chunks), n, dtype=torch.long, device=self.device)
        for i, chunk in enumerate(chunks):
            ids[i, : lengths[i]] = chunk
        start = torch.tensor(starts, device=self.device)
        # Padding queries compute garbage nobody reads; their positions are clamped into the cache, past
        # every real token of their row (a row's prompt and reply fit in max_length), and are overwritten later.
        positions = (start[:, None] + torch.arange(n, device=self.device)).clamp(max=self.max_length - 1)
        kv_length = min(max(starts) + n, self.max_length)
        self.ensure(kv_length)
        mask = torch.arange(kv_length, device=self.device)[None, None, :] <= positions[:, :, None]  # causal, cache included
        hidden = self._forward(ids, positions, mask[:, None], kv_length, first)
        last = hidden[torch.arange(len(chunks), device=self.device), torch.tensor(lengths, device=self.device) - 1]
        return self.lm_head(self.norm(last))

    def step(self, tokens: Any, positions: Any, kv_length: int) -> Any:
        """One token for each of rows ``0..B-1`` (``tokens``, ``positions`` [B]); logits [B, vocab]."""
        import torch

        self.ensure(kv_length)
        mask = torch.arange(kv_length, device=self.device)[None, :] <= positions[:, None]  # [B, kv_length]
        hidden = self._forward(tokens[:, None], positions[:, None], mask[:, None, None], kv_length, 0)
        return self.lm_head(self.norm(hidden[:, 0]))

    def _forward(self, ids: Any, positions: Any, mask: Any, kv_length: int, first: int) -> Any:
        """Hidden states [B, n, d] for ``ids`` [B, n] of rows ``first..first+B-1`` at ``positions`` [B, n];
        writes their keys and values into the cache first, then attends over ``kv_length`` positions."""
        import torch
        import torch.nn.functional as F

        batch, n = ids.shape
        self.ensure_rows(first + batch)
        heads, kv_heads, dim = self.heads, self.kv_heads, self.head_dim
        cos = self.cos[positions].unsqueeze(1)  # [B, 1, n, dim]
        sin = self.sin[positions].unsqueeze(1)
        rows = torch.arange(first, first + batch, device=self.device)[:, None]
        gqa = {"enable_gqa": True} if heads != kv_heads else {}  # (torch >= 2.5 for grouped-query attention)
        hidden = self.embed(ids)
        for i, (norm1, q_proj, k_proj, v_proj, o_proj, q_norm, k_norm, scaling, norm2, gate, up, down) in enumerate(self.layers):
            x = norm1(hidden)
            q = q_proj(x).view(batch, n, heads, dim)
            k = k_proj(x).view(batch, n, kv_heads, dim)
            v = v_proj(x).view(batch, n, kv_heads, dim)
            if q_norm is not None:
                q, k = q_norm(q), k_norm(k)
            qk = torch.cat((q, k), dim=2).transpose(1, 2)  # one rotation for queries and keys
            qk = qk * cos + _rotate_half(qk) * sin
            q = qk[:, :heads]
            keys, values = self.keys[i], self.values[i]
            keys[rows, :, positions] = qk[:, heads:].transpose(1, 2)  # [B, n, kv_heads, dim]
            values[rows, :, positions] = v
            k_all, v_all = keys[first : first + batch, :, :kv_length], values[first : first + batch, :, :kv_length]
            out = F.scaled_dot_product_attention(q, k_all, v_all, attn_mask=mask, scale=scaling, **gqa)
            hidden = hidden + o_proj(out.transpose(1, 2).reshape(batch, n, heads * dim))
            x = norm2(hidden)
            hidden = hidden + down(F.silu(gate(x)) * up(x))
        return hidden


def _transpose_head(model: Any) -> None:
    """Store the output head's weight as the transpose of a contiguous ``[hidden, vocab]`` tensor."""
    import torch

    head, embed = model.lm_head, model.model.embed_tokens
    if type(head) is not torch.nn.Linear or not head.weight.is_contiguous():  # int8, an adapter's wrapper, or done
        return
    tied = embed.weight is head.weight
    weight = torch.nn.Parameter(head.weight.detach().t().contiguous().t(), requires_grad=False)
    head.weight = weight
    if tied:
        embed.weight = weight


def _doubled(size: int, wanted: int, cap: int) -> int:
    """``size`` doubled until it holds ``wanted``, at most ``cap``: few reallocations, little waste."""
    while size < wanted:
        size *= 2
    return min(size, cap)


def _norm(module: Any) -> Any:
    """An RMSNorm module as one fused op (Llama's norms compute ``x * rsqrt(mean(x^2) + eps) * w``)."""
    import functools

    import torch.nn.functional as F

    eps = getattr(module, "variance_epsilon", None) or getattr(module, "eps", 1e-6)
    return functools.partial(F.rms_norm, normalized_shape=module.weight.shape, weight=module.weight, eps=eps)


def _rotate_half(x: Any) -> Any:
    import torch

    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)
