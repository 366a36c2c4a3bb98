"""core stays platform-neutral and light: no platform library, no eager torch."""

import ast
import subprocess
import sys
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "core"
FORBIDDEN = {"discord", "telegram", "adapters", "bots"}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_core_never_imports_a_platform_library():
    offenders = {
        str(path.relative_to(CORE)): sorted(imported_roots(path) & FORBIDDEN) for path in CORE.rglob("*.py")
    }
    assert {name: roots for name, roots in offenders.items() if roots} == {}


def test_core_entry_points_do_not_import_torch_or_transformers():
    code = (
        "import sys, core.app, core.builtin_commands, core.middleware, core.chat;"
        "print(sorted(m for m in ('torch', 'transformers') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
