"""``personabot init [FOLDER]``: scaffold a bot folder, from flags or by asking.

Writes a commented ``bot.toml``, the bot's own persona in ``personas/``, a
``.env.example`` naming the variables the bot needs, a ``.gitignore`` that keeps
``.env`` out, and a ``README.md`` with the next two commands. A folder that is not
empty is refused without ``--force`` (and then nothing is written). The result is
checked with the same validation ``run`` uses before the command reports success.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Optional

import typer

from bots.common import clean_errors
from core.errors import ConfigError

PLATFORMS = ("console", "telegram", "discord")
BACKENDS = ("transformers", "openai", "scripted")
TOKEN_ENVS = {"telegram": "TELEGRAM_BOT_TOKEN", "discord": "DISCORD_BOT_TOKEN"}
API_KEY_ENV = "OPENAI_API_KEY"
NEW_PERSONA = "new"
NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")  # BotSettings.name


@dataclass(frozen=True)
class Choices:
    name: str  # bot name, also the name of its persona (lower-cased)
    platforms: tuple[str, ...]
    persona: str  # "new" or a bundled persona to start from
    backend: str

    @property
    def persona_name(self) -> str:
        return re.sub(r"[^a-z0-9_-]", "-", self.name.lower()).strip("-_")[:32] or "bot"

    def env_names(self) -> list[str]:
        names = [TOKEN_ENVS[platform] for platform in self.platforms if platform in TOKEN_ENVS]
        return names + ([API_KEY_ENV] if self.backend == "openai" else [])


def q(text: str) -> str:
    """A TOML basic string (JSON's escapes are TOML's; any language stays readable)."""
    return json.dumps(text, ensure_ascii=False)


def _model_section(backend: str) -> str:
    if backend == "openai":
        return f"""[model]
backend = "openai"                 # any OpenAI-compatible server: vLLM, SGLang, TGI, llama.cpp, Ollama
base_url = "http://localhost:8000/v1"
model = "served-model-name"        # the name the server lists at GET /models
api_key_env = "{API_KEY_ENV}"      # the NAME of the variable holding the key; remove if none
context_window = 8192
"""
    if backend == "scripted":
        return """[model]
backend = "scripted"               # canned replies, cycled: for trying the wiring, not for users
replies = ["Hello! I am a scripted bot.", "Swap in a real model in [model] when you are ready."]
"""
    return """[model]
backend = "transformers"
path = "builtin:default"           # the bundled model (offline, CPU); or a local folder / Hugging Face id
# device = "auto"                  # "cuda" with a GPU build of torch

[model.generation]
max_new_tokens = 96
temperature = 0.8
"""


def bot_toml(choices: Choices) -> str:
    on = set(choices.platforms)
    persona = choices.persona_name
    sections = [
        f"""# {choices.name}: made by `personabot init`. Paths in this file are relative to it.
# Every field is explained in the README ("Configuration: the bot file").
#   personabot doctor --bot bot.toml    # checks tokens, database, model before going live
#   personabot run --bot bot.toml       # serves every platform enabled below
name = {q(choices.name)}
description = {q(f"{choices.name}, a personabot.")}
admins = []                        # platform-qualified ids that may use /admin, e.g. ["telegram:123456789"]

[personas]
# personas/{persona}.toml; the bundled ones (companion, support, tutor, assistant) stay available
default = {q(persona)}
dirs = ["personas"]
""",
        _model_section(choices.backend),
        f"""[storage]
# Default: $PERSONABOT_DATA_DIR/{choices.name}.db (in a container: the data volume).
# path = "{choices.name}.db"
# retention_days = 365             # delete conversations older than this

[console]
# chat in this terminal under `personabot run`
enabled = {str("console" in on).lower()}

[telegram]
enabled = {str("telegram" in on).lower()}
token_env = "{TOKEN_ENVS["telegram"]}"   # the NAME of the variable holding the token (see .env.example)
# admins = []                      # Telegram user ids allowed to use /admin

[discord]
enabled = {str("discord" in on).lower()}
token_env = "{TOKEN_ENVS["discord"]}"
# channels = []                    # channel ids where every message is answered

# [http]                           # /healthz, /readyz, /metrics for an orchestrator (docs/scaling.md)
# enabled = true
# host = "0.0.0.0"                 # in a container
# port = 8080

