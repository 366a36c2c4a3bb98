"""Grounded dialogues: the prompt the bot really builds, then a reply that uses it.

Each example is a synthetic user's memories (the canonical sentences that
:func:`core.personalization.facts.extract_facts` stores for what they said), profile
lines (:func:`core.personalization.profiles.preference_sections`) or help-article
passages (:func:`core.prompt.passage_section`, the knowledge plugin's own helper),
rendered by :func:`core.prompt.build_prompt` with a real persona, so the training
text is byte for byte what the model sees when serving. The reply answers a question
about a stated fact, brings a fact up, quotes the passage that answers a support or
tutoring question, or says it does not know when nothing given covers the question.

Entity lists (training/grounded_lists.py, training/grounded_kb.py) are split once:
training and validation examples use training values, evaluation users (see
training/grounded_eval.py) only held-out values.
"""

from __future__ import annotations

import random
import re
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.errors import ConfigError
from core.events import ChatMessage
from core.personalization.facts import extract_facts
from core.personalization.profiles import preference_sections
from core.personas import Persona, PersonaLibrary
from core.prompt import Budget, PromptSection, build_prompt, passage_section
from training.grounded_kb import ANSWER_LEADS, ANSWER_TAILS, BUNDLED_QUESTIONS, KB_TOPICS, KB_UNKNOWN, KB_VALUES
from training.grounded_lists import ABSTAIN, ANSWERS, ENTITIES, MENTIONS, PET_KINDS, QUESTIONS, SLOTS, STATEMENTS, ZH_CHITCHAT
from training.grounded_synth import invented_value

LANGS = ("en", "zh")
MIN_VALUES = 5  # an entity list needs this many values to be split
REPO = Path(__file__).resolve().parents[1]
SUPPORT_KB = REPO / "bots" / "support_kb"
LESSONS = REPO / "plugins" / "lessons.toml"


@dataclass(frozen=True)
class Pools:
    """Entity and article values of one side of the split (training or held-out)."""

    entities: dict[str, dict[str, list[str]]]
    kb: dict[str, dict[str, list[str]]]


def _split_list(name: str, values: list[str], heldout: float, rng: random.Random) -> tuple[list[str], list[str]]:
    if len(values) < MIN_VALUES:
        raise ConfigError(f"entity list {name!r} has {len(values)} value(s); at least {MIN_VALUES} are needed "
                          "to split it into training and held-out values")
    order = sorted(set(values))
    rng.shuffle(order)
    k = max(1, round(len(order) * heldout))
    return order[k:], order[:k]


def split_entities(
    entities: dict[str, dict[str, list[str]]] = ENTITIES,
    kb: dict[str, dict[str, list[str]]] = KB_VALUES,
    heldout: float = 0.2,
    seed: int = 0,
) -> tuple[Pools, Pools]:
    """(training, held-out) pools: every list is cut so no value is on both sides."""
    if not 0 < heldout < 1:
        raise ConfigError("the held-out share of entities must be in (0, 1)")
    rng = random.Random(seed)
    sides: list[dict[str, Any]] = [{"entities": {}, "kb": {}}, {"entities": {}, "kb": {}}]
    for group, lists in (("entities", entities), ("kb", kb)):
        for lang, slots in lists.items():
            for slot, values in slots.items():
                train, held = _split_list(f"{lang}/{slot}", values, heldout, rng)
                sides[0][group].setdefault(lang, {})[slot] = train
                sides[1][group].setdefault(lang, {})[slot] = held
    return Pools(**sides[0]), Pools(**sides[1])


@dataclass
class Example:
    """One grounded dialogue before rendering, with what a correct reply must contain."""

    lang: str
    kind: str  # recall | abstain | mention | chitchat | passage | passage_unknown
    persona: str
    sections: list[PromptSection]
    history: list[ChatMessage]  # ends with the user's message
    reply: str
    expect: list[str] = field(default_factory=list)  # values the reply must contain
    forbid: list[str] = field(default_factory=list)  # values it must not contain
    slot: str = ""  # the entity slot asked about (recall, abstain, mention)


