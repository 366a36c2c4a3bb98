"""Content moderation of what users send and what the bot says.

Three sources of findings: the operator's word lists and regular expressions (bot-wide,
per chat context, per persona) and an optional Hugging Face text-classification model.
Matching runs on a folded copy of the text (NFKC, case folding, format characters such
as zero-width spaces dropped), so ``ＢＡＤ``, ``Bad`` and ``b\u200bad`` all match ``bad``;
spans are mapped back so redaction blacks out exactly the original characters.

Words are matched as whole words in scripts that separate words with spaces and as
substrings in those that do not (Chinese, Japanese, Thai…), where a word boundary
would never match inside a sentence.

What a moderated event leaves behind: a counter and one log line with the rule names,
the action, and a short SHA-256 of the text, never the text itself.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import re
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from core.chat import EMPTY_REPLY, ChatService
from core.dispatcher import Context, Handler
from core.errors import ConfigError, InputRejected
from core.events import ChatKind, ConversationKey, IncomingMessage, Reply, SentMessage
from core.i18n import t
from core.personas import Persona
from core.ports import Outbox, Store
from core.safety.config import Action, ClassifierSettings, ContextPolicy, ModerationSettings, WordLists

log = logging.getLogger(__name__)

REDACTION = "\u2588"  # one block per hidden character: never longer than the original
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def fold(text: str) -> tuple[str, list[int]]:
    """The text moderation matches on, and for each of its characters the original index."""
    if text.isascii():
        return text.lower(), list(range(len(text)))
    pieces: list[str] = []
    index: list[int] = []
    for position, char in enumerate(text):
        if unicodedata.category(char) == "Cf":  # zero-width and direction marks hide words
            continue
        folded = unicodedata.normalize("NFKC", char).casefold()
        pieces.append(folded)
        index.extend([position] * len(folded))
    return "".join(pieces), index


def _spaced_script(char: str) -> bool:
    """True for letters of scripts that put spaces between words (Latin, Cyrillic, Arabic…)."""
    code = ord(char)
    return char.isalnum() and (code < 0x0E00 or 0x1E00 <= code < 0x2000)


def _word_pattern(word: str) -> str:
    folded = fold(word)[0]
    body = r"\s+".join(re.escape(part) for part in folded.split())
    left = r"(?<!\w)" if _spaced_script(folded[0]) else ""
    right = r"(?!\w)" if _spaced_script(folded[-1]) else ""
    return left + body + right


@dataclass(frozen=True, slots=True)
class Finding:
    """One reason to moderate; ``span`` is in the original text (None: the classifier)."""

    rule: str
    span: tuple[int, int] | None = None


class WordMatcher:
    """The compiled form of one :class:`WordLists`; ``prefix`` names its rules in logs."""

    def __init__(self, lists: WordLists, prefix: str) -> None:
        self._rules: list[tuple[str, re.Pattern[str]]] = []
        if lists.words:
            alternatives = sorted({_word_pattern(word) for word in lists.words}, key=len, reverse=True)
            self._rules.append((f"{prefix}words", re.compile("|".join(alternatives))))
        for number, pattern in enumerate(lists.patterns):
            self._rules.append((f"{prefix}patterns[{number}]", re.compile(pattern, re.IGNORECASE)))

    def __bool__(self) -> bool:
        return bool(self._rules)

    def find(self, folded: str, index: list[int]) -> list[Finding]:
        found = []
        for rule, regex in self._rules:
            for match in regex.finditer(folded):
                if match.end() > match.start():
                    found.append(Finding(rule, (index[match.start()], index[match.end() - 1] + 1)))
        return found


class TextClassifier:
    """A Hugging Face text-classification model; a text is flagged if a listed label scores high."""

    def __init__(self, pipe: Any, settings: ClassifierSettings) -> None:
        self._pipe = pipe
        self._settings = settings
        self._lock = asyncio.Lock()  # a fast tokenizer must not be used from two threads at once
        # Long texts are cut to what the model can read (tokenizer files do not always say).
        sizes = (getattr(pipe.tokenizer, "model_max_length", None), getattr(pipe.model.config, "max_position_embeddings", None))
        self._max_tokens = min((n for n in sizes if isinstance(n, int) and 0 < n < 1_000_000), default=512)
        self.errors = 0

    @classmethod
    async def load(cls, path: str, settings: ClassifierSettings) -> "TextClassifier":
        return await asyncio.to_thread(cls._load_sync, path, settings)

    @classmethod
    def _load_sync(cls, path: str, settings: ClassifierSettings) -> "TextClassifier":
        from pathlib import Path

        if not Path(path).is_dir():
            raise ConfigError(f"safety.moderation.classifier.path: model folder not found: {path}")
        from transformers import pipeline

        try:
            pipe = pipeline("text-classification", model=path, tokenizer=path, device=settings.device, top_k=None)
        except Exception as exc:
            raise ConfigError(f"safety.moderation.classifier.path: cannot load {path}: {exc}") from exc
        known = set(pipe.model.config.id2label.values())
        unknown = sorted(set(settings.labels) - known)
        if unknown:
            raise ConfigError(
                f"safety.moderation.classifier.labels: {unknown} not among the model's labels {sorted(known)}"
            )
        return cls(pipe, settings)

    async def classify(self, text: str) -> Finding | None:
        """The flagged label, if any. A failing model is logged and flags nothing: the
        word lists still apply, and chat keeps working."""
        try:
            async with self._lock:
                scores = await asyncio.to_thread(self._pipe, text, truncation=True, max_length=self._max_tokens)
        except Exception:
            self.errors += 1
            log.exception("moderation classifier failed; this text was checked by the word lists only")
            return None
        if scores and isinstance(scores[0], list):  # some versions nest one list per input
            scores = scores[0]
        for item in scores:
            if item["label"] in self._settings.labels and item["score"] >= self._settings.threshold:
                return Finding(f"classifier:{item['label']}")
        return None


class Moderator:
    """The bot's moderation rules, and the actions taken in each context."""

    def __init__(
        self,
        settings: ModerationSettings,
        classifier: TextClassifier | None = None,
        *,
        on_action: Callable[[str, str], None] = lambda direction, action: None,
    ) -> None:
        self.settings = settings
        self.classifier = classifier
        self._on_action = on_action  # (direction, action): the operator's metrics
        self._base = WordMatcher(settings, "")
        policies = {"private": settings.private, "group": settings.group, "nsfw": settings.nsfw or settings.group}
        self._policies = policies
        self._context_lists = {name: WordMatcher(policy, f"{name}.") for name, policy in policies.items()}
        self._persona_lists = {
            name: WordMatcher(lists, f"persona.{name}.") for name, lists in settings.personas.items()
        }
        self.counts: Counter[str] = Counter()

    @property
    def uses_personas(self) -> bool:
        return bool(self._persona_lists)

    def context_of(self, event: IncomingMessage) -> str:
        """``nsfw`` (an NSFW-marked channel), ``group`` (groups, servers) or ``private``."""
        if event.nsfw:
            return "nsfw"
        return "group" if event.chat_kind is ChatKind.GROUP else "private"

    def policy(self, context: str) -> ContextPolicy:
        return self._policies[context]

    def scan(self, text: str, context: str, persona: str | None) -> list[Finding]:
        """Findings of the word lists and patterns (fast; no model)."""
        matchers = [self._base, self._context_lists[context]]
        if persona in self._persona_lists:
            matchers.append(self._persona_lists[persona])
        if not any(matchers) or not text:
            return []
        folded, index = fold(text)
        return [finding for matcher in matchers for finding in matcher.find(folded, index)]

    async def check(self, text: str, context: str, persona: str | None) -> list[Finding]:
        findings = self.scan(text, context, persona)
        if not findings and self.classifier is not None and self.policy(context).classifier and text.strip():
            flagged = await self.classifier.classify(text)
            if flagged is not None:
                findings.append(flagged)
        return findings

    @staticmethod
    def effective(action: Action, findings: Sequence[Finding]) -> Action:
        """A classifier hit has no span to black out, so redaction becomes refusal."""
        if action is Action.REDACT and any(finding.span is None for finding in findings):
            return Action.REFUSE
        return action

    def record(
        self, direction: str, context: str, action: Action, findings: Sequence[Finding], who: str, text: str
    ) -> dict[str, Any]:
        """Count and log a moderated text: rule names and a hash, never the text. Returns
        the same as an audit entry's detail (the web console's moderation page reads them)."""
        self.counts[f"{direction}.{context}.{action.value}"] += 1
        self._on_action(direction, action.value)
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()[:16]
        rules = sorted({finding.rule for finding in findings})
        log.warning(
            "moderation: %s %s in %s context: rules=%s action=%s sha256=%s chars=%d",
            direction, who, context, ",".join(rules), action.value, digest, len(text),
        )
        return {"rules": rules, "action": action.value, "sha256": digest}


