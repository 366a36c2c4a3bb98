"""Is the reply reserve (``max_new_tokens``) compatible with the model's context?

Checked when the bot is built (core/bootstrap.py, with its personas), before any
model weights load: a local model folder (or
the bundled model) gives its context from ``config.json`` and counts the longest
persona system prompt with its ``tokenizer.json`` (the ``tokenizers`` library, no
model). Hub ids and remote backends are not checked here: their sizes are known only
once they load.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from core.prompt import reserve_problem

if TYPE_CHECKING:
    from core.personas import PersonaLibrary
    from core.settings import BotSettings

DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[1] / "assets" / "default_model"
WINDOW_KEYS = ("max_position_embeddings", "n_positions", "n_ctx", "max_seq_len", "seq_length")
TEMPLATE_GLUE = 8  # role and end tokens around the system prompt, the message and the reply


def local_model_folder(settings: "BotSettings") -> Path | None:
    model = settings.model
    if model.backend != "transformers":
        return None
    if model.path == "builtin:default":
        return DEFAULT_MODEL_DIR
    folder = settings.resolve_path(model.path)
    return folder if (folder / "config.json").is_file() else None


def _window(folder: Path) -> int | None:
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    config = config.get("text_config", config) if isinstance(config, dict) else {}
    for key in WINDOW_KEYS:
        if isinstance(config.get(key), int) and config[key] > 0:
            return config[key]
    return None


def reply_reserve_problem(settings: "BotSettings", personas: "PersonaLibrary") -> str | None:
    """Why ``[model.generation] max_new_tokens`` leaves no room for a prompt, or None."""
    folder = local_model_folder(settings)
    if folder is None or not (folder / "tokenizer.json").is_file():
        return None
    window = settings.model.context_window or _window(folder)
    if window is None:
        return None
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
    # Any persona may be chosen in a chat (/persona), so the longest one counts.
    system = max(len(tokenizer.encode(p.system_text(), add_special_tokens=False).ids) for p in personas.all()) + TEMPLATE_GLUE
    return reserve_problem(window, settings.model.generation.max_new_tokens, system)
