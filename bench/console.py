"""Web console benchmark: time to first byte and full page load in a real Chromium.

    python bench/console.py                      # 1,000,000 stored messages (bench/storage.py's database)
    python bench/console.py --messages 100000    # quicker

Builds the big database as bench/storage.py does, adds one conversation of
``--long`` turns, serves the console from it (``personabot web``'s server, no model)
and loads each page ``--loads`` times in headless Chromium (Debian's, through
Playwright), signed in. Prints p50/p95 of TTFB (navigation ``responseStart`` −
``requestStart``) and full load (``loadEventEnd``, the page with its CSS and script).
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_support import percentile  # noqa: E402
from storage import build_big_db  # noqa: E402  (bench/storage.py)

from core.personas import BUNDLED_PERSONAS, PersonaLibrary  # noqa: E402
from core.settings import BotSettings  # noqa: E402
from core.storage import SQLiteStore  # noqa: E402
from core.web.app import create_console  # noqa: E402
from core.web.console import ConsoleParts  # noqa: E402
from core.web.serve import ConsoleServer  # noqa: E402

TOKEN = "bench-token"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
TIMING = """() => { const n = performance.getEntriesByType('navigation')[0];
  return [n.responseStart - n.requestStart, n.loadEventEnd - n.startTime, n.transferSize]; }"""


def add_long_conversation(path: Path, turns: int) -> int:
    """One more conversation with ``turns`` turns (user and bot alternating), ending now."""
    db = sqlite3.connect(path)
    with db:
        (conversation,) = db.execute("SELECT coalesce(max(id), 0) + 1 FROM conversations").fetchone()
        (first_id,) = db.execute("SELECT coalesce(max(id), 0) + 1 FROM messages").fetchone()
        start = time.time() - turns
        db.execute("INSERT INTO conversations (id, platform, key, started_at, active) VALUES (?, 'big', ?, ?, 1)",
                   (conversation, f"big:long{conversation}", start))
        db.execute("INSERT OR IGNORE INTO users (id, display_name, first_seen, last_seen, message_count)"
                   " VALUES ('big:long', '长对话', ?, ?, ?)", (start, start, turns // 2))
        db.executemany(
            """INSERT INTO messages (id, conversation_id, role, user_id, text, created_at, reply_to, answered)
               VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
            (
                (first_id + i, conversation, "user" if i % 2 == 0 else "assistant", "big:long" if i % 2 == 0 else None,
                 f"turn {i}: 今天的天气怎么样？ <b>not bold</b> " * 3, start + i, None if i % 2 == 0 else first_id + i - 1,
                 1 if i % 2 == 0 else 0)
                for i in range(turns)
            ),
        )
    db.close()
    return conversation


class Server(threading.Thread):
    def __init__(self, path: Path) -> None:
        super().__init__(daemon=True)
        self.path, self.ready, self.url = path, threading.Event(), ""
        self.loop = asyncio.new_event_loop()

    def run(self) -> None:
        self.loop.run_until_complete(self._serve())

    async def _serve(self) -> None:
        self.stop = asyncio.Event()
        settings = BotSettings.model_validate({"name": "bench", "model": {"backend": "scripted"}})
        async with SQLiteStore(self.path) as store:
            parts = ConsoleParts(store, PersonaLibrary.load([BUNDLED_PERSONAS]))
            console = create_console(settings=settings, web_settings=settings.web, token=TOKEN, parts=parts)
            async with ConsoleServer(console, "127.0.0.1", 0) as server:
                self.url = server.url
                self.ready.set()
                await self.stop.wait()


def measure(url: str, pages: dict[str, str], loads: int) -> None:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page()
        page.goto(url + "signin")
        page.fill("#token", TOKEN)
        page.click("#signin")
        page.wait_for_selector("#figures")
        print(f"{'page':<42} {'TTFB p50':>9} {'p95':>7} {'load p50':>9} {'p95':>7} {'HTML KB':>8}")
        for name, path in pages.items():
            ttfb, load, size = [], [], 0
            for _ in range(loads):
                page.goto(url + path, wait_until="load")
                first, full, size = page.evaluate(TIMING)
                ttfb.append(first)
                load.append(full)
            print(f"{name:<42} {percentile(ttfb, .5):7.0f}ms {percentile(ttfb, .95):5.0f}ms"
                  f" {percentile(load, .5):7.0f}ms {percentile(load, .95):5.0f}ms {size / 1024:8.0f}")
        browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--per-conversation", type=int, default=100)
    parser.add_argument("--long", type=int, default=2000, help="turns of the long conversation")
    parser.add_argument("--loads", type=int, default=20, help="loads of each page")
    parser.add_argument("--dir", type=Path, default=None, help="where the database goes (default: a temp folder)")
    args = parser.parse_args()
    folder = args.dir or Path(tempfile.mkdtemp(prefix="pb-console-bench-"))
    path = folder / "console.db"
    if not path.exists():
        started = time.perf_counter()
        build_big_db(path, args.messages, args.per_conversation)
        print(f"built {args.messages:,} messages in {time.perf_counter() - started:.0f}s: {path}")
    long_id = add_long_conversation(path, args.long)
    server = Server(path)
    server.start()
    server.ready.wait(60)
    db = sqlite3.connect(path)
    (messages,) = db.execute("SELECT count(*) FROM messages").fetchone()
    (middle,) = db.execute(
        "SELECT id FROM messages WHERE conversation_id = ? ORDER BY id LIMIT 1 OFFSET ?", (long_id, args.long // 2)
    ).fetchone()
    db.close()
    print(f"database: {messages:,} messages; long conversation #{long_id}: {args.long:,} turns")
    pages = {
        "dashboard": "",
        "dashboard fragment (5 s refresh)": "fragments/dashboard",
        f"conversation {args.long} turns, page 1": f"conversations/{long_id}",
        f"conversation {args.long} turns, a middle page": f"conversations/{long_id}?after={middle}&n={args.long // 2}",
        f"conversation {args.long} turns, newest page": f"conversations/{long_id}?page=last",
        "conversation list": "conversations",
        "conversation text search": "conversations?text=not%20bold",
        "users": "users",
        "audit log": "audit",
    }
    measure(server.url, pages, args.loads)
    server.loop.call_soon_threadsafe(server.stop.set)
    server.join(30)


if __name__ == "__main__":
    main()
