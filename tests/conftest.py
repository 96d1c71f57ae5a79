"""Shared fixtures for the integration and end-to-end tests.

Fixtures (all available to every test under ``tests/``):

``postgres_server`` (session)
    A real PostgreSQL server started for the test session in a fresh temporary directory,
    listening on 127.0.0.1 (a free port) and on a Unix socket in that directory. Its
    ``url(dbname)`` returns ``postgresql+psycopg://postgres@127.0.0.1:PORT/dbname``. Fails when
    the PostgreSQL binaries are missing and the ``CI`` environment variable is set, skips
    otherwise. ``IPTV_BILLING_PG_BINDIR`` points it at a specific ``bin`` directory.
``database_url`` (function; params ``sqlite``, ``postgresql``)
    URL of a fresh database migrated to head, copied from a per-session template.
``empty_database_url`` (function; params ``sqlite``, ``postgresql``)
    URL of a fresh, empty (unmigrated) database, for migration tests.
``free_port`` (session)
    A callable returning a free TCP port on 127.0.0.1.

Tests under ``tests/integration`` and ``tests/e2e`` are marked ``integration`` and ``e2e``.
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import itertools
import os
import pwd
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

# Loads py-evm and py_ecc with the interpreter's recursion limit put back (they raise it, which
# turns deeply nested JSON into a crash); test modules that import them directly come later.
import iptv_billing.adapters.chain  # noqa: F401
from redis_fixture import redis_prefix, redis_url  # noqa: F401  (fixtures for every test)

TESTS_ROOT = Path(__file__).resolve().parent
HOST = "127.0.0.1"
SUPERUSER = "postgres"
TEMPLATE_DB = "iptv_template"
FALLBACK_OS_USER = "iptvtest"

POSTGRES_SETTINGS = {
    "listen_addresses": f"'{HOST}'",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "max_connections": "200",
    "shared_buffers": "128MB",
    "jit": "off",
    "timezone": "'UTC'",
    "log_timezone": "'UTC'",
    "logging_collector": "off",
    "log_min_messages": "warning",
}


# --------------------------------------------------------------------------- pytest hooks


def pytest_configure(config: pytest.Config) -> None:
    known = {str(line).split(":", 1)[0].strip() for line in config.getini("markers")}
    markers = {
        "integration": "uses a real database or other real infrastructure (tests/integration)",
        "e2e": "drives a running server over HTTP (tests/e2e)",
        "slow": "takes more than a few seconds",
    }
    for name, description in markers.items():
        if name not in known:
            config.addinivalue_line("markers", f"{name}: {description}")


def _terminate_as_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"received signal {signum}")


def pytest_sessionstart(session: pytest.Session) -> None:
    # A SIGTERM (e.g. a CI timeout) would otherwise end the run without fixture teardown or
    # atexit handlers, leaving the test PostgreSQL server running. As an interrupt, pytest
    # tears the session down as it does for Ctrl-C.
    with contextlib.suppress(ValueError):  # not in the main thread
        if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
            signal.signal(signal.SIGTERM, _terminate_as_interrupt)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        try:
            relative = Path(item.path).resolve().relative_to(TESTS_ROOT)
        except ValueError:
            continue
        if relative.parts and relative.parts[0] == "integration":
            item.add_marker(pytest.mark.integration)
        elif relative.parts and relative.parts[0] == "e2e":
            item.add_marker(pytest.mark.e2e)


def pytest_report_header(config: pytest.Config) -> str:
    bindir = find_postgres_bindir()
    if bindir is None:
        return "postgresql: no initdb/pg_ctl found (PostgreSQL tests will skip, or fail in CI)"
    return f"postgresql: {bindir} ({_postgres_version(bindir)})"


# --------------------------------------------------------------------------- helpers


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


_issued_ports: set[int] = set()


def find_free_port() -> int:
    """Return a TCP port on 127.0.0.1 that is free now and was not handed out before."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((HOST, 0))
            port = int(sock.getsockname()[1])
        if port not in _issued_ports:
            _issued_ports.add(port)
            return port
    raise RuntimeError("could not find a free TCP port on 127.0.0.1")