def _fill(template: str, value: str = "", **extra: str) -> str:
    article = "an" if value[:1].lower() in "aeiou" else "a"
    return template.format(v=value, V=value[:1].upper() + value[1:], a=article, **extra)


def _memory_text(lang: str, slot: str, value: str, kind: str, rng: random.Random) -> str:
    statement = _fill(rng.choice(STATEMENTS[lang][slot]), value, kind=kind)
    facts = extract_facts(statement)
    if not facts:
        raise AssertionError(f"no fact extracted from template output {statement!r}")
    return facts[0].text


def _states_cleanly(lang: str, slot: str, value: str) -> bool:
    """Whether every statement template of ``slot`` gives a stored fact that holds ``value``."""
    for template in STATEMENTS[lang][slot]:
        facts = extract_facts(_fill(template, value, kind=PET_KINDS[lang][0]))
        if not facts or value not in facts[0].text:
            return False
    return True


class Generator:
    """Grounded examples drawn from one pool; ``chitchat`` gives English small-talk exchanges.

    ``invented``: the share of memory values made up on the spot (training/grounded_synth.py)
    instead of drawn from the pool, never one of ``avoid`` (the held-out values).
    ``followups``: the share of memory and passage examples whose history already holds
    one to four earlier questions on the same prompt, answered from it. A single question
    per prompt gives a small model about two copied values per training step, too few to
    learn copying at all; follow-ups multiply them without changing the served format
    (earlier exchanges are ordinary history).
    """

    def __init__(self, pools: Pools, personas: PersonaLibrary, seed: int = 0,
                 chitchat: list[tuple[str, str]] | None = None, invented: float = 0.0,
                 avoid: Pools | None = None, followups: float = 0.0) -> None:
        self.pools = pools
        self.invented = invented
        self.followups = followups
        self.avoid = {lang: {slot: set(values) for slot, values in slots.items()}
                      for lang, slots in (avoid.entities if avoid else {}).items()}
        self.personas = personas
        self.rng = random.Random(seed)
        self.chitchat = chitchat or [("How are you?", "I'm good, thanks! How about you?")]
        self.bundled = _bundled_passages()

    # -- memories ---------------------------------------------------------------------
    def memory_example(self, lang: str) -> Example:
        rng = self.rng
        ents = self.pools.entities[lang]
        slots = rng.sample(SLOTS, rng.choices((0, 1, 2, 3, 4, 5), weights=(1, 3, 3, 3, 2, 2))[0])
        kind_of = {slot: rng.choice(PET_KINDS[lang]) for slot in SLOTS}
        values = {slot: self._value(lang, slot, ents[slot]) for slot in SLOTS}
        sections: list[PromptSection] = []
        for slot in slots:
            if slot == "name" and rng.random() < 0.2:
                sections += preference_sections({"name": values["name"]})
            else:
                sections.append(PromptSection(_memory_text(lang, slot, values[slot], kind_of[slot], rng)))
        untrusted = [s for s in sections if not s.trusted]
        rng.shuffle(untrusted)  # retrieval order is imperfect: the model must find the fact
        sections = [s for s in sections if s.trusted] + [
            PromptSection(s.text, priority=500 - rank) for rank, s in enumerate(untrusted)
        ]
        missing = [slot for slot in SLOTS if slot not in slots]
        held_values = [values[s] for s in slots]
        roll = rng.random()
        if not slots:
            roll = 0.55 if roll < 0.5 else 0.9
        if roll < 0.45 or not missing and roll < 0.65:
            slot = rng.choice(slots)
            kind, (message, reply) = "recall", self._recall_turn(lang, slot, values[slot], kind_of[slot])
            expect, forbid = [values[slot]], []
            asked = slot
        elif roll < 0.65:
            slot = rng.choice(missing)
            kind, (message, reply) = "abstain", self._abstain_turn(lang, slot, kind_of[slot])
            expect, forbid = [], held_values
            asked = slot
        elif roll < 0.85:
            slot = rng.choice(SLOTS)
            message, uses, without = rng.choice(MENTIONS[lang][slot])
            known = slot in slots and not (slot == "name" and not any(values["name"] in s.text for s in sections))
            kind = "mention" if known else "mention_none"
            reply = _fill(uses if known else without, values[slot])
            expect, forbid = ([values[slot]], []) if known else ([], [])
            asked = slot
        else:
            kind = "chitchat"
            message, reply = rng.choice(ZH_CHITCHAT if lang == "zh" else self.chitchat)
            expect, forbid, asked = [], [], ""
        earlier = self._earlier([self._recall_turn(lang, s, values[s], kind_of[s]) for s in slots if s != asked],
                                [self._abstain_turn(lang, s, kind_of[s]) for s in missing if s != asked]
                                ) if self.followups else []  # without follow-ups the draws are the evaluation's as before
        history = self._history(lang) + earlier + [ChatMessage("user", message)]
        persona = rng.choices(("companion", "assistant", "tutor"), weights=(7, 2, 1))[0]
        return Example(lang, kind, persona, sections, history, reply, expect, forbid, asked)

    def _recall_turn(self, lang: str, slot: str, value: str, kind: str) -> tuple[str, str]:
        rng = self.rng
        return (_fill(rng.choice(QUESTIONS[lang][slot]), kind=kind),
                _fill(rng.choice(ANSWERS[lang][slot]), value, kind=kind))

    def _abstain_turn(self, lang: str, slot: str, kind: str) -> tuple[str, str]:
        rng = self.rng
        return _fill(rng.choice(QUESTIONS[lang][slot]), kind=kind), _fill(rng.choice(ABSTAIN[lang][slot]), kind=kind)

    def _earlier(self, answered: list[tuple[str, str]], unknown: list[tuple[str, str]] = ()) -> list[ChatMessage]:
        """For a ``followups`` share of examples, up to four ``answered`` exchanges and at most
        one ``unknown`` one (questions the prompt cannot answer), as earlier history."""
        rng = self.rng
        if not (answered or unknown) or rng.random() >= self.followups:
            return []
        picked = rng.sample(answered, min(len(answered), rng.randint(1, 4)))
        if unknown and (not picked or rng.random() < 0.3):
            picked.insert(rng.randint(0, len(picked)), rng.choice(unknown))
        return [ChatMessage(role, text) for question, answer in picked
                for role, text in (("user", question), ("assistant", answer))]

    def _value(self, lang: str, slot: str, pool: list[str]) -> str:
        if not (self.invented and self.rng.random() < self.invented):
            return self.rng.choice(pool)
        while True:  # an invented word may read as a function word ("I moved to No Bay."): draw again
            value = invented_value(lang, slot, self.rng, self.avoid.get(lang, {}).get(slot, ()))
            if _states_cleanly(lang, slot, value):
                return value

    def _history(self, lang: str) -> list[ChatMessage]:
        if self.rng.random() >= 0.3:
            return []
        user, assistant = self.rng.choice(ZH_CHITCHAT if lang == "zh" else self.chitchat)
        return [ChatMessage("user", user), ChatMessage("assistant", assistant)]

    # -- passages ---------------------------------------------------------------------
    def _article(self, lang: str, topic: dict) -> tuple[PromptSection, list[tuple[str, tuple[str, ...]]]]:
        rng, kb = self.rng, self.pools.kb[lang]
        b = rng.randint(2, 5)
        values = {
            "n": str(rng.choice((7, 10, 14, 15, 20, 21, 30, 45, 60, 90))), "m": str(rng.randint(2, 12)),
            "a": str(rng.randint(1, 3)), "b": str(b), "c": str(b + rng.randint(1, 3)), "h1": str(rng.randint(7, 10)), "h2": str(rng.randint(17, 22)),
            "price": str(rng.choice((3, 5, 8, 9, 12, 15, 19, 25, 29, 49))),
            "product": rng.choice(kb["product"]), "plan": rng.choice(kb["plan"]), "page": rng.choice(kb["page"]),
        }
        if lang == "en" and rng.random() < 0.5:
            values["price"] = values["price"] + ".99" if rng.random() < 0.5 else values["price"]
        filled = [(s.format(**values), tuple(q.format(**values) for q in qs)) for s, qs in topic["sentences"]]
        body = " ".join(sentence for sentence, _ in filled) if lang == "en" else "".join(s for s, _ in filled)
        if lang == "en" and rng.random() < 0.5:  # hard-wrapped like the bundled Markdown files
            body = "\n".join(textwrap.wrap(body, rng.randint(60, 90)))
        source = f"{topic['slug']}.md › {topic['heading']}"
        return passage_section(source, body, priority=rng.randint(35, 90)), filled

    def passage_example(self, lang: str) -> Example:
        rng = self.rng
        topics = rng.sample(KB_TOPICS[lang], rng.randint(1, 3))
        articles = [self._article(lang, topic) for topic in topics]
        sections = [section for section, _ in articles]
        if rng.random() < 0.3:
            sections.append(rng.choice(self.bundled[lang])[0])
        if rng.random() < 0.12:
            questions, replies = KB_UNKNOWN[lang]
            kind, message, reply, expect = "passage_unknown", rng.choice(questions), rng.choice(replies), []
        else:
            sentence, questions = rng.choice(articles[0][1])
            kind, message, expect = "passage", rng.choice(questions), [sentence]
            reply = self._quote(lang, sentence)
        rng.shuffle(sections)
        sections = [PromptSection(s.text, priority=90 - rank, kind=s.kind, source=s.source) for rank, s in enumerate(sections)]
        earlier = self._earlier([(rng.choice(qs), self._quote(lang, other)) for _, filled in articles
                                 for other, qs in filled if other not in expect]) if self.followups else []
        history = self._history(lang) + earlier + [ChatMessage("user", message)]
        return Example(lang, kind, "support", sections, history, reply, expect)

    def _quote(self, lang: str, sentence: str) -> str:
        return self.rng.choice(ANSWER_LEADS[lang]) + sentence + self.rng.choice(ANSWER_TAILS[lang])

    def bundled_example(self, lang: str) -> Example:
        """A question on a bundled help article or lesson, answered by quoting it."""
        rng = self.rng
        message, sentence = rng.choice(BUNDLED_QUESTIONS[lang])
        right = next(p for p, flat in self.bundled[lang] + self.bundled["other"] if sentence in flat)
        others = [p for p, _ in self.bundled["en"] + self.bundled["zh"] + self.bundled["other"] if p is not right]
        sections = [right, *rng.sample(others, rng.randint(0, 2))]
        rng.shuffle(sections)
        sections = [PromptSection(s.text, priority=90 - rank, kind=s.kind, source=s.source) for rank, s in enumerate(sections)]
        persona = "tutor" if right.source.startswith("lessons") else "support"
        reply = self._quote(lang, sentence)
        return Example(lang, "passage", persona, sections, [ChatMessage("user", message)], reply, [sentence])

    def example(self, lang: str) -> Example:
        roll = self.rng.random()
        if roll < 0.62:
            return self.memory_example(lang)
        if roll < 0.92:
            return self.passage_example(lang)
        return self.bundled_example(lang)

    # -- rendering --------------------------------------------------------------------
    def render(self, example: Example) -> list[dict[str, str]]:
        return render_turns(self.personas.get(example.persona), example)