# [plugins]                        # extensions, see `personabot plugins list`
# enabled = ["knowledge"]
# [plugins.knowledge]
# folder = "knowledge"             # Markdown files to answer from, relative to this file
""",
    ]
    return "\n".join(sections)


def persona_toml(choices: Choices) -> str:
    from core.personas import BUNDLED_PERSONAS, load_persona_file

    title = choices.name[:1].upper() + choices.name[1:]
    if choices.persona == NEW_PERSONA:
        fields = {
            "display_name": title,
            "description": f"{title}, a friendly assistant.",
            "language": "en",
            "system_prompt": f"You are {title}, a friendly and helpful assistant. Answer briefly and kindly; "
            "ask when something is unclear.",
            "greeting": f"Hi! I'm {title}. How can I help?",
            "style": "friendly, concise",
            "safety_notes": "Never ask for passwords or payment details.",
        }
        examples = [{"user": "Who are you?", "assistant": f"I'm {title}, here to help. What do you need?"}]
    else:
        base = load_persona_file(BUNDLED_PERSONAS / f"{choices.persona}.toml").model_dump()
        examples = base.pop("example_dialogues")
        fields = {key: value for key, value in base.items() if key != "name" and value != ""}
    lines = [
        f"# The persona {choices.name} speaks as" + ("" if choices.persona == NEW_PERSONA else f", from the bundled {choices.persona!r}") + ".",
        f"# Check it: personabot persona validate personas/{choices.persona_name}.toml",
        f"name = {q(choices.persona_name)}",
        *(f"{key} = {q(value)}" for key, value in fields.items()),
    ]
    for example in examples:
        lines += ["", "[[example_dialogues]]", f"user = {q(example['user'])}", f"assistant = {q(example['assistant'])}"]
    return "\n".join(lines) + "\n"


def env_example(choices: Choices) -> str:
    lines = ["# Copy to .env and fill in. Secrets live only here (never in bot.toml), and .env", "# stays out of git."]
    lines += [f"{name}=" for name in choices.env_names()] or ["# (this bot needs no secret)"]
    return "\n".join(lines) + "\n"


def next_commands(choices: Choices, folder: Path) -> list[str]:
    """What to run after init: load the secrets (if any), check, serve."""
    bot = folder / "bot.toml"
    serve = f"personabot run --bot {bot}" if set(choices.platforms) - {"console"} else f"personabot chat --bot {bot}"
    secrets = [f"set -a; . {folder / '.env'}; set +a   # after cp .env.example .env and filling it in"] if choices.env_names() else []
    return [*secrets, f"personabot doctor --bot {bot}   # every check ok before going live", serve]


def readme(choices: Choices, folder: Path) -> str:
    commands = "\n".join(next_commands(choices, folder))
    return f"""# {choices.name}

A personabot bot: `bot.toml` (settings), `personas/{choices.persona_name}.toml` (how it speaks),
`.env.example` (the secrets it needs). The next two commands:

```bash
{commands}
```

