from hypothesis import given
from hypothesis import strategies as st

from core.events import ChatMessage
from core.generation.text import StopFilter, approx_message_tokens, approx_tokens


def run(filter_: StopFilter, pieces: list[str]) -> str:
    return "".join(filter_.feed(p) for p in pieces) + filter_.flush()


def test_cuts_before_stop_split_across_pieces():
    f = StopFilter(["\nUser:"])
    assert f.feed("Hi there\nUs") == "Hi there"  # the possible start of the stop is held back
    assert f.feed("er: next") == ""
    assert f.hit == "\nUser:"
    assert f.flush() == ""


def test_held_text_is_released_when_it_is_not_a_stop():
    f = StopFilter(["END"])
    assert f.feed("a E") == "a "
    assert f.feed("N") == ""
    assert f.feed("d") == "ENd"
    assert f.flush() == ""
    assert f.hit is None


def test_earliest_of_several_stops_wins():
    assert run(StopFilter(["bb", "a"]), ["xbba"]) == "x"


def test_unicode_stop_strings():
    f = StopFilter(["。用户"])
    assert run(f, ["你好。", "用", "户：再见"]) == "你好"


@given(st.text(max_size=40), st.lists(st.text(min_size=1, max_size=4), max_size=3), st.data())
def test_any_chunking_gives_text_cut_at_first_stop(text, stops, data):
    cuts = sorted(data.draw(st.lists(st.integers(0, len(text)), max_size=6)))
    pieces = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)])]
    hits = [text.find(s) for s in stops if s in text]
    expected = text[: min(hits)] if hits else text
    assert run(StopFilter(stops), pieces) == expected


def test_approx_tokens_counts_cjk_per_character():
    assert approx_tokens("") == 0
    assert approx_tokens("abcdefgh") == 2
    assert approx_tokens("你好世界") == 4
    assert approx_message_tokens([ChatMessage("user", "你好")]) > approx_tokens("你好")
