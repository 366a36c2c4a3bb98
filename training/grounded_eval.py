"""Does a model use what it is given? Grounded evaluation through the real chat service.

Held-out synthetic users (entities never used in training, see training/grounded.py)
talk to a bot built by ``core.bootstrap.build_app``: their memories and passages
reach the prompt as prompt sections of a feature, so the real prompt builder, token
budget, generator and reply path (sources line included) answer. Reported per
language:

- fact recall: the reply to a question about a stated fact contains its value;
- abstention: the reply to a question about a fact never stated names no value of any
  entity list (training or held-out), so it invented nothing;
- passage use: the reply contains the sentence (synthetic held-out articles) or the
  answer phrase (the support bot's own help articles, found by its knowledge plugin)
  that answers the question; sources listed only for passages in the prompt;
- language match: replies to Chinese messages are mostly CJK, to English mostly Latin.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from core.events import ChatKind, ConversationKey, IncomingMessage, Reply, SentMessage, UserRef
from core.prompt import PromptSection
from training.grounded import LANGS, REPO, Example, Generator, bundled_personas, split_entities
from training.grounded_lists import ENTITIES

SUPPORT_BOT = REPO / "bots" / "support.toml"
DEMO_BOT = REPO / "bots" / "demo.toml"
TUTOR_BOT = REPO / "bots" / "tutor.toml"

# Questions on the support bot's own articles, worded unlike the training questions:
# (language, question, answer phrase that the right passage holds)
SUPPORT_QUESTIONS = (
    ("en", "What is your refund policy?", "30 days"),
    ("en", "How long do I have to send something back for a refund?", "30 days"),
    ("en", "How long is the link to reset my password valid?", "30 minutes"),
    ("en", "How many days does standard shipping take?", "3 to 5 business days"),
    ("en", "Do you deliver to Japan?", "Japan"),
    ("en", "What should I do if my package arrived broken?", "photo"),
    ("en", "Where do I delete my account?", "Settings"),
    ("en", "When will you ship my order?", "1 business day"),
    ("zh", "退款期限是多久？", "30 天"),
    ("zh", "下单后多久发货？", "1 个工作日"),
    ("zh", "加急快递几天能到？", "1 到 2 个工作日"),
    ("zh", "退款几天能到账？", "5 个工作日"),
)

# The 20 fixed prompts of docs/eval.md: (bot, language, what the user told before, message)
FIXED_PROMPTS = (
    ("demo", "en", (), "Hi! How are you today?"),
    ("demo", "en", ("My name is Sam.", "I have a dog called Rex."), "What is my dog's name?"),
    ("demo", "en", ("I live in Lisbon.",), "Where do I live?"),
    ("demo", "en", ("I like hiking.",), "I'm bored this weekend. Any ideas?"),
    ("demo", "en", (), "What's my favorite food?"),
    ("demo", "zh", (), "你好！今天过得怎么样？"),
    ("demo", "zh", ("我叫王芳。",), "我叫什么名字？"),
    ("demo", "zh", ("我住在成都。", "我喜欢吃火锅。"), "我喜欢吃什么？"),
    ("demo", "zh", (), "我住在哪里？"),
    ("support", "en", (), "How do I get a refund?"),
    ("support", "en", (), "How long does shipping take?"),
    ("support", "en", (), "I forgot my password."),
    ("support", "en", (), "Do you sell gift cards?"),
    ("support", "zh", (), "怎么申请退款？"),
    ("support", "zh", (), "普通快递要几天？"),
    ("support", "zh", (), "你们有门店吗？"),
    ("tutor", "en", (), "What is a fraction?"),
    ("tutor", "en", (), "Can you help me with Python lists?"),
    ("tutor", "zh", (), "你好，我想学英语。"),
    ("tutor", "zh", (), "什么是分数？"),
)

_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\u3040-\u30ff]")
_LATIN = re.compile(r"[A-Za-z]")


def language_of(text: str) -> str | None:
    """``zh`` or ``en`` by the majority of CJK characters vs Latin letters; None if neither."""
    cjk, latin = len(_CJK.findall(text)), len(_LATIN.findall(text))
    if not cjk and not latin:
        return None
    return "zh" if cjk > latin / 3 else "en"  # one CJK character carries about a word (~3 letters)


def split_sources(reply: str) -> tuple[str, list[str]]:
    """The reply's text and the sources the chat service appended."""
    text, sep, tail = reply.rpartition("\n\nSources: ")
    return (text, tail.split("; ")) if sep else (reply, [])


