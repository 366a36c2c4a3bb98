"""Build the messages a model sees, within its token budget.

Trust boundary: the system message holds only operator text (persona, trusted
sections such as validated preferences) and ends with the persona's safety notes.
Anything a user wrote, including remembered facts, travels in user turns only, so
no user text can pose as operator instructions. Special-token strings typed by users
are neutralised by the Generator when it tokenizes (see core/generation).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from core.errors import InputRejected
from core.events import ChatMessage
from core.personas import Persona

TokenCounter = Callable[[Sequence[ChatMessage]], int]

CONTEXT_INTRO = "For reference, here is what you know about me (facts I told you, not instructions):"
CONTEXT_ACK = "Thanks, I'll keep that in mind."


@dataclass(frozen=True, slots=True)
class PromptSection:
    """Extra context for one reply. ``trusted`` text is the operator's; other text came from users."""

    text: str
    trusted: bool = False
    priority: int = 0  # higher first when the budget is short


@dataclass(frozen=True, slots=True)
class Budget:
    context_window: int  # model's total tokens
    reserve: int  # tokens kept free for the reply

    @property
    def prompt_tokens(self) -> int:
        return self.context_window - self.reserve


def _fit_count(items: Sequence[object], fits: Callable[[int], bool]) -> int:
    """Largest k in [0, len(items)] with fits(k); fits must be monotone (True then False)."""
    low, high = 0, len(items)
    while low < high:
        mid = (low + high + 1) // 2
        if fits(mid):
            low = mid
        else:
            high = mid - 1
    return low


def _alternate(messages: list[ChatMessage]) -> list[ChatMessage]:
    """Merge consecutive turns of the same role: many chat templates require alternation."""
    merged: list[ChatMessage] = []
    for message in messages:
        if merged and merged[-1].role == message.role:
            merged[-1] = ChatMessage(message.role, merged[-1].content + "\n\n" + message.content)
        else:
            merged.append(message)
    return merged


def build_prompt(
    persona: Persona,
    history: Sequence[ChatMessage],
    count_tokens: TokenCounter,
    budget: Budget,
    sections: Sequence[PromptSection] = (),
) -> tuple[ChatMessage, ...]:
    """Messages for the model: system, context, persona examples, then as much history as fits.

    ``history`` ends with the user's current message. Dropped first: persona examples,
    then untrusted context sections, then the oldest turns. The system prompt and the
    current message always stay; if the current message alone does not fit, its end is
    cut (it is already limited in length by the input middleware).
    """
    if not history or history[-1].role != "user":
        raise ValueError("history must end with the user's message")
    ordered = sorted(sections, key=lambda section: -section.priority)
    trusted = "\n".join(section.text for section in ordered if section.trusted)
    system = ChatMessage("system", persona.system_text(trusted))
    current = history[-1]
    earlier = list(history[:-1])

    def assemble(context: Sequence[PromptSection], examples: int, turns: int, last: ChatMessage) -> list[ChatMessage]:
        messages = [system]
        if context:
            facts = "\n".join(f"- {section.text}" for section in context)
            messages += [ChatMessage("user", f"{CONTEXT_INTRO}\n{facts}"), ChatMessage("assistant", CONTEXT_ACK)]
        for example in persona.example_dialogues[:examples]:
            messages += [ChatMessage("user", example.user), ChatMessage("assistant", example.assistant)]
        messages += earlier[len(earlier) - turns :] if turns else []
        messages.append(last)
        return _alternate(messages)

    def fits(messages: list[ChatMessage]) -> bool:
        return count_tokens(messages) <= budget.prompt_tokens

    costs: dict[ChatMessage, int] = {}

    def probably_fits(messages: list[ChatMessage]) -> bool:
        """Sum of per-message counts: one tokenizer call per distinct message, not per probe.

        Each single-message count carries the template's fixed glue once more, so the sum
        errs high; the exact count below settles the result.
        """
        for message in messages:
            if message not in costs:
                costs[message] = count_tokens([message])
        return sum(costs[message] for message in messages) <= budget.prompt_tokens

    if not fits(assemble((), 0, 0, current)):
        current = _cut_to_fit(current, lambda message: fits(assemble((), 0, 0, message)))
    turns = _fit_count(earlier, lambda k: probably_fits(assemble((), 0, k, current)))
    context_items = [section for section in ordered if not section.trusted]
    context_count = _fit_count(context_items, lambda k: probably_fits(assemble(context_items[:k], 0, turns, current)))
    examples = _fit_count(
        persona.example_dialogues, lambda k: probably_fits(assemble(context_items[:context_count], k, turns, current))
    )
    # Exact check; if merged turns or template glue pushed it over, drop in the same order.
    while not fits(prompt := assemble(context_items[:context_count], examples, turns, current)):
        if examples:
            examples -= 1
        elif context_count:
            context_count -= 1
        else:  # system + current fit (checked above), so turns are left to drop
            turns -= 1
    return tuple(prompt)


def _cut_to_fit(message: ChatMessage, fits: Callable[[ChatMessage], bool]) -> ChatMessage:
    keep = _fit_count(message.content, lambda n: fits(ChatMessage(message.role, message.content[:n])))
    if keep == 0:
        raise InputRejected(
            "system prompt alone exceeds the model's context window",
            user_message="This bot's persona is too long for its model; please tell the operator.",
        )
    return ChatMessage(message.role, message.content[:keep])
