"""Console adapter: lines from a terminal in, streamed text out.

The console user is the operator of the machine, so console identities are admins
(:func:`console_admin_policy`): whoever can run the CLI can already open the database.
The transcript shows the tool calls of a turn after its reply (:func:`tool_transcript`).
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import threading
import uuid
from typing import TextIO

from core.commands import parse_command_text
from core.events import ChatKind, ConversationKey, IncomingMessage, Reply, SentMessage, UserRef
from core.runtime import Runtime
from core.tools.trace import traces_of

PLATFORM = "console"
TOOL_RESULT_CHARS = 160  # of a tool result, in the transcript lines after a reply


def console_event(text: str, user: str, event_id: str | None = None) -> IncomingMessage:
    """Pure conversion of one typed line into a core event.

    ``event_id`` is a caller's key for the message (``personabot ask --id``): delivering
    the same key again never stores or answers the message twice.
    """
    return IncomingMessage(
        event_id=f"{PLATFORM}:{user}:{event_id}" if event_id else f"{PLATFORM}:{uuid.uuid4().hex}",
        key=ConversationKey(PLATFORM, user),
        user=UserRef(PLATFORM, user),
        text=text,
        chat_kind=ChatKind.CONSOLE,
        command=parse_command_text(text),
        user_display_name=user,
    )


def tool_line(record: dict) -> str:
    """One tool call of a turn as a transcript line: the call, its outcome and the result's start."""
    result = " ".join(str(record.get("result", "")).split())
    result = result if len(result) <= TOOL_RESULT_CHARS else result[: TOOL_RESULT_CHARS - 1] + "…"
    return f"  [tool {record.get('tool')}({record.get('arguments', '')}) → {record.get('outcome')}] {result}"


async def tool_transcript(app: Runtime, event: IncomingMessage) -> list[str]:
    """The tool calls and results stored with the turn ``event`` started (core/tools/trace.py)."""
    found = await app.store.turn_by_event(event.event_id)
    if found is None:
        return []
    return [tool_line(record) for record in (await traces_of(app.store, [found[0]])).get(found[0].id, [])]


def console_admin_policy(event: IncomingMessage) -> bool:
    """The console's admin policy: the person at the terminal is the operator."""
    return True


class ConsoleOutbox:
    """Writes replies to a text stream. With ``stream=True``, edits print only what is new."""

    max_message_length = 100_000
    markdown_fences = False

    def __init__(self, out: TextIO = sys.stdout, *, stream: bool = True, prefix: str = "") -> None:
        self._out = out
        self._stream = stream
        self._prefix = prefix
        self._ids = itertools.count(1)
        self._open: tuple[str, str] | None = None  # (message id, text printed so far)

    def measure(self, text: str) -> int:
        return len(text)

    def edit_interval(self) -> float | None:
        return 0.0 if self._stream else None

    async def send(self, key: ConversationKey, reply: Reply) -> SentMessage:
        self.end_line()
        message_id = str(next(self._ids))
        self._out.write(self._prefix + reply.text)
        self._out.flush()
        self._open = (message_id, reply.text)
        return SentMessage(key, message_id)

    async def edit(self, sent: SentMessage, text: str) -> None:
        if self._open and self._open[0] == sent.message_id and text.startswith(self._open[1]):
            self._out.write(text[len(self._open[1]) :])
        elif self._open and self._open[0] == sent.message_id and _drops_lines_only(self._open[1], text):
            self._open = (sent.message_id, text)  # e.g. a tool's "(using: …)" line taken out:
            return  # the terminal already shows the rest
        else:  # a terminal cannot rewrite earlier lines; print the new version in full
            self.end_line()
            self._out.write(self._prefix + text)
        self._out.flush()
        self._open = (sent.message_id, text)

    async def typing(self, key: ConversationKey) -> None:
        return None

    async def aclose(self) -> None:
        return None

    def end_line(self) -> None:
        if self._open is not None:
            self._out.write("\n")
            self._out.flush()
            self._open = None


def _drops_lines_only(shown: str, text: str) -> bool:
    """Whether ``text`` is ``shown`` with some whole lines left out (whitespace aside): a
    status line between two streamed rounds goes, and the rounds' text joins up."""
    target = "".join(text.split())
    reachable = {0}  # how much of target the kept lines can spell so far
    for line in shown.splitlines():
        piece = "".join(line.split())
        reachable |= {at + len(piece) for at in reachable if target.startswith(piece, at)}
    return len(target) in reachable


def _read_lines(loop: asyncio.AbstractEventLoop, lines: "asyncio.Queue[str | None]", source: TextIO) -> None:
    """Blocking stdin reads in a daemon thread, so a stop never waits for a keypress."""
    for line in source:
        loop.call_soon_threadsafe(lines.put_nowait, line.rstrip("\n"))
    loop.call_soon_threadsafe(lines.put_nowait, None)


async def serve(app: Runtime, user: str = "you", stop: asyncio.Event | None = None, *, prompt: str = "> ") -> None:
    """Interactive loop until EOF (Ctrl-D), /quit, or ``stop`` (SIGTERM under ``personabot run``)."""
    outbox = ConsoleOutbox(prefix="bot: ")
    stop = stop or asyncio.Event()
    lines: asyncio.Queue[str | None] = asyncio.Queue()
    threading.Thread(target=_read_lines, args=(asyncio.get_running_loop(), lines, sys.stdin), daemon=True).start()
    print(f"Chatting with {app.settings.name}. /help for commands, /quit or Ctrl-D to leave.")
    stopped = asyncio.create_task(stop.wait())
    try:
        while True:
            print(prompt, end="", flush=True)
            next_line = asyncio.create_task(lines.get())
            await asyncio.wait({next_line, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if not next_line.done():
                next_line.cancel()
                print()
                return
            line = next_line.result()
            if line is None or line.strip() in {"/quit", "/exit"}:
                print()
                return
            event = console_event(line, user)
            await app.dispatcher.feed(event, outbox)
            outbox.end_line()
            for tool in await tool_transcript(app, event) if event.command is None else ():
                print(tool)
    finally:
        stopped.cancel()
