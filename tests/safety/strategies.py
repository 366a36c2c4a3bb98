"""Hypothesis strategies for hostile text: every Unicode category (lone surrogates too),
invisible and direction marks, control characters, huge inputs, markup, fake commands."""

from hypothesis import strategies as st

FRAGMENTS = [
    "\u200b", "\u200c", "\u200d", "\u200e", "\u200f", "\u202e", "\u2066", "\ufeff", "\u00ad",
    "\x00", "\x07", "\x1b[31m", "\r\n", "\r", "\t", "\n" * 40, " " * 30,
    "\ud800", "\udfff", "\ud83d", "👩‍👩‍👧‍👦", "🇯🇵", "e\u0301", "你好，世界", "مرحبا", "שלום",
    "```", "```python\n", "**bold**", "__u__", "~~s~~", "||spoiler||", "> quote", "# head",
    "<b>", "</i>", "<a href='x'>", "&amp;", "&lt;", "@everyone", "@here", "<@123>", "<#1>", "<@&9>",
    "[link](http://x)", "_", "*", "`", "\\", "/", "/start", "/admin ban telegram:1", "/help@otherbot",
    "<|system|>", "<|end|>", "{{ x }}", "%s", "{0}", "'; DROP TABLE messages; --",
]

characters = st.one_of(st.characters(), st.characters(categories=["Cs"]))
piece = st.one_of(st.text(characters, max_size=40), st.sampled_from(FRAGMENTS))
mixed = st.lists(piece, max_size=25).map("".join)
huge = st.builds(lambda unit, times: (unit * times)[:100_000], piece.filter(bool), st.integers(500, 100_000))

hostile_text = st.one_of(mixed, mixed, mixed, huge, st.sampled_from(["", " ", "\n" * 5000, "\u200b" * 100]))
