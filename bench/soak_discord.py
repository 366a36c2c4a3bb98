"""Soak of ``personabot run`` through the Discord REST + gateway fake: one long-running bot
process, SIGKILLed at random and restarted, its gateway connection dropped at random
(half of the drops RESUME, half lose the session and IDENTIFY again), while the fake
answers some message calls with 429 ``retry_after`` and some with 5xx, and delays others.

    nice -n 10 python3 bench/soak_discord.py --messages 10000 --users 500 --kills 20
    python3 bench/soak_discord.py --messages 200 --users 40 --kills 3     # the suite's smoke size

Users write in DMs and in server channels the bot answers in full (``[discord]
channels``), each waiting for the answer before the next message. Messages sent while
the bot is down stay in the channel's history only (Discord delivers nothing to a dead
process, and a new session gets no replay): the bot reads them at its next READY
(adapters/discord/catchup.py). A reply is matched to its message by its reference (in
servers) or per channel (DMs). Printed, as bench/soak_run.py: messages sent, answered
once / twice / never, messages over 2,000 characters, rate violations measured at the
fake (more than 5 messages in a channel in any 5 s, 50 requests in all in any second,
less 50 ms of jitter), gateway drops (RESUMEs, re-IDENTIFYs), ``integrity_check``.
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

from aiohttp import web  # noqa: E402

from bench.soak_run import TOLERANCE_S, Posts, count_answers  # noqa: E402
from tests.adapters.discord_fake_server import FakeDiscord, _json  # noqa: E402

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
[discord]
enabled = true
api_base_url = "{base_url}"
stream = false
channels = {channels}
"""
CHANNEL_COUNT, CHANNEL_PERIOD_S, GLOBAL_PER_S = 5, 5.0, 50  # Discord's message budgets
MAX_CHARS = 2000
MESSAGE_CALL = r"channels/\d+/messages(/\d+)?"


class SoakDiscord(FakeDiscord):
    """The fake with failures drawn at random on message calls and a slow network on some."""

    def __init__(self, rng: random.Random, *, flood_rate: float, error_rate: float, slow_rate: float) -> None:
        super().__init__()
        self.rng, self.flood_rate, self.error_rate, self.slow_rate = rng, flood_rate, error_rate, slow_rate
        self.sent_at: list[tuple[str, float]] = []  # (channel, loop time) of each message the bot made or edited
        self.per_channel: Counter[str] = Counter()
        self.answers: Counter[tuple[int, int]] = Counter()  # (channel, message id) -> calls referencing it (a waiting user sees one)
        self.too_long = 0
        self.statuses: Counter[int] = Counter()
        self.posts = Posts()

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        path = request.match_info["path"]
        if request.method in ("POST", "PATCH") and path.startswith("channels/") and "/messages" in path:
            draw = self.rng.random()
            if draw < self.flood_rate:
                self.statuses[429] += 1
                self.calls.append(await self._read_call(request))
                body = {"message": "You are being rate limited.", "retry_after": 1.0, "global": False, "code": 0}
                return _json(body, status=429, headers={"Retry-After": "1", "X-RateLimit-Scope": "user", "Via": "1.1 google"})
            if draw < self.flood_rate + self.error_rate:
                self.statuses[500] += 1
                self.calls.append(await self._read_call(request))
                return _json({"message": "fake 500", "code": 0}, status=500)
        response = await super()._rest(request)
        if self.rng.random() < self.slow_rate:
            await asyncio.sleep(self.rng.uniform(0.2, 1.5))  # a slow network on the way back
        return response

    def _route(self, call):  # type: ignore[no-untyped-def]
        response = super()._route(call)
        if call.method in ("POST", "PATCH") and response.status == 200 and call.path.startswith("channels/"):
            channel = call.path.split("/")[1]
            body = call.body or {}
            if len(body.get("content") or "") > MAX_CHARS:
                self.too_long += 1
            self.sent_at.append((channel, asyncio.get_running_loop().time()))
            if call.method == "POST":
                self.per_channel[channel] += 1
                reference = body.get("message_reference")
                if reference:
                    self.answers[(int(channel), int(reference["message_id"]))] += 1
                self.posts.posted(channel)
        return response


@dataclass
class Tally:
    sent: dict[tuple[int, int], str] = field(default_factory=dict)  # (channel, message id) -> text
    kills: int = 0
    resumes: int = 0
    reidentifies: int = 0


