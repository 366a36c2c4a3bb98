"""Import SillyTavern character cards (V1/V2 JSON, or PNG with the card in a tEXt chunk).

Cards carry ``{{char}}``/``{{user}}`` placeholders and an example-dialogue block in
``mes_example``; this turns them into a validated :class:`~core.personas.Persona`
and writes it as a persona TOML file.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import struct
import zlib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from core.errors import ConfigError
from core.personas import ExampleDialogue, Persona
from core.settings import describe_validation_error

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_EXAMPLE_TURN = re.compile(r"^\s*\{\{(user|char)\}\}\s*:\s*", re.IGNORECASE | re.MULTILINE)


def _png_text_chunks(data: bytes) -> dict[str, bytes]:
    """tEXt/zTXt/iTXt keyword -> text bytes (no image decoding needed)."""
    chunks: dict[str, bytes] = {}
    position = len(PNG_SIGNATURE)
    while position + 8 <= len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        body = data[position + 8 : position + 8 + length]
        position += 12 + length
        keyword, _, rest = body.partition(b"\0")
        if kind == b"tEXt":
            chunks[keyword.decode("latin-1")] = rest
        elif kind == b"zTXt" and rest:
            chunks[keyword.decode("latin-1")] = zlib.decompress(rest[1:])
        elif kind == b"iTXt" and len(rest) >= 2:
            compressed, text = rest[0], rest[2:].split(b"\0", 2)[-1]
            chunks[keyword.decode("latin-1")] = zlib.decompress(text) if compressed else text
        if kind == b"IEND":
            break
    return chunks


def read_card(path: Path) -> dict[str, Any]:
    """The card's fields (V2 ``data`` flattened), from JSON or PNG."""
    raw = path.read_bytes()
    try:
        if raw.startswith(PNG_SIGNATURE):
            chunks = _png_text_chunks(raw)
            encoded = chunks.get("ccv3") or chunks.get("chara")
            if encoded is None:
                raise ConfigError(f"{path}: PNG has no character card (no 'chara' text chunk)")
            card = json.loads(base64.b64decode(encoded))
        else:
            card = json.loads(raw.decode("utf-8"))
    except (ValueError, binascii.Error, zlib.error) as error:
        raise ConfigError(f"{path}: not a readable character card: {error}") from None
    if not isinstance(card, dict):
        raise ConfigError(f"{path}: a character card is a JSON object")
    data = card.get("data") if isinstance(card.get("data"), dict) else card
    return data


def _examples(mes_example: str, char: str) -> tuple[ExampleDialogue, ...]:
    """Pairs of ``{{user}}: …`` / ``{{char}}: …`` lines from each ``<START>`` block."""
    dialogues = []
    for block in re.split(r"<START>", mes_example, flags=re.IGNORECASE):
        pieces = _EXAMPLE_TURN.split(block)[1:]
        turns = [(role.lower(), text.strip()) for role, text in zip(pieces[::2], pieces[1::2])]
        for (first, user_text), (second, char_text) in zip(turns, turns[1:]):
            if first == "user" and second == "char" and user_text and char_text:
                dialogues.append(ExampleDialogue(user=user_text, assistant=char_text.replace("{{char}}", char)))
    return tuple(dialogues[:8])


def card_to_persona(data: dict[str, Any], source: str) -> Persona:
    display = str(data.get("name") or "").strip()
    slug = re.sub(r"[^a-z0-9_-]+", "-", display.lower()).strip("-_")[:32] or "character"
    if not slug[0].isalnum():
        slug = "c" + slug[:31]

    def field(name: str) -> str:
        value = data.get(name) or ""
        return str(value).replace("{{char}}", display or slug).replace("{{user}}", "the user").strip()

    system = field("system_prompt") or f"You are {display or slug}. Stay in character."
    details = [system]
    for label, name in (("Description", "description"), ("Personality", "personality"), ("Scenario", "scenario")):
        if field(name):
            details.append(f"{label}: {field(name)}")
    description = (field("creator_notes") or field("description") or f"Imported character {display}")[:300]
    try:
        return Persona(
            name=slug,
            display_name=display,
            description=description.splitlines()[0][:300] or display,
            system_prompt="\n\n".join(details)[:8000],
            greeting=(field("first_mes") or f"Hello, I'm {display or slug}.")[:2000],
            example_dialogues=_examples(str(data.get("mes_example") or ""), display or slug),
            safety_notes=field("post_history_instructions")[:2000],
        )
    except ValidationError as error:
        raise ConfigError(describe_validation_error(source, error)) from None


def _toml_string(value: str) -> str:
    return json.dumps(value, ensure_ascii=False)  # a JSON string is a valid TOML basic string


def persona_to_toml(persona: Persona) -> str:
    lines = []
    for name in ("name", "display_name", "description", "language", "system_prompt", "greeting", "style", "safety_notes"):
        lines.append(f"{name} = {_toml_string(getattr(persona, name))}")
    for example in persona.example_dialogues:
        lines += ["", "[[example_dialogues]]", f"user = {_toml_string(example.user)}",
                  f"assistant = {_toml_string(example.assistant)}"]
    return "\n".join(lines) + "\n"


def import_card(card: Path, out_dir: Path, overwrite: bool = False) -> Path:
    persona = card_to_persona(read_card(card), str(card))
    target = out_dir / f"{persona.name}.toml"
    if target.exists() and not overwrite:
        raise ConfigError(f"{target}: exists (use --overwrite)")
    out_dir.mkdir(parents=True, exist_ok=True)
    target.write_text(persona_to_toml(persona), encoding="utf-8")
    return target
