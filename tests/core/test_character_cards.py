import base64
import json
import struct
import zlib

import pytest

from core.character_cards import card_to_persona, import_card, read_card
from core.errors import ConfigError
from core.personas import load_persona_file

V2_CARD = {
    "spec": "chara_card_v2",
    "spec_version": "2.0",
    "data": {
        "name": "Captain Mei 梅",
        "description": "{{char}} is a retired ship captain who tells sea stories.",
        "personality": "gruff but kind",
        "scenario": "A harbour tavern.",
        "first_mes": "Ahoy, {{user}}! Sit down.",
        "mes_example": "<START>\n{{user}}: Tell me a story.\n{{char}}: Once, in a storm...\n"
        "<START>\n{{user}}: Were you scared?\n{{char}}: Every sailor is, lad.",
        "system_prompt": "",
        "post_history_instructions": "Never break character.",
        "creator_notes": "A sea captain.",
    },
}


def png_with_text(keyword: bytes, text: bytes) -> bytes:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixels = zlib.compress(b"\x00\x00\x00\x00")
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"tEXt", keyword + b"\0" + text) + chunk(
        b"IDAT", pixels
    ) + chunk(b"IEND", b"")


def test_v2_card_becomes_a_valid_persona():
    persona = card_to_persona(V2_CARD["data"], "card.json")
    assert persona.name == "captain-mei" and persona.display_name == "Captain Mei 梅"
    assert "retired ship captain" in persona.system_prompt and "{{char}}" not in persona.system_prompt
    assert persona.greeting == "Ahoy, the user! Sit down."
    assert [(e.user, e.assistant) for e in persona.example_dialogues] == [
        ("Tell me a story.", "Once, in a storm..."),
        ("Were you scared?", "Every sailor is, lad."),
    ]
    assert persona.safety_notes == "Never break character."


def test_png_card_imports_to_a_toml_file_that_loads_back(tmp_path):
    card = tmp_path / "mei.png"
    card.write_bytes(png_with_text(b"chara", base64.b64encode(json.dumps(V2_CARD).encode())))
    assert read_card(card)["name"] == "Captain Mei 梅"
    target = import_card(card, tmp_path / "personas")
    assert load_persona_file(target) == card_to_persona(V2_CARD["data"], "x")
    with pytest.raises(ConfigError, match="exists"):
        import_card(card, tmp_path / "personas")


def test_broken_cards_are_config_errors(tmp_path):
    plain_png = tmp_path / "plain.png"
    plain_png.write_bytes(png_with_text(b"Comment", b"hello"))
    with pytest.raises(ConfigError, match="no character card"):
        read_card(plain_png)
    garbage = tmp_path / "card.json"
    garbage.write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigError, match="not a readable character card"):
        read_card(garbage)
