import unicodedata

from hypothesis import given, settings
from hypothesis import strategies as st

from core.text import FENCE, normalize_user_text, split_text, utf16_len

any_text = st.text(alphabet=st.characters(codec=None), max_size=3000)


def test_normalisation_removes_what_can_only_harm():
    raw = "hi\x00\x07 there\u200b\ud800\r\n\n\n\n\nnext\ufeff"
    assert normalize_user_text(raw, 100).text == "hi there\ufffd\n\nnext"


def test_normalisation_keeps_scripts_and_emoji_sequences():
    text = "你好，世界 👩\u200d💻 مرحبا \u200c"
    assert normalize_user_text(text, 100).text == unicodedata.normalize("NFC", text).strip()


def test_long_input_is_cut_and_flagged():
    result = normalize_user_text("字" * 100_000, 4000)
    assert result.truncated and len(result.text) == 4000


@given(any_text, st.integers(min_value=1, max_value=500))
def test_normalisation_never_raises_and_respects_limit(text, limit):
    result = normalize_user_text(text, limit)
    assert len(result.text) <= limit
    result.text.encode("utf-8")  # no lone surrogates survive
    assert normalize_user_text(result.text, limit).text == result.text  # idempotent


def test_utf16_counts_astral_characters_twice():
    assert utf16_len("a😀中") == 4


@settings(max_examples=200)
@given(any_text, st.integers(min_value=16, max_value=300), st.booleans())
def test_split_keeps_every_character_within_limit(text, limit, use_utf16):
    measure = utf16_len if use_utf16 else len
    parts = split_text(text, limit, measure)
    assert "".join(parts) == text
    assert all(measure(part) <= limit for part in parts)


def test_split_prefers_paragraph_then_sentence_boundaries():
    text = "First paragraph here.\n\nSecond one is a bit longer. It has two sentences."
    assert split_text(text, 40) == ["First paragraph here.\n\n", "Second one is a bit longer. ", "It has two sentences."]


def test_split_handles_chinese_sentence_ends():
    text = "今天天气很好。我们去公园散步吧。然后一起吃饭。"
    parts = split_text(text, 16)
    assert parts[0].endswith("。") and "".join(parts) == text


@settings(max_examples=150)
@given(st.lists(st.sampled_from(["word ", "```py\n", "```\n", "x = 1\n", "\n\n", "长句子。"]), max_size=300))
def test_split_with_fences_never_leaves_a_part_with_an_open_block(pieces):
    text = "".join(pieces)
    parts = split_text(text, 60, fences=True)
    assert all(len(part) <= 60 for part in parts)
    if text.count(FENCE) % 2 == 0:
        assert all(part.count(FENCE) % 2 == 0 for part in parts)
    rebuilt = "".join(parts)
    assert rebuilt.replace(FENCE, "").replace("\n", "").replace("py", "") == text.replace(FENCE, "").replace(
        "\n", ""
    ).replace("py", "")