def contains(text: str, value: str) -> bool:
    """``value`` in ``text``, case-folded; a Latin value only as whole words ("Sam" is not in "samosas")."""
    if not value.isascii():
        return value.casefold() in text.casefold()
    return re.search(rf"(?<![^\W_]){re.escape(value.casefold())}(?![^\W_])", text.casefold()) is not None


@dataclass
class Outcome:
    lang: str
    kind: str
    message: str
    reply: str
    ok: bool
    sources_ok: bool = True


def eval_examples(n: int, seed: int = 0) -> list[Example]:
    """``n`` recall, ``n`` abstention and ``n`` synthetic-passage examples per language,
    all from held-out entities and articles."""
    _, held = split_entities(seed=0)
    generator = Generator(held, bundled_personas(), seed=1000 + seed)
    wanted = {(lang, kind): n for lang in LANGS for kind in ("recall", "abstain", "passage")}
    out: list[Example] = []
    while any(wanted.values()):
        for lang in LANGS:
            for example in (generator.memory_example(lang), generator.passage_example(lang)):
                key = (example.lang, example.kind)
                if wanted.get(key):
                    wanted[key] -= 1
                    example.history = example.history[-1:]  # a first message: nothing earlier to lean on
                    out.append(example)
    return out


def _eval_event(text: str, user: str) -> IncomingMessage:
    """A private message from ``user`` as the console would give it (training imports no adapter)."""
    ref = UserRef("console", user)
    return IncomingMessage(
        event_id=f"eval:{uuid.uuid4()}", key=ConversationKey("console", user), user=ref, text=text,
        chat_kind=ChatKind.PRIVATE, addressed_to_bot=True,
    )


class _QuietOutbox:
    """Keeps nothing: the eval reads the reply from the store, as it was stored."""

    max_message_length = 100_000
    markdown_fences = False

    def measure(self, text: str) -> int:
        return len(text)

    def edit_interval(self) -> float | None:
        return None

    async def send(self, key: ConversationKey, reply: Reply) -> SentMessage:
        return SentMessage(key, "0")

    async def edit(self, sent: SentMessage, text: str) -> None:
        return None

    async def typing(self, key: ConversationKey) -> None:
        return None

    async def aclose(self) -> None:
        return None


class Conversations:
    """A bot built with the real composition root; each message from a fresh user, whose
    prompt sections are whatever the caller registered for them."""

    def __init__(self, bot_file: Path, model: str, features: Sequence[str] | None, generation: dict[str, Any]) -> None:
        self.bot_file, self.model, self.features, self.generation = bot_file, model, features, generation
        self.sections: dict[str, list[PromptSection]] = {}
        self.prompts: dict[str, str] = {}

    async def run(self, jobs: Sequence[tuple[str, list[PromptSection]]], progress: Callable = lambda it: it) -> list[tuple[str, str]]:
        """(reply, logged prompt) for each (message, sections)."""
        from core.bootstrap import FEATURES, build_app, select_features
        from core.settings import load_bot_settings
        from core.storage.sqlite import SQLiteStore

        settings = load_bot_settings(self.bot_file)
        generation = settings.model.generation.model_copy(update=self.generation)
        model = settings.model.model_copy(update={"path": self.model, "generation": generation})
        settings = settings.model_copy(update={"model": model})
        features = select_features(settings) if self.features is None else [FEATURES[name] for name in self.features]
        app = build_app(settings, store=SQLiteStore(":memory:"), features=[*features, self._feature])
        capture = _PromptCapture()
        chat_log = logging.getLogger("core.chat")
        level = chat_log.level
        chat_log.setLevel(logging.DEBUG)  # core.chat logs the exact prompt at DEBUG
        chat_log.addHandler(capture)
        out: list[tuple[str, str]] = []
        try:
            async with app as running:
                for index, (message, sections) in enumerate(progress(list(jobs))):
                    user = f"eval{index}"
                    self.sections[f"console:{user}"] = sections
                    event = _eval_event(message, user)
                    await running.dispatcher.feed(event, _QuietOutbox())
                    done = await running.store.turn_by_event(event.event_id)
                    out.append((done[1].text if done and done[1] else "", capture.last))
        finally:
            chat_log.removeHandler(capture)
            chat_log.setLevel(level)
        return out

    async def _feature(self, bot: Any, stack: Any) -> None:
        async def contribute(ctx: Any, persona: Any) -> list[PromptSection]:
            return list(self.sections.get(ctx.event.user.qualified, []))

        bot.seams.prompt_contributors.append(contribute)


