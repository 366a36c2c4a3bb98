"""Find every message the code marks for translation, and keep the catalogs in step.

    python3 -m tests.i18n.catalog_tool          # rewrite core/locales/*/LC_MESSAGES/personabot.po

The extractor reads the source (ast), so the test and the tool agree on what is marked:
``_(msg)``, ``N_(msg)``, ``_n(one, many, n)``, ``x.t(msg)``, ``x.nt(one, many, n)``,
``t(locale, msg)``, ``translate(locale, msg)``, ``nt(locale, one, many, n)``. Updating keeps
every translation whose msgid is still used, adds new msgids untranslated (the tests then
fail until someone translates them) and drops the ones no code uses any more.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.pofile import read_po, write_po

ROOT = Path(__file__).resolve().parents[2]
SOURCES = ("core", "adapters", "plugins")
LOCALES = ROOT / "core" / "locales"
CATALOG_LOCALES = ("en", "zh_Hans")
HEADER = "# The bot's own words (docs/i18n.md). Update with: python3 -m tests.i18n.catalog_tool"

Message = str | tuple[str, str]

# call name -> (index of the msgid, index of the plural or None); method calls are matched by attribute.
_FUNCTIONS = {"_": (0, None), "N_": (0, None), "_n": (0, 1), "t": (1, None), "translate": (1, None), "nt": (1, 2)}
_METHODS = {"t": (0, None), "nt": (0, 1)}


def source_files() -> list[Path]:
    return sorted(path for folder in SOURCES for path in (ROOT / folder).rglob("*.py"))


def _literal(node: ast.expr) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def marked_calls(tree: ast.AST) -> list[tuple[ast.Call, Message | None]]:
    """Each translation call with its msgid (None when the msgid is not a literal)."""
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        if isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS:
            index, plural = _FUNCTIONS[node.func.id]
        elif isinstance(node.func, ast.Attribute) and node.func.attr in _METHODS:
            index, plural = _METHODS[node.func.attr]
        else:
            continue
        if len(node.args) <= index or (plural is not None and len(node.args) <= plural):
            continue
        msgid = _literal(node.args[index])
        if plural is not None:
            other = _literal(node.args[plural])
            found.append((node, (msgid, other) if msgid is not None and other is not None else None))
        else:
            found.append((node, msgid))
    return found


def extract() -> dict[Message, list[str]]:
    """msgid (or (singular, plural)) -> where it is used."""
    messages: dict[Message, list[str]] = {}
    for path in source_files():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node, msgid in marked_calls(tree):
            if msgid is not None:
                messages.setdefault(msgid, []).append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return messages


def catalog_path(locale: str) -> Path:
    return LOCALES / locale / "LC_MESSAGES" / "personabot.po"


def read_catalog(locale: str) -> Catalog:
    with catalog_path(locale).open("rb") as source:
        return read_po(source, locale=locale)


def update(locales: tuple[str, ...] = CATALOG_LOCALES) -> None:
    messages = extract()
    for locale in locales:
        path = catalog_path(locale)
        old = read_catalog(locale) if path.is_file() else None
        catalog = Catalog(
            locale=locale, domain="personabot", project="personabot", version="", charset="utf-8", fuzzy=False,
            header_comment=HEADER,
        )
        for msgid, places in sorted(messages.items(), key=lambda item: item[1][0]):
            kept = old.get(msgid[0] if isinstance(msgid, tuple) else msgid) if old is not None else None
            string = kept.string if kept is not None and kept.id == msgid else ("",) * 2 if isinstance(msgid, tuple) else ""
            locations = [(place.rsplit(":", 1)[0], int(place.rsplit(":", 1)[1])) for place in places]
            catalog.add(msgid, string, locations=locations, flags=("python-brace-format",) if "{" in str(msgid) else ())
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as out:
            write_po(out, catalog, width=100, include_lineno=False)


if __name__ == "__main__":
    update()
    sys.stdout.write(f"{len(extract())} messages in {', '.join(CATALOG_LOCALES)}\n")
