"""Fixtures of the end-to-end suite: one real server per engine per module.

``e2e_server`` (module; params ``sqlite``, ``postgresql``)
    A fresh migrated database (a copy of the session's SQLite template, or a PostgreSQL
    database cloned from the session's template) seeded, *before* the server starts, with a
    pool of tenants through the services (``access.create_tenant`` / ``issue_api_key``), each
    with an admin, a read_only and an integration key. Then ``python -m iptv_billing serve``
    runs on a free port; tests talk to it only over HTTP. A module may ask for extra tenants
    with ``SPECIAL_TENANTS = {name: invoice prefix}``; they are in ``e2e_server.named``.
``tenant`` (function)
    A tenant of the pool that no other test of the module has used (its own test clock,
    catalog and invoice series).
``api`` (function)
    An admin ``ApiClient`` of ``tenant``.

Every test that uses the server also fails (at teardown) when the server logged an unhandled
error during it, i.e. answered some request with a 500.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from api_client import ApiClient, Tenant
from server_harness import POOL_SIZE, E2EServer, running_server, seed_tenants


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def e2e_server(
    request: pytest.FixtureRequest,
    tmp_path_factory: pytest.TempPathFactory,
    free_port: Callable[[], int],
    fresh_database: Callable[[str, Path], contextlib.AbstractContextManager[str]],
) -> Iterator[E2EServer]:
    engine: str = request.param
    directory = tmp_path_factory.mktemp(f"e2e-{engine}")
    module = Path(str(request.module.__file__)).stem.removeprefix("test_")
    label = "".join(c for c in module if c.isalnum())[:6]
    with fresh_database(engine, directory) as database_url:
        special = getattr(request.module, "SPECIAL_TENANTS", {})
        pool, named = seed_tenants(database_url, POOL_SIZE, label, special)
        with running_server(database_url, free_port(), directory) as (base_url, log):
            server = E2EServer(engine, base_url, database_url, log, pool, named)
            try:
                yield server
            finally:
                server.close()


@pytest.fixture
def tenant(e2e_server: E2EServer) -> Tenant:
    return e2e_server.fresh_tenant()


@pytest.fixture
def api(e2e_server: E2EServer, tenant: Tenant) -> ApiClient:
    return e2e_server.client(tenant)


@pytest.fixture(autouse=True)
def _no_server_errors(request: pytest.FixtureRequest) -> Iterator[None]:
    if "e2e_server" not in request.fixturenames:
        yield
        return
    server: E2EServer = request.getfixturevalue("e2e_server")
    seen = len(server.unhandled_errors())
    yield
    new = server.unhandled_errors()[seen:]
    if new:
        pytest.fail("the server answered 500:\n" + "\n".join(new), pytrace=False)
