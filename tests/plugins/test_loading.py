"""Discovery, configuration and start-up of plugins: by path, by entry point, bundled; bad input."""

from __future__ import annotations

import logging
import textwrap

import pytest

from core.errors import ConfigError
from core.plugins.wiring import apology
from tests.conftest import make_event
from tests.fakes import RecordingOutbox
from tests.plugins.helpers import bot_settings, plugin_app, write_plugin

HELLO = '''
from pydantic import BaseModel, Field
from core.plugins import ArgSpec, Plugin, Turn

class Config(BaseModel):
    greeting: str = "Hello"
    times: int = Field(1, ge=1, le=3)

plugin = Plugin("hello", description="Greets", config=Config)

@plugin.command("hello", "Say hello", args=(ArgSpec("who", "whom to greet"),))
async def hello(turn: Turn) -> str:
    who = turn.args[0] if turn.args else "you"
    return " ".join([turn.plugin.config.greeting] * turn.plugin.config.times) + f", {who}"
'''


async def ask(app, text: str, user: str = "telegram:1") -> str:
    outbox = RecordingOutbox()
    await app.dispatcher.feed(make_event(text, user=user), outbox)
    return "\n".join(outbox.texts)


async def test_a_local_module_is_loaded_by_path_with_its_config(tmp_path):
    write_plugin(tmp_path, "hello", HELLO)
    plugins = {"enabled": ["hello"], "paths": {"hello": "hello.py"}, "hello": {"greeting": "你好", "times": 2}}
    async with plugin_app(bot_settings(tmp_path, plugins)) as app:
        assert await ask(app, "/hello 世界") == "你好 你好, 世界"
        status = app.services.plugins.statuses["hello"]
        assert (status.state, status.commands) == ("active", ("/hello",))
        spec = next(spec for spec in app.commands.user_commands() if spec.name == "hello")
        assert spec.owner == "hello"  # adapters publish it like any core command


async def test_a_package_folder_is_loaded_by_path(tmp_path):
    package = tmp_path / "greeter"
    package.mkdir()
    (package / "texts.py").write_text("WORD = 'Bonjour'\n", encoding="utf-8")
    (package / "__init__.py").write_text(
        textwrap.dedent(
            """
            from core.plugins import Plugin
            from .texts import WORD

            plugin = Plugin("greeter")

            @plugin.command("bonjour", "Say bonjour")
            async def bonjour(turn):
                return WORD
            """
        ),
        encoding="utf-8",
    )
    async with plugin_app(bot_settings(tmp_path, {"enabled": ["greeter"], "paths": {"greeter": "greeter"}})) as app:
        assert await ask(app, "/bonjour") == "Bonjour"


async def test_an_installed_package_is_found_through_its_entry_point(tmp_path, monkeypatch):
    site = tmp_path / "site"
    (site / "acme_hello").mkdir(parents=True)
    (site / "acme_hello" / "__init__.py").write_text(textwrap.dedent(HELLO), encoding="utf-8")
    dist = site / "acme_hello-1.2.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-hello\nVersion: 1.2\n", encoding="utf-8")
    (dist / "entry_points.txt").write_text("[personabot.plugins]\nhello = acme_hello:plugin\n", encoding="utf-8")
    monkeypatch.syspath_prepend(str(site))
    async with plugin_app(bot_settings(tmp_path, {"enabled": ["hello"]})) as app:
        assert await ask(app, "/hello") == "Hello, you"
        assert app.services.plugins.statuses["hello"].origin == "entry point acme_hello:plugin (acme-hello 1.2)"


async def test_bundled_examples_load_by_name(tmp_path):
    async with plugin_app(bot_settings(tmp_path, {"enabled": ["reminders"]})) as app:
        assert app.services.plugins.statuses["reminders"].origin == "bundled example"
        assert (await ask(app, "/remind list")).startswith("You have no reminders.")


async def test_a_plugin_that_is_not_installed_stops_the_start_naming_it(tmp_path):
    with pytest.raises(ConfigError) as error:
        async with plugin_app(bot_settings(tmp_path, {"enabled": ["nosuch"]})):
            pass
    message = str(error.value)
    assert "bot.toml: plugins.enabled: plugin 'nosuch' is not installed" in message
    assert "reminders" in message  # what is installed


