"""Safety and reliability: moderation, abuse limits, bans across linked identities,
exactly-once answers across crashes, secret masking in logs, and the audit command.

Attach with the feature function :func:`setup_safety`; configure with ``[safety]``
(:class:`SafetySettings`) and ``[limits]`` of the bot file. See docs/SECURITY.md.
"""

from core.safety.config import Action, SafetySettings
from core.safety.feature import setup_safety

__all__ = ["Action", "SafetySettings", "setup_safety"]
