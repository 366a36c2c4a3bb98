"""The knowledge plugin's "Sources:" line comes from the catalogs, in the reader's language."""

from __future__ import annotations

import dataclasses

from tests.conftest import make_event
from tests.fakes import RecordingOutbox
from tests.plugins.helpers import HashingEmbedder, plugin_app
from tests.plugins.test_examples import shipped_bot

QUESTION = "How many business days does standard delivery take?"


async def test_the_sources_line_is_english_for_one_reader_and_chinese_for_another():
    outbox = RecordingOutbox()
    async with plugin_app(shipped_bot("support"), embedder=HashingEmbedder()) as app:
        for user, hint in (("telegram:5", "en"), ("telegram:6", "zh-hans")):
            await app.dispatcher.feed(dataclasses.replace(make_event(QUESTION, user), locale=hint), outbox)
    english, chinese = outbox.texts
    assert english == "Model reply.\n\nSources: shipping.md › Shipping times"
    assert chinese == "Model reply.\n\n来源：shipping.md › Shipping times"
