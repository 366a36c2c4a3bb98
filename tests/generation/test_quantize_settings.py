"""``[model] quantize``: checked with the bot file, before any model loads."""

from __future__ import annotations

import pytest

from core.errors import ConfigError
from core.settings import load_bot_settings


def bot_file(tmp_path, model_section: str):
    path = tmp_path / "bot.toml"
    path.write_text(f'name = "q"\n\n[model]\n{model_section}\n', encoding="utf-8")
    return path


def test_int8_on_the_transformers_backend_is_accepted(tmp_path):
    assert load_bot_settings(bot_file(tmp_path, 'quantize = "int8"')).model.quantize == "int8"


@pytest.mark.parametrize("section", ['backend = "openai"\nbase_url = "http://x"\nmodel = "m"\nquantize = "int8"',
                                     'backend = "scripted"\nquantize = "int8"', 'device = "cuda"\nquantize = "int8"'])
def test_quantize_where_it_cannot_run_names_the_field(tmp_path, section):
    with pytest.raises(ConfigError, match=r"bot\.toml: model: .*model\.quantize"):
        load_bot_settings(bot_file(tmp_path, section))


def test_unknown_quantization_names_the_field(tmp_path):
    with pytest.raises(ConfigError, match=r"bot\.toml: model\.quantize: "):
        load_bot_settings(bot_file(tmp_path, 'quantize = "int4"'))