def bot_process(folder: Path, token: str) -> asyncio.subprocess.Process:
    env = {**os.environ, "DISCORD_BOT_TOKEN": token, "PERSONABOT_DATA_DIR": str(folder)}
    return asyncio.create_subprocess_exec(  # type: ignore[return-value]
        sys.executable, "-m", "bots.cli", "run", str(folder / "bot.toml"), cwd=ROOT, env=env,
        stdout=asyncio.subprocess.DEVNULL, stderr=open(folder / "bot.log", "ab"),
    )


def violations(fake: SoakDiscord) -> dict[str, int]:
    def over(stamps: list[float], count: int, window: float) -> int:
        stamps, found, start = sorted(stamps), 0, 0
        for end, stamp in enumerate(stamps):
            while stamp - stamps[start] >= window - TOLERANCE_S:
                start += 1
            found += end - start + 1 > count
        return found

    by_channel: dict[str, list[float]] = defaultdict(list)
    for channel, at in fake.sent_at:
        by_channel[channel].append(at)
    per_channel = sum(over(times, CHANNEL_COUNT, CHANNEL_PERIOD_S) for times in by_channel.values())
    return {"per-channel": per_channel, "global": over([at for _, at in fake.sent_at], GLOBAL_PER_S, 1.0)}


async def soak(args: argparse.Namespace) -> dict[str, object]:
    rng = random.Random(args.seed)
    folder = Path(tempfile.mkdtemp(prefix="soak-discord-"))
    async with SoakDiscord(rng, flood_rate=args.flood_rate, error_rate=args.error_rate, slow_rate=args.slow_rate) as fake:
        guild = fake.add_guild()
        channels = [fake.add_channel(guild) for _ in range(max(1, args.users // 25))]
        (folder / "bot.toml").write_text(
            BOT_FILE.format(base_url=fake.base_url, database=folder / "soak.db", channels=json.dumps([str(c) for c in channels])),
            encoding="utf-8",
        )
        tally = Tally()
        users = list(range(700_000_000_000_000_100, 700_000_000_000_000_100 + args.users))
        per_user = [args.messages // args.users + (1 if n < args.messages % args.users else 0) for n in range(args.users)]
        process = await bot_process(folder, fake.token)
        started = time.monotonic()
        done = asyncio.Event()
        await fake.wait_for(lambda: fake.sessions, timeout=120)

        async def killer() -> None:
            nonlocal process
            while not done.is_set() and tally.kills < args.kills:
                await asyncio.sleep(rng.uniform(0.5, 2.0) * args.kill_every)
                if done.is_set():
                    return
                process.send_signal(signal.SIGKILL)
                await process.wait()
                fake.sessions.clear()  # a dead client's session delivers nothing (a new process IDENTIFYs)
                tally.kills += 1
                process = await bot_process(folder, fake.token)

        async def dropper() -> None:
            while not done.is_set():
                await asyncio.sleep(rng.uniform(0.5, 2.0) * args.drop_every)
                session = fake.sessions.get(0)
                if done.is_set() or session is None or session.ws.closed:
                    continue
                forget = rng.random() < 0.5
                await fake.drop_connection(4000, forget=forget)
                tally.reidentifies += forget
                tally.resumes += not forget

        async def user(uid: int, count: int) -> None:
            dm = 10**17 + uid % 10**17  # the DM channel the fake gives this user
            for n in range(count):
                in_channel = rng.random() < args.group_share
                channel = rng.choice(channels) if in_channel else dm
                text = f"message {n} from {uid}: " + rng.choice(["I live in Berlin", "我喜欢音乐", "what's up?", "tell me a joke"])
                payload = fake.message(channel, uid, text, name=f"u{uid}")
                message_id = int(payload["id"])
                tally.sent[(channel, message_id)] = text
                before = fake.per_channel[str(channel)]
                await fake.post(payload)

                def answered() -> bool:
                    return fake.answers[(channel, message_id)] > 0 or (not in_channel and fake.per_channel[str(channel)] > before)

                deadline = time.monotonic() + args.patience
                while not answered() and await fake.posts.wait(channel, deadline - time.monotonic()):
                    pass  # wait for the answer, as people do

        tasks = [asyncio.create_task(killer()), asyncio.create_task(dropper())]
        await asyncio.gather(*(user(uid, count) for uid, count in zip(users, per_user)))
        done.set()
        for task in tasks:  # they sleep between kills and drops: nothing is half done when cancelled there
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        settle = time.monotonic() + args.settle
        while time.monotonic() < settle and sum(fake.per_channel.values()) < len(tally.sent):
            await asyncio.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 30)
        except TimeoutError:
            process.kill()
        elapsed = time.monotonic() - started

        # Counted from the messages in the channels, not from calls: a send that Discord
        # answered with the message its nonce already made is no second answer.
        quoted: Counter[tuple[int, int]] = Counter()
        unquoted: Counter[int] = Counter()
        for message in fake.messages.values():
            reference = message.get("message_reference")
            if reference:
                quoted[(int(message["channel_id"]), int(reference["message_id"]))] += 1
            else:
                unquoted[int(message["channel_id"])] += 1
        with sqlite3.connect(folder / "soak.db") as db:
            integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
            turns = db.execute("SELECT text, answered FROM messages WHERE role = 'user'").fetchall()
        by_text = {text: where for where, text in tally.sent.items()}
        in_bursts = {
            by_text[line] for text, answered in turns if answered and "\n" in text
            for line in text.split("\n") if line in by_text and not quoted.get(by_text[line])
        }
        stored = {line for text, _ in turns for line in text.split("\n")}
        once, twice, never = count_answers(tally.sent, quoted, unquoted, in_bursts)
        lost = [[channel, message_id, text] for (channel, message_id), text in tally.sent.items() if text not in stored]
        dm_known_from = {}  # DM channel -> id of its first stored message (from then on a process knew it)
        for (channel, message_id), text in tally.sent.items():
            if channel not in channels and text in stored:
                dm_known_from[channel] = min(message_id, dm_known_from.get(channel, message_id))
        unknown_dm = sum(1 for channel, message_id, _ in lost
                         if channel not in channels and message_id < dm_known_from.get(channel, 1 << 63))
        (folder / "never_stored.json").write_text(json.dumps(lost, ensure_ascii=False, indent=0), encoding="utf-8")
        (folder / "answered_twice.json").write_text(
            json.dumps(twice_answered(fake, tally, quoted, unquoted), ensure_ascii=False, indent=1), encoding="utf-8")
        return {
            "messages sent": len(tally.sent), "users": args.users, "server channels": len(channels),
            "answered once": once, "answered twice": twice, "never answered": sum(never.values()),
            "answered once: together with the next ones (a burst answered as one turn)": len(in_bursts),
            "never answered: never stored": len(set(tally.sent.values()) - stored),
            "never stored: in a DM channel no process had recorded yet": unknown_dm,
            "never answered: stored, not answered": sum(1 for _, answered in turns if not answered),
            "over the platform limit": fake.too_long, "limit violations": violations(fake),
            "429 answered": fake.statuses[429], "5xx answered": fake.statuses[500],
            "kills (SIGKILL)": tally.kills, "gateway drops resumed": tally.resumes,
            "gateway drops re-identified": tally.reidentifies, "RESUMEs seen": fake.resumes, "IDENTIFYs seen": fake.identifies,
            "integrity_check": integrity, "seconds": round(elapsed, 1), "folder": str(folder),
        }


def twice_answered(fake: SoakDiscord, tally: Tally, quoted: Counter[tuple[int, int]], unquoted: Counter[int]) -> dict[str, list]:
    """For diagnosis: each message quoted twice, and each chat with more unquoted replies than
    messages left to answer, as its timeline (user messages and the bot's, with nonce and reference)."""
    nonce_of = {message_id: nonce for nonce, message_id in fake.nonces.items()}
    sent_in: Counter[int] = Counter(chat for chat, _ in tally.sent)
    settled: Counter[int] = Counter(chat for chat, message_id in tally.sent if quoted.get((chat, message_id)))
    chats = {chat for (chat, _), got in quoted.items() if got >= 2}
    chats |= {chat for chat, extra in unquoted.items() if extra > sent_in[chat] - settled[chat]}
    out: dict[str, list] = {}
    for chat in sorted(chats):
        timeline = [(message_id, "user", text, "", "") for (where, message_id), text in tally.sent.items() if where == chat]
        timeline += [(int(m["id"]), "bot", m.get("content") or "", nonce_of.get(int(m["id"]), ""),
                      (m.get("message_reference") or {}).get("message_id", ""))
                     for m in fake.messages.values() if int(m["channel_id"]) == chat]
        out[str(chat)] = sorted(timeline)
    return out


def main(argv: list[str] | None = None) -> dict[str, object]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--kills", type=int, default=20)
    parser.add_argument("--kill-every", type=float, default=15.0, help="mean seconds between kills")
    parser.add_argument("--drop-every", type=float, default=20.0, help="mean seconds between gateway drops")
    parser.add_argument("--group-share", type=float, default=0.3, help="share of messages in server channels")
    parser.add_argument("--flood-rate", type=float, default=0.01, help="share of message calls answered 429")
    parser.add_argument("--error-rate", type=float, default=0.02, help="share answered 500")
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