def _version_key(bindir: Path) -> tuple[int, ...]:
    # /usr/lib/postgresql/<version>/bin
    return tuple(int(part) for part in re.findall(r"\d+", bindir.parent.name)) or (0,)


def _has_server_binaries(bindir: Path) -> bool:
    return all(os.access(bindir / name, os.X_OK) for name in ("initdb", "pg_ctl", "postgres"))


def find_postgres_bindir() -> Path | None:
    """Locate a PostgreSQL *server* bin directory (initdb, pg_ctl, postgres).

    Order: ``$IPTV_BILLING_PG_BINDIR``; the highest version under /usr/lib/postgresql/*/bin
    (Debian); ``pg_config --bindir`` (often only the client on Debian); ``initdb`` on PATH.
    """
    override = os.environ.get("IPTV_BILLING_PG_BINDIR")
    if override:
        return Path(override) if _has_server_binaries(Path(override)) else None
    debian = [Path(p) for p in glob.glob("/usr/lib/postgresql/*/bin")]
    debian = sorted((p for p in debian if _has_server_binaries(p)), key=_version_key, reverse=True)
    if debian:
        return debian[0]
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run(
                [pg_config, "--bindir"], capture_output=True, text=True, check=True, timeout=10
            ).stdout.strip()
            if out and _has_server_binaries(Path(out)):
                return Path(out)
    initdb = shutil.which("initdb")
    if initdb:
        bindir = Path(initdb).resolve().parent
        if _has_server_binaries(bindir):
            return bindir
    return None