class _PromptCapture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.last = ""

    def emit(self, record: logging.LogRecord) -> None:
        self.last = record.getMessage()


def invents(text: str, lang: str) -> bool:
    """Whether ``text`` names any value of any entity list of ``lang`` (training or held-out)."""
    return any(contains(text, value) for values in ENTITIES[lang].values() for value in values)


def score(example: Example, reply: str) -> Outcome:
    text, _ = split_sources(reply)
    if example.kind == "recall":
        ok = all(contains(text, value) for value in example.expect)
    elif example.kind == "abstain":
        ok = not invents(text, example.lang)
    else:
        ok = all(contains(" ".join(text.split()), " ".join(value.split())) for value in example.expect)
    return Outcome(example.lang, example.kind, example.history[-1].content, text, ok)


def sources_in_prompt(reply: str, prompt: str) -> bool:
    """Every listed source names a passage that the logged prompt holds."""
    return all(f"[{source}]" in prompt for source in split_sources(reply)[1])


def summarize(outcomes: Sequence[Outcome]) -> dict[str, dict[str, Any]]:
    """Per language: share of successes per kind, language match, sources check."""
    report: dict[str, dict[str, Any]] = {}
    names = {"recall": "fact_recall", "abstain": "abstention", "passage": "passage_use", "support": "support_kb_use"}
    for lang in LANGS:
        mine = [o for o in outcomes if o.lang == lang]
        row: dict[str, Any] = {}
        for kind, name in names.items():
            picked = [o for o in mine if o.kind == kind]
            if picked:
                row[name] = sum(o.ok for o in picked) / len(picked)
                row[f"{name}_n"] = len(picked)
        row["language_match"] = sum(language_of(o.reply) == lang for o in mine) / max(len(mine), 1)
        row["sources_only_from_prompt"] = all(o.sources_ok for o in mine)
        report[lang] = row
    return report


async def evaluate_grounded(model: str, n: int = 40, seed: int = 0, temperature: float = 0.5,
                            progress: Callable = lambda it: it) -> dict[str, Any]:
    """The grounded report for ``model`` (a model folder), plus every outcome."""
    generation = {"temperature": temperature, "max_new_tokens": 48}
    examples = eval_examples(n, seed)
    memory = [e for e in examples if e.kind in ("recall", "abstain")]
    passages = [e for e in examples if e.kind == "passage"]
    outcomes: list[Outcome] = []
    companion = Conversations(DEMO_BOT, model, [], generation)
    for example, (reply, _) in zip(memory, await companion.run([(e.history[-1].content, e.sections) for e in memory], progress)):
        outcomes.append(score(example, reply))
    support = Conversations(SUPPORT_BOT, model, [], generation)
    for example, (reply, prompt) in zip(passages, await support.run([(e.history[-1].content, e.sections) for e in passages], progress)):
        outcome = score(example, reply)
        outcome.sources_ok = sources_in_prompt(reply, prompt)
        outcomes.append(outcome)
    kb = Conversations(SUPPORT_BOT, model, ["plugins"], generation)  # the knowledge plugin's own retrieval
    for (lang, question, phrase), (reply, prompt) in zip(SUPPORT_QUESTIONS, await kb.run([(q, []) for _, q, _ in SUPPORT_QUESTIONS], progress)):
        text, _ = split_sources(reply)
        outcomes.append(Outcome(lang, "support", question, text, contains(text, phrase), sources_in_prompt(reply, prompt)))
    return {"model": str(model), "n_per_kind": n, "seed": seed, "temperature": temperature,
            "summary": summarize(outcomes), "outcomes": [o.__dict__ for o in outcomes]}


