"""requirements/: the lock files are complete, exact, in step with pyproject.toml, and
what CI installs; an out-of-date lock fails with the refresh command."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def check(root: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(root / "requirements" / "lock.py"), "check"],
                          capture_output=True, text=True, timeout=60)


def copy_of_inputs(tmp_path: Path) -> Path:
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(REPO / "requirements", tmp_path / "requirements")
    return tmp_path


def test_the_committed_locks_match_pyproject():
    result = check(REPO)
    assert result.returncode == 0, result.stderr


def test_a_dependency_added_to_pyproject_fails_the_check_with_the_refresh_command(tmp_path):
    root = copy_of_inputs(tmp_path)
    pyproject = root / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8")
    pyproject.write_text(text.replace('dependencies = [\n', 'dependencies = [\n    "left-pad>=1",\n', 1), encoding="utf-8")
    result = check(root)
    assert result.returncode == 1
    assert "requirements/lock.txt is out of date with pyproject.toml" in result.stderr
    assert "python3 requirements/lock.py refresh" in result.stderr


def test_comments_and_layout_of_pyproject_do_not_count(tmp_path):
    root = copy_of_inputs(tmp_path)
    pyproject = root / "pyproject.toml"
    text = pyproject.read_text(encoding="utf-8").replace('    "numpy>=1.26",\n', '    "numpy >= 1.26",  # arrays\n')
    pyproject.write_text(text, encoding="utf-8")
    assert check(root).returncode == 0


def test_a_runtime_pin_unlike_the_dev_lock_is_reported(tmp_path):
    root = copy_of_inputs(tmp_path)
    lock = root / "requirements" / "lock.txt"
    lock.write_text(re.sub(r"^numpy==\S+", "numpy==0.0.1", lock.read_text(encoding="utf-8"), flags=re.M), encoding="utf-8")
    result = check(root)
    assert result.returncode == 1 and "lock.txt pins numpy unlike requirements/lock-dev.txt" in result.stderr


def pinned_lines(name: str) -> list[str]:
    lines = (REPO / "requirements" / name).read_text(encoding="utf-8").splitlines()
    return [line for line in lines if line and not line.startswith(("#", " "))]


def test_every_line_is_an_exact_pin_and_torch_is_the_wanted_build():
    for name in ("lock.txt", "lock-dev.txt", "lock-cuda.txt"):
        lines = pinned_lines(name)
        assert lines and all(re.fullmatch(r"[a-z0-9][a-z0-9._-]*==[^\s=]+", line) for line in lines), name
    assert "torch==2.13.0+cpu" in pinned_lines("lock.txt") and "torch==2.13.0+cpu" in pinned_lines("lock-dev.txt")
    assert "torch==2.13.0" in pinned_lines("lock-cuda.txt")
    assert not any(line.startswith("nvidia-") for line in pinned_lines("lock.txt"))
    assert "pytest" not in " ".join(pinned_lines("lock.txt"))  # the image gets no dev tools


def test_ci_checks_the_lock_and_runs_the_readme_test_command():
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "python3 requirements/lock.py check" in ci
    command = next(line.strip() for line in ci.splitlines() if "pytest" in line and not line.startswith("#"))
    assert "-r requirements/lock-dev.txt" in command and "--no-deps" in command
    assert command.replace("--quiet ", "") in readme