def render_turns(persona: Persona, example: Example) -> list[dict[str, str]]:
    """The conversation the prompt builder emits for ``example``, plus the target reply."""
    prompt = build_prompt(persona, example.history, lambda messages: 0, Budget(1 << 30, 0), example.sections)
    return [{"role": m.role, "text": m.content} for m in prompt] + [{"role": "assistant", "text": example.reply}]


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text)


def _bundled_passages() -> dict[str, list[tuple[PromptSection, str]]]:
    """The bundled help articles (read by the knowledge plugin's own code) and lessons."""
    from plugins.knowledge import read_folder
    from plugins.lessons import load_lessons

    out: dict[str, list[tuple[PromptSection, str]]] = {"en": [], "zh": [], "other": []}
    passages, _ = read_folder(SUPPORT_KB, 900)
    for passage in passages:
        lang = "zh" if re.search(r"[\u4e00-\u9fff]", passage.text) else "en"
        out[lang].append((passage_section(passage.citation, passage.text), _flat(passage.text)))
    for lesson in load_lessons(LESSONS):
        out["other"].append((passage_section(f"lessons › {lesson.title}", lesson.text), _flat(lesson.text)))
    return out


def bundled_personas() -> PersonaLibrary:
    import personas

    return PersonaLibrary.load([Path(personas.__file__).resolve().parent])


