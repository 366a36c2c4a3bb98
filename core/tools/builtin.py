"""The core's own tools (the personalization feature adds them): the user's memories (their
own only, never another user's) and recommendations.

The user is always the one who sent the message (``ctx.user_id``), never an argument,
so a model cannot be talked into reading or writing someone else's memories. Saving
respects the user's ``memory`` consent (core/personalization/profiles.py).
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

from core.dispatcher import Context
from core.personalization.profiles import consent_of
from core.ports import Store
from core.tools.spec import Tool, ToolContext, make_tool

MAX_MEMORY_CHARS = 300
_WORD = re.compile(r"\w+", re.UNICODE)


def _terms(text: str) -> set[str]:
    """Words, and single characters of scripts written without spaces (Chinese, Japanese)."""
    words = {word.casefold() for word in _WORD.findall(text)}
    return words | {char for word in words for char in word if ord(char) > 0x2E80}


def memory_tools(store: Store, *, memory_default: bool = True) -> list[Tool]:
    async def recall(ctx: ToolContext, query: str = "", limit: int = 5) -> list[dict[str, str]]:
        memories = await store.memories(ctx.user_id)
        wanted = _terms(query)
        ranked = sorted(memories, key=lambda m: (len(wanted & _terms(f"{m.subject} {m.text}")), m.created_at), reverse=True)
        if wanted:
            ranked = [m for m in ranked if wanted & _terms(f"{m.subject} {m.text}")]
        return [{"subject": m.subject, "text": m.text} for m in ranked[: max(1, min(limit, 20))]]

    async def save(ctx: ToolContext, subject: str, text: str) -> str:
        profile = await store.get_profile(ctx.user_id)
        if not consent_of(profile, "memory", memory_default):
            return "not saved: the user turned memories off"
        subject = " ".join(subject.casefold().split())[:40] or "note"
        scope = "group" if ctx.event.chat_kind.value == "group" else "private"
        await store.add_memory(ctx.user_id, subject, text.strip()[:MAX_MEMORY_CHARS], None, scope)
        return f"saved under {subject!r}"

    return [
        make_tool(recall, "memory_recall", "Look up what the user told you before about themselves (their own memories)."),
        make_tool(save, "memory_save", "Remember a fact the user asked you to remember about themselves."),
    ]


def recommend_tool(recommend: Callable[[Context, tuple[str, ...]], Awaitable[str]]) -> Tool:
    """/recommend as a tool: the same picks, for the user who asks."""

    async def run(ctx: ToolContext, count: int = 3) -> str:
        return await recommend(ctx.turn, (str(count),))

    return make_tool(run, "recommend", "Suggest items from the bot's catalog that suit the user's interests.")
