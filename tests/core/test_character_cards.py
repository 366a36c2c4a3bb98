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
    assert persona.name.startswith("captain-mei-") and persona.display_name == "Captain Mei 梅"
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
    result = import_card(card, tmp_path / "personas")
    assert result.persona_file.name == "captain-mei-梅.toml"
    assert load_persona_file(result.persona_file) == card_to_persona(V2_CARD["data"], "x") == result.persona
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


CONTROL = "".join(chr(code) for code in [*range(0x20), 0x7F, *range(0x80, 0xA0)])


def card(name: str, **fields) -> dict:
    return {"name": name, "description": "A character.", "first_mes": "Hello!"} | fields


def write_card(folder, data: dict, file: str = "card.json"):
    path = folder / file
    path.write_text(json.dumps({"spec": "chara_card_v2", "data": data}), encoding="utf-8")
    return path


def test_every_control_character_round_trips(tmp_path):
    data = card(f"Ctl{CONTROL}Name", description=f"says {CONTROL} often", first_mes=f"hi{CONTROL}",
                alternate_greetings=[f"yo{CONTROL}"], mes_example=f"{{{{user}}}}: a{CONTROL}\n{{{{char}}}}: b{CONTROL}")
    result = import_card(write_card(tmp_path, data), tmp_path / "out")
    assert "\x7f" in result.persona.system_prompt and "\x00" in result.persona.greeting
    assert load_persona_file(result.persona_file) == result.persona
    assert result.persona_file.name == "ctl-name.toml" and result.persona.name == "ctl-name"


def test_cards_with_chinese_names_get_distinct_readable_files(tmp_path):
    out = tmp_path / "out"
    first = import_card(write_card(tmp_path, card("梅船长"), "a.json"), out)
    second = import_card(write_card(tmp_path, card("李白"), "b.json"), out)
    assert (first.persona_file.name, second.persona_file.name) == ("梅船长.toml", "李白.toml")
    assert first.persona.name != second.persona.name and first.persona.name.startswith("card-")
    assert first.persona.name == card_to_persona(card("梅船长"), "x").name  # stable across imports
    hindi = import_card(write_card(tmp_path, card("हिन्दी"), "c.json"), out)
    assert hindi.persona_file.name == "हिन्दी.toml"  # combining marks stay part of the name
    from core.personas import PersonaLibrary

    assert len(PersonaLibrary.load([out]).names()) == 3


def test_a_different_persona_whose_file_name_reads_the_same_gets_a_suffix(tmp_path):
    out = tmp_path / "out"
    lower = import_card(write_card(tmp_path, card("ünal"), "a.json"), out)
    upper = import_card(write_card(tmp_path, card("ÜNAL"), "b.json"), out)
    assert (lower.persona_file.name, upper.persona_file.name) == ("ünal.toml", "ünal-2.toml")
    with pytest.raises(ConfigError, match="exists and holds persona"):
        import_card(write_card(tmp_path, card("ÜNAL"), "b.json"), out)
    again = import_card(write_card(tmp_path, card("ÜNAL", first_mes="Servus!"), "b.json"), out, overwrite=True)
    assert again.persona_file == upper.persona_file and load_persona_file(again.persona_file).greeting == "Servus!"


def test_macros_are_expanded():
    persona = card_to_persona(card(
        "Ada", system_prompt="{{original}} Also: {{Char}} helps <USER>.",
        description="<BOT> is a mathematician; {{ user }} is a student.",
        post_history_instructions="{{original}}Stay kind to {{user}}.",
        mes_example="<START>\n<USER>: Hi {{char}}\n<BOT>: Hello {{user}}",
    ), "x")
    assert persona.system_prompt.startswith("You are Ada. Stay in character. Also: Ada helps the user.")
    assert "Ada is a mathematician; the user is a student." in persona.system_prompt
    assert persona.safety_notes == "Stay kind to the user."
    assert [(e.user, e.assistant) for e in persona.example_dialogues] == [("Hi Ada", "Hello the user")]
    assert "{{" not in persona.model_dump_json() and "<BOT>" not in persona.model_dump_json()


def test_alternate_greetings_are_kept(tmp_path):
    result = import_card(write_card(tmp_path, card("Ada", alternate_greetings=["Hi, {{user}}!", "", "Welcome back."])),
                         tmp_path / "out")
    assert result.persona.alternate_greetings == ("Hi, the user!", "Welcome back.")
    assert load_persona_file(result.persona_file).alternate_greetings == result.persona.alternate_greetings