def chitchat_pairs(convs: list[dict[str, Any]], limit: int = 4000, max_chars: int = 160) -> list[tuple[str, str]]:
    """Short user→assistant exchanges from prepared conversations, for history and small talk."""
    pairs = []
    for conv in convs:
        turns = conv["turns"]
        for first, second in zip(turns, turns[1:]):
            if (first["role"], second["role"]) == ("user", "assistant") and max(len(first["text"]), len(second["text"])) <= max_chars:
                pairs.append((first["text"], second["text"]))
                break
        if len(pairs) >= limit:
            break
    return pairs


def add_grounded(data_dir: str | Path, n_train: int, n_valid: int | None = None, seed: int = 0,
                 system_share: float = 0.3, invented: float = 0.0, followups: float = 0.0) -> dict[str, int]:
    """Append grounded examples (training entities only) to a prepared folder's train/valid splits.

    A ``system_share`` of the chitchat training conversations also gets a persona's
    system prompt in front, as every served prompt has one; an ``invented`` share of the
    memory values is made up and a ``followups`` share of the examples asks earlier questions
    first (see :class:`Generator`). Returns counts per kind.
    """
    import json

    from training.data import load_split

    if n_train < 1:
        raise ConfigError("the number of grounded examples must be positive")
    if not 0 <= invented <= 1:
        raise ConfigError("the invented share of memory values must be between 0 and 1")
    if not 0 <= followups <= 1:
        raise ConfigError("the share of grounded examples with follow-up questions must be between 0 and 1")
    out = Path(data_dir)
    train_pool, held_out = split_entities(seed=seed)
    personas = bundled_personas()
    splits = {name: load_split(out, name) for name in ("train", "valid")}
    pairs = chitchat_pairs(splits["train"])
    rng = random.Random(seed)
    for conv in splits["train"]:
        if conv.get("source") != "grounded" and rng.random() < system_share:
            persona = personas.get(rng.choice(("companion", "companion", "assistant", "tutor")))
            conv["turns"] = [{"role": "system", "text": persona.system_text()}, *conv["turns"]]
    counts: dict[str, int] = {}
    for name, n, offset in (("train", n_train, 1), ("valid", n_valid or max(50, n_train // 40), 2)):
        generator = Generator(train_pool, personas, seed=seed * 10 + offset, chitchat=pairs, invented=invented,
                              avoid=held_out, followups=followups)
        for i in range(n):
            example = generator.example(LANGS[i % 2])
            splits[name].append({"id": f"grounded:{name}:{i}", "source": "grounded", "lang": example.lang,
                                 "kind": example.kind, "loss_on": "assistant", "turns": generator.render(example)})
            counts[f"{name}/{example.lang}/{example.kind}"] = counts.get(f"{name}/{example.lang}/{example.kind}", 0) + 1
        random.Random(seed + offset).shuffle(splits[name])
        with open(out / f"{name}.jsonl", "w", encoding="utf-8") as fh:
            for conv in splits[name]:
                fh.write(json.dumps(conv, ensure_ascii=False) + "\n")
    return dict(sorted(counts.items()))
