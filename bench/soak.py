"""Soak: many messages through the real CLI, SIGKILLs at random moments, then count.

    python bench/soak.py                           # 10,000 messages, 200 users (hours on 2 cores)
    python bench/soak.py --messages 100 --users 20 # a short run: a couple of minutes

Each message is one ``personabot ask TEXT --user U --id KEY`` subprocess on a shared
SQLite file, with a scripted model (no ML), ``--workers`` at a time. A fraction of
the runs (``--kill-rate``) is killed with SIGKILL at a moment drawn uniformly from
60-110 % of the median run time, i.e. mostly while the process opens the database,
stores the turn, generates or commits (the rest of a run is Python start-up). The
driver acts like a careful client: a run that did not exit 0 is retried with the
same --id until it does (the console's rule: exit 0 means stored and answered; a
retry with the same key never stores or answers a message twice).

At the end it reads the database and prints: messages sent, stored, answered, lost
(sent but not stored-and-answered), duplicated (stored twice, or answered twice, or
two different replies seen by the client), half-written turns, and PRAGMA
integrity_check (also run after every kill). ``--without-safety`` runs the core
without the safety feature, for comparison.

The child process runs the App with the safety feature only (personalization and
plugins add nothing to delivery and would load the embedder in every process).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import sys
import core.app
from core.safety import setup_safety
core.app.FEATURES[:] = [setup_safety] if sys.argv[1] == "safe" else []  # storage and delivery only
_enter = core.app.App.__aenter__
async def _announce(self):
    app = await _enter(self)
    sys.stderr.write("soak:ready\\n")  # the store is open: the message's database work starts now
    sys.stderr.flush()
    return app
core.app.App.__aenter__ = _announce
from bots.cli import main
sys.argv = ["personabot", *sys.argv[2:]]
main()
"""

BOT_FILE = """
name = "soak"
[model]
backend = "scripted"
replies = ["Reply A: 好的 👍", "Reply B: sure.", "Reply C: noted!"]
[storage]
path = "soak.db"
[limits]
user_messages_per_minute = 100000
user_burst = 100000
chat_messages_per_minute = 100000
chat_burst = 100000
"""


@dataclass
class Message:
    number: int
    user: str
    text: str

    @property
    def key(self) -> str:
        return f"m{self.number}"

    @property
    def event_id(self) -> str:
        return f"console:{self.user}:{self.key}"


@dataclass
class Tally:
    attempts: int = 0
    kills: Counter[str] = field(default_factory=Counter)  # by moment
    failed_exits: int = 0
    acked: set[str] = field(default_factory=set)
    replies_seen: dict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    totals: list[float] = field(default_factory=list)  # seconds per successful run
    tails: list[float] = field(default_factory=list)  # of which after the store was open
    integrity_after_kills: Counter[str] = field(default_factory=Counter)


def integrity(db: Path) -> str:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as raw:
        rows = raw.execute("PRAGMA integrity_check").fetchall()
    return "; ".join(str(row[0]) for row in rows)


