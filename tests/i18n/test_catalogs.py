"""The catalogs hold every message the code marks, translated, with the same placeholders;
and the modules that talk to users mark their prose (a bare English sentence fails here)."""

from __future__ import annotations

import ast
import re
import string
from pathlib import Path

import pytest

from core.i18n import available_locales
from tests.i18n.catalog_tool import ROOT, extract, marked_calls, read_catalog

# The modules whose strings users read (the list, plus the bundled plugins).
USER_FACING = sorted(
    {
        *map(Path, ["core/builtin_commands.py", "core/command_route.py", "core/commands.py", "core/errors.py"]),
        *map(Path, ["core/middleware.py", "core/plugins/wiring.py", "core/plugins/feature.py", "core/plugins/manager.py"]),
        *map(Path, ["core/personalization/commands.py", "core/personalization/profiles.py", "core/personalization/privacy.py"]),
        *map(Path, ["core/access.py", "adapters/telegram/commands.py", "adapters/discord/commands.py"]),
        *(path.relative_to(ROOT) for path in (ROOT / "core" / "safety").glob("*.py")),
        *(path.relative_to(ROOT) for path in (ROOT / "plugins").glob("*.py")),
    }
)
PROSE = re.compile(r"[A-Za-z]{2,}[,.]? [A-Za-z]{2,}")  # two English words in a row
NOT_OURS = "# i18n: as is"  # a line the scan skips: prompt text for the model, a file's state beside its name


def placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def test_every_marked_message_is_in_both_catalogs_translated_with_the_same_placeholders():
    messages = extract()
    assert len(messages) > 150
    assert set(available_locales()) >= {"en", "zh_Hans"}
    english = {m.id for m in read_catalog("en") if m.id}
    chinese = {m.id: m for m in read_catalog("zh_Hans") if m.id}
    missing = [f"{msgid!r} ({places[0]})" for msgid, places in messages.items() if msgid not in english or msgid not in chinese]
    assert not missing, "not in the catalogs (run python3 -m tests.i18n.catalog_tool): " + "; ".join(missing)
    untranslated = [repr(msgid) for msgid, m in chinese.items() if not all(m.string if isinstance(m.string, tuple) else (m.string,))]
    assert not untranslated, "no Chinese translation: " + "; ".join(untranslated)
    for msgid, message in chinese.items():
        wanted = set().union(*(placeholders(part) for part in (msgid if isinstance(msgid, tuple) else (msgid,))))
        for translated in message.string if isinstance(message.string, tuple) else (message.string,):
            assert placeholders(translated) <= wanted, (msgid, translated)
            assert placeholders(translated) >= wanted - {"n"}, (msgid, translated)  # one plural form may say n as words
    obsolete = sorted(map(repr, set(chinese) - set(messages)))
    assert not obsolete, "in the catalogs but no code uses them: " + "; ".join(obsolete)


def _prose_literal(node: ast.expr | None) -> bool:
    """A string literal, f-string or concatenation that contains English prose."""
    if node is None:
        return False
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return bool(PROSE.search(node.value))
    if isinstance(node, ast.JoinedStr):
        return any(_prose_literal(part) for part in node.values if isinstance(part, ast.Constant))
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _prose_literal(node.left) or _prose_literal(node.right)
    if isinstance(node, ast.IfExp):
        return _prose_literal(node.body) or _prose_literal(node.orelse)
    if isinstance(node, ast.BoolOp):
        return any(_prose_literal(value) for value in node.values)
    return False


def unmarked_prose(path: Path, root: Path = ROOT) -> list[str]:
    """Prose a user would read that is not a translation call: answers, refusals, notices."""
    source = (root / path).read_text(encoding="utf-8")
    lines = source.splitlines()
    tree = ast.parse(source)
    marked = {id(arg) for call, _ in marked_calls(tree) for arg in call.args}
    found = []

    def check(node: ast.expr | None, where: str, line: int) -> None:
        if node is not None and id(node) not in marked and _prose_literal(node) and NOT_OURS not in lines[line - 1]:
            found.append(f"{path}:{line} {where}: {ast.unparse(node)[:70]}")

    for node in ast.walk(tree):
        if isinstance(node, (ast.AsyncFunctionDef, ast.FunctionDef)) and not node.name.startswith("__"):
            for inner in ast.walk(node):
                if isinstance(inner, ast.Return):
                    check(inner.value, "returned", inner.lineno)
        if isinstance(node, ast.Call):
            for keyword in node.keywords:
                if keyword.arg == "user_message":
                    check(keyword.value, "user_message", node.lineno)
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if name in {"reply", "Reply", "append", "send", "TimeParseError"} and node.args:
                check(node.args[0], name, node.lineno)
        if isinstance(node, ast.Assign) and any(getattr(target, "id", "") == "user_message" for target in node.targets):
            check(node.value, "user_message", node.lineno)
    return found


@pytest.mark.parametrize("path", USER_FACING, ids=str)
def test_user_facing_prose_goes_through_the_catalogs(path):
    assert unmarked_prose(path) == []


def test_the_scan_finds_an_unmarked_sentence(tmp_path):
    module = tmp_path / "bad.py"
    module.write_text(
        'async def handler(ctx, args):\n'
        '    if args:\n'
        '        raise NotFound("x", user_message=f"You have no memory #{args[0]}.")\n'
        '    await ctx.reply(ctx.t("Fine, this one is marked."))\n'
        '    return "Started a new conversation."\n',
        encoding="utf-8",
    )
    found = unmarked_prose(Path("bad.py"), tmp_path)
    assert [entry.split(" ", 2)[1] for entry in found] == ["returned:", "user_message:"]  # ast.walk: breadth first
