"""deploy/personabot.service and deploy/compose.yaml: what they promise, parsed (no
systemd or container engine runs a bot here); systemd-analyze verify where installed."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "deploy" / "personabot.service"


def unit_entries(text: str) -> dict[str, list[tuple[str, str]]]:
    """section -> [(key, value)], in order (systemd allows a key more than once)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = None
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = sections.setdefault(line.strip("[]"), [])
        else:
            key, _, value = line.partition("=")
            assert current is not None, line
            current.append((key.strip(), value.strip()))
    return sections


def test_the_unit_creates_its_user_and_state_directory():
    service = dict(unit_entries(UNIT.read_text(encoding="utf-8"))["Service"])
    assert service["DynamicUser"] == "yes" and "User" not in service  # no account to create by hand
    assert service["StateDirectory"] == "personabot"
    environment = " ".join(value for key, value in unit_entries(UNIT.read_text(encoding="utf-8"))["Service"] if key == "Environment")
    assert "PERSONABOT_DATA_DIR=/var/lib/personabot" in environment  # the database lives in the state directory
    assert "PERSONABOT_BOT=/etc/personabot/bot.toml" in environment and "HF_HUB_OFFLINE=1" in environment
    assert service["ExecStart"].split()[1:] == ["run"]
    assert service["KillSignal"] == "SIGTERM" and service["ProtectSystem"] == "strict"


def test_systemd_analyze_accepts_the_unit(tmp_path):
    if shutil.which("systemd-analyze") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but systemd-analyze is missing (.ci/run installs Debian's systemd)")
        pytest.skip("systemd-analyze is not installed")
    # The unit as installed, its ExecStart pointed at a program that exists here.
    text = UNIT.read_text(encoding="utf-8").replace("/opt/personabot/venv/bin/personabot", sys.executable)
    unit = tmp_path / "personabot.service"
    unit.write_text(text, encoding="utf-8")
    result = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_compose_mounts_a_bot_folder_and_a_data_volume():
    compose = yaml.safe_load((REPO / "deploy" / "compose.yaml").read_text(encoding="utf-8"))
    bot = compose["services"]["personabot"]
    assert bot["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
    parsed = [re.fullmatch(r"(.+):(/[^:]*)(?::(ro|rw))?", volume).groups() for volume in bot["volumes"]]
    mounts = {target: source for source, target, _ in parsed}
    assert not mounts["/bot"].endswith(".toml")  # the folder, so relative paths in the bot file resolve
    assert ":/bot:ro" in " ".join(bot["volumes"])
    assert mounts["/data"] == "personabot-data" and "personabot-data" in compose["volumes"]
    assert bot["environment"]["PERSONABOT_BOT"] == "/bot/bot.toml"