async def fixed_prompt_replies(model: str, temperature: float = 0.7) -> list[dict[str, str]]:
    """The sampled reply to each of :data:`FIXED_PROMPTS`, told facts stored as memories."""
    from core.personalization.facts import extract_facts

    bots = {"demo": (DEMO_BOT, []), "support": (SUPPORT_BOT, ["plugins"]), "tutor": (TUTOR_BOT, ["plugins"])}
    rows = []
    for name, (bot_file, features) in bots.items():
        picked = [p for p in FIXED_PROMPTS if p[0] == name]
        jobs = [(message, [PromptSection(f.text) for s in told for f in extract_facts(s)]) for _, _, told, message in picked]
        replies = await Conversations(bot_file, model, features, {"temperature": temperature, "max_new_tokens": 60}).run(jobs)
        rows += [{"bot": name, "lang": lang, "told": " ".join(told), "message": message, "reply": reply}
                 for (_, lang, told, message), (reply, _) in zip(picked, replies)]
    return rows


def run(coroutine: Awaitable[Any]) -> Any:
    return asyncio.run(coroutine)  # type: ignore[arg-type]


GROUNDED_MARK = "\n## Grounding\n"
METRICS = (("fact_recall", "fact recall"), ("abstention", "abstention"), ("passage_use", "passage use (held-out articles)"),
           ("support_kb_use", "support bot's articles"), ("language_match", "language match"))


def write_grounded_section(md_path: str | Path, reports: Sequence[dict[str, Any]], command: str) -> None:
    """Replace the ``## Grounding`` section of ``md_path`` (kept: everything before it)."""
    path = Path(md_path)
    head = path.read_text(encoding="utf-8").split(GROUNDED_MARK)[0].rstrip("\n") if path.is_file() else "# Evaluation"
    first = reports[0]
    lines = [head, GROUNDED_MARK.strip("\n"), "",
             f"Held-out synthetic users and help articles (entities and products never used in training), "
             f"n examples per kind and language, through `core.bootstrap.build_app` and the chat "
             f"service (real prompt builder, token budget and sources line); temperature {first['temperature']}, "
             f"at most 48 new tokens, seed {first['seed']}. The support bot's own articles: "
             f"{len(SUPPORT_QUESTIONS)} questions found by its knowledge plugin. Abstention fails when the reply "
             "names any value of any entity list (a made-up fact). Targets: recall ≥ 0.9, abstention ≥ 0.8, passage use ≥ 0.8, "
             "language match ≥ 0.9.", "", "Command:", "", f"    {command}", ""]
    lines += ["| model | language | " + " | ".join(h for _, h in METRICS) + " | sources only from prompt |",
              "|---|---|" + "---|" * (len(METRICS) + 1)]
    for report in reports:
        for lang, row in report["summary"].items():
            cells = [f"{row[key]:.2f}" if key in row else "–" for key, _ in METRICS]
            name = f"{Path(report['model']).name} (n={report['n_per_kind']})"
            lines.append(f"| {name} | {lang} | " + " | ".join(cells) + f" | {row['sources_only_from_prompt']} |")
    for report in reports:
        if report.get("fixed"):
            lines += ["", f"### 20 fixed prompts, sampled replies of `{Path(report['model']).name}`", "",
                      "| bot | told before | message | reply |", "|---|---|---|---|"]
            for row in report["fixed"]:
                cells = [row["bot"], row["told"] or "–", row["message"], row["reply"]]
                lines.append("| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
