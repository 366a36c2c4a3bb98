"""personabot config show a.toml b.toml: each file's effective settings (redacted) after a header
naming it; a bad file exits 2 naming file and field. BotSettings.redacted_dump hides a password
written into storage.url."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from bots.cli import app as cli
from core.settings import BotSettings


def write(folder, name: str, body: str) -> str:
    path = folder / f"{name}.toml"
    path.write_text(f'name = "{name}"\n[model]\nbackend = "scripted"\nreplies = ["hi"]\n{body}', encoding="utf-8")
    return str(path)


def test_several_files_are_shown_one_after_another_with_a_header_each(tmp_path):
    first = write(tmp_path, "alpha", '[storage]\npath = "alpha.db"\n[limits]\nmerge_window_s = 5\n')
    second = write(tmp_path, "beta", '[storage]\nurl = "postgresql://bot:s3cret-pw@db.example:5432/beta"\n')
    result = CliRunner().invoke(cli, ["config", "show", first, second])
    assert result.exit_code == 0, result.output
    assert "s3cret-pw" not in result.output
    header_a, header_b = f"# {first}", f"# {second}"
    lines = result.output.splitlines()
    assert lines[0] == header_a and header_b in lines
    split = lines.index(header_b)
    alpha, beta = json.loads("\n".join(lines[1:split])), json.loads("\n".join(lines[split + 1:]))
    assert alpha["name"] == "alpha" and alpha["limits"]["merge_window_s"] == 5  # effective: defaults filled in
    assert alpha["limits"]["on_new_message"] == "queue"
    assert beta["name"] == "beta" and beta["storage"]["url"] == "postgresql://bot@db.example:5432/beta"


def test_one_file_is_plain_json_as_before(tmp_path):
    result = CliRunner().invoke(cli, ["config", "show", write(tmp_path, "solo", "")])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["name"] == "solo"


def test_a_bad_file_exits_2_naming_file_and_field_and_nothing_is_printed(tmp_path):
    good = write(tmp_path, "good", "")
    bad = write(tmp_path, "bad", '[limits]\non_new_message = "interrupt"\n')
    result = CliRunner().invoke(cli, ["config", "show", good, bad])
    assert result.exit_code == 2
    assert bad in result.output and "limits.on_new_message" in result.output
    assert '"name": "good"' not in result.output  # every file is checked before any is shown


def test_redacted_dump_hides_a_password_written_in_the_storage_url():
    settings = BotSettings.model_validate({"storage": {"url": "postgresql://bot:p%40ss-秘密@localhost:5432/app"}})
    dumped = json.dumps(settings.redacted_dump(), ensure_ascii=False)
    assert "p%40ss" not in dumped and "秘密" not in dumped
    assert settings.redacted_dump()["storage"]["url"] == "postgresql://bot@localhost:5432/app"
    plain = BotSettings.model_validate({"storage": {"url": "postgresql://bot@localhost/app"}})
    assert plain.redacted_dump()["storage"]["url"] == "postgresql://bot@localhost/app"
