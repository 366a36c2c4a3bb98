"""Lessons (tutor): a lesson catalog, progress per user, and quizzes with answer checking.

    /lesson next        the next lesson for you (lowest level left, best match to your interests)
    /lesson quiz        a question about the current lesson; just reply with the answer
    /lesson answer 3/4  answer explicitly (groups, or Discord slash commands)
    /lesson list        all lessons, ✓ for the ones you finished
    /lesson progress    what you did so far

The catalog is a TOML file (``file`` in ``[plugins.lessons]``, default: the bundled
sample, plugins/lessons.toml). Lessons are offered to the bot's
recommendations too. "Best match" is the seed's score P(u,i) between the user's
interest vector and the lesson's embedding (see core/personalization/scoring.py).
"""

from __future__ import annotations

import re
import unicodedata
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from core.errors import CommandUsageError, ConfigError, NotFound
from core.events import ChatKind
from core.catalog import CatalogItem
from core.plugins import CONTINUE, N_, ArgSpec, Plugin, PluginContext, Turn, _, predicate, smoothed_similarity
from core.settings import describe_validation_error, read_toml

BUNDLED_LESSONS = Path(__file__).resolve().with_name("lessons.toml")
ACTIONS = ("next", "quiz", "answer", "list", "progress")


class QuizQuestion(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    question: str = Field(min_length=1, max_length=1000)
    answers: tuple[str, ...] = Field(min_length=1)
    explanation: str = ""


class Lesson(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[\w-]{1,64}$")
    title: str = Field(min_length=1, max_length=200)
    description: str = Field("", max_length=2000)
    tags: tuple[str, ...] = ()
    level: int = Field(1, ge=1, le=100)
    text: str = Field(min_length=1, max_length=4000)
    quiz: tuple[QuizQuestion, ...] = ()


class LessonFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    lessons: tuple[Lesson, ...] = Field(min_length=1)

    @field_validator("lessons")
    @classmethod
    def _unique(cls, lessons: tuple[Lesson, ...]) -> tuple[Lesson, ...]:
        ids = [lesson.id for lesson in lessons]
        duplicates = sorted({x for x in ids if ids.count(x) > 1})
        if duplicates:
            raise ValueError(f"duplicate lesson ids: {', '.join(duplicates)}")
        return lessons


class LessonsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    file: str | None = None  # relative to the bot file; default: the bundled sample
    alpha: float = Field(0.1, ge=0.0, le=100.0)  # smoothing of P(u,i), as personalization.alpha


plugin = Plugin(
    "lessons",
    description="Lesson catalog with per-user progress and quizzes (/lesson next)",
    config=LessonsConfig,
    stores_user_data=True,  # progress and quiz answers per user
)


def load_lessons(path: Path) -> tuple[Lesson, ...]:
    try:
        return LessonFile.model_validate(read_toml(path)).lessons
    except ValidationError as exc:
        raise ConfigError(describe_validation_error(str(path), exc)) from None


def _normal(text: str) -> str:
    """Case, accents, width and surrounding punctuation do not matter in an answer."""
    text = unicodedata.normalize("NFKD", text)
    text = "".join(ch for ch in text if not unicodedata.combining(ch)).casefold()
    text = re.sub(r"\s+", " ", text).strip()
    return text.strip(" .。!！?？\"'“”‘’`")


def _number(text: str) -> Fraction | None:
    try:
        return Fraction(text.replace(" ", ""))
    except (ValueError, ZeroDivisionError):
        return None


def is_correct(answer: str, accepted: tuple[str, ...]) -> bool:
    given = _normal(answer)
    if not given:
        return False
    value = _number(given)
    for option in accepted:
        if given == _normal(option):
            return True
        expected = _number(_normal(option))
        if value is not None and expected is not None and value == expected:
            return True
    return False


def _lessons(ctx: PluginContext) -> dict[str, Lesson]:
    return ctx.state["lessons"]


@plugin.on_setup
async def load(ctx: PluginContext) -> None:
    config = ctx.config
    assert isinstance(config, LessonsConfig)
    lessons = load_lessons(ctx.path(config.file) if config.file else BUNDLED_LESSONS)
    ctx.state["lessons"] = {lesson.id: lesson for lesson in lessons}
    items = [CatalogItem(id=l.id, title=l.title, description=l.description, tags=l.tags) for l in lessons]
    ctx.add_catalog_items(items)
    embedder = await ctx.require_embedder()
    ctx.state["vectors"] = dict(zip([l.id for l in lessons], await embedder.embed([item.text() for item in items])))


async def _progress(ctx: PluginContext, turn: Turn) -> dict[str, Any]:
    return await ctx.storage.user(turn.user).get("progress", {"completed": [], "current": None, "question": None,
                                                              "answered": 0, "correct": 0})


async def next_lesson(turn: Turn) -> str:
    ctx = turn.plugin
    config = ctx.config
    assert isinstance(config, LessonsConfig)
    progress = await _progress(ctx, turn)
    remaining = [lesson for lesson in _lessons(ctx).values() if lesson.id not in progress["completed"]]
    if not remaining:
        return turn.t("You have finished every lesson. Well done! 🎉")
    level = min(lesson.level for lesson in remaining)
    candidates = [lesson for lesson in remaining if lesson.level == level]
    interest = await ctx.interest(turn.user)
    scores = smoothed_similarity(interest, np.stack([ctx.state["vectors"][l.id] for l in candidates]), config.alpha)
    best = max(range(len(candidates)), key=lambda i: (scores[i], -i))  # ties: catalog order
    lesson = candidates[best]
    progress.update(current=lesson.id, question=None)
    await ctx.storage.user(turn.user).set("progress", progress)
    why = " — " + turn.t("picked for your interests (match {score})", score=f"{scores[best]:.2f}") if scores[best] > 0 else ""
    quiz = "\n\n" + (turn.t("When you're ready, send /lesson quiz.") if lesson.quiz else turn.t("Send /lesson next to go on."))
    if not lesson.quiz:
        progress["completed"].append(lesson.id)
        progress["current"] = None
        await ctx.storage.user(turn.user).set("progress", progress)
    return f"📘 {lesson.title} ({turn.t('level {level}', level=lesson.level)}){why}\n\n{lesson.text}{quiz}"


async def ask(turn: Turn) -> str:
    ctx = turn.plugin
    progress = await _progress(ctx, turn)
    lesson = _lessons(ctx).get(progress["current"] or "")
    if lesson is None:
        raise NotFound("no current lesson", user_message=_("Start a lesson first: /lesson next"))
    index = progress["question"] if progress["question"] is not None else 0
    progress["question"] = index
    await ctx.storage.user(turn.user).set("progress", progress)
    return _question_text(turn, lesson, index)


def _question_text(turn: Turn, lesson: Lesson, index: int) -> str:
    question = lesson.quiz[index]
    return turn.t(
        "Question {number}/{total}: {question}\n(Reply with your answer.)",
        number=index + 1, total=len(lesson.quiz), question=question.question,
    )


async def check(turn: Turn, answer: str) -> str:
    ctx = turn.plugin
    progress = await _progress(ctx, turn)
    lesson = _lessons(ctx).get(progress["current"] or "")
    index = progress["question"]
    if lesson is None or index is None or index >= len(lesson.quiz):
        raise NotFound("no question", user_message=_("No question is waiting. Send /lesson quiz for one."))
    question = lesson.quiz[index]
    correct = is_correct(answer, question.answers)
    progress["answered"] += 1
    progress["correct"] += int(correct)
    verdict = turn.t("✅ Correct!") if correct else turn.t("❌ Not quite: the answer is {answer}.", answer=question.answers[0])
    if question.explanation:
        verdict += f" {question.explanation}"
    if index + 1 < len(lesson.quiz):
        progress["question"] = index + 1
        follow = "\n\n" + _question_text(turn, lesson, index + 1)
    else:
        progress.update(question=None, current=None)
        progress["completed"] = sorted(set(progress["completed"]) | {lesson.id})
        follow = "\n\n" + turn.t("Lesson “{title}” complete! Send /lesson next for the next one.", title=lesson.title)
    await ctx.storage.user(turn.user).set("progress", progress)
    return verdict + follow


async def show_list(turn: Turn) -> str:
    done = set((await _progress(turn.plugin, turn))["completed"])
    lines = [turn.t("Lessons:")]
    lines += [
        f"{'✓' if lesson.id in done else '·'} {lesson.title} ({turn.t('level {level}', level=lesson.level)})"
        for lesson in _lessons(turn.plugin).values()
    ]
    return "\n".join(lines)


async def show_progress(turn: Turn) -> str:
    progress = await _progress(turn.plugin, turn)
    total = len(_lessons(turn.plugin))
    current = _lessons(turn.plugin).get(progress["current"] or "")
    lines = [turn.t("Lessons finished: {done}/{total}.", done=len(progress["completed"]), total=total)]
    if progress["answered"]:
        lines.append(turn.t("Quiz answers: {correct}/{answered} correct.", correct=progress["correct"], answered=progress["answered"]))
    if current:
        lines.append(turn.t("Current lesson: {title}.", title=current.title))
    return " ".join(lines)


@plugin.command(
    "lesson",
    N_("Lessons: next, quiz, answer, list, progress"),
    args=(
        ArgSpec("action", N_("what to do"), choices=ACTIONS),
        ArgSpec("answer", N_("your answer (with 'answer')"), rest=True),
    ),
)
async def lesson_command(turn: Turn) -> str:
    action = turn.args[0].lower() if turn.args else "progress"
    if action == "answer":
        if len(turn.args) < 2:
            raise CommandUsageError("no answer", user_message=_("Usage: /lesson answer YOUR_ANSWER"))
        return await check(turn, turn.args[1])
    handlers = {"next": next_lesson, "quiz": ask, "list": show_list, "progress": show_progress}
    return await handlers[action](turn)


@plugin.on_message(predicate(lambda event: event.chat_kind is not ChatKind.GROUP, "private chats"))
async def answer_in_chat(turn: Turn) -> object:
    """A plain message answers the waiting quiz question; without one, chat goes on."""
    progress = await turn.plugin.storage.user(turn.user).get("progress")
    if not progress or progress.get("question") is None:
        return CONTINUE
    return await check(turn, turn.text)


@plugin.export_user
async def export(ctx: PluginContext, user_id: str) -> dict[str, Any] | None:
    return await ctx.storage.user(user_id).get("progress")


@plugin.forget_user
async def forget(ctx: PluginContext, user_id: str) -> int:
    return await ctx.storage.user(user_id).forget()