async def test_a_missing_plugin_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"plugins\.paths\.hello: .*gone\.py: no such module"):
        async with plugin_app(bot_settings(tmp_path, {"enabled": ["hello"], "paths": {"hello": "gone.py"}})):
            pass


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"times": 9}, "bot.toml: plugins.hello.times: Input should be less than or equal to 3 (plugin hello)"),
        ({"greting": "x"}, "bot.toml: plugins.hello.greting: Extra inputs are not permitted (plugin hello)"),
        ({"greeting": 5}, "bot.toml: plugins.hello.greeting: Input should be a valid string (plugin hello)"),
    ],
)
async def test_config_errors_name_the_file_the_plugin_and_the_field(tmp_path, config, expected):
    write_plugin(
        tmp_path, "hello", HELLO.replace("class Config(BaseModel):", "class Config(BaseModel):\n    model_config = {'extra': 'forbid'}")
    )
    plugins = {"enabled": ["hello"], "paths": {"hello": "hello.py"}, "hello": config}
    with pytest.raises(ConfigError) as error:
        async with plugin_app(bot_settings(tmp_path, plugins)):
            pass
    assert expected in str(error.value)


@pytest.mark.parametrize(
    ("plugins", "expected"),
    [
        ({"enabled": ["reminders"], "remindrs": {"timezone": "UTC"}}, "plugins.remindrs: configuration for plugin 'remindrs', which is not enabled"),
        ({"enabled": ["reminders"], "reminders": "UTC"}, "plugins.reminders: expected a table"),
        ({"enabled": ["Bad Name"]}, "plugins.enabled: 'Bad Name' is not a plugin name"),
        ({"enabled": ["reminders", "reminders"]}, "listed twice"),
        ({"enabled": "reminders"}, "plugins.enabled: "),
        ({"enabled": [], "paths": {"x": "x.py"}}, "plugins.paths.x: plugin 'x' is not in plugins.enabled"),
        ({"enabled": ["reminders"], "reminders": {"timezone": "Mars/Olympus"}}, "plugins.reminders.timezone: Value error, Unknown time zone"),
    ],
)
async def test_malformed_plugins_sections_are_clear_errors(tmp_path, plugins, expected):
    with pytest.raises(ConfigError) as error:
        async with plugin_app(bot_settings(tmp_path, plugins)):
            pass
    assert expected in str(error.value)
    assert "bot.toml" in str(error.value)


async def test_two_plugins_claiming_one_command_stop_the_start_naming_both(tmp_path):
    write_plugin(tmp_path, "alpha", HELLO.replace('Plugin("hello"', 'Plugin("alpha"'))
    write_plugin(tmp_path, "beta", HELLO.replace('Plugin("hello"', 'Plugin("beta"'))
    plugins = {"enabled": ["alpha", "beta"], "paths": {"alpha": "alpha.py", "beta": "beta.py"}}
    with pytest.raises(ConfigError, match="command /hello is claimed by both alpha and beta"):
        async with plugin_app(bot_settings(tmp_path, plugins)):
            pass


async def test_a_plugin_cannot_take_a_core_command(tmp_path):
    write_plugin(tmp_path, "rogue", HELLO.replace('Plugin("hello"', 'Plugin("rogue"').replace('command("hello"', 'command("help"'))
    with pytest.raises(ConfigError, match="command /help is claimed by both core and rogue"):
        async with plugin_app(bot_settings(tmp_path, {"enabled": ["rogue"], "paths": {"rogue": "rogue.py"}})):
            pass


async def test_a_plugin_whose_setup_fails_is_disabled_and_the_bot_starts_without_it(tmp_path, caplog):
    write_plugin(
        tmp_path,
        "fragile",
        """
        from core.plugins import Plugin
        plugin = Plugin("fragile")

        @plugin.command("fragile", "Never available")
        async def fragile(turn):
            return "unreachable"

        @plugin.on_setup
        async def setup(ctx):
            raise RuntimeError("database of fragile is gone")
        """,
    )
    write_plugin(tmp_path, "hello", HELLO)
    plugins = {"enabled": ["fragile", "hello"], "paths": {"fragile": "fragile.py", "hello": "hello.py"}}
    with caplog.at_level(logging.ERROR):
        async with plugin_app(bot_settings(tmp_path, plugins)) as app:
            status = app.services.plugins.statuses["fragile"]
            assert status.state == "disabled"
            assert status.reason == "setup failed: RuntimeError: database of fragile is gone"
            assert "Unknown command" in await ask(app, "/fragile")
            assert await ask(app, "/hello") == "Hello, you"
            assert await ask(app, "how are you?") == "Model reply."
            assert "fragile: disabled" in await ask(app, "/admin plugins", user="telegram:999")
    assert "plugin fragile disabled: setup failed" in caplog.text


async def test_a_plugin_that_fails_to_import_is_disabled(tmp_path):
    write_plugin(tmp_path, "broken", "import nonexistent_module_xyz\n")
    async with plugin_app(bot_settings(tmp_path, {"enabled": ["broken"], "paths": {"broken": "broken.py"}})) as app:
        status = app.services.plugins.statuses["broken"]
        assert status.state == "disabled"
        assert "import failed: ModuleNotFoundError" in status.reason
        assert await ask(app, "hi") == "Model reply."