def test_the_lorebook_becomes_a_knowledge_file(tmp_path):
    from plugins.knowledge import read_folder

    book = {"entries": [
        {"keys": ["harbour", "port"], "content": "{{char}}'s ship is moored in the harbour.", "enabled": True,
         "comment": "The ship"},
        {"keys": ["secret"], "content": "hidden", "enabled": False},
        {"keys": ["龙"], "content": "龙是传说中的生物。"},
    ]}
    result = import_card(write_card(tmp_path, card("Mei", character_book=book)), tmp_path / "out")
    assert result.knowledge_file == tmp_path / "out" / "knowledge" / "mei.md"
    passages, skipped = read_folder(result.knowledge_file.parent, 900)
    assert [(p.heading, p.text) for p in passages] == [
        ("The ship", "Keywords: harbour, port\n\nMei's ship is moored in the harbour."),
        ("龙", "Keywords: 龙\n\n龙是传说中的生物。"),
    ] and not skipped
    assert result.warnings == ("left out 1 disabled lorebook entries",)
    plain = import_card(write_card(tmp_path, card("Plain")), tmp_path / "out")
    assert plain.knowledge_file is None


@pytest.mark.parametrize("name", ["", "   ", CONTROL, None])
def test_a_card_without_a_name_is_a_clear_error(tmp_path, name):
    with pytest.raises(ConfigError, match="name: the card has no name"):
        import_card(write_card(tmp_path, card(name)), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_a_one_megabyte_description_is_refused_naming_the_field_and_nothing_is_written(tmp_path):
    with pytest.raises(ConfigError, match=r"description.*1000000 characters; a persona holds at most 8000"):
        import_card(write_card(tmp_path, card("Big", description="x" * 1_000_000)), tmp_path / "out")
    with pytest.raises(ConfigError, match="first_mes: 3000 characters"):
        import_card(write_card(tmp_path, card("Big", first_mes="y" * 3000)), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_lone_surrogates_are_a_clear_error(tmp_path):
    path = tmp_path / "card.json"
    path.write_text('{"name": "Bad \\ud800 text", "description": "d", "first_mes": "hi"}', encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid Unicode"):
        read_card(path)


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


ENCODED = base64.b64encode(json.dumps(V2_CARD).encode())
GOOD = png_with_text(b"chara", ENCODED)
HEAD = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0))


@pytest.mark.parametrize("data, message", [
    (GOOD[:40], "is cut off"),
    (GOOD[:10], "incomplete chunk header"),
    (HEAD + struct.pack(">I", 2**31) + b"tEXt" + b"chara\0", "declares 2147483648 bytes"),
    (HEAD + chunk(b"tEXt", b"chara\0" + ENCODED)[:-4] + b"\0\0\0\0", "CRC mismatch"),
    (HEAD + chunk(b"zTXt", b"chara\0\0" + b"not zlib"), "compressed text is damaged"),
    (HEAD + chunk(b"zTXt", b"chara\0\x07" + zlib.compress(ENCODED)), "unknown compression method"),
    (HEAD + chunk(b"zTXt", b"chara\0\0" + zlib.compress(b"A" * (17 * 2**20))), "larger than 16 MB"),
    (HEAD + chunk(b"iTXt", b"chara\0\x01\0\0\0" + b"garbage"), "compressed text is damaged"),
    (HEAD + chunk(b"tEXt", b"chara\0" + b"!!!not base64"), "not a readable character card"),
    (HEAD + chunk(b"tEXt", b"chara\0" + base64.b64encode(b"[1, 2]")), "a character card is a JSON object"),
])
def test_broken_png_chunks_are_clear_errors(tmp_path, data, message):
    path = tmp_path / "card.png"
    path.write_bytes(data)
    with pytest.raises(ConfigError, match=message) as caught:
        read_card(path)
    assert str(path) in str(caught.value)


def test_compressed_png_chunks_are_read(tmp_path):
    for body in (b"zTXt", b"chara\0\0" + zlib.compress(ENCODED)), (b"iTXt", b"chara\0\x01\0en\0\0" + zlib.compress(ENCODED)):
        path = tmp_path / "card.png"
        path.write_bytes(HEAD + chunk(*body) + chunk(b"IEND", b""))
        assert read_card(path)["name"] == "Captain Mei 梅"
