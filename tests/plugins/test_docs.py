"""The minimal plugin of docs/plugins.md works as printed."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from tests.conftest import make_event
from tests.fakes import RecordingOutbox
from tests.plugins.helpers import bot_settings, plugin_app

DOC = (Path(__file__).resolve().parents[2] / "docs" / "plugins.md").read_text(encoding="utf-8")


def block(language: str, index: int = 0) -> str:
    return re.findall(rf"```{language}\n(.*?)```", DOC, re.S)[index]


async def test_the_guides_minimal_plugin_runs_as_printed(tmp_path):
    (tmp_path / "my_plugins").mkdir()
    (tmp_path / "my_plugins" / "tickets.py").write_text(block("python"), encoding="utf-8")
    plugins = tomllib.loads(block("toml"))["plugins"]
    async with plugin_app(bot_settings(tmp_path, plugins)) as app:
        outbox = RecordingOutbox()
        app.seams.outboxes.register("telegram", outbox)
        for text in ["/ticket open 打印机坏了", "/ticket list", "what is my ticket status?"]:
            await app.dispatcher.feed(make_event(text), outbox)
        assert outbox.texts == [
            "Ticket #1 opened. We'll get back to you.",
            "#1: 打印机坏了",
            "You have 1 open ticket(s). Send /ticket list to see them.",
        ]
        [job] = await app.services.plugins.loaded["tickets"].ctx.jobs()
        await app.services.plugins.scheduler.run_due(job.run_at)
        assert outbox.last == "Is ticket #1 solved? Reply here if not."
        assert (await app.services.plugins.export_user("telegram:1"))["tickets"] == {"tickets": ["打印机坏了"]}
        await app.dispatcher.feed(make_event("/ticket open again"), outbox)
        assert await app.services.plugins.forget_user("telegram:1") == {"tickets": 2}
        assert (await app.services.plugins.export_user("telegram:1"))["tickets"] == {"tickets": []}
