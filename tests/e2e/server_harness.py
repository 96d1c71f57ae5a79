"""The end-to-end suite's machinery: fresh databases, seeded tenants, a real server process.

Used by the fixtures in ``conftest.py`` (see there).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from api_client import ApiClient, Tenant

HOST = "127.0.0.1"
START_TIMEOUT = 30.0
POOL_SIZE = 32  # tenants seeded per server; each test of a module takes fresh ones


@dataclass
class E2EServer:
    engine: str
    base_url: str
    database_url: str
    log_path: Path
    pool: list[Tenant]
    named: dict[str, Tenant] = field(default_factory=dict)  # a module's SPECIAL_TENANTS
    _next: int = 0
    _clients: list[httpx.Client] = field(default_factory=list)

    def fresh_tenant(self) -> Tenant:
        if self._next >= len(self.pool):
            raise RuntimeError(f"the tenant pool ({len(self.pool)}) is exhausted: raise POOL_SIZE")
        tenant = self.pool[self._next]
        self._next += 1
        return tenant

    def client(self, tenant: Tenant | None, scope: str = "admin") -> ApiClient:
        http = httpx.Client(base_url=self.base_url, timeout=30.0, trust_env=False)
        self._clients.append(http)
        return ApiClient(http, tenant.keys[scope] if tenant else None)

    def unhandled_errors(self) -> list[str]:
        """The log records of requests that failed with an unexpected error (a 500)."""
        lines = self.log_path.read_text(errors="replace").splitlines()
        return [line for line in lines if line.startswith("unhandled error on ")]

    def close(self) -> None:
        for http in self._clients:
            http.close()


def seed_tenants(
    database_url: str, count: int, label: str, prefixes: Mapping[str, str] | None = None
) -> tuple[list[Tenant], dict[str, Tenant]]:
    """``count`` tenants (invoice prefix ``LABELnn-``), plus one per entry of ``prefixes``
    (name -> invoice prefix), each with one key per scope, written through the services
    straight to the database."""
    from iptv_billing.adapters.sql.uow import open_database
    from iptv_billing.services import access
    from iptv_billing.services.clock import SystemClock
    from iptv_billing.services.ids import TimeOrderedIds

    clock = SystemClock()
    ids = TimeOrderedIds(clock)
    wanted = [(f"{label} operator {n}", f"{label.upper()}{n:02d}-") for n in range(count)]
    wanted += [(name, prefix) for name, prefix in (prefixes or {}).items()]
    database = open_database(database_url, migrate=False)
    tenants = []
    try:
        with database.uow() as uow:
            for name, prefix in wanted:
                record = access.create_tenant(uow, ids, clock, name, "Europe/Berlin", "EUR", prefix)
                keys = {}
                for scope in access.ApiKeyScope:
                    _, secret = access.issue_api_key(
                        uow, ids, clock, record.id, f"e2e {scope.value}", scope
                    )
                    keys[scope.value] = secret
                tenants.append(Tenant(record.id, record.name, prefix, keys))
            uow.commit()
    finally:
        database.dispose()
    return tenants[:count], {t.name: t for t in tenants[count:]}


def _tail(path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no {path.name})"


@contextlib.contextmanager
def running_server(
    database_url: str, port: int, log_dir: Path, extra_env: Mapping[str, str] | None = None
) -> Iterator[tuple[str, Path]]:
    """``python -m iptv_billing serve`` on ``port`` until the block ends; yields its URL and
    the path of its log. ``extra_env`` adds ``IPTV_BILLING_*`` settings."""
    base_url = f"http://{HOST}:{port}"
    stderr_path = log_dir / f"server-{port}.stderr.log"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "IPTV_BILLING_LOG_LEVEL": "warning"}
    env.update(extra_env or {})
    command = [
        sys.executable,
        "-m",
        "iptv_billing",
        "serve",
        "--database-url",
        database_url,
        "--host",
        HOST,
        "--port",
        str(port),
    ]
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=stderr,
            stderr=stderr,
            env=env,
            cwd=log_dir,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        with httpx.Client(trust_env=False, timeout=2.0) as probe:
            while True:
                if process.poll() is not None:
                    pytest.fail(
                        f"server exited ({process.returncode}):\n{_tail(stderr_path)}",
                        pytrace=False,
                    )
                with contextlib.suppress(httpx.HTTPError):
                    if probe.get(f"{base_url}/healthz").status_code == 200:
                        break
                if time.monotonic() > deadline:
                    pytest.fail(f"server did not start:\n{_tail(stderr_path)}", pytrace=False)
                time.sleep(0.05)
        yield base_url, stderr_path
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        log = _tail(stderr_path)
        if "Traceback" in log:
            sys.stderr.write(f"--- e2e server log ({database_url}) ---\n{log}\n")
