"""The lock files: exact pins for the application, compiled from pyproject.toml with uv.

    python3 requirements/lock.py check              # CI: are the locks up to date? (stdlib only)
    python3 requirements/lock.py refresh            # after editing pyproject.toml (pip install uv)
    python3 requirements/lock.py refresh --upgrade  # move every pin to the newest release allowed
    python3 requirements/lock.py refresh --prefer-installed   # a new package at the version installed here

Three locks, all for CPython 3.11 on Linux x86_64:

- ``lock.txt``      the application (its dependencies and the extras in RUNTIME_EXTRAS),
                    torch's CPU build (the Docker image, the systemd install)
- ``lock-dev.txt``  the same plus every other extra: dev, bench (CI, the README test command)
- ``lock-cuda.txt`` the application with the CUDA build of the same torch release (PyPI's)

``lock.txt`` is compiled under ``lock-dev.txt`` as constraints, so the two never pin a
package to different versions. Each lock records a fingerprint of its inputs
(requires-python, the dependencies and extras it includes, its torch pin file); a lock
whose fingerprint differs is out of date. The CPU torch wheel is not on PyPI: refresh
finds it on the flat page in ``$TORCH_CPU_LINKS`` (default PyTorch's; a folder holding
the wheel works too).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REFRESH = "python3 requirements/lock.py refresh"
STAMP = "# inputs-sha256: "
TORCH_CPU_LINKS = "https://download.pytorch.org/whl/cpu/torch/"
TARGET = ["--python-version", "3.11", "--python-platform", "x86_64-manylinux_2_28"]
_PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")
RUNTIME_EXTRAS: tuple[str, ...] = ()  # extras a deployed bot needs (none yet: dev and bench are not)


@dataclass(frozen=True)
class Lock:
    file: str
    pins: str  # the torch pin file beside it
    dev: bool  # every extra (else only RUNTIME_EXTRAS)
    cpu: bool  # torch from $TORCH_CPU_LINKS
    under: str | None = None  # compiled with this lock as constraints


LOCKS = (
    Lock("lock-dev.txt", "cpu.in", dev=True, cpu=True),
    Lock("lock.txt", "cpu.in", dev=False, cpu=True, under="lock-dev.txt"),
    Lock("lock-cuda.txt", "cuda.in", dev=False, cpu=False),
)


def _project(root: Path) -> dict:
    return tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["project"]


def extras(root: Path, lock: Lock) -> list[str]:
    names = sorted(_project(root).get("optional-dependencies", {}))
    return [name for name in names if lock.dev or name in RUNTIME_EXTRAS]


def _squash(requirements: list[str]) -> list[str]:
    return sorted("".join(requirement.split()) for requirement in requirements)


def inputs(root: Path, lock: Lock) -> dict[str, object]:
    """What a lock is compiled from, whitespace-normalised (comments and layout do not count)."""
    project = _project(root)
    optional = project.get("optional-dependencies", {})
    pin_lines = (line.split("#", 1)[0].strip() for line in (root / "requirements" / lock.pins).read_text("utf-8").splitlines())
    return {
        "requires-python": project.get("requires-python", ""),
        "dependencies": _squash(project.get("dependencies", [])),
        "extras": {name: _squash(optional[name]) for name in extras(root, lock)},
        "pins": sorted(line for line in pin_lines if line),
        "under": lock.under,
    }


def fingerprint(data: dict[str, object]) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()


def pins(text: str) -> dict[str, str]:
    """``name -> version`` of every ``name==version`` line (names PEP 503-normalised)."""
    found = {}
    for line in text.splitlines():
        match = _PIN.match(line)
        if match:
            found[re.sub(r"[-_.]+", "-", match[1]).lower()] = match[2]
    return found


def problems(root: Path = ROOT) -> list[str]:
    """One line per lock that is missing, out of date, or disagrees with the lock it is compiled under."""
    found = []
    for lock in LOCKS:
        path = root / "requirements" / lock.file
        if not path.is_file():
            found.append(f"requirements/{lock.file} is missing")
            continue
        text = path.read_text(encoding="utf-8")
        stamps = [line[len(STAMP):].strip() for line in text.splitlines() if line.startswith(STAMP)]
        if stamps != [fingerprint(inputs(root, lock))]:
            found.append(f"requirements/{lock.file} is out of date with pyproject.toml or requirements/{lock.pins}")
        elif lock.under and (root / "requirements" / lock.under).is_file():
            outer = pins((root / "requirements" / lock.under).read_text(encoding="utf-8"))
            differ = sorted(name for name, version in pins(text).items() if outer.get(name) != version)
            if differ:
                found.append(f"requirements/{lock.file} pins {', '.join(differ)} unlike requirements/{lock.under}")
    return found


def stamp(root: Path, lock: Lock) -> None:
    path = root / "requirements" / lock.file
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if not line.startswith(STAMP)]
    at = next((i for i, line in enumerate(lines) if not line.startswith("#")), len(lines))  # after uv's header
    lines.insert(at, STAMP + fingerprint(inputs(root, lock)))
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def prefer_installed(path: Path) -> None:
    """Add ``name==version`` of each installed distribution the lock lacks: uv keeps the pins
    it finds in its output file, so a package just added is locked at the version tested with."""
    from importlib.metadata import distributions

    text = path.read_text(encoding="utf-8") if path.is_file() else ""
    have = set(pins(text))
    found = {re.sub(r"[-_.]+", "-", d.metadata["Name"]).lower(): d.version for d in distributions() if d.metadata["Name"]}
    extra = [f"{name}=={version}" for name, version in sorted(found.items()) if name not in have and name not in ("personabot", "torch")]
    path.write_text(text + "".join(f"{line}\n" for line in extra), encoding="utf-8")


def refresh(root: Path, extra_args: list[str]) -> None:
    """``uv pip compile`` each lock (keeping the pins it can, unless --upgrade), then stamp it."""
    installed = "--prefer-installed" in extra_args
    extra_args = [arg for arg in extra_args if arg != "--prefer-installed"]
    for lock in LOCKS:
        if installed:
            prefer_installed(root / "requirements" / lock.file)
        command = ["uv", "pip", "compile", "pyproject.toml", f"requirements/{lock.pins}", *TARGET, "--quiet",
                   "--custom-compile-command", REFRESH, "-o", f"requirements/{lock.file}"]
        command += [arg for name in extras(root, lock) for arg in ("--extra", name)]
        if lock.cpu:
            command += ["--find-links", os.environ.get("TORCH_CPU_LINKS", TORCH_CPU_LINKS)]
        if lock.under:
            command += ["--constraint", f"requirements/{lock.under}"]
        subprocess.run(command + extra_args, cwd=root, check=True)
        stamp(root, lock)


def main(argv: list[str]) -> int:
    if argv[:1] == ["refresh"]:
        refresh(ROOT, argv[1:])
        return 0
    if argv != ["check"]:
        print(__doc__, file=sys.stderr)
        return 2
    found = problems()
    for line in found:
        print(f"error: {line}", file=sys.stderr)
    if found:
        print(f"refresh them with: {REFRESH}   (pip install uv first), then commit requirements/", file=sys.stderr)
        return 1
    print(f"ok: {', '.join(f'requirements/{lock.file}' for lock in LOCKS)} match pyproject.toml")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
