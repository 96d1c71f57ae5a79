"""An app over the in-memory database, with the probe router of ``api_support``."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest
from api_support import NOW, Probe, probe_router
from fastapi import FastAPI
from fastapi.testclient import TestClient

from fakes import MemoryDatabase, SeededTenant, seed_tenant
from iptv_billing.api.app import create_app
from iptv_billing.api.deps import AppServices
from iptv_billing.api.routers import ROUTERS
from iptv_billing.services.clock import FixedClock
from iptv_billing.services.ids import TimeOrderedIds


@pytest.fixture
def database() -> MemoryDatabase:
    return MemoryDatabase()


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock(NOW)


@pytest.fixture
def services(database: MemoryDatabase, clock: FixedClock) -> AppServices:
    return AppServices(database, TimeOrderedIds(clock, random.Random(7)), clock)


@pytest.fixture
def probe() -> Probe:
    return Probe()


@pytest.fixture
def app(services: AppServices, probe: Probe) -> FastAPI:
    return create_app(services, [*ROUTERS, probe_router(probe)])


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


@pytest.fixture
def acme(services: AppServices) -> SeededTenant:
    return seed_tenant(services.database, services.ids, services.system_clock, "Acme TV")


@pytest.fixture
def globex(services: AppServices) -> SeededTenant:
    return seed_tenant(services.database, services.ids, services.system_clock, "Globex TV")