async def test_a_module_without_a_plugin_object_is_disabled(tmp_path):
    write_plugin(tmp_path, "empty", "x = 1\n")
    async with plugin_app(bot_settings(tmp_path, {"enabled": ["empty"], "paths": {"empty": "empty.py"}})) as app:
        assert "has no Plugin object" in app.services.plugins.statuses["empty"].reason


async def test_a_plugin_storing_user_data_without_export_and_forget_is_refused(tmp_path):
    write_plugin(
        tmp_path,
        "greedy",
        """
        from core.plugins import Plugin
        plugin = Plugin("greedy", stores_user_data=True)

        @plugin.command("keep", "Keep something about you")
        async def keep(turn):
            await turn.plugin.storage.user(turn.user).set("note", turn.text)
            return "kept"
        """,
    )
    async with plugin_app(bot_settings(tmp_path, {"enabled": ["greedy"], "paths": {"greedy": "greedy.py"}})) as app:
        status = app.services.plugins.statuses["greedy"]
        assert status.state == "refused"
        assert "does not implement both @plugin.export_user and @plugin.forget_user" in status.reason
        assert "Unknown command" in await ask(app, "/keep")


async def test_user_data_without_the_declaration_is_refused_at_run_time(tmp_path, caplog):
    write_plugin(
        tmp_path,
        "sneaky",
        """
        from core.plugins import Plugin
        plugin = Plugin("sneaky")

        @plugin.command("keep", "Keep something about you")
        async def keep(turn):
            await turn.plugin.storage.user(turn.user).set("note", "x")
            return "kept"
        """,
    )
    with caplog.at_level(logging.ERROR):
        async with plugin_app(bot_settings(tmp_path, {"enabled": ["sneaky"], "paths": {"sneaky": "sneaky.py"}})) as app:
            assert await ask(app, "/keep") == apology("sneaky")
            assert await app.store.plugin_items("sneaky", "telegram:1") == {}
    assert "plugin sneaky keeps user data without declaring stores_user_data=True" in caplog.text


async def test_a_plugin_importing_a_platform_library_is_refused(tmp_path):
    write_plugin(
        tmp_path,
        "platformy",
        """
        from core.plugins import Plugin
        plugin = Plugin("platformy")
        def later():
            import discord  # the check reads the source; nothing is imported
        """,
    )
    async with plugin_app(bot_settings(tmp_path, {"enabled": ["platformy"], "paths": {"platformy": "platformy.py"}})) as app:
        status = app.services.plugins.statuses["platformy"]
        assert status.state == "refused"
        assert "platformy.py:5 imports discord" in status.reason


async def test_plugin_personas_join_the_library_and_teardown_runs_at_stop(tmp_path):
    marker = tmp_path / "stopped.txt"
    write_plugin(
        tmp_path,
        "pirate",
        f"""
        from pathlib import Path
        from core.personas import Persona
        from core.plugins import Plugin
        plugin = Plugin("pirate")
        plugin.persona(Persona(name="pirate", description="Talks like a pirate", system_prompt="Arr.", greeting="Ahoy!"))

        @plugin.on_teardown
        async def stop(ctx):
            Path({str(marker)!r}).write_text("bye")
        """,
    )
    async with plugin_app(bot_settings(tmp_path, {"enabled": ["pirate"], "paths": {"pirate": "pirate.py"}})) as app:
        assert "pirate" in app.personas
        assert "Ahoy!" in await ask(app, "/persona pirate")
        assert (await app.store.get_persona("pirate"))["greeting"] == "Ahoy!"
        assert not marker.exists()
    assert marker.read_text() == "bye"


async def test_a_plugin_persona_clashing_with_a_bundled_one_stops_the_start(tmp_path):
    write_plugin(
        tmp_path,
        "clone",
        """
        from core.personas import Persona
        from core.plugins import Plugin
        plugin = Plugin("clone")
        plugin.persona(Persona(name="tutor", description="x", system_prompt="x", greeting="x"))
        """,
    )
    with pytest.raises(ConfigError, match="persona 'tutor' is defined by both the bot's persona folders and plugin clone"):
        async with plugin_app(bot_settings(tmp_path, {"enabled": ["clone"], "paths": {"clone": "clone.py"}})):
            pass


async def test_no_plugins_section_means_no_plugins(tmp_path):
    async with plugin_app(bot_settings(tmp_path, {})) as app:
        assert app.services.plugins.describe() == []
        assert await ask(app, "/admin plugins", user="telegram:999") == "No plugins are enabled."
