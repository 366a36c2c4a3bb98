import pytest

from core.commands import ArgSpec, CommandRegistry, CommandSpec, parse_command_text
from core.errors import CommandUsageError, ConfigError
from core.events import CommandCall


async def noop(ctx, args):
    return None


def test_parse_command_text_handles_bot_suffix_and_arguments():
    assert parse_command_text("/persona@MyBot tutor") == CommandCall("persona", ("tutor",))
    assert parse_command_text("/help@otherbot", bot_username="mybot") is None
    assert parse_command_text("/admin ban telegram:1", "mybot") == CommandCall("admin", ("ban", "telegram:1"))
    assert parse_command_text("hello /help") is None
    assert parse_command_text("/") is None


def test_registry_resolves_admin_group_and_rejects_clashes():
    registry = CommandRegistry()
    registry.add(CommandSpec("ban", "ban", noop, admin_only=True))
    registry.add(CommandSpec("ban", "user-level command of the same name", noop))
    spec, args = registry.find(CommandCall("admin", ("ban", "x")))
    assert spec.admin_only and args == ("x",)
    assert registry.find(CommandCall("admin", ())) is None
    with pytest.raises(ConfigError):
        registry.add(CommandSpec("ban", "again", noop))
    with pytest.raises(ConfigError):
        registry.add(CommandSpec("admin", "reserved", noop))


def test_bind_checks_required_choices_and_rest():
    spec = CommandSpec(
        "profile",
        "p",
        noop,
        (ArgSpec("field", "f", required=True, choices=("name", "tone")), ArgSpec("value", "v", rest=True)),
    )
    assert spec.bind(("name", "Li", "Wei")) == ("name", "Li Wei")
    with pytest.raises(CommandUsageError):
        spec.bind(())
    with pytest.raises(CommandUsageError) as error:
        spec.bind(("color",))
    assert "name, tone" in error.value.user_message


def test_bad_names_are_config_errors():
    with pytest.raises(ConfigError):
        CommandSpec("Bad Name", "x", noop)
