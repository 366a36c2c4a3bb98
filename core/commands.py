"""Commands declared once, as data. Each adapter registers them its own way.

A :class:`CommandSpec` is what Telegram's set_my_commands and Discord's app_commands
are generated from. Admin commands live in the ``admin`` group (``/admin ban USER``);
the authorization check is a filter applied by the router to every spec with
``admin_only``, never code inside a handler.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from core.errors import CommandUsageError, ConfigError
from core.events import CommandCall, Reply
from core.i18n import _

if TYPE_CHECKING:
    from core.dispatcher import Context

ADMIN_GROUP = "admin"
_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


@dataclass(frozen=True, slots=True)
class ArgSpec:
    name: str
    description: str
    required: bool = False
    rest: bool = False  # takes the remaining text (may contain spaces)
    choices: tuple[str, ...] = ()


CommandHandler = Callable[["Context", tuple[str, ...]], Awaitable["Reply | str | None"]]


@dataclass(frozen=True, slots=True)
class CommandSpec:
    name: str
    description: str  # one line, shown in /help and in the platforms' command menus
    handler: CommandHandler
    args: tuple[ArgSpec, ...] = ()
    admin_only: bool = False
    chat_admin: bool = False  # admin_only, but a chat's own admins may run it there: it acts on that chat
    private: bool = False  # the answer is for the caller only (ephemeral / DM)
    uses_model: bool = False  # slow: adapters defer the interaction
    owner: str = "core"  # "core" or the plugin's name

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ConfigError(f"command {self.name!r}: names are 1-32 of a-z, 0-9, _ and -")
        if len(self.description) > 100:
            raise ConfigError(f"command {self.name!r}: description over 100 characters")

    @property
    def qualified_name(self) -> str:
        return f"{ADMIN_GROUP} {self.name}" if self.admin_only else self.name

    @property
    def usage(self) -> str:
        words = [f"/{self.qualified_name}"]
        for arg in self.args:
            label = arg.name.upper() + ("…" if arg.rest else "")
            if arg.choices:
                label = "|".join(arg.choices)
            words.append(label if arg.required else f"[{label}]")
        return " ".join(words)

    def bind(self, args: tuple[str, ...]) -> tuple[str, ...]:
        """Check ``args`` against the spec; joins the tail into a ``rest`` argument."""
        specs = self.args
        if specs and specs[-1].rest and len(args) > len(specs):
            args = args[: len(specs) - 1] + (" ".join(args[len(specs) - 1 :]),)
        if len(args) > len(specs):
            raise CommandUsageError(f"too many arguments for {self.name}", user_message=_("Usage: {usage}", usage=self.usage))
        for index, spec in enumerate(specs):
            if index >= len(args):
                if spec.required:
                    raise CommandUsageError(f"missing {spec.name}", user_message=_("Usage: {usage}", usage=self.usage))
                continue
            if spec.choices and args[index].lower() not in spec.choices:
                raise CommandUsageError(
                    f"bad {spec.name}", user_message=_("{name} must be one of: {choices}", name=spec.name, choices=", ".join(spec.choices))
                )
        return args


@dataclass
class CommandRegistry:
    """All commands of one bot; plugins add theirs at setup."""

    _specs: dict[tuple[bool, str], CommandSpec] = field(default_factory=dict)

    def add(self, spec: CommandSpec) -> None:
        key = (spec.admin_only, spec.name)
        if key in self._specs:
            other = self._specs[key]
            raise ConfigError(f"command /{spec.qualified_name} from {spec.owner} clashes with {other.owner}")
        if not spec.admin_only and spec.name == ADMIN_GROUP:
            raise ConfigError(f"command /{ADMIN_GROUP} is reserved for the admin group")
        self._specs[key] = spec

    def extend(self, specs: Iterable[CommandSpec]) -> None:
        for spec in specs:
            self.add(spec)

    def find(self, call: CommandCall) -> tuple[CommandSpec, tuple[str, ...]] | None:
        """Resolve ``/name args`` or ``/admin sub args`` to its spec and remaining args."""
        if call.name == ADMIN_GROUP:
            if not call.args:
                return None
            spec = self._specs.get((True, call.args[0].lower()))
            return (spec, call.args[1:]) if spec else None
        spec = self._specs.get((False, call.name))
        return (spec, call.args) if spec else None

    def user_commands(self) -> list[CommandSpec]:
        return [spec for (admin, _), spec in self._specs.items() if not admin]

    def admin_commands(self) -> list[CommandSpec]:
        return [spec for (admin, _), spec in self._specs.items() if admin]


def parse_command_text(text: str, bot_username: str | None = None) -> CommandCall | None:
    """``"/persona@mybot tutor"`` -> ``CommandCall("persona", ("tutor",))``.

    Returns None for ordinary text and for commands addressed to another bot
    (``/help@otherbot`` in a group).
    """
    if not text.startswith("/") or len(text) < 2:
        return None
    head, *rest = text[1:].split(maxsplit=1)
    name, _, target = head.partition("@")
    if target and bot_username and target.lower() != bot_username.lower():
        return None
    if not name:
        return None
    args = tuple(rest[0].split()) if rest else ()
    return CommandCall(name.lower(), args)
