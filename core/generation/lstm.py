"""LSTM language model with attention over its own earlier states (the baseline).

At step i the LSTM state h_i attends over h_1..h_i:
``c_ij = softmax_{j<=i}(h_i^T W h_j)``, ``w_i = sum_j c_ij h_j``, and the next-token
logits come from ``tanh(W_o [h_i; w_i])``. It is a transformers ``PreTrainedModel`` with
``GenerationMixin`` and registered with the Auto classes, so it loads with
``AutoModelForCausalLM`` and generates through the same backend as the Transformer
(no KV cache: every step re-reads the whole sequence, fine at chat lengths).

Call :func:`register_custom_models` before ``AutoModelForCausalLM.from_pretrained``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM, GenerationMixin, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutput

MODEL_TYPE = "personabot-lstm"


class AttentionLSTMConfig(PretrainedConfig):
    model_type = MODEL_TYPE
    attribute_map = {"num_hidden_layers": "num_layers"}  # the name generic transformers code reads

    def __init__(
        self,
        vocab_size: int = 8192,
        hidden_size: int = 256,
        num_layers: int = 2,
        dropout: float = 0.1,
        max_position_embeddings: int = 512,
        tie_word_embeddings: bool = True,
        **kwargs,
    ) -> None:
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_layers = num_layers
        self.dropout = dropout
        # No positional limit in an LSTM; this is the context the chat backend may fill.
        self.max_position_embeddings = max_position_embeddings
        kwargs.setdefault("use_cache", False)
        super().__init__(tie_word_embeddings=tie_word_embeddings, **kwargs)


class AttentionLSTMForCausalLM(PreTrainedModel, GenerationMixin):
    config_class = AttentionLSTMConfig
    base_model_prefix = "lstm"
    main_input_name = "input_ids"
    _tied_weights_keys = {"lm_head.weight": "embed.weight"}

    def __init__(self, config: AttentionLSTMConfig) -> None:
        super().__init__(config)
        h = config.hidden_size
        self.embed = nn.Embedding(config.vocab_size, h, padding_idx=config.pad_token_id)
        self.lstm = nn.LSTM(h, h, num_layers=config.num_layers, batch_first=True,
                            dropout=config.dropout if config.num_layers > 1 else 0.0)
        self.relevance = nn.Linear(h, h, bias=False)  # W in h_i^T W h_j
        self.combine = nn.Linear(2 * h, h)
        self.drop = nn.Dropout(config.dropout)
        self.lm_head = nn.Linear(h, config.vocab_size, bias=False)
        self.post_init()

    def get_input_embeddings(self) -> nn.Module:
        return self.embed

    def set_input_embeddings(self, value: nn.Module) -> None:
        self.embed = value

    def get_output_embeddings(self) -> nn.Module:
        return self.lm_head

    def set_output_embeddings(self, value: nn.Module) -> None:
        self.lm_head = value

    def forward(
        self,
        input_ids: torch.LongTensor,
        attention_mask: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        **kwargs,
    ) -> CausalLMOutput:
        x = self.drop(self.embed(input_ids))
        h, _ = self.lstm(x)  # (B, T, H)
        h = self.drop(h)
        scores = torch.matmul(self.relevance(h), h.transpose(1, 2))  # (B, T_i, T_j)
        t = input_ids.shape[1]
        allowed = torch.ones(t, t, dtype=torch.bool, device=h.device).tril()
        if attention_mask is not None:
            allowed = allowed & attention_mask[:, None, :].bool()
            allowed = allowed | torch.eye(t, dtype=torch.bool, device=h.device)  # j = i always allowed
        scores = scores.masked_fill(~allowed, torch.finfo(scores.dtype).min)
        context = torch.matmul(scores.softmax(dim=-1), h)  # w_i = sum_j c_ij h_j
        out = torch.tanh(self.combine(torch.cat([h, context], dim=-1)))
        logits = self.lm_head(self.drop(out))
        loss = None
        if labels is not None:
            loss = F.cross_entropy(
                logits[:, :-1].reshape(-1, logits.size(-1)).float(), labels[:, 1:].reshape(-1), ignore_index=-100
            )
        return CausalLMOutput(loss=loss, logits=logits)

    @classmethod
    def _supports_default_dynamic_cache(cls) -> bool:
        """GenerationMixin hook: this model keeps no KV cache (like Mamba or RWKV)."""
        return False

    def prepare_inputs_for_generation(self, input_ids, attention_mask=None, **kwargs):
        """No cache: always feed the whole sequence."""
        return {"input_ids": input_ids, "attention_mask": attention_mask}


def register_custom_models() -> None:
    """Make ``AutoConfig``/``AutoModelForCausalLM`` know ``personabot-lstm``; safe to call twice."""
    try:
        AutoConfig.register(MODEL_TYPE, AttentionLSTMConfig)
    except ValueError:
        pass  # already registered
    try:
        AutoModelForCausalLM.register(AttentionLSTMConfig, AttentionLSTMForCausalLM)
    except ValueError:
        pass


register_custom_models()
