"""pytest fixtures: a real Redis server for the session.

``redis_url`` (session) starts ``redis-server`` on 127.0.0.1 on a free port in a temporary
directory (no persistence), waits until it answers PING, yields ``redis://127.0.0.1:PORT/0``
and stops it after. ``redis_prefix`` (function) is a key prefix no other test uses, so tests
sharing the server never see each other's keys.

Binary lookup: ``$IPTV_BILLING_REDIS_SERVER`` (a path), then ``redis-server`` on PATH (Debian's
``redis-server`` package, installed by ``make system-deps``). A missing binary fails the tests
that use it when the ``CI`` environment variable is set and skips them otherwise.
``RedisServer`` starts private servers, for tests that stop one.
"""

from __future__ import annotations

import itertools
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

HOST = "127.0.0.1"
START_TIMEOUT = 10.0


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def find_redis_server() -> Path | None:
    explicit = os.environ.get("IPTV_BILLING_REDIS_SERVER")
    if explicit:
        return Path(explicit)
    on_path = shutil.which("redis-server")
    return Path(on_path) if on_path else None


def require_redis_server() -> Path:
    """The redis-server binary, or fail (in CI) / skip the calling test."""
    binary = find_redis_server()
    if binary is None or not os.access(binary, os.X_OK):
        reason = (
            "redis-server not found (looked at $IPTV_BILLING_REDIS_SERVER and PATH): "
            "run `make system-deps` or set IPTV_BILLING_REDIS_SERVER"
        )
        if _in_ci():
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return binary


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5) as conn:
            conn.sendall(b"PING\r\n")
            return conn.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """A throwaway redis-server: ``start()``, then ``url``; ``stop()`` is idempotent."""

    def __init__(self, binary: Path, directory: Path) -> None:
        self.binary = binary
        self.directory = directory
        self.port = 0
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{HOST}:{self.port}/0"

    def start(self) -> None:
        log_path = self.directory / "redis.log"
        # Another process may take the port between choosing and binding it: retry.
        for _ in range(3):
            self.port = _free_port()
            with log_path.open("ab") as log:
                self._process = subprocess.Popen(
                    [
                        *(str(self.binary), "--save", "", "--appendonly", "no"),
                        *("--port", str(self.port), "--bind", HOST),
                        *("--dir", str(self.directory)),
                    ],
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,  # not hit by the terminal's Ctrl-C before teardown
                )
            deadline = time.monotonic() + START_TIMEOUT
            while time.monotonic() < deadline and self._process.poll() is None:
                if _answers_ping(self.port):
                    return
                time.sleep(0.02)
            self.stop()
        tail = log_path.read_text(errors="replace")[-2000:]
        pytest.fail(f"redis-server ({self.binary}) did not start:\n{tail}", pytrace=False)

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of a fresh redis-server shared by the session (database 0)."""
    binary = require_redis_server()
    with tempfile.TemporaryDirectory(prefix="iptv-redis-") as tmp:
        server = RedisServer(binary, Path(tmp))
        server.start()
        try:
            yield server.url
        finally:
            server.stop()


_prefixes = itertools.count(1)


@pytest.fixture
def redis_prefix() -> str:
    """A key prefix of this test alone (the pid keeps parallel workers apart)."""
    return f"test{os.getpid()}-{next(_prefixes)}"
