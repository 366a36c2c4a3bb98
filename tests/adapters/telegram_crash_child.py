"""A bot process whose reply hangs mid-stream; test_telegram_shutdown kills it with SIGKILL.

    python tests/adapters/telegram_crash_child.py BOT_API_BASE_URL DATABASE
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from adapters.telegram.adapter import serve  # noqa: E402
from core.storage.sqlite import SQLiteStore  # noqa: E402
from tests.adapters.telegram_support import GatedGenerator, bot_app, telegram_settings  # noqa: E402


async def main(base_url: str, database: str) -> None:
    settings = telegram_settings(base_url, private_streaming="edit")
    async with bot_app(settings, GatedGenerator("Partial answer", "never shown"), SQLiteStore(database)) as app:
        await serve(app, asyncio.Event())


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
