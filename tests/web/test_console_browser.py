"""The console in a real headless Chromium (Debian's ``chromium``, driven by Playwright
through ``executable_path``; no browser is ever downloaded).

Without the browser or the ``playwright`` package these tests are skipped with the
reason, except under ``CI=true``, where that is a failure. Screenshots of every page
go to a temp folder, or to the folder ``PERSONABOT_SCREENSHOTS`` names (docs/console.md
says which two are copied into docs/).
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from core.events import ConversationKey
from core.storage import SQLiteStore
from core.web.serve import ConsoleServer
from tests.web.support import ANN, BOB, TOKEN, console_app, seed

CHROMIUM = os.environ.get("PERSONABOT_CHROMIUM", "/usr/bin/chromium")
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
WAIT_MS = 15_000  # for a condition to become true, never a fixed sleep


def _missing(reason: str) -> None:
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true: {reason}")
    pytest.skip(reason)


class Served:
    """The console on a seeded file database, served from a thread with its own loop."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.stopping: asyncio.Event | None = None
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="console-server", daemon=True)

    def _run(self) -> None:
        try:
            self.loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported to the test through start()
            self.failure = exc
            self.ready.set()

    async def _serve(self) -> None:
        self.stopping = asyncio.Event()
        (self.folder / "personas").mkdir()
        async with SQLiteStore(self.folder / "bot.db") as store:
            self.store = store
            self.ids = await seed(store)
            app, self.library = console_app(store, persona_dir=self.folder / "personas")
            async with ConsoleServer(app, "127.0.0.1", 0) as server:
                self.url = server.url
                self.ready.set()
                await self.stopping.wait()

    def start(self) -> "Served":
        self.thread.start()
        self.ready.wait(30)
        if self.failure is not None:
            raise self.failure
        return self

    def call(self, coroutine: Any) -> Any:
        """Run a store call on the server's loop (its one writer lives there)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(10)

    def stop(self) -> None:
        assert self.stopping is not None
        self.loop.call_soon_threadsafe(self.stopping.set)
        self.thread.join(30)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _missing("the playwright package is not installed (pip install playwright; no browser download needed)")
    if not Path(CHROMIUM).exists():
        _missing(f"no Chromium at {CHROMIUM} (apt-get install chromium)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        launched.close()


@pytest.fixture
def served(tmp_path) -> Iterator[Served]:
    server = Served(tmp_path).start()
    yield server
    server.stop()


@pytest.fixture
def shots(tmp_path_factory) -> Path:
    configured = os.environ.get("PERSONABOT_SCREENSHOTS")
    folder = Path(configured) if configured else tmp_path_factory.mktemp("screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _page(browser: Any, served: Served, width: int = 1280) -> Any:
    context = browser.new_context(viewport={"width": width, "height": 900}, locale="en-US")
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.errors = errors  # type: ignore[attr-defined]
    return page


def _sign_in(page: Any, served: Served) -> None:
    page.goto(served.url)
    assert "/signin" in page.url
    page.fill("#token", TOKEN)
    page.click("#signin")
    page.wait_for_selector("#figures")


def test_sign_in_and_every_page(browser, served, shots):
    page = _page(browser, served)
    page.goto(served.url + "signin")
    page.fill("#token", "wrong")
    page.click("#signin")
    assert page.inner_text("#error") == "Wrong token."
    _sign_in(page, served)
    pages = {
        "dashboard": ("", "#figures"),
        "conversations": ("conversations", "#conversations"),
        "conversation": (f"conversations/{served.ids['dm']}", "#turns"),
        "users": ("users", "#users"),
        "user": (f"users/{ANN}", "#memories"),
        "personas": ("personas", "#personas"),
        "persona": ("personas/companion", "#preview"),
        "moderation": ("moderation", "#moderation"),
        "audit": ("audit", "#audit"),
        "plugins": ("plugins", "main"),
        "settings": ("settings", "#settings"),
    }
    for name, (path, selector) in pages.items():
        page.goto(served.url + path)
        page.wait_for_selector(selector)
        page.screenshot(path=str(shots / f"{name}.png"), full_page=name != "conversation")
    page.goto(served.url + "moderation")
    assert "words:bad" in page.inner_text("#moderation")
    assert page.errors == []  # type: ignore[attr-defined]


def test_a_stored_script_does_not_run(browser, served):
    page = _page(browser, served)
    _sign_in(page, served)
    for path in (f"conversations/{served.ids['dm']}", f"users/{ANN}", "users"):
        page.goto(served.url + path)
        page.wait_for_selector("main")
        assert page.evaluate("window.__pwned") is None, path
    page.goto(served.url + f"conversations/{served.ids['dm']}")
    first = page.inner_text(f"#turns li:first-child .text")
    assert first.startswith("<script>window.__pwned = 1</script>")  # shown as text
    assert page.locator("#turns script").count() == 0 and page.locator("#turns img").count() == 0


def test_edit_a_persona_and_see_the_validation_error(browser, served):
    page = _page(browser, served)
    _sign_in(page, served)
    page.goto(served.url + "personas/companion")
    old = served.library.get("companion")
    page.fill("#field-greeting", "")
    page.click("#save-form")
    assert "greeting: String should have at least 1 character" in page.inner_text("#errors")
    assert served.library.get("companion") == old
    page.fill("#field-description", "Edited in the browser 浏览器")
    page.fill("#field-greeting", "Hi there!")
    page.click("#save-form")
    assert "saved and active" in page.inner_text("#note")
    assert served.library.get("companion").description == "Edited in the browser 浏览器"
    assert "Edited in the browser" in page.input_value("#toml")


def test_ban_unban_and_forget_a_user(browser, served, shots):
    page = _page(browser, served)
    _sign_in(page, served)
    page.goto(served.url + f"users/{BOB}")
    page.click("#ban")
    page.wait_for_selector("#banned")
    assert served.call(served.store.is_banned(BOB)) is True
    page.click("#unban")
    page.wait_for_selector("#ban")
    assert served.call(served.store.is_banned(BOB)) is False
    page.goto(served.url + f"users/{ANN}")
    page.click("#forget")
    page.fill("#confirm", BOB)  # the wrong id: nothing happens
    page.click("#forget-confirm")
    assert "does not match" in page.inner_text("#error")
    assert served.call(served.store.get_user(ANN)) is not None
    page.fill("#confirm", ANN)
    page.click("#forget-confirm")
    assert "rows deleted" in page.inner_text("#note")
    assert served.call(served.store.get_user(ANN)) is None
    assert served.call(served.store.find_conversations(user=ANN)) == []
    page.goto(served.url + f"users/{ANN}")
    assert page.is_visible("#nothing") and page.locator("#memories").count() == 0


def test_the_dashboard_refreshes_itself(browser, served):
    page = _page(browser, served)
    _sign_in(page, served)
    before = int(page.inner_text("#active-users"))

    async def new_user() -> None:
        conversation = await served.store.active_conversation(ConversationKey("telegram", "3003"))
        await served.store.add_user_message(conversation.id, "telegram:3003", "hello")

    served.call(new_user())
    from playwright.sync_api import expect

    expect(page.locator("#active-users")).to_have_text(str(before + 1), timeout=WAIT_MS)  # polled by console.js


def test_phone_width_and_chinese(browser, served, shots):
    context = browser.new_context(viewport={"width": 375, "height": 740}, locale="zh-CN",
                                  extra_http_headers={"Accept-Language": "zh-CN,zh;q=0.9"})
    page = context.new_page()
    page.set_default_timeout(WAIT_MS)
    _sign_in(page, served)
    assert "仪表盘" in page.inner_text("header")
    for path in ("", f"users/{ANN}", f"conversations/{served.ids['dm']}", "audit", "personas/companion"):
        page.goto(served.url + path)
        page.wait_for_selector("main")
        overflow = page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 1, f"{path or 'dashboard'} is {overflow}px wider than a phone screen"
    page.screenshot(path=str(shots / "user-phone-zh.png"))
    page.click("#lang")
    page.wait_for_selector("main")
    assert "Dashboard" in page.inner_text("header")
