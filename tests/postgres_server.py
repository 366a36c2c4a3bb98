"""A throwaway PostgreSQL server from the installed binaries, for tests and benchmarks.

``PostgresServer().start()`` runs initdb into a fresh temp folder and starts the server
on a free 127.0.0.1 port with password authentication (scram-sha-256) for TCP. When
this process is root (as CI is), the server runs as an unprivileged user (``postgres``
if it exists, else ``nobody``): PostgreSQL refuses to run as root.

The binaries are looked up in $PG_BIN, then ``pg_config --bindir``, then the Debian
layout (/usr/lib/postgresql/*/bin), then $PATH. ``find_binaries()`` returns None when no
server is installed; the tests then skip, except under ``CI=true`` where a missing
server is a failure (a green CI must not hide an untested backend).
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

SUPERUSER = "personabot"
PASSWORD = "test-password-" + uuid.uuid4().hex[:8]


def find_binaries() -> Path | None:
    """The folder holding initdb, pg_ctl and postgres, or None."""
    candidates = [os.environ.get("PG_BIN", "")]
    pg_config = shutil.which("pg_config")
    if pg_config:
        found = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        candidates.append(found.stdout.strip())
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    which = shutil.which("pg_ctl")
    if which:
        candidates.append(str(Path(which).resolve().parent))
    for folder in filter(None, candidates):
        if all((Path(folder) / tool).exists() for tool in ("initdb", "pg_ctl", "postgres")):
            return Path(folder)
    return None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _server_user() -> pwd.struct_passwd | None:
    """Who runs the server: None for the current user, an unprivileged one for root."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise RuntimeError("running as root and no unprivileged user (postgres, nobody) to run PostgreSQL as")


class PostgresServer:
    """One server in a temp folder; ``durable=False`` (tests) turns fsync off for speed."""

    def __init__(self, *, durable: bool = False, options: dict[str, str] | None = None) -> None:
        binaries = find_binaries()
        if binaries is None:
            raise RuntimeError("no PostgreSQL server binaries (initdb, pg_ctl, postgres) are installed")
        self.bin = binaries
        self.durable = durable
        self.options = dict(options or {})  # extra server settings (-c name=value)
        self.port = 0
        self.folder = Path(tempfile.mkdtemp(prefix="personabot-pg-"))
        self.data = self.folder / "data"
        self._user = _server_user()
        self._started = False

    def url(self, database: str = "postgres", *, password: bool = True) -> str:
        secret = f":{PASSWORD}" if password else ""
        return f"postgresql://{SUPERUSER}{secret}@127.0.0.1:{self.port}/{database}"

    def _run(self, *args: str) -> None:
        extra = {} if self._user is None else {"user": self._user.pw_uid, "group": self._user.pw_gid}
        result = subprocess.run(args, capture_output=True, text=True, cwd=self.folder, timeout=120, **extra)
        if result.returncode:
            raise RuntimeError(f"{Path(args[0]).name} failed ({result.returncode}): {result.stderr or result.stdout}")

    def start(self) -> "PostgresServer":
        pwfile = self.folder / "pwfile"
        pwfile.write_text(PASSWORD + "\n")
        if self._user is not None:
            for path in (self.folder, pwfile):
                os.chown(path, self._user.pw_uid, self._user.pw_gid)
        self._run(
            str(self.bin / "initdb"), "-D", str(self.data), "-U", SUPERUSER, f"--pwfile={pwfile}",
            "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8",
        )
        self.port = _free_port()
        self.resume()
        return self

    def resume(self) -> None:
        """Start the server on its data folder and port (after ``start``, or ``pause``)."""
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c max_connections=200"
        if not self.durable:
            options += " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        options += "".join(f" -c {name}={value}" for name, value in self.options.items())
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-o", options, "-l", str(self.folder / "log"),
                  "-w", "-t", "60", "start")
        self._started = True

    def pause(self) -> None:
        """Stop the server, keeping its data (the database "goes away")."""
        self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
        self._started = False

    def stop(self) -> None:
        if self._started:
            self._started = False
            try:
                self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "-w", "stop")
            except RuntimeError:
                pass
        shutil.rmtree(self.folder, ignore_errors=True)

    async def create_database(self, name: str | None = None) -> str:
        """A new empty database; returns its URL."""
        import asyncpg

        name = name or f"t_{uuid.uuid4().hex[:12]}"
        conn = await asyncpg.connect(self.url())
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return self.url(name)

    def __enter__(self) -> "PostgresServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


try:
    import pytest
except ImportError:  # imported by bench/ without pytest
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    def require_binaries() -> None:
        """Skip the calling test without a server installed; under CI=true, fail it."""
        if find_binaries() is None:
            reason = "no PostgreSQL server installed (initdb/pg_ctl/postgres); apt-get install postgresql"
            if _ci():
                pytest.fail(f"CI=true but {reason}")
            pytest.skip(reason)

    @pytest.fixture(scope="session")
    def pg_server():
        """One throwaway server per test session (see the module docstring for skip/fail)."""
        require_binaries()
        server = PostgresServer().start()
        try:
            yield server
        finally:
            server.stop()

    @pytest.fixture
    async def pg_url(pg_server):
        """The URL (with password) of a new, empty database on the session's server."""
        return await pg_server.create_database()