def redact(text: str, findings: Sequence[Finding]) -> str:
    """Black out every located finding, one block per original character."""
    hidden = [False] * len(text)
    for finding in findings:
        if finding.span is not None:
            start, end = finding.span
            hidden[start:end] = [True] * (end - start)
    return "".join(REDACTION if hide else char for char, hide in zip(text, hidden))


def sanitize_outgoing(text: str) -> str:
    """What no platform should receive: lone surrogates (invalid UTF-8) and control characters.

    Model output may contain terminal escape sequences or NULs; they are dropped. Never
    longer than the input in any unit, so split messages stay within platform limits.
    """
    text = _LONE_SURROGATE.sub("\ufffd", text)
    if not text.isprintable():
        text = "".join(char for char in text if char in "\n\t" or unicodedata.category(char) != "Cc")
    return text if text.strip() else EMPTY_REPLY


class ModeratedOutbox:
    """Wraps an adapter's Outbox: every outgoing text is sanitised, and in chat turns the
    word lists apply to each streamed edit too, so text the final reply filter would remove
    is not shown even for a moment. (The classifier runs once, on the final reply.)"""

    def __init__(
        self, inner: Outbox, moderator: Moderator | None = None, context: str = "", persona: str | None = None, locale: str = "en"
    ) -> None:
        self.inner = inner
        self._locale = locale  # the reader's, for the refusal text
        self.max_message_length = inner.max_message_length
        self.markdown_fences = inner.markdown_fences
        self._moderator = moderator
        self._context = context
        self.persona = persona
        self._shown: dict[str, str] = {}  # message id -> text last given to the platform

    def measure(self, text: str) -> int:
        return self.inner.measure(text)

    def edit_interval(self) -> float | None:
        return self.inner.edit_interval()

    def _moderate(self, text: str) -> str:
        text = sanitize_outgoing(text)
        if self._moderator is None:
            return text
        action = self._moderator.policy(self._context).output
        if action in (Action.OFF, Action.LOG):
            return text
        findings = self._moderator.scan(text, self._context, self.persona)
        if not findings:
            return text
        if self._moderator.effective(action, findings) is Action.REFUSE:
            return t(self._locale, self._moderator.settings.refusal_output)
        return redact(text, findings)

    async def send(self, key: ConversationKey, reply: Reply) -> SentMessage:
        text = self._moderate(reply.text)
        sent = await self.inner.send(key, dataclasses.replace(reply, text=text))
        self._shown[sent.message_id] = text
        return sent

    async def edit(self, sent: SentMessage, text: str) -> None:
        text = self._moderate(text)
        if self._shown.get(sent.message_id) == text:
            return  # platforms refuse an edit that changes nothing
        await self.inner.edit(sent, text)
        self._shown[sent.message_id] = text

    async def typing(self, key: ConversationKey) -> None:
        await self.inner.typing(key)

    async def aclose(self) -> None:
        await self.inner.aclose()


