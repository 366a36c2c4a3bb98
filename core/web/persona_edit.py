"""Persona edits from the console: parsed and validated exactly as persona files are.

An edit comes as form fields or as a whole TOML document; either way the result goes
through :class:`~core.personas.Persona` validation, and errors are worded the way
``personabot persona validate`` words them (``persona NAME: field: problem``).
Renaming is refused: a persona's name is what chats and settings refer to.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping

from pydantic import ValidationError

from core.errors import ConfigError
from core.personas import Persona
from core.settings import describe_validation_error

FORM_FIELDS = ("display_name", "description", "system_prompt", "greeting", "style", "language", "safety_notes")


def _validate(name: str, data: dict[str, object]) -> Persona:
    if data.get("name", name) != name:
        raise ConfigError(f"persona {name}: name: must stay {name!r} (a new persona is a new file)")
    try:
        return Persona.model_validate({**data, "name": name})
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(f"persona {name}", exc)) from None


def persona_from_form(current: Persona, form: Mapping[str, str]) -> Persona:
    """``current`` with the form's fields replaced (example dialogues are kept)."""
    data = current.model_dump(mode="json")
    for key in FORM_FIELDS:
        if key in form:
            data[key] = form[key].replace("\r\n", "\n")
    return _validate(current.name, data)


def persona_from_toml(name: str, text: str) -> Persona:
    try:
        data = tomllib.loads(text.replace("\r\n", "\n"))
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"persona {name}: invalid TOML: {exc}") from None
    return _validate(name, data)


def _string(value: str) -> str:
    """A TOML string for ``value``: one line as JSON does it (valid TOML), else a ``\"\"\"`` block."""
    if "\n" not in value:
        return json.dumps(value, ensure_ascii=False)
    body = value.replace("\\", "\\\\").replace('"', '\\"')
    body = "".join(c if c in "\n\t" or (ord(c) >= 0x20 and ord(c) != 0x7F) else f"\\u{ord(c):04x}" for c in body)
    return '"""\n' + body + '"""'


def persona_toml(persona: Persona) -> str:
    """The persona as a persona file; :func:`persona_from_toml` reads it back unchanged."""
    data = persona.model_dump(mode="json")
    lines = [f"{key} = {_string(data[key])}" for key in ("name", *FORM_FIELDS) if data[key] != ""]
    for example in data["example_dialogues"]:
        lines += ["", "[[example_dialogues]]", f"user = {_string(example['user'])}",
                  f"assistant = {_string(example['assistant'])}"]
    return "\n".join(lines) + "\n"
