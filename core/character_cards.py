"""Import SillyTavern character cards (V1/V2/V3 JSON, or PNG with the card in a text chunk).

Cards carry ``{{char}}``/``{{user}}``/``{{original}}`` macros, an example-dialogue block in
``mes_example``, alternate greetings and sometimes a lorebook (``character_book``). This
turns them into a validated :class:`~core.personas.Persona`, written as TOML by ``tomli-w``
(so every control character survives the round trip), and the lorebook into a Markdown
file the knowledge plugin reads. A card that cannot become a persona without losing text
is a :class:`ConfigError` naming the card and the field; nothing is cut silently.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import struct
import tomllib
import unicodedata
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import tomli_w
from pydantic import ValidationError

from core.errors import ConfigError
from core.personas import ExampleDialogue, Persona
from core.settings import describe_validation_error

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
MAX_CARD_BYTES = 32 * 1024 * 1024  # the largest card file read; real cards are well under 10 MB
MAX_TEXT_BYTES = 16 * 1024 * 1024  # the largest decompressed text chunk (a zlib bomb stops here)
MAX_EXAMPLES = 8
_TEXT_CHUNKS = (b"tEXt", b"zTXt", b"iTXt")
_EXAMPLE_TURN = re.compile(r"^\s*(?:\{\{(user|char)\}\}|<(user|bot)>)\s*:\s*", re.IGNORECASE | re.MULTILINE)
_MACRO = re.compile(r"\{\{\s*(char|user|original)\s*\}\}|<(bot|user)>", re.IGNORECASE)
USER_WORDS = "the user"


@dataclass(frozen=True, slots=True)
class ImportResult:
    persona: Persona
    persona_file: Path
    knowledge_file: Path | None  # the lorebook as Markdown for the knowledge plugin
    warnings: tuple[str, ...]


def _inflate(data: bytes, where: str) -> bytes:
    inflater = zlib.decompressobj()
    try:
        text = inflater.decompress(data, MAX_TEXT_BYTES)
    except zlib.error as error:
        raise ConfigError(f"{where}: compressed text is damaged ({error})") from None
    if inflater.unconsumed_tail:
        raise ConfigError(f"{where}: compressed text is larger than {MAX_TEXT_BYTES // 2**20} MB")
    return text


def _png_text_chunks(data: bytes, source: str) -> dict[str, bytes]:
    """tEXt/zTXt/iTXt keyword -> text bytes (no image decoding needed); damaged text chunks are errors."""
    chunks: dict[str, bytes] = {}
    position = len(PNG_SIGNATURE)
    while position < len(data):
        if position + 12 > len(data):
            raise ConfigError(f"{source}: PNG is cut off at byte {position} (incomplete chunk header)")
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind = data[position + 4 : position + 8]
        end = position + 8 + length
        if end + 4 > len(data):
            raise ConfigError(f"{source}: PNG chunk {kind!r} at byte {position} is cut off "
                              f"(declares {length} bytes, {max(0, len(data) - position - 12)} present)")
        body = data[position + 8 : end]
        where = f"{source}: PNG chunk {kind.decode('latin-1')} at byte {position}"
        if kind in _TEXT_CHUNKS:
            (crc,) = struct.unpack(">I", data[end : end + 4])
            if crc != zlib.crc32(kind + body):
                raise ConfigError(f"{where} is damaged (CRC mismatch)")
            keyword, _, rest = body.partition(b"\0")
            name = keyword.decode("latin-1")
            if kind == b"tEXt":
                chunks[name] = rest
            elif kind == b"zTXt":
                if not rest or rest[0] != 0:
                    raise ConfigError(f"{where}: unknown compression method")
                chunks[name] = _inflate(rest[1:], where)
            elif len(rest) >= 2:
                text = rest[2:].split(b"\0", 2)[-1]
                chunks[name] = _inflate(text, where) if rest[0] else text
        position = end + 4
        if kind == b"IEND":
            break
    return chunks


def read_card(path: Path) -> dict[str, Any]:
    """The card's fields (V2/V3 ``data`` flattened), from JSON or PNG."""
    try:
        size = path.stat().st_size
        if size > MAX_CARD_BYTES:
            raise ConfigError(f"{path}: card file is {size // 2**20} MB; the limit is {MAX_CARD_BYTES // 2**20} MB")
        raw = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, expected a card file") from None
    try:
        if raw.startswith(PNG_SIGNATURE):
            chunks = _png_text_chunks(raw, str(path))
            encoded = chunks.get("ccv3") or chunks.get("chara")
            if encoded is None:
                raise ConfigError(f"{path}: PNG has no character card (no 'chara' text chunk)")
            card = json.loads(base64.b64decode(encoded))
        else:
            card = json.loads(raw.decode("utf-8-sig"))
    except (ValueError, binascii.Error) as error:
        raise ConfigError(f"{path}: not a readable character card: {error}") from None
    if not isinstance(card, dict):
        raise ConfigError(f"{path}: a character card is a JSON object")
    try:
        json.dumps(card, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigError(f"{path}: the card holds text that is not valid Unicode (a lone surrogate)") from None
    return card.get("data") if isinstance(card.get("data"), dict) else card


def expand_macros(text: str, char: str, original: str = "") -> str:
    """``{{char}}``/``<BOT>`` -> the name, ``{{user}}``/``<USER>`` -> "the user", ``{{original}}``
    -> what the field would hold without the card (the default system prompt, or nothing)."""

    def replace(found: re.Match[str]) -> str:
        word = (found.group(1) or found.group(2)).lower()
        return char if word in ("char", "bot") else USER_WORDS if word == "user" else original

    return _MACRO.sub(replace, text)


def _examples(mes_example: str, char: str) -> list[ExampleDialogue]:
    """Pairs of ``{{user}}: …`` / ``{{char}}: …`` lines from each ``<START>`` block."""
    dialogues = []
    for block in re.split(r"<START>", mes_example, flags=re.IGNORECASE):
        pieces = _EXAMPLE_TURN.split(block)[1:]
        roles = ["char" if (user or bot or "").lower() in ("char", "bot") else "user"
                 for user, bot in zip(pieces[::3], pieces[1::3])]
        texts = [expand_macros(text, char).strip() for text in pieces[2::3]]
        for (first, user_text), (second, char_text) in zip(zip(roles, texts), zip(roles[1:], texts[1:])):
            if first == "user" and second == "char" and user_text and char_text:
                dialogues.append(ExampleDialogue(user=user_text, assistant=char_text))
    return dialogues


def persona_name(display: str) -> str:
    """An ASCII persona name (the model's pattern); a name in another script gets a stable
    hash, so two cards with Chinese names never share one."""
    slug = re.sub(r"[^a-z0-9_-]+", "-", display.lower()).strip("-_")[:24].strip("-_")
    lossy = any(ord(char) > 127 and unicodedata.category(char)[0] in "LN" for char in display)
    if slug and not lossy:
        return slug
    digest = hashlib.blake2s(display.encode("utf-8"), digest_size=3).hexdigest()
    return f"{slug}-{digest}" if slug else f"card-{digest}"


def file_stem(display: str, fallback: str) -> str:
    """A file name readable in the card's own script: letters, marks and digits of any
    script kept, everything else one dash."""
    text = unicodedata.normalize("NFKC", display).casefold()
    kept = "".join(char if unicodedata.category(char)[0] in "LNM" else "-" for char in text)
    return re.sub(r"-+", "-", kept).strip("-")[:40].strip("-") or fallback


def _text_fields(data: dict[str, Any], display: str) -> dict[str, str]:
    def field(name: str, original: str = "") -> str:
        value = data.get(name)
        return expand_macros(value, display, original).strip() if isinstance(value, str) else ""

    default_system = f"You are {display}. Stay in character."
    return {
        "system": field("system_prompt", default_system) or default_system,
        "description": field("description"), "personality": field("personality"), "scenario": field("scenario"),
        "creator_notes": field("creator_notes"), "first_mes": field("first_mes"),
        "post_history": field("post_history_instructions"),
    }


def _check_length(source: str, card_field: str, text: str, limit: int) -> None:
    if len(text) > limit:
        raise ConfigError(f"{source}: {card_field}: {len(text)} characters; a persona holds at most {limit} "
                          "here (shorten the card's text, or move background into a knowledge file)")


def card_to_persona(data: dict[str, Any], source: str, warnings: list[str] | None = None) -> Persona:
    warnings = [] if warnings is None else warnings
    display = str(data.get("name") or "").strip()
    if not any(unicodedata.category(char)[0] in "LNMPS" for char in display):
        raise ConfigError(f"{source}: name: the card has no name (an empty name or only control characters)")
    text = _text_fields(data, display)
    details = [text["system"]] + [f"{label}: {text[key]}" for label, key in (
        ("Description", "description"), ("Personality", "personality"), ("Scenario", "scenario")) if text[key]]
    system_prompt = "\n\n".join(details)
    if len(system_prompt) > 8000:  # name the field that takes the room
        longest = max(("system_prompt", "description", "personality", "scenario"),
                      key=lambda name: len(text["system" if name == "system_prompt" else name]))
        raise ConfigError(f"{source}: {longest}: {len(text['system' if longest == 'system_prompt' else longest])} "
                          f"characters; a persona holds at most 8000 here for system_prompt, description, personality "
                          f"and scenario together ({len(system_prompt)} now): shorten the card's text, or move "
                          "background into a knowledge file")
    _check_length(source, "first_mes", text["first_mes"], 2000)
    _check_length(source, "post_history_instructions", text["post_history"], 2000)
    summary = (text["creator_notes"] or text["description"] or f"Imported character {display}").splitlines()[0].strip()
    if len(summary) > 300:
        summary = summary[:299] + "…"  # a one-line summary; the full text is in the system prompt
    greetings = [expand_macros(item, display).strip() for item in data.get("alternate_greetings") or []
                 if isinstance(item, str)]
    for index, greeting in enumerate(greetings):
        _check_length(source, f"alternate_greetings[{index}]", greeting, 2000)
    examples = _examples(str(data.get("mes_example") or ""), display)
    if len(examples) > MAX_EXAMPLES:
        warnings.append(f"kept the first {MAX_EXAMPLES} of {len(examples)} example dialogues")
    try:
        return Persona(
            name=persona_name(display),
            display_name=display,
            description=summary or display,
            system_prompt=system_prompt,
            greeting=text["first_mes"] or f"Hello, I'm {display}.",
            alternate_greetings=tuple(greeting for greeting in greetings if greeting),
            example_dialogues=tuple(examples[:MAX_EXAMPLES]),
            safety_notes=text["post_history"],
        )
    except ValidationError as error:
        raise ConfigError(describe_validation_error(source, error)) from None


def persona_to_toml(persona: Persona) -> str:
    """TOML through ``tomli-w``: every string escaped as TOML requires (U+007F included)."""
    return tomli_w.dumps(persona.model_dump(mode="json", exclude_defaults=True) | {"name": persona.name})


def lorebook_markdown(data: dict[str, Any], display: str, warnings: list[str]) -> str:
    """The enabled ``character_book`` entries as Markdown sections, one heading each."""
    book = data.get("character_book")
    entries = book.get("entries") if isinstance(book, dict) else None
    if not isinstance(entries, list):
        return ""
    sections, disabled = [], 0
    for number, entry in enumerate(entries, 1):
        if not isinstance(entry, dict) or not isinstance(entry.get("content"), str) or not entry["content"].strip():
            continue
        if entry.get("enabled") is False:
            disabled += 1
            continue
        keys = [str(key).strip() for key in entry.get("keys") or [] if str(key).strip()]
        title = str(entry.get("name") or entry.get("comment") or ", ".join(keys[:3]) or f"entry {number}")
        title = " ".join(expand_macros(title, display).split())
        body = expand_macros(entry["content"], display).strip()
        sections.append(f"## {title}\n\n" + (f"Keywords: {', '.join(keys)}\n\n" if keys else "") + body)
    if disabled:
        warnings.append(f"left out {disabled} disabled lorebook entries")
    if not sections:
        return ""
    return f"# {display}: lorebook\n\n" + "\n\n".join(sections) + "\n"


def _persona_in(folder: Path, name: str) -> Path | None:
    """The persona file in ``folder`` that already declares ``name`` (it would be overridden)."""
    for file in sorted(folder.glob("*.toml")):
        try:
            if tomllib.loads(file.read_text(encoding="utf-8")).get("name") == name:
                return file
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            continue
    return None


def import_card(card: Path, out_dir: Path, overwrite: bool = False) -> ImportResult:
    data = read_card(card)
    warnings: list[str] = []
    persona = card_to_persona(data, str(card), warnings)
    existing = _persona_in(out_dir, persona.name) if out_dir.is_dir() else None
    if existing is not None and not overwrite:
        raise ConfigError(f"{existing}: exists and holds persona {persona.name!r} (use --overwrite)")
    stem = file_stem(persona.display_name, persona.name)
    target = existing or out_dir / f"{stem}.toml"
    suffix = 2
    while existing is None and target.exists():  # another persona whose name reads the same
        target, suffix = out_dir / f"{stem}-{suffix}.toml", suffix + 1
    out_dir.mkdir(parents=True, exist_ok=True)
    target.write_text(persona_to_toml(persona), encoding="utf-8")
    lore = lorebook_markdown(data, persona.display_name, warnings)
    knowledge = None
    if lore:
        knowledge = out_dir / "knowledge" / f"{target.stem}.md"
        knowledge.parent.mkdir(exist_ok=True)
        knowledge.write_text(lore, encoding="utf-8")
    return ImportResult(persona, target, knowledge, tuple(warnings))
