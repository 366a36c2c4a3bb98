"""The ``[safety]`` section of a bot file, validated by the safety feature itself.

    [safety]
    secret_envs = ["MY_PLUGIN_KEY"]         # more env vars whose values never reach a log
    audited_commands = ["export", "forget"] # user commands recorded in the audit log
    busy_wait_s = 20                        # wait for a free generation slot, then "busy"
    exempt_admins = true                    # admins skip rate limits and the daily quota

    [safety.moderation]
    words = ["slur1", "脏话"]                # matched whole-word (Latin) / as substrings (CJK)
    patterns = ['kill\\s+yourself']         # regexes on NFKC + case-folded text
    classifier = { path = "models/toxicity", labels = ["toxic"], threshold = 0.8 }

    [safety.moderation.private]             # DMs and the console
    input = "log"                           # refuse | redact | log | off
    output = "redact"

    [safety.moderation.group]               # groups and servers: stricter
    input = "refuse"
    output = "refuse"
    words = ["damn"]                        # extra terms only checked here

    [safety.moderation.nsfw]                # Discord channels marked NSFW (default: the group policy)
    input = "log"
    output = "log"

    [safety.moderation.personas.tutor]      # extra lists while a persona speaks
    words = ["cheat sheet"]

The per-context limits themselves (token buckets, daily quota, concurrent generations)
live in ``[limits]`` of the bot file (:class:`core.settings.LimitsSettings`).
"""

from __future__ import annotations

import re
from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from core.errors import ConfigError
from core.i18n import N_
from core.settings import describe_validation_error


class Action(str, Enum):
    REFUSE = "refuse"  # input: not processed, short answer; output: replaced by a refusal
    REDACT = "redact"  # matched spans are blacked out (classifier hits cannot be: refused)
    LOG = "log"  # counted and logged only
    OFF = "off"  # not checked


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _check_patterns(patterns: tuple[str, ...]) -> tuple[str, ...]:
    for index, pattern in enumerate(patterns):
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ValueError(f"patterns[{index}]: invalid regular expression: {exc}") from None
    return patterns


class WordLists(_Strict):
    words: tuple[str, ...] = ()
    patterns: tuple[str, ...] = ()

    @field_validator("words")
    @classmethod
    def _no_blank_words(cls, words: tuple[str, ...]) -> tuple[str, ...]:
        if any(not word.strip() for word in words):
            raise ValueError("words must not be empty")
        return tuple(word.strip() for word in words)

    @field_validator("patterns")
    @classmethod
    def _valid_patterns(cls, patterns: tuple[str, ...]) -> tuple[str, ...]:
        return _check_patterns(patterns)


class ContextPolicy(WordLists):
    """What to do in one kind of chat; ``words``/``patterns`` add to the bot-wide lists there."""

    input: Action = Action.LOG
    output: Action = Action.REDACT
    classifier: bool = True  # run the classifier (if configured) in this context


class ClassifierSettings(_Strict):
    """Any Hugging Face text-classification model folder; ``labels`` are the flagged ones."""

    path: str
    labels: tuple[str, ...] = Field(min_length=1)
    threshold: float = Field(0.8, gt=0.0, le=1.0)
    device: str = "cpu"


class ModerationSettings(WordLists):
    classifier: ClassifierSettings | None = None
    private: ContextPolicy = ContextPolicy(input=Action.LOG, output=Action.REDACT)
    group: ContextPolicy = ContextPolicy(input=Action.REFUSE, output=Action.REFUSE)
    nsfw: ContextPolicy | None = None  # None: NSFW channels get the group policy
    personas: dict[str, WordLists] = Field(default_factory=dict)
    refusal_input: str = Field(N_("I can't respond to that message."), min_length=1, max_length=200)
    refusal_output: str = Field(N_("I'd rather not say that. Let's talk about something else."), min_length=1, max_length=200)


class SafetySettings(_Strict):
    moderation: ModerationSettings = ModerationSettings()
    secret_envs: tuple[str, ...] = ()
    audited_commands: tuple[str, ...] = ("export", "forget")
    busy_wait_s: float = Field(20.0, ge=0.0)
    exempt_admins: bool = True

    @classmethod
    def from_bot(cls, raw: dict[str, Any], source: object = None) -> "SafetySettings":
        """Validate a bot file's ``[safety]`` table; ConfigError names file and field."""
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            where = f"{source or 'bot file'}"
            raise ConfigError(describe_validation_error(where, exc).replace(f"{where}: ", f"{where}: safety.")) from None
