from collections.abc import AsyncIterator

from hypothesis import given, settings
from hypothesis import strategies as st

from core.events import Chunk, ConversationKey, FinishReason
from core.streaming import ReplyStreamer
from core.text import utf16_len
from tests.fakes import RecordingOutbox

KEY = ConversationKey("test", "1")


async def chunks(pieces) -> AsyncIterator[Chunk]:
    for piece in pieces:
        yield Chunk(piece)
    yield Chunk("", FinishReason.STOP)


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        self.now += 0.4  # each look at the clock: 0.4 s later
        return self.now


async def test_edits_are_throttled_and_the_last_edit_carries_everything():
    outbox = RecordingOutbox(interval=1.0)
    streamer = ReplyStreamer(outbox, KEY, clock=Clock())
    await streamer.consume(chunks([f"w{i} " for i in range(20)]))
    await streamer.finish()
    assert outbox.texts == [" ".join(f"w{i}" for i in range(20))]
    edits = [entry for entry in outbox.log if entry[0] == "edit"]
    assert 0 < len(edits) < 19  # throttled, not one edit per chunk


async def test_final_only_mode_sends_once():
    outbox = RecordingOutbox(interval=None)
    streamer = ReplyStreamer(outbox, KEY)
    await streamer.consume(chunks(["hello ", "world"]))
    await streamer.finish()
    assert outbox.log == [("send", "1", "hello world")]


async def test_final_text_replaces_streamed_text():
    outbox = RecordingOutbox(interval=0.0)
    streamer = ReplyStreamer(outbox, KEY)
    await streamer.consume(chunks(["bad ", "words"]))
    await streamer.finish("[removed]")
    assert outbox.texts == ["[removed]"]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.text(alphabet=st.characters(codec="utf-8"), min_size=1, max_size=60), max_size=80),
    st.sampled_from([None, 0.0]),
)
async def test_long_streams_split_within_limit_without_losing_text(pieces, interval):
    outbox = RecordingOutbox(max_message_length=50, interval=interval, measure=utf16_len)
    streamer = ReplyStreamer(outbox, KEY)
    await streamer.consume(chunks(pieces))
    await streamer.finish()
    full = "".join(pieces)
    assert all(utf16_len(text) <= 50 for text in outbox.texts)
    shown = "".join(outbox.texts)
    assert "".join(shown.split()) == "".join(full.split()) or (not full.strip() and outbox.texts == [])