class InputModeration:
    """Middleware: moderates chat text (not commands) after input normalisation, and puts
    a :class:`ModeratedOutbox` around the event's Outbox for everything said in return."""

    def __init__(self, moderator: Moderator, store: Store, chat: ChatService) -> None:
        self.moderator = moderator
        self._store, self._chat = store, chat

    async def __call__(self, ctx: Context, call_next: Handler) -> None:
        event = ctx.event
        if event.command is not None:
            ctx.outbox = ModeratedOutbox(ctx.outbox)
            await call_next(ctx)
            return
        moderator = self.moderator
        context = moderator.context_of(event)
        persona = await self._persona(ctx) if moderator.uses_personas and event.addressed_to_bot else None
        ctx.state["safety.context"] = context
        ctx.state["safety.persona"] = persona
        ctx.outbox = ModeratedOutbox(ctx.outbox, moderator, context, persona, ctx.locale)
        action = moderator.policy(context).input
        findings = await moderator.check(event.text, context, persona) if action is not Action.OFF else []
        if findings:
            action = moderator.effective(action, findings)
            detail = moderator.record("input", context, action, findings, event.user.qualified, event.text)
            await self._store.audit(event.user.qualified, "moderation input", context, detail=detail)
            if action is Action.REFUSE:
                if not event.addressed_to_bot:
                    return
                raise InputRejected("moderated input", user_message=moderator.settings.refusal_input)
            if action is Action.REDACT:
                ctx.event = dataclasses.replace(event, text=redact(event.text, findings))
        await call_next(ctx)

    async def _persona(self, ctx: Context) -> str:
        conversation = await self._store.active_conversation(ctx.event.key)
        persona: Persona = await self._chat.resolve_persona(ctx.event, conversation)
        return persona.name


class OutputModeration:
    """Reply filter: the final reply, checked with the lists and the classifier."""

    def __init__(self, moderator: Moderator, store: Store | None = None) -> None:
        self.moderator = moderator
        self._store = store  # audits each moderated reply (see Moderator.record)

    async def __call__(self, ctx: Context, text: str) -> str:
        moderator, event = self.moderator, ctx.event
        context = ctx.state.get("safety.context") or moderator.context_of(event)
        action = moderator.policy(context).output
        if action is Action.OFF:
            return text
        persona = ctx.state.get("safety.persona")
        if persona is None and moderator.uses_personas:
            persona = await InputModeration._persona(ctx)
        findings = await moderator.check(text, context, persona)
        if not findings:
            return text
        action = moderator.effective(action, findings)
        detail = moderator.record("output", context, action, findings, event.user.qualified, text)
        if self._store is not None:
            await self._store.audit(event.user.qualified, "moderation output", context, detail=detail)
        if action is Action.REFUSE:
            return ctx.t(moderator.settings.refusal_output)
        if action is Action.REDACT:
            return redact(text, findings)
        return text
