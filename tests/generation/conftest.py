"""Tiny model folders, built once per test session in a temp folder (no downloads)."""

from __future__ import annotations

import asyncio

import pytest

from tests.generation.tiny import build_model_folder


@pytest.fixture(scope="session")
def llama_dir(tmp_path_factory):
    return build_model_folder(tmp_path_factory.mktemp("models") / "tiny-llama")


@pytest.fixture(scope="session")
def gpt2_dir(tmp_path_factory):
    """GPT-2 style: no chat template, eos text ``<|endoftext|>``."""
    return build_model_folder(tmp_path_factory.mktemp("models") / "tiny-gpt2", arch="gpt2", chat_template=False)


@pytest.fixture(scope="module")
def llama(llama_dir):
    """One ``model.generate`` at a time (the sequential path), shared by a test module."""
    from core.generation.transformers_backend import TransformersGenerator

    gen = asyncio.run(TransformersGenerator.load(str(llama_dir), batching=False))
    yield gen
    asyncio.run(gen.aclose())