In a container: `PERSONABOT_BOT_DIR={folder.resolve()} docker compose -f deploy/compose.yaml --profile sqlite up -d`
from a personabot checkout (docs/deploy.md).
"""


def render(choices: Choices, folder: Path) -> dict[str, str]:
    return {
        "bot.toml": bot_toml(choices),
        f"personas/{choices.persona_name}.toml": persona_toml(choices),
        ".env.example": env_example(choices),
        ".gitignore": ".env\n*.db\n*.db-wal\n*.db-shm\n",
        "README.md": readme(choices, folder),
    }


def check_choices(choices: Choices) -> None:
    from core.personas import BUNDLED_PERSONAS

    if not NAME.fullmatch(choices.name):
        raise ConfigError(f"--name {choices.name!r}: letters, digits, '.', '_' or '-' (at most 64)")
    bundled = sorted(path.stem for path in BUNDLED_PERSONAS.glob("*.toml"))
    if choices.persona != NEW_PERSONA and choices.persona not in bundled:
        raise ConfigError(f"--persona {choices.persona!r}: one of {', '.join([NEW_PERSONA, *bundled])}")
    for platform in choices.platforms:
        if platform not in PLATFORMS:
            raise ConfigError(f"--platform {platform!r}: one of {', '.join(PLATFORMS)}")
    if not choices.platforms:
        raise ConfigError("--platform: at least one of " + ", ".join(PLATFORMS))
    if choices.backend not in BACKENDS:
        raise ConfigError(f"--backend {choices.backend!r}: one of {', '.join(BACKENDS)}")


def ask(choices: Choices) -> Choices:
    """The interactive path: each choice asked (the flags' values as defaults), asked again until valid."""
    from core.personas import BUNDLED_PERSONAS

    def checked(test: Callable[[str], str | None]) -> Callable[[str], str]:
        def proc(value: str) -> str:
            problem = test(value.strip())
            if problem:
                raise typer.BadParameter(problem)
            return value.strip()

        return proc

    bundled = sorted(path.stem for path in BUNDLED_PERSONAS.glob("*.toml"))
    name = typer.prompt("Bot name", default=choices.name, value_proc=checked(
        lambda v: None if NAME.fullmatch(v) else "letters, digits, '.', '_' or '-' (at most 64)"))
    platforms = typer.prompt(f"Platforms ({', '.join(PLATFORMS)}; comma-separated)", default=",".join(choices.platforms),
                             value_proc=checked(lambda v: None if _platforms(v) and set(_platforms(v)) <= set(PLATFORMS)
                                                else f"one or more of {', '.join(PLATFORMS)}"))
    persona = typer.prompt(f"Persona: {NEW_PERSONA}, or start from a bundled one ({', '.join(bundled)})", default=choices.persona,
                           value_proc=checked(lambda v: None if v.lower() in [NEW_PERSONA, *bundled] else f"one of {NEW_PERSONA}, {', '.join(bundled)}"))
    backend = typer.prompt(f"Model backend ({', '.join(BACKENDS)})", default=choices.backend,
                           value_proc=checked(lambda v: None if v.lower() in BACKENDS else f"one of {', '.join(BACKENDS)}"))
    return Choices(name, _platforms(platforms), persona.lower(), backend.lower())


def _platforms(text: str) -> tuple[str, ...]:
    return tuple(dict.fromkeys(part.strip().lower() for part in text.split(",") if part.strip()))


def write(folder: Path, files: dict[str, str], *, force: bool) -> None:
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{folder}: exists and is not a folder")
    if folder.is_dir() and any(folder.iterdir()) and not force:
        raise ConfigError(f"{folder}: not empty; nothing written (use --force to write the bot's files into it anyway)")
    for relative, text in files.items():
        path = folder / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def verify(folder: Path) -> None:
    """The bot file, its personas and feature sections as ``run`` reads them (doctor's first
    checks): a scaffold that does not load is a bug, reported as one."""
    import adapters.platforms  # noqa: F401 - registers the platform sections
    from bots.doctor import check_features, check_personas
    from core.settings import load_bot_settings

    settings = load_bot_settings(folder / "bot.toml")
    check_personas(settings)
    check_features(settings)


def register(app: typer.Typer) -> None:
    @app.command("init")
    def init(
        folder: Annotated[Path, typer.Argument(help="Folder for the new bot (created if missing).")] = Path("."),
        name: Annotated[Optional[str], typer.Option(help="Bot name. Default: the folder's name.")] = None,
        platform: Annotated[
            Optional[list[str]], typer.Option("--platform", "-p", help="console, telegram or discord (repeatable). Default: console.")
        ] = None,
        persona: Annotated[str, typer.Option(help="'new', or a bundled persona to start from (companion, support, tutor, assistant).")] = NEW_PERSONA,
        backend: Annotated[str, typer.Option(help="Model backend: transformers (the bundled model), openai or scripted.")] = "transformers",
        interactive: Annotated[bool, typer.Option("--interactive", "-i", help="Ask for each choice (default when run in a terminal without choices).")] = False,
        force: Annotated[bool, typer.Option("--force", help="Write into a folder that is not empty (replacing files of the same names).")] = False,
    ) -> None:
        """Scaffold a bot folder: bot.toml, its persona, .env.example and a README with the next commands."""
        folder = folder.expanduser()
        default_name = re.sub(r"[^A-Za-z0-9_.-]+", "-", folder.resolve().name).strip("-.")[:64] or "mybot"
        choices = Choices(name or default_name, tuple(dict.fromkeys(p.lower() for p in platform or ["console"])), persona.lower(), backend.lower())
        if interactive or (sys.stdin.isatty() and name is None and platform is None):
            choices = ask(choices)
        with clean_errors():
            check_choices(choices)
            write(folder, render(choices, folder), force=force)
            verify(folder)
        typer.echo(f"wrote {folder / 'bot.toml'}, personas/{choices.persona_name}.toml, .env.example, .gitignore, README.md")
        typer.echo("next:")
        for line in next_commands(choices, folder):
            typer.echo(f"  {line}")
