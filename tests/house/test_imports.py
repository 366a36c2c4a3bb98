"""The house rules: no import circles, and who may import whom (computed from the source)."""

from __future__ import annotations

from tests.house.import_graph import cycles, graph

PLATFORM_LIBRARIES = ("discord", "telegram", "aiogram")
HEAVY_TRAINING = ("training",)


def test_no_module_imports_itself_back_through_others():
    found = cycles(graph())
    print(f"import cycles: {len(found)}; modules: {len(graph())}")
    assert found == [], "import cycles:\n" + "\n".join(" → ".join(cycle) for cycle in found)


def test_layers_core_knows_no_adapter_bot_or_training_and_adapters_know_no_bot():
    edges = graph()
    broken = []
    for module, imported in edges.items():
        top = module.split(".")[0]
        for target in imported:
            other = target.split(".")[0]
            if top == "core" and other in ("adapters", "bots", "training", "plugins"):
                broken.append(f"{module} → {target}")
            if top == "adapters" and other in ("bots", "training", "plugins"):
                broken.append(f"{module} → {target}")
            if top in ("training", "plugins") and other in ("bots", "adapters"):
                broken.append(f"{module} → {target}")
    assert broken == []


def test_bundled_plugins_use_only_the_public_plugin_api():
    allowed = ("core.plugins", "core.errors", "core.events", "core.personas", "core.settings", "core.catalog", "core.commands", "core.prompt", "plugins")
    edges = graph()
    private = [
        f"{module} → {target}"
        for module, imported in edges.items()
        if module.startswith("plugins")
        for target in imported
        if not target.startswith(allowed) or target.startswith(("core.plugins.manager", "core.plugins.wiring"))
    ]
    assert private == []


def test_nothing_in_core_reaches_the_composition_root():
    edges = graph()
    assert [module for module, imported in edges.items() if module.startswith("core") and "core.bootstrap" in imported] == []
