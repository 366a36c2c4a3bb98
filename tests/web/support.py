"""Shared by the console's tests: a seeded store and a console built on it."""

from __future__ import annotations

from pathlib import Path

from core.events import ConversationKey
from core.personas import BUNDLED_PERSONAS, PersonaLibrary
from core.settings import BotSettings
from core.web.app import create_console
from core.web.console import ConsoleParts
from core.web.settings import WebSettings

TOKEN = "correct horse battery staple"
LINK_KEY = b"k" * 32
ANN, BOB = "telegram:1001", "discord:2002"
DM = ConversationKey("telegram", "1001")
GROUP = ConversationKey("discord", "500")
SCRIPT = "<script>window.__pwned = 1</script><img src=x onerror=\"window.__pwned = 2\">"


class Clock:
    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


async def seed(store) -> dict[str, int]:
    """Ann (with a stored script in her name, a message and a memory) and Bob; a long DM."""
    await store.touch_user(ANN, "Ann <b>bold</b>")
    await store.touch_user(BOB, "小明")
    dm = await store.active_conversation(DM)
    turn = await store.add_user_message(dm.id, ANN, SCRIPT)
    await store.add_reply(turn.id, "I will not run that.")
    for index in range(124):  # 250 turns in all: three pages of 100
        turn = await store.add_user_message(dm.id, ANN, f"message {index}")
        await store.add_reply(turn.id, f"reply {index}")
    group = await store.active_conversation(GROUP)
    turn = await store.add_user_message(group.id, BOB, "你好，机器人")
    await store.add_reply(turn.id, "你好！")
    memory = await store.add_memory(ANN, "food", f"likes tea {SCRIPT}", None, "private")
    await store.audit(BOB, "moderation input", "group", detail={"rules": ["words:bad"], "action": "refuse"})
    return {"dm": dm.id, "group": group.id, "memory": memory.id}


def bot_settings(persona_dir: Path | None = None) -> BotSettings:
    data: dict = {"name": "webtest", "model": {"backend": "scripted"}, "web": {"enabled": True}}
    if persona_dir is not None:
        data["personas"] = {"dirs": [str(persona_dir)]}
    return BotSettings.model_validate(data)


def personas(persona_dir: Path | None = None) -> PersonaLibrary:
    return PersonaLibrary.load([BUNDLED_PERSONAS, *([persona_dir] if persona_dir else [])])


def console_app(store, *, clock=None, persona_dir: Path | None = None, token: str | None = TOKEN, parts=True,
                **web_overrides):
    settings = bot_settings(persona_dir)
    web_settings = WebSettings(**{"enabled": True, **web_overrides})
    library = personas(persona_dir)
    app = create_console(
        settings=settings,
        web_settings=web_settings,
        token=token,
        link_key=LINK_KEY,
        parts=ConsoleParts(store, library) if parts else None,
        **({"clock": clock} if clock else {}),
    )
    return app, library
