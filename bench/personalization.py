"""Personalization benchmark: memory recall and recommendation precision on synthetic users.

    python bench/personalization.py                 # 60 users, real all-MiniLM-L6-v2
    python bench/personalization.py --users 100 --seed 1

Each synthetic user (made here from templates, English and Chinese) states several
facts about themselves over three conversations, with small talk between, moves
house once (a fact that must supersede the old one), and talks about two interest
topics. Then, in a fresh conversation, they ask about every fact. Everything goes
through the real App: dispatcher, chat service, the personalization feature, the
SQLite store (in memory) and a scripted model that records the prompts.

Figures:
  recall@1 / recall@3  the asked-about fact is the first / among the first three
                       memories placed in the prompt
  stale in prompt      questions whose prompt still held a superseded fact
  precision@3          share of /recommend's top 3 catalog items that belong to the
                       user's two interest topics (24 items, 8 topics)
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bots.app_factory import bot_app  # noqa: E402
from core.events import ChatKind, ConversationKey, IncomingMessage, UserRef  # noqa: E402
from core.generation.scripted import ScriptedGenerator  # noqa: E402
from core.personalization import setup_personalization  # noqa: E402
from core.personalization.embedder import SentenceTransformerEmbedder  # noqa: E402
from core.prompt import CONTEXT_INTRO  # noqa: E402
from core.settings import BotSettings  # noqa: E402
from core.storage.sqlite import SQLiteStore  # noqa: E402
from core.commands import parse_command_text  # noqa: E402

NAMES = ["Ann", "Bruno", "Chloe", "Dmitri", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas", "Kemal", "Lucia"]
ZH_NAMES = ["小明", "李华", "王芳", "张伟", "陈静", "刘洋"]
CITIES = ["Berlin", "Paris", "Lisbon", "Toronto", "Osaka", "Nairobi", "Lima", "Oslo", "Seoul", "Madrid"]
ZH_CITIES = ["北京", "上海", "广州", "成都", "杭州", "西安"]
ALLERGENS = ["peanuts", "shellfish", "cats", "pollen", "penicillin", "gluten", "eggs"]
ZH_ALLERGENS = ["花生", "海鲜", "猫毛", "花粉", "鸡蛋"]
PETS = [("dog", "Rex"), ("cat", "Misty"), ("dog", "Buddy"), ("cat", "Luna"), ("puppy", "Max")]
JOBS = ["nurse", "teacher", "software engineer", "chef", "pilot", "accountant", "firefighter"]
FOODS = ["sushi", "lasagna", "tacos", "ramen", "curry", "paella"]
KIDS = ["Emma", "Noah", "Mia", "Leo", "Sofia"]
MONTHS = ["January", "March", "May", "July", "September", "November"]

# subject -> (statement template, question templates); {v}/{w} are filled per user
EN_FACTS = {
    "name": ("My name is {v}.", ["What's my name?", "Do you remember what I'm called?"]),
    "home": ("I live in {v}.", ["Where do I live?", "Which city am I in these days?"]),
    "allergy": ("I'm allergic to {v}.", ["What am I allergic to?", "Is there anything I should avoid because of an allergy?"]),
    "pet": ("I have a {v} named {w}.", ["What's my {v}'s name?", "Do you remember my pet?"]),
    "work": ("I work as a {v}.", ["What do I do for a living?", "What's my job?"]),
    "food": ("My favorite food is {v}.", ["What's my favorite food?", "What should I cook tonight that I'd love?"]),
    "daughter": ("My daughter is called {v}.", ["What's my daughter's name?", "Do you remember my kid?"]),
    "birthday": ("My birthday is in {v}.", ["When is my birthday?", "Which month was I born in?"]),
}
ZH_FACTS = {
    "name": ("我叫{v}", ["我叫什么名字？"]),
    "home": ("我住在{v}", ["我住在哪里？"]),
    "allergy": ("我对{v}过敏", ["我对什么过敏？"]),
    "food": ("我喜欢吃{v}", ["我喜欢吃什么？"]),
}
EN_MOVE = "I moved to {v}."
ZH_MOVE = "我搬到了{v}"
SMALL_TALK = ["Hello!", "How are you today?", "That's funny.", "Thanks, that helps.", "Tell me a joke.", "ok", "Good night!",
              "I had a really long day today", "The weather has been terrible all week", "I'm so tired, I need more sleep",
              "Traffic was awful this morning", "My neighbours are having a loud party tonight",
              "I finally cleaned up my whole flat", "It's my friend's wedding next weekend", "今天好累啊", "天气不错"]

TOPICS = {
    "cooking": ["I spent the evening chopping vegetables and making a stew", "I want to get better with a chef's knife",
                "Trying a new soup recipe tonight", "I love experimenting with spices in the kitchen"],
    "music": ["I practiced guitar chords all afternoon", "Listening to old jazz records again",
              "I'm learning to play a new song on the piano", "Went to a concert, the band was amazing"],
    "programming": ["I fixed a nasty bug in my Python script", "Learning how functions and loops work in code",
                    "I'm building a small web app", "Spent the night debugging a program"],
    "football": ["Did you see the match last night? What a goal", "Our team plays a high pressing game",
                 "I play football with friends every Sunday", "The striker scored twice in the derby"],
    "gardening": ["I planted tomatoes in my garden today", "My roses need pruning soon",
                  "Composting kitchen scraps for the vegetable beds", "Watering the herbs on my balcony"],
    "photography": ["I took some great shots at golden hour", "Thinking about buying a new camera lens",
                    "Editing my photos from the trip", "Practicing portrait lighting with my camera"],
    "finance": ["I'm trying to stick to a monthly budget", "Should I put more into my savings account",
                "Reading about index funds and investing", "Paying off my credit card debt"],
    "fitness": ["Went for a 10k run this morning", "Leg day at the gym was tough",
                "I'm trying to do yoga every day", "Training for my first marathon"],
}
CATALOG = {
    "cooking": [("Knife skills 101", "Chop, dice and slice like a chef.", ["cooking", "knife skills"]),
                ("Soups and stews", "Warming one-pot recipes for the week.", ["cooking", "recipes"]),
                ("Spice basics", "How to season food with herbs and spices.", ["cooking", "spices"])],
    "music": [("Guitar chords for beginners", "Strum your first songs.", ["music", "guitar"]),
              ("A jazz listening guide", "Ten classic jazz albums.", ["music", "jazz"]),
              ("Piano in 30 days", "Learn to play simple piano pieces.", ["music", "piano"])],
    "programming": [("Python basics", "Variables, loops and functions.", ["programming", "python"]),
                    ("Debugging like a pro", "Find and fix bugs in your code.", ["programming", "debugging"]),
                    ("Your first web app", "Build and deploy a small website.", ["programming", "web development"])],
    "football": [("Football tactics explained", "Formations, pressing and counter-attacks.", ["football", "tactics"]),
                 ("Five-a-side drills", "Practice sessions for amateur football players.", ["football", "training"]),
                 ("Great goals of history", "The most famous goals and matches.", ["football", "history"])],
    "gardening": [("Growing tomatoes", "From seed to harvest in your garden.", ["gardening", "vegetables"]),
                  ("Pruning roses", "When and how to prune flowers.", ["gardening", "flowers"]),
                  ("Balcony herb garden", "Grow herbs in small pots.", ["gardening", "herbs"])],
    "photography": [("Golden hour photography", "Shoot in the best natural light.", ["photography", "light"]),
                    ("Choosing a camera lens", "Prime, zoom and what to buy.", ["photography", "camera gear"]),
                    ("Photo editing basics", "Edit and color-grade your pictures.", ["photography", "editing"])],
    "finance": [("Budgeting made simple", "Track spending and save every month.", ["finance", "budgeting"]),
                ("Index funds 101", "Start investing for the long term.", ["finance", "investing"]),
                ("Getting out of debt", "Pay off credit cards and loans.", ["finance", "debt"])],
    "fitness": [("Couch to 10k", "A running plan for beginners.", ["fitness", "running"]),
                ("Strength training basics", "Build muscle at the gym safely.", ["fitness", "gym"]),
                ("Daily yoga", "Fifteen minutes of yoga every morning.", ["fitness", "yoga"])],
}


@dataclass
class Question:
    text: str
    expected: str  # the memory text that answers it
    stale: str | None = None  # a superseded fact that must not be in the prompt


@dataclass
class SyntheticUser:
    user_id: str
    language: str
    conversations: list[list[str]] = field(default_factory=list)
    questions: list[Question] = field(default_factory=list)
    topics: tuple[str, ...] = ()


def make_user(index: int, rng: random.Random) -> SyntheticUser:
    chinese = index % 5 == 4  # one user in five writes Chinese
    user = SyntheticUser(f"telegram:{1000 + index}", "zh" if chinese else "en")
    facts = ZH_FACTS if chinese else EN_FACTS
    subjects = list(facts) if chinese else rng.sample(list(facts), 6)
    statements: list[tuple[str, Question]] = []
    move = None
    for subject in subjects:
        template, questions = facts[subject]
        v, w = _values(subject, chinese, rng)
        question = Question(rng.choice(questions).format(v=v), _canonical(subject, chinese, v, w))
        statements.append((template.format(v=v, w=w), question))
        if subject == "home":  # they move later: the old home must be superseded
            new_city = rng.choice([c for c in (ZH_CITIES if chinese else CITIES) if c != v])
            move = (ZH_MOVE if chinese else EN_MOVE).format(v=new_city)
            question.stale, question.expected = question.expected, _canonical("home", chinese, new_city, "")
    user.topics = tuple(rng.sample(list(TOPICS), 2))
    interest_lines = [line for topic in user.topics for line in rng.sample(TOPICS[topic], 3)]
    rng.shuffle(interest_lines)
    lines = [s for s, _ in statements] + interest_lines
    rng.shuffle(lines)
    chunks = [lines[i::3] for i in range(3)]
    for chunk in chunks:
        talk = chunk + rng.sample(SMALL_TALK, 3)
        rng.shuffle(talk)
        user.conversations.append(talk)
    if move:
        user.conversations[-1].append(move)  # after the original statement
    user.questions = [q for _, q in statements]
    return user


def _values(subject: str, chinese: bool, rng: random.Random) -> tuple[str, str]:
    if chinese:
        pool = {"name": ZH_NAMES, "home": ZH_CITIES, "allergy": ZH_ALLERGENS, "food": ["饺子", "火锅", "面条", "包子"]}[subject]
        return rng.choice(pool), ""
    if subject == "pet":
        return rng.choice(PETS)
    pool = {"name": NAMES, "home": CITIES, "allergy": ALLERGENS, "work": JOBS, "food": FOODS, "daughter": KIDS,
            "birthday": MONTHS}[subject]
    return rng.choice(pool), ""


def _canonical(subject: str, chinese: bool, v: str, w: str) -> str:
    """The memory text the extractor stores for the statement (see core/personalization/facts.py)."""
    if chinese:
        return {"name": f"我叫{v}", "home": f"我住在{v}", "allergy": f"我对{v}过敏", "food": f"我喜欢吃{v}"}[subject]
    return {
        "name": f"My name is {v}.", "home": f"I live in {v}.", "allergy": f"I am allergic to {v}.",
        "pet": f"I have a {v} named {w}.", "work": f"I work as a {v}.", "food": f"My favorite food is {v}.",
        "daughter": f"My daughter is {v}.", "birthday": f"My birthday is in {v}.",
    }[subject]


_ids = itertools.count(1)


def event(text: str, user: str) -> IncomingMessage:
    ref = UserRef.parse(user)
    return IncomingMessage(
        event_id=f"bench:{next(_ids)}", key=ConversationKey(ref.platform, ref.user_id), user=ref, text=text,
        chat_kind=ChatKind.PRIVATE, command=parse_command_text(text),
    )


class Sink:
    """A minimal Outbox that keeps the last text it was given."""

    max_message_length = 100_000
    markdown_fences = False
    last = ""

    def measure(self, text: str) -> int:
        return len(text)

    def edit_interval(self) -> None:
        return None

    async def send(self, key, reply):  # type: ignore[no-untyped-def]
        from core.events import SentMessage

        self.last = reply.text
        return SentMessage(key, "1")

    async def edit(self, sent, text):  # type: ignore[no-untyped-def]
        self.last = text

    async def typing(self, key):  # type: ignore[no-untyped-def]
        return None


def placed_memories(generator: ScriptedGenerator) -> list[str]:
    messages = generator.requests[-1].messages
    if len(messages) < 2 or not messages[1].content.startswith(CONTEXT_INTRO):
        return []
    return [line.removeprefix("- ") for line in messages[1].content.splitlines()[1:]]


async def run(users: int, seed: int, embedder_spec: str, options: dict[str, str], show_misses: bool = False) -> None:
    rng = random.Random(seed)
    population = [make_user(i, rng) for i in range(users)]
    catalog = [
        {"id": f"{topic}-{n}", "title": title, "description": description, "tags": tags}
        for topic, items in CATALOG.items()
        for n, (title, description, tags) in enumerate(items)
    ]
    settings = BotSettings.model_validate(
        {
            "name": "bench",
            "model": {"backend": "scripted"},
            "limits": {"user_burst": 100_000, "chat_burst": 100_000},
            "personalization": {"embedder": embedder_spec, **options},
            "catalog": catalog,
        }
    )
    started = time.perf_counter()
    embedder = await SentenceTransformerEmbedder.load(embedder_spec)
    load_s = time.perf_counter() - started
    generator = ScriptedGenerator(["Okay."], context_window=2048)
    sink = Sink()
    turn_times: list[float] = []
    results: dict[str, list[tuple[int, int, int]]] = {"en": [], "zh": []}
    precision: list[float] = []
    async with bot_app(settings, store=SQLiteStore(":memory:"), generator=generator, embedder=embedder,
                   features=[setup_personalization]) as app:
        for user in population:
            for conversation in user.conversations:
                for line in conversation:
                    t0 = time.perf_counter()
                    await app.dispatcher.feed(event(line, user.user_id), sink)
                    turn_times.append(time.perf_counter() - t0)
                await app.dispatcher.feed(event("/reset", user.user_id), sink)
            for question in user.questions:
                await app.dispatcher.feed(event(question.text, user.user_id), sink)
                placed = placed_memories(generator)
                if show_misses and placed[:1] != [question.expected]:
                    print(f"miss {user.user_id}: {question.text!r} wanted {question.expected!r}, got {placed[:3]}")
                results[user.language].append(
                    (int(placed[:1] == [question.expected]), int(question.expected in placed[:3]),
                     int(question.stale is not None and question.stale in placed))
                )
            await app.dispatcher.feed(event("/recommend 3", user.user_id), sink)
            titles = [line.split(". ", 1)[1].split(" — ")[0] for line in sink.last.splitlines() if line[:2] in ("1.", "2.", "3.")]
            wanted = {title for topic in user.topics for title, _, _ in CATALOG[topic]}
            precision.append(sum(title in wanted for title in titles) / 3)
            if show_misses and precision[-1] < 1:
                print(f"recommend {user.user_id} {user.topics}: {titles}")
    total = results["en"] + results["zh"]

    def rate(rows: list[tuple[int, int, int]], column: int) -> str:
        return f"{sum(r[column] for r in rows) / len(rows):.3f}" if rows else "n/a"

    extra = "".join(f", {key}={value}" for key, value in options.items())
    print(f"personalization benchmark: {users} synthetic users (seed {seed}), embedder {embedder_spec}{extra}")
    print(f"  questions: {len(total)} ({len(results['en'])} English, {len(results['zh'])} Chinese)")
    print(f"  memory recall@1: {rate(total, 0)}   (English {rate(results['en'], 0)}, Chinese {rate(results['zh'], 0)})")
    print(f"  memory recall@3: {rate(total, 1)}   (English {rate(results['en'], 1)}, Chinese {rate(results['zh'], 1)})")
    print(f"  stale (superseded) fact in prompt: {rate(total, 2)}")
    print(f"  /recommend precision@3: {statistics.mean(precision):.3f} over {len(precision)} users, catalog of {len(catalog)}")
    print(f"  embedder load: {load_s:.1f} s; chat turn with personalization: median {statistics.median(turn_times) * 1000:.1f} ms, "
          f"p95 {sorted(turn_times)[int(len(turn_times) * 0.95)] * 1000:.1f} ms over {len(turn_times)} turns")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=60)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--embedder", default="builtin:all-MiniLM-L6-v2")
    parser.add_argument("--option", action="append", default=[], metavar="KEY=VALUE",
                        help="a [personalization] setting, e.g. --option lexical_weight=0 (repeatable)")
    parser.add_argument("--show-misses", action="store_true", help="print each question and recommendation that missed")
    args = parser.parse_args()
    if args.users < 1:
        parser.error("--users must be at least 1")
    options = dict(option.split("=", 1) for option in args.option if "=" in option)
    asyncio.run(run(args.users, args.seed, args.embedder, options, args.show_misses))


if __name__ == "__main__":
    main()
