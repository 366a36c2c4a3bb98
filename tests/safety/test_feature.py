"""setup_safety: the chain it builds, its settings errors, /admin safety, light imports."""

import subprocess
import sys

import pytest

from core.errors import ConfigError
from tests.conftest import make_event
from tests.fakes import RecordingOutbox
from tests.safety.conftest import safe_app


async def test_the_chain_reads_in_the_documented_order(app):
    assert app.dispatcher.describe() == [
        "recovery:dedupe", "access:drop_banned", "access:locale", "limits:merge_bursts", "limits:rate_limit", "input:input_limits",
        "moderation:moderate_input", "moderation:audit_commands", "route:command", "route:chat",
    ]
    assert type(app.dispatcher.middlewares[0]).__name__ == "ResumingDedupe"
    assert type(app.dispatcher.middlewares[4]).__name__ == "AbuseLimiter"


@pytest.mark.parametrize(
    ("safety", "field"),
    [
        ({"moderaton": {}}, "safety.moderaton"),
        ({"moderation": {"group": {"input": "delete"}}}, "safety.moderation.group.input"),
        ({"moderation": {"words": [" "]}}, "safety.moderation.words"),
        ({"busy_wait_s": -1}, "safety.busy_wait_s"),
    ],
)
async def test_bad_settings_name_the_field(safety, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        async with safe_app(safety=safety):
            pass


async def test_admins_see_moderation_counts_and_limits():
    async with safe_app(safety={"moderation": {"words": ["badword"]}}, limits={"user_daily_quota": 50}) as app:
        outbox = RecordingOutbox()
        await app.dispatcher.feed(make_event("a badword"), outbox)
        await app.dispatcher.feed(make_event("/admin safety", user="telegram:999"), outbox)
        report = outbox.last
        assert "input.private.log: 1" in report and "output.private.redact: 0" not in report
        assert "Daily quota: 50" in report and "Generations: 0 running, 0 waiting, limit 32" in report


def test_importing_safety_loads_no_model_or_platform_library():
    code = "import sys, core.safety; print(sorted(m for m in ('torch', 'transformers', 'discord', 'telegram') if m in sys.modules))"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"
