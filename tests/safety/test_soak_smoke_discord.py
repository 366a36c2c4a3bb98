"""The Discord soak of ``personabot run`` (bench/soak_discord.py) at smoke size: 200
messages from 40 users in DMs and a server channel, the bot process SIGKILLed 3 times and
restarted, gateway drops (RESUMEs and re-IDENTIFYs), 429s, 5xx and slow calls from the
fake. The target is every message answered exactly once (messages sent while no session
ran are read from the channel history at the next READY); it is not met yet, so this
asserts what does hold (below): nothing over 2,000 characters, an intact database."""

from __future__ import annotations

from bench.soak_discord import main

# Not at the target yet (docs/SECURITY.md, "Discord"): at 10,000 messages 64 were never
# answered and 22 answered twice, and at this size a run loses 0 to 9 depending on the
# machine's load, so those two counts are not asserted here (the bench prints them; issue
# 15 stays open). What always holds is: every kill and gateway drop survived, nothing over
# Discord's limit, an intact database, and a reply for nearly every message.


def test_a_killed_and_disconnected_discord_bot_keeps_its_database_and_limits():
    result = main(["--messages", "200", "--users", "40", "--kills", "3", "--kill-every", "6", "--drop-every", "8",
                   "--settle", "60", "--patience", "30"])
    assert result["kills (SIGKILL)"] == 3 and result["messages sent"] == 200
    assert result["gateway drops resumed"] + result["gateway drops re-identified"] > 0
    assert result["answered once"] >= 180  # most messages answered after every restart
    assert result["over the platform limit"] == 0
    # Rate windows are printed, not asserted: discord.py retries a 429 or 5xx itself, after
    # the pacer counted the first try, so a retry can land inside a channel's 5 s (docs/SECURITY.md).
    assert result["integrity_check"] == "ok"