def _postgres_version(bindir: Path) -> str:
    try:
        out = subprocess.run(
            [str(bindir / "pg_ctl"), "--version"], capture_output=True, text=True, timeout=10
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return "unknown version"
    return out.strip().rsplit(" ", 1)[-1] or "unknown version"


def _traversable_by_others(path: Path) -> bool:
    """True when every directory from / down to ``path`` can be entered by any user."""
    for directory in [path, *path.parents]:
        try:
            if not os.stat(directory).st_mode & 0o001:
                return False
        except OSError:
            return False
    return True


def _ensure_os_user() -> pwd.struct_passwd:
    """The unprivileged system user that runs the server when the tests run as root."""
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(SUPERUSER)  # created by Debian's postgresql-common package
    with contextlib.suppress(KeyError):
        return pwd.getpwnam(FALLBACK_OS_USER)
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    subprocess.run(
        [useradd, "-r", "-M", "-d", "/nonexistent", "-s", "/usr/sbin/nologin", FALLBACK_OS_USER],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return pwd.getpwnam(FALLBACK_OS_USER)


def _tail(path: Path, lines: int = 60) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no {path.name})"
    return "\n".join(text.splitlines()[-lines:])


# --------------------------------------------------------------------------- PostgreSQL


@dataclass
class PostgresServer:
    """A throwaway PostgreSQL cluster; start with :meth:`start`, stop with :meth:`stop`."""

    bindir: Path
    base_dir: Path = field(init=False)
    port: int = field(init=False, default=0)
    version: str = field(init=False, default="")
    os_user: str | None = field(init=False, default=None)
    _running: bool = field(init=False, default=False)
    _stopped: bool = field(init=False, default=False)

    @property
    def data_dir(self) -> Path:
        return self.base_dir / "data"

    @property
    def socket_dir(self) -> Path:
        return self.base_dir

    @property
    def log_file(self) -> Path:
        return self.base_dir / "postgres.log"

    def url(self, dbname: str = "postgres") -> str:
        """SQLAlchemy URL of database ``dbname`` on this server, over TCP to 127.0.0.1."""
        return f"postgresql+psycopg://{SUPERUSER}@{HOST}:{self.port}/{dbname}"

    def connect(
        self, dbname: str = "postgres", *, autocommit: bool = True
    ) -> psycopg.Connection[Any]:
        """A plain psycopg connection (autocommit by default: needed for CREATE DATABASE)."""
        return psycopg.connect(
            host=HOST, port=self.port, user=SUPERUSER, dbname=dbname, autocommit=autocommit
        )

    def create_database(self, name: str, template: str | None = None) -> None:
        query = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template:
            query = sql.SQL("{} TEMPLATE {}").format(query, sql.Identifier(template))
        with self.connect() as conn:
            conn.execute(query)

    def drop_database(self, name: str) -> None:
        with self.connect() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    # -- lifecycle

    def _prefix(self) -> list[str]:
        if self.os_user is None:
            return []
        runuser = shutil.which("runuser") or "/usr/sbin/runuser"
        return [runuser, "-u", self.os_user, "--"]

    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self._prefix(), *args],
            cwd=self.base_dir,  # the server user may not be allowed into the caller's cwd
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def start(self) -> None:
        self.version = _postgres_version(self.bindir)
        parent = Path(tempfile.gettempdir())
        if os.geteuid() == 0:
            user = _ensure_os_user()
            self.os_user = user.pw_name
            if not _traversable_by_others(parent):
                parent = Path("/tmp")
            self.base_dir = Path(tempfile.mkdtemp(prefix="iptv-pg-", dir=parent))
            os.chown(self.base_dir, user.pw_uid, user.pw_gid)
        else:
            self.base_dir = Path(tempfile.mkdtemp(prefix="iptv-pg-", dir=parent))
        atexit.register(self.stop)
        self._initdb()
        self._configure()
        last_error = ""
        for _attempt in range(3):  # the port may be taken between choosing and binding it
            self.port = find_free_port()
            result = self._run(
                str(self.bindir / "pg_ctl"),
                "-D",
                str(self.data_dir),
                "-l",
                str(self.log_file),
                "-o",
                f"-p {self.port}",
                "-w",
                "-t",
                "60",
                "start",
            )
            if result.returncode == 0:
                self._running = True
                return
            last_error = (
                f"{result.stdout}\n{result.stderr}\n--- server log ---\n{_tail(self.log_file)}"
            )
        raise RuntimeError(f"pg_ctl start failed:\n{last_error}")

    def _initdb(self) -> None:
        errors = []
        for locale in ("C.UTF-8", "C"):
            if self.data_dir.exists():
                shutil.rmtree(self.data_dir, ignore_errors=True)
            result = self._run(
                str(self.bindir / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "-E",
                "UTF8",
                f"--locale={locale}",
                "--no-sync",
            )
            if result.returncode == 0:
                return
            errors.append(f"[--locale={locale}]\n{result.stdout}\n{result.stderr}")
        raise RuntimeError("initdb failed:\n" + "\n".join(errors))

    def _configure(self) -> None:
        settings = {**POSTGRES_SETTINGS, "unix_socket_directories": f"'{self.socket_dir}'"}
        lines = "".join(f"{key} = {value}\n" for key, value in settings.items())
        # Appending keeps the file's owner (the server user); later settings win.
        with (self.data_dir / "postgresql.conf").open("a") as conf:
            conf.write("\n# iptv-billing test settings\n" + lines)

    def stop(self) -> None:
        """Stop the server and delete its directory. Idempotent; safe from atexit."""
        if self._stopped or not hasattr(self, "base_dir"):
            return
        self._stopped = True
        try:
            if self._running or (self.data_dir / "postmaster.pid").exists():
                result = self._run(
                    str(self.bindir / "pg_ctl"),
                    "-D",
                    str(self.data_dir),
                    "-m",
                    "fast",
                    "-w",
                    "-t",
                    "30",
                    "stop",
                    timeout=60,
                )
                if result.returncode != 0:
                    self._kill_postmaster()
        except (OSError, subprocess.SubprocessError):
            self._kill_postmaster()
        finally:
            self._running = False
            shutil.rmtree(self.base_dir, ignore_errors=True)
            with contextlib.suppress(Exception):
                atexit.unregister(self.stop)

    def _kill_postmaster(self) -> None:
        try:
            pid = int((self.data_dir / "postmaster.pid").read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return
        for sig, wait in ((signal.SIGQUIT, 5.0), (signal.SIGKILL, 5.0)):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                try:
                    os.kill(pid, 0)
                except ProcessLookupError:
                    return
                time.sleep(0.05)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL server for the whole test session (see module docstring)."""
    bindir = find_postgres_bindir()
    if bindir is None:
        reason = (
            "PostgreSQL server binaries (initdb, pg_ctl) not found under "
            "/usr/lib/postgresql/*/bin, via pg_config or on PATH; run `make system-deps` "
            "or set IPTV_BILLING_PG_BINDIR"
        )
        if _in_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    server = PostgresServer(bindir)
    try:
        try:
            server.start()
        except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
            pytest.fail(f"could not start PostgreSQL from {bindir}: {exc}", pytrace=False)
        yield server
    finally:
        server.stop()


# --------------------------------------------------------------------------- databases


def _upgrade_database(url: str) -> None:
    # Imported lazily so that the unit tests (and this conftest) work without the SQL adapter.
    from iptv_billing.adapters.sql.migrate import upgrade_database

    upgrade_database(url)


def _sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head once per session; tests get copies of it."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    _upgrade_database(_sqlite_url(path))
    # Fold any WAL content into the main file so that a copy of it is complete.
    with contextlib.closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


@pytest.fixture(scope="session")
def _postgres_template(postgres_server: PostgresServer) -> str:
    """Database ``iptv_template`` migrated to head once per session."""
    postgres_server.create_database(TEMPLATE_DB)
    _upgrade_database(postgres_server.url(TEMPLATE_DB))
    with postgres_server.connect() as conn:
        # CREATE DATABASE ... TEMPLATE refuses while anyone is connected to the template
        # (e.g. a pooled connection left open by the migration code).
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (TEMPLATE_DB,),
        )
        conn.execute(
            sql.SQL("ALTER DATABASE {} WITH IS_TEMPLATE true ALLOW_CONNECTIONS false").format(
                sql.Identifier(TEMPLATE_DB)
            )
        )
    return TEMPLATE_DB


_database_numbers = itertools.count(1)


def _fresh_postgres_database(server: PostgresServer, template: str | None) -> Iterator[str]:
    name = f"test_{next(_database_numbers)}"
    server.create_database(name, template=template)
    try:
        yield server.url(name)
    finally:
        server.drop_database(name)


FreshDatabase = Callable[[str, Path], contextlib.AbstractContextManager[str]]


@pytest.fixture(scope="session")
def fresh_database(request: pytest.FixtureRequest) -> FreshDatabase:
    """Factory: ``with fresh_database(engine, directory) as url`` gives a database migrated to
    head (a copy of the session's template), dropped afterwards; for fixtures of any scope."""

    @contextlib.contextmanager
    def fresh(engine: str, directory: Path) -> Iterator[str]:
        if engine == "sqlite":
            template: Path = request.getfixturevalue("_sqlite_template")
            target = directory / "test.db"
            with (
                contextlib.closing(sqlite3.connect(template)) as source,
                contextlib.closing(sqlite3.connect(target)) as destination,
            ):
                source.backup(destination)
            yield _sqlite_url(target)
            return
        server: PostgresServer = request.getfixturevalue("postgres_server")
        template_name: str = request.getfixturevalue("_postgres_template")
        yield from _fresh_postgres_database(server, template_name)

    return fresh


@pytest.fixture(params=["sqlite", "postgresql"], ids=["sqlite", "postgresql"])
def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, fresh_database: FreshDatabase
) -> Iterator[str]:
    """URL of a fresh database migrated to head (SQLite file or PostgreSQL database)."""
    with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"], ids=["sqlite", "postgresql"])
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """URL of a fresh, empty database (no migrations applied)."""
    if request.param == "sqlite":
        yield _sqlite_url(tmp_path / "empty.db")
    else:
        server: PostgresServer = request.getfixturevalue("postgres_server")
        yield from _fresh_postgres_database(server, "template0")


# --------------------------------------------------------------------------- ports


@pytest.fixture(scope="session")
def free_port() -> Callable[[], int]:
    """Factory: ``free_port()`` returns a TCP port on 127.0.0.1 not yet handed out."""
    return find_free_port
