"""Soak of ``personabot run`` itself through the Telegram Bot API fake: one long-running bot
process (not a process per message), SIGKILLed at random intervals and restarted, while
the fake answers some calls with 429 ``retry_after`` and some with 5xx, and delays others.

    nice -n 10 python3 bench/soak_run.py --messages 10000 --users 500 --kills 20
    python3 bench/soak_run.py --messages 200 --users 40 --kills 3     # the suite's smoke size

Users write in DMs and in groups (every group message is answered: ``reply_all_chats``),
each waiting for the bot's answer before the next message, as people do. A reply is
matched to its message by ``reply_parameters`` (the bot quotes what it answers) or, where
it does not quote, per chat. Printed: messages sent, answered once, answered twice,
never answered, messages over the platform limit (Telegram refused them: 4096 UTF-16
units), limit violations measured at the fake (more than ``chat_messages_per_second`` in a
chat, ``group_messages_per_minute`` in a group, ``overall_messages_per_second`` in all
within any window of that length, less 50 ms of arrival jitter), ``integrity_check`` of
the database, and the run's time. The Discord soak is bench/soak_discord.py.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import signal
import sqlite3
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.adapters.telegram_fake_server import TOKEN, FakeBotAPI  # noqa: E402

BOT_FILE = """
name = "soak"
features = ["safety"]
[model]
backend = "scripted"
replies = ["Got it, thanks for telling me.", "I see. Tell me more?", "好的，明白了。"]
[storage]
path = "{database}"
[console]
enabled = false
[limits]
user_burst = 100000
chat_burst = 100000
user_messages_per_minute = 100000
chat_messages_per_minute = 100000
[telegram]
enabled = true
api_base_url = "{base_url}"
private_streaming = "final"
group_streaming = "final"
reply_all_chats = {groups}
"""
CHAT_PER_S, GROUP_PER_MIN, GLOBAL_PER_S = 1.0, 20.0, 30.0  # the adapter's defaults (adapters/telegram/settings.py)
TOLERANCE_S = 0.05  # arrival jitter: two sends 0.99 s apart at the fake were spaced 1 s by the bot


class Posts:
    """What the bot posted in each chat, as a signal users wait on. They wait on this rather
    than polling: 500 users polling every 50 ms kept the fake's loop too busy to read
    requests promptly (a kill's reset then threw away requests already delivered, and
    arrival times bunched into windows over budget)."""

    def __init__(self) -> None:
        self._waiting: dict[str, asyncio.Event] = {}

    def posted(self, chat: object) -> None:
        if (waiting := self._waiting.pop(str(chat), None)) is not None:
            waiting.set()

    async def wait(self, chat: object, timeout: float) -> bool:
        """Until the bot posts in ``chat``; False after ``timeout``."""
        try:
            await asyncio.wait_for(self._waiting.setdefault(str(chat), asyncio.Event()).wait(), timeout)
        except TimeoutError:
            return False
        return True


class SoakAPI(FakeBotAPI):
    """The fake with a slow network on some calls and failures drawn at random."""

    def __init__(self, rng: random.Random, *, flood_rate: float, error_rate: float, slow_rate: float) -> None:
        super().__init__()
        self.rng, self.flood_rate, self.error_rate, self.slow_rate = rng, flood_rate, error_rate, slow_rate
        self.per_chat: Counter[int] = Counter()  # messages the bot put in each chat
        self.quoted: Counter[tuple[int, int]] = Counter()  # (chat, message id) -> bot messages quoting it
        self.posts = Posts()

    async def _m_sendMessage(self, params, files):  # type: ignore[no-untyped-def]
        result = await super()._m_sendMessage(params, files)
        self.per_chat[int(params["chat_id"])] += 1
        if "reply_to_message_id" in result:
            self.quoted[(int(params["chat_id"]), int(result["reply_to_message_id"]))] += 1
        self.posts.posted(int(params["chat_id"]))
        return result

    async def _handle(self, request):  # type: ignore[no-untyped-def]
        method = request.match_info["method"]
        if method == "sendMessage":
            draw = self.rng.random()
            if draw < self.flood_rate:
                self.flood("sendMessage", retry_after=1)
            elif draw < self.flood_rate + self.error_rate:
                self.fail("sendMessage", status=502 if self.rng.random() < 0.5 else 500)
        return await super()._handle(request)  # recorded on arrival: the rates are measured as Telegram would

    async def _on_the_way_back(self, method: str) -> None:
        if method != "getUpdates" and self.rng.random() < self.slow_rate:
            await asyncio.sleep(self.rng.uniform(0.2, 1.5))  # a slow network on the way back


@dataclass
class Tally:
    sent: dict[tuple[int, int], str] = field(default_factory=dict)  # (chat, message id) -> text
    kills: int = 0
    restarts: int = 0
    kill_times: list[float] = field(default_factory=list)  # loop time of each SIGKILL (as the fake's call times)


def bot_process(folder: Path) -> asyncio.subprocess.Process:
    env = {**os.environ, "TELEGRAM_BOT_TOKEN": TOKEN, "PERSONABOT_DATA_DIR": str(folder)}
    return asyncio.create_subprocess_exec(  # type: ignore[return-value]
        sys.executable, "-m", "bots.cli", "run", str(folder / "bot.toml"), cwd=ROOT, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=open(folder / "bot.log", "ab"),
    )


def replies_by_message(api: FakeBotAPI) -> tuple[Counter[tuple[int, int]], Counter[int]]:
    """Successful bot messages: by the (chat, message) they quote, and per chat for the rest."""
    quoted: Counter[tuple[int, int]] = Counter()
    unquoted: Counter[int] = Counter()
    for call in api.calls_of("sendMessage", ok=True):
        chat = int(call.params["chat_id"])
        reply = call.params.get("reply_parameters")
        reply = json.loads(reply) if isinstance(reply, str) else reply
        if isinstance(reply, dict) and "message_id" in reply:
            quoted[(chat, int(reply["message_id"]))] += 1
        else:
            unquoted[chat] += 1
    return quoted, unquoted


def count_answers(
    sent: dict[tuple[int, int], str], quoted: Counter[tuple[int, int]], unquoted: Counter[int],
    in_bursts: set[tuple[int, int]],
) -> tuple[int, int, Counter[int]]:
    """(answered once, twice, never answered by chat): quoted replies by message, the rest per chat."""
    once = twice = 0
    never: Counter[int] = Counter()
    for where in sent:
        got = quoted.get(where, 0)
        once += got == 1 or (got == 0 and where in in_bursts)
        twice += got >= 2
    sent_by_chat: Counter[int] = Counter(chat for chat, _ in sent)
    for chat, count in sent_by_chat.items():  # messages the bot answered without quoting: per chat
        settled_here = sum(1 for where in sent if where[0] == chat and (quoted.get(where, 0) or where in in_bursts))
        rest = count - settled_here
        extra = unquoted.get(chat, 0)
        once += min(rest, extra)
        twice += max(0, extra - rest)
        never[chat] += max(0, rest - extra)
    return once, twice, +never


def refused_in_flight(api: FakeBotAPI, kills: list[float]) -> set[int]:
    """Chats where a message call was refused (429, 5xx) and a kill came before the refusal
    reached the bot: the killed process never learnt that nothing was shown."""
    return {
        int(call.params["chat_id"]) for call in api.calls
        if call.method in ("sendMessage", "editMessageText", "sendDocument") and call.status != 200
        and any(call.at <= kill and (call.left is None or kill <= call.left) for kill in kills)
    }


def violations(api: FakeBotAPI, groups: set[int]) -> dict[str, int]:
    """Windows in which the bot sent more than the platform allows, measured at the fake."""
    times: dict[int, list[float]] = defaultdict(list)
    every: list[float] = []
    for call in api.calls:
        if call.method in ("sendMessage", "editMessageText", "sendDocument") and call.status == 200:
            times[int(call.params["chat_id"])].append(call.at)
            every.append(call.at)

    def over(stamps: list[float], count: float, window: float) -> int:
        stamps, found, start = sorted(stamps), 0, 0
        for end, stamp in enumerate(stamps):
            while stamp - stamps[start] >= window - TOLERANCE_S:
                start += 1
            found += end - start + 1 > count
        return found

    per_chat = sum(over(s, CHAT_PER_S, 1.0) for chat, s in times.items() if chat not in groups)
    per_group = sum(over(s, GROUP_PER_MIN, 60.0) for chat, s in times.items() if chat in groups)
    return {"per-chat": per_chat, "per-group": per_group, "global": over(every, GLOBAL_PER_S, 1.0)}


async def soak(args: argparse.Namespace) -> dict[str, object]:
    rng = random.Random(args.seed)
    folder = Path(tempfile.mkdtemp(prefix="soak-run-"))
    api = await SoakAPI(rng, flood_rate=args.flood_rate, error_rate=args.error_rate, slow_rate=args.slow_rate).start()
    groups = [-(1000 + n) for n in range(max(1, args.users // 25))]
    (folder / "bot.toml").write_text(BOT_FILE.format(base_url=api.base_url, database=folder / "soak.db", groups=json.dumps([str(g) for g in groups])),
                                     encoding="utf-8")
    tally = Tally()
    users = list(range(10_000, 10_000 + args.users))
    per_user = [args.messages // args.users + (1 if n < args.messages % args.users else 0) for n in range(args.users)]
    process = await bot_process(folder)
    started = time.monotonic()
    done = asyncio.Event()

    async def killer() -> None:
        nonlocal process
        while not done.is_set():
            await asyncio.sleep(rng.uniform(0.5, 2.0) * args.kill_every)
            if done.is_set() or tally.kills >= args.kills:
                return
            process.send_signal(signal.SIGKILL)
            tally.kill_times.append(asyncio.get_running_loop().time())
            await process.wait()
            tally.kills += 1
            process = await bot_process(folder)
            tally.restarts += 1

    async def user(uid: int, count: int) -> None:
        for n in range(count):
            in_group = rng.random() < args.group_share
            chat = rng.choice(groups) if in_group else uid
            text = f"message {n} from {uid}: " + rng.choice(["I live in Berlin", "我喜欢音乐", "what's up?", "tell me a joke"])
            update = api.message_update(text, chat_id=chat, user_id=uid, first_name=f"U{uid}")
            message_id = update["message"]["message_id"]
            tally.sent[(chat, message_id)] = text
            api.updates.append(update)
            api._notify_soon()
            before = api.per_chat[chat]

            def answered() -> bool:  # in a group, the answer quotes the message; in a DM, it is the next one
                return api.quoted[(chat, message_id)] > 0 or (not in_group and api.per_chat[chat] > before)

            deadline = time.monotonic() + args.patience
            while not answered() and await api.posts.wait(chat, deadline - time.monotonic()):
                pass  # wait for the answer, as people do

    kill_task = asyncio.create_task(killer())
    await asyncio.gather(*(user(uid, count) for uid, count in zip(users, per_user)))
    done.set()
    await kill_task
    settle = time.monotonic() + args.settle
    while time.monotonic() < settle and sum(api.per_chat.values()) < len(tally.sent):
        await asyncio.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), 30)
    except TimeoutError:
        process.kill()
    elapsed = time.monotonic() - started

    quoted, unquoted = replies_by_message(api)
    with sqlite3.connect(folder / "soak.db") as db:
        integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
        turns = db.execute("SELECT text, answered FROM messages WHERE role = 'user'").fetchall()
    stored = {line for text, _ in turns for line in text.split("\n")}
    unanswered = sum(1 for _, answered in turns if not answered)
    by_text = {text: where for where, text in tally.sent.items()}
    in_bursts = {  # messages answered by one reply together with the user's next ones (core/bursts.py)
        by_text[line] for text, answered in turns if answered and "\n" in text
        for line in text.split("\n") if line in by_text and not quoted.get(by_text[line])
    }
    once, twice, never = count_answers(tally.sent, quoted, unquoted, in_bursts)
    in_flight = refused_in_flight(api, tally.kill_times)
    over_limit = len([c for c in api.calls if c.method == "sendMessage" and c.status == 400])
    with (folder / "calls.jsonl").open("w", encoding="utf-8") as dump:  # for a closer look at a run
        for call in api.calls:
            if call.method in ("sendMessage", "editMessageText", "sendDocument"):
                dump.write(json.dumps([call.method, call.params.get("chat_id"), call.at, call.status]) + "\n")
        dump.write(json.dumps(["kills", tally.kill_times]) + "\n")
    delivered = {u["message"]["text"] for u in api.delivered if "message" in u}
    queued = {u["message"]["text"] for u in api.updates if "message" in u}
    await api.close()
    return {
        "messages sent": len(tally.sent), "users": args.users, "groups": len(groups),
        "answered once": once, "answered twice": twice, "never answered": sum(never.values()),
        "answered once: together with the next ones (a burst answered as one turn)": len(in_bursts),
        "never answered: delivered to a bot process, never stored": len(delivered - stored),
        "never answered: still queued at the fake (not yet fetched)": len(queued - delivered),
        "never answered: stored, not answered (sends failed after retries)": unanswered,
        "never answered: a kill came while a 429 or 5xx for the chat was on its way back (the bot counts an "
        "answer it never got as shown)": sum(count for chat, count in never.items() if chat in in_flight),
        "requests of any method a kill cut off before the fake read them": api.cut_off,
        "over the platform limit": over_limit, "limit violations": violations(api, set(groups)),
        "429 answered": len([c for c in api.calls if c.status == 429]),
        "5xx answered": len([c for c in api.calls if c.status >= 500]),
        "kills (SIGKILL)": tally.kills, "restarts": tally.restarts,
        "integrity_check": integrity, "seconds": round(elapsed, 1), "folder": str(folder),
    }


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--kill-every", type=float, default=15.0, help="mean seconds between kills")
    parser.add_argument("--group-share", type=float, default=0.3)
    parser.add_argument("--flood-rate", type=float, default=0.01, help="share of sendMessage calls answered 429")
    parser.add_argument("--error-rate", type=float, default=0.02, help="share answered 5xx")
    parser.add_argument("--slow-rate", type=float, default=0.05, help="share of calls delayed 0.2-1.5 s")
    parser.add_argument("--patience", type=float, default=60.0, help="seconds a user waits for an answer")
    parser.add_argument("--settle", type=float, default=90.0, help="seconds to wait for the last answers")
    parser.add_argument("--seed", type=int, default=15)
    result = asyncio.run(soak(parser.parse_args(argv)))
    for name, value in result.items():
        print(f"{name}: {value}")
    return result


if __name__ == "__main__":
    main()
