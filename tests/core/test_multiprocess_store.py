"""Several processes on one database: jobs claimed once, a dead claimer's jobs retried,
quotas shared and kept across a restart, and SQLite refusing a second process.

Child processes are real (``python -c``), each with its own store and connections.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from core.errors import StorageError
from core.storage.postgres import PostgresStore
from core.storage.sqlite import SQLiteStore
from tests.postgres_server import pg_server, pg_url  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]
T0 = 1_000_000.0


def _child(body: str, *args: str) -> subprocess.Popen:
    script = textwrap.dedent(
        f"""
        import asyncio, os, signal, sys
        sys.path.insert(0, {str(ROOT)!r})
        from core.storage.postgres import PostgresStore
        from core.storage.sqlite import SQLiteStore
        """
    ) + textwrap.dedent(body)
    return subprocess.Popen([sys.executable, "-c", script, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def _finish(child: subprocess.Popen, timeout: float = 60) -> tuple[int, str, str]:
    out, err = child.communicate(timeout=timeout)
    return child.returncode, out.decode(), err.decode()


DELIVER = """
async def main(url, owner):
    async with PostgresStore(url) as store:
        delivered = 0
        while jobs := await store.claim_jobs({now}, ["remind"], [], owner=owner, lease_s=60.0, limit=5):
            for job in jobs:
                async def record(conn, job=job):
                    await conn.execute("INSERT INTO deliveries (job_id, owner) VALUES ($1, $2)", job.id, owner)
                await store.run_on_connection("deliver", record)
                await store.delete_job(job.id)
                delivered += 1
        print(delivered)

asyncio.run(main(sys.argv[1], sys.argv[2]))
"""


async def _deliveries(url: str) -> list[tuple[int, str]]:
    async with PostgresStore(url) as store:
        rows = await store.run_on_connection("read", lambda c: c.fetch("SELECT job_id, owner FROM deliveries"))
        return [(row[0], row[1]) for row in rows]


async def _prepare_jobs(url: str, count: int) -> list[int]:
    async with PostgresStore(url) as store:
        await store.run_on_connection("setup", lambda c: c.execute(
            "CREATE TABLE deliveries (job_id BIGINT NOT NULL, owner TEXT NOT NULL)"))
        return [(await store.add_job("remind", "ping", T0 + i)).id for i in range(count)]


async def test_two_processes_deliver_each_due_job_exactly_once(pg_url):
    ids = await _prepare_jobs(pg_url, 120)
    children = [_child(DELIVER.format(now=T0 + 1000), pg_url, f"worker-{n}") for n in range(2)]
    results = [_finish(child) for child in children]
    assert [code for code, _, _ in results] == [0, 0], [err for _, _, err in results]
    delivered = await _deliveries(pg_url)
    assert sorted(job for job, _ in delivered) == ids  # all of them, none twice
    assert sum(int(out) for _, out, _ in results) == len(ids)


async def test_a_claimer_killed_before_marking_its_jobs_sent_leaves_them_to_another(pg_url):
    ids = await _prepare_jobs(pg_url, 10)
    killed = _child(
        f"""
        async def main(url):
            async with PostgresStore(url) as store:
                jobs = await store.claim_jobs({T0 + 100}, ["remind"], [], owner="doomed", lease_s=60.0)
                print(len(jobs), flush=True)
                os.kill(os.getpid(), signal.SIGKILL)  # claimed, never delivered

        asyncio.run(main(sys.argv[1]))
        """,
        pg_url,
    )
    code, out, err = _finish(killed)
    assert code == -signal.SIGKILL and out.strip() == "10", err
    # While the dead claimer's lease lasts nobody takes the jobs; once it has run out, another process does.
    early = _finish(_child(DELIVER.format(now=T0 + 159), pg_url, "survivor"))
    assert early[:2] == (0, "0\n"), early[2]
    late = _finish(_child(DELIVER.format(now=T0 + 160), pg_url, "survivor"))
    assert late[:2] == (0, "10\n"), late[2]
    assert sorted(job for job, _ in await _deliveries(pg_url)) == ids


QUOTA = """
async def main(url):
    async with PostgresStore(url) as store:
        allowed = await asyncio.gather(*(store.use_quota("user:telegram:1", "2026-12-01", 25) for _ in range(20)))
        print(sum(allowed))

asyncio.run(main(sys.argv[1]))
"""


async def test_a_quota_is_shared_by_processes_and_survives_a_restart(pg_url):
    async with PostgresStore(pg_url):
        pass  # the schema exists before the children start (they could also race to migrate: see test_postgres_store)
    children = [_child(QUOTA, pg_url) for _ in range(3)]
    results = [_finish(child) for child in children]
    assert all(code == 0 for code, _, _ in results), [err for _, _, err in results]
    assert sum(int(out) for _, out, _ in results) == 25  # 60 asked, the quota's 25 granted in all
    async with PostgresStore(pg_url) as restarted:
        assert await restarted.quota_used("user:telegram:1", "2026-12-01") == 25
        assert await restarted.use_quota("user:telegram:1", "2026-12-01", 25) is False


async def test_a_second_bot_process_on_one_sqlite_file_is_refused_naming_postgresql(tmp_path):
    path = tmp_path / "bot.db"
    holder = _child(
        """
        async def main(path):
            async with SQLiteStore(path) as store:
                await store.claim_bot_process()
                print("serving", flush=True)
                await asyncio.sleep(60)

        asyncio.run(main(sys.argv[1]))
        """,
        str(path),
    )
    try:
        assert holder.stdout.readline().decode().strip() == "serving"
        async with SQLiteStore(path) as tool:  # an operator tool beside the running bot
            await tool.touch_user("telegram:1", "Ann")
            assert (await tool.forget_user("telegram:1"))["users"] == 1
            with pytest.raises(StorageError, match="another personabot process.*PostgreSQL"):
                await tool.claim_bot_process()  # a second bot process
    finally:
        holder.kill()
        holder.wait()
    async with SQLiteStore(path) as store:  # the lock went with the process
        await store.claim_bot_process()


async def test_any_number_of_bot_processes_may_share_postgresql(pg_url):
    async with PostgresStore(pg_url) as one, PostgresStore(pg_url) as two:
        await one.claim_bot_process()
        await two.claim_bot_process()


def test_the_claim_ends_when_the_store_closes(tmp_path):
    async def twice() -> None:
        for _ in range(2):
            async with SQLiteStore(tmp_path / "bot.db") as store:
                await store.claim_bot_process()

    asyncio.run(twice())