async def run_once(args: argparse.Namespace, message: Message, workdir: Path, tally: Tally, rng: random.Random) -> bool:
    """One `personabot ask` run, maybe killed; True when it exited 0 with a reply.

    Half the kills land anywhere in the run (start-up, opening and migrating the
    database), half in the part after the store is open, where the turn is stored,
    generated, answered and committed.
    """
    mode = "bare" if args.without_safety else "safe"
    command = [sys.executable, "-c", CHILD, mode, "ask", message.text, "--bot", str(workdir / "bot.toml"),
               "--user", message.user, "--id", message.key]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PERSONABOT_DATA_DIR": str(workdir)}
    kill = None
    if tally.totals and rng.random() < args.kill_rate:
        kill = rng.choice(["anytime", "after open"])
    started = time.monotonic()
    tally.attempts += 1
    proc = await asyncio.create_subprocess_exec(
        *command, cwd=workdir, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    ready_at: list[float] = []

    async def watch_stderr() -> None:
        assert proc.stderr is not None
        async for line in proc.stderr:
            if line.startswith(b"soak:ready") and not ready_at:
                ready_at.append(time.monotonic())

    readers = [asyncio.create_task(proc.stdout.read()), asyncio.create_task(watch_stderr())]  # type: ignore[union-attr]
    exited = asyncio.create_task(proc.wait())
    killed = False
    try:
        if kill == "anytime":
            delay = rng.uniform(0, 1.1) * statistics.median(tally.totals[-200:])
            await asyncio.wait([exited], timeout=delay)
        elif kill == "after open":
            while not ready_at and not exited.done():
                await asyncio.wait([exited], timeout=0.005)
            if not exited.done():
                await asyncio.wait([exited], timeout=rng.uniform(0, 1.2) * statistics.median(tally.tails[-200:]))
        else:
            await asyncio.wait([exited], timeout=args.run_timeout)
        if not exited.done():
            try:
                proc.send_signal(signal.SIGKILL)
                killed = kill is not None
            except ProcessLookupError:  # it exited between the check and the signal
                pass
        await exited
        stdout, _ = await asyncio.gather(*readers)
    finally:
        for task in readers:
            task.cancel()
    if killed:
        tally.kills["with the store open" if ready_at else "before the store was open"] += 1
        tally.integrity_after_kills[await asyncio.to_thread(integrity, workdir / "soak.db")] += 1
        return False
    if proc.returncode != 0:
        tally.failed_exits += 1
        return False
    tally.totals.append(time.monotonic() - started)
    if ready_at:
        tally.tails.append(time.monotonic() - ready_at[0])
    reply = stdout.decode("utf-8", "replace").strip()
    tally.acked.add(message.key)
    tally.replies_seen[message.key].add(reply)
    return bool(reply)


async def drive(args: argparse.Namespace, workdir: Path) -> tuple[list[Message], Tally]:
    rng = random.Random(args.seed)
    users = [f"u{n:03d}" for n in range(args.users)]
    messages = [Message(n, rng.choice(users), f"message {n} 你好 👋 #{rng.randrange(10**6)}") for n in range(args.messages)]
    pending: deque[Message] = deque(messages)
    busy: set[str] = set()  # a user's messages go one after another, as a person types them
    tally = Tally()
    done = 0

    async def worker() -> None:
        nonlocal done
        while True:
            message = next((m for m in pending if m.user not in busy), None)
            if message is None:
                if not pending:
                    return
                await asyncio.sleep(0.01)
                continue
            pending.remove(message)
            busy.add(message.user)
            try:
                for _ in range(args.max_attempts):
                    if await run_once(args, message, workdir, tally, rng):
                        break
            finally:
                busy.discard(message.user)
            done += 1
            if done % max(1, args.messages // 10) == 0:
                print(f"  {done}/{args.messages} messages, {sum(tally.kills.values())} kills", flush=True)

    await asyncio.gather(*(worker() for _ in range(args.workers)))
    return messages, tally


def count(db: Path, messages: list[Message], tally: Tally) -> dict[str, int]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as raw:
        turns = raw.execute(
            """SELECT m.event_id, m.answered, (SELECT count(*) FROM messages r WHERE r.reply_to = m.id)
               FROM messages m WHERE m.role = 'user'"""
        ).fetchall()
        orphan_replies = raw.execute(
            """SELECT count(*) FROM messages r WHERE r.role = 'assistant'
               AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.id = r.reply_to AND m.role = 'user')"""
        ).fetchone()[0]
    by_event: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for event_id, answered, replies in turns:
        by_event[event_id].append((answered, replies))
    sent = {m.event_id for m in messages}
    stored = {e for e in sent if by_event.get(e)}
    answered = {e for e in stored if any(replies >= 1 for _, replies in by_event[e])}
    stored_twice = sum(len(rows) - 1 for e, rows in by_event.items() if e in sent and len(rows) > 1)
    answered_twice = sum(1 for rows in by_event.values() for _, replies in rows if replies > 1)
    client_saw_two = sum(1 for seen in tally.replies_seen.values() if len(seen) > 1)
    half_written = orphan_replies + sum(
        1 for rows in by_event.values() for flag, replies in rows if bool(flag) != (replies >= 1)
    )
    acked_not_answered = sum(1 for m in messages if m.key in tally.acked and m.event_id not in answered)
    return {
        "sent": len(sent),
        "stored": len(stored),
        "answered": len(answered),
        "lost": len(sent - answered),
        "acked but not answered": acked_not_answered,
        "duplicated": stored_twice + answered_twice + client_saw_two,
        "half-written turns": half_written,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2, help="ask processes at a time")
    parser.add_argument("--kill-rate", type=float, default=0.2, help="fraction of runs killed with SIGKILL")
    parser.add_argument("--max-attempts", type=int, default=20, help="retries per message before giving up")
    parser.add_argument("--run-timeout", type=float, default=120.0, help="a run slower than this counts as failed")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", type=Path, help="work in this folder and keep the database")
    parser.add_argument("--without-safety", action="store_true", help="the App without the safety feature")
    args = parser.parse_args()

    workdir = args.keep or Path(tempfile.mkdtemp(prefix="personabot-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "bot.toml").write_text(BOT_FILE, encoding="utf-8")
    print(
        f"soak: {args.messages} messages from {args.users} users, {args.workers} workers, "
        f"kill rate {args.kill_rate:g}, seed {args.seed}, {'without' if args.without_safety else 'with'} safety, in {workdir}"
    )
    started = time.monotonic()
    messages, tally = asyncio.run(drive(args, workdir))
    elapsed = time.monotonic() - started
    db = workdir / "soak.db"
    figures = count(db, messages, tally)
    kills = ", ".join(f"{moment}: {n}" for moment, n in sorted(tally.kills.items())) or "none"
    print(f"runs: {tally.attempts}; SIGKILLs: {sum(tally.kills.values())} ({kills}); failed exits: {tally.failed_exits}")
    print(f"median run {statistics.median(tally.totals):.2f} s, of which {statistics.median(tally.tails):.3f} s "
          f"with the store open; wall {elapsed:.0f} s")
    print(", ".join(f"{name} {value}" for name, value in figures.items()))
    after = ", ".join(f"{result}: {n}" for result, n in tally.integrity_after_kills.items()) or "no kills"
    print(f"integrity_check after each kill: {after}; at the end: {integrity(db)}")


if __name__ == "__main__":
    main()
