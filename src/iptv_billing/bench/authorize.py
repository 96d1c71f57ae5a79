"""``bench authorize``: stream-authorization decisions over HTTP against N subscribers.

The servers are real ``iptv-billing serve`` processes (one per ``--servers``; several share
sessions through Redis, as production API replicas do behind a load balancer). The load comes
from separate client processes speaking HTTP/1.1 keep-alive to nginx-rtmp's ``on_play``
endpoint, with a realistic mix:

* valid: a paying subscriber (re)opening one of its two sessions: allowed;
* over_limit: a subscriber whose two slots are taken opening a third: refused;
* expired: an expired subscriber: refused;
* unknown: an unknown username or a wrong password: refused.

Every answer is checked against its category, so a server that allowed everything (or
nothing) would not pass for fast. Latency is measured per request, by the client.
"""

from __future__ import annotations

import asyncio
import hashlib
import multiprocessing
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from sqlalchemy import Engine, insert
from sqlalchemy.engine import make_url

from iptv_billing.adapters.secret_box import SecretBox
from iptv_billing.adapters.sql import tables
from iptv_billing.adapters.sql.uow import open_database
from iptv_billing.bench.billing_run import (
    START,
    chunks,
    customer_row,
    fresh_sqlite,
    subscription_row,
)
from iptv_billing.bench.machine import machine
from iptv_billing.bench.wrk_load import run_wrk, wrk_binary
from iptv_billing.domain.catalog import BillingTerms
from iptv_billing.domain.credentials import hash_secret
from iptv_billing.domain.money import Money
from iptv_billing.domain.periods import BillingInterval, PeriodUnit
from iptv_billing.services.clock import FixedClock
from iptv_billing.services.ids import TimeOrderedIds

PATH = "/integrations/nginx-rtmp/play"
CHANNELS = 50
FULL_SUBSCRIBERS = 1_000  # hold both their slots during the run
MIX = (("valid", 0.70), ("over_limit", 0.10), ("expired", 0.10), ("unknown", 0.10))
EXPECTED = {"valid": 200, "over_limit": 403, "expired": 403, "unknown": 403}
START_TIMEOUT = 300.0


def username(i: int) -> str:
    return f"b{i:07d}"


def password(i: int) -> str:
    return hashlib.sha256(f"bench-{i}".encode()).hexdigest()[:16]


# -- seeding ----------------------------------------------------------------------------------
def _terms() -> BillingTerms:
    return BillingTerms(
        plan_code="bench",
        version=1,
        name="Bench monthly",
        interval=BillingInterval(PeriodUnit.MONTH),
        prices=(Money.of("9.99", "EUR"),),
        effective_from=START - timedelta(days=60),
        max_connections=2,
        package_codes=("basic",),
    )


@dataclass(frozen=True)
class Population:
    subscribers: int
    expired_from: int  # subscribers from this index on are expired

    def of(self, category: str, rng: random.Random) -> int:
        if category == "expired":
            return rng.randrange(self.expired_from, self.subscribers)
        if category == "over_limit":
            return rng.randrange(FULL_SUBSCRIBERS)
        return rng.randrange(FULL_SUBSCRIBERS, self.expired_from)


def seed(engine: Engine, n: int, key_dir: Path) -> Population:
    ids = TimeOrderedIds(FixedClock(START))
    terms = _terms()
    tenant, plan, terms_id = ids.new("ten"), ids.new("plan"), ids.new("terms")
    anchor = START - timedelta(days=10)
    with engine.begin() as c:
        c.execute(insert(tables.Tenant), [_tenant(tenant, anchor)])
        c.execute(insert(tables.Plan), [_row(plan, tenant, "bench", anchor)])
        c.execute(insert(tables.TermsVersion), [_terms_row(terms, terms_id, tenant, plan, anchor)])
        _catalog(c, ids, tenant, anchor)
    box = SecretBox(_box_key(key_dir))
    population = Population(n, n - n // 10)
    for chunk in chunks(n):
        customers = [customer_row(ids, tenant, anchor) for _ in chunk]
        subs = [
            _subscription(
                ids, tenant, c["id"], plan, terms_id, terms.terms_hash, anchor, i, population
            )
            for i, c in zip(chunk, customers, strict=True)
        ]
        creds = [
            _line(ids, box, tenant, s["id"], i, anchor) for i, s in zip(chunk, subs, strict=True)
        ]
        with engine.begin() as c:
            c.execute(insert(tables.Customer), customers)
            c.execute(insert(tables.Subscription), subs)
            c.execute(insert(tables.AccessCredential), creds)
    return population


def _box_key(key_dir: Path) -> bytes:
    from iptv_billing.adapters.keys import KeyStore
    from iptv_billing.streaming import SECRET_BOX_KEY

    return KeyStore(key_dir).ensure_secret(SECRET_BOX_KEY)


def _tenant(tenant: str, at: Any) -> dict[str, Any]:
    return {
        "id": tenant,
        "name": "bench",
        "timezone": "UTC",
        "default_currency": "EUR",
        "invoice_prefix": "B-",
        "test_clock_now": START,
        "created_at": at,
    }


def _row(id_: str, tenant: str, code: str, at: Any) -> dict[str, Any]:
    return {"id": id_, "tenant_id": tenant, "code": code, "name": code.title(), "created_at": at}


def _terms_row(terms: BillingTerms, id_: str, tenant: str, plan: str, at: Any) -> dict[str, Any]:
    return {
        "id": id_,
        "tenant_id": tenant,
        "plan_id": plan,
        "version": 1,
        "terms_hash": terms.terms_hash,
        "document": terms.canonical().decode(),
        "effective_from": terms.effective_from,
        "created_at": at,
    }


def _catalog(c: Any, ids: TimeOrderedIds, tenant: str, at: Any) -> None:
    package = ids.new("pkg")
    c.execute(insert(tables.Package), [_row(package, tenant, "basic", at)])
    channels = []
    for n in range(1, CHANNELS + 1):
        channels.append(
            {
                **_row(ids.new("chn"), tenant, f"ch-{n}", at),
                "number": n,
                "logo_url": None,
                "stream_id": n,
                "category": "General",
                "epg_id": None,
                "source_url": None,
                "catchup_days": 0,
            }
        )
    c.execute(insert(tables.Channel), channels)
    links = [
        {"package_id": package, "channel_id": ch["id"], "tenant_id": tenant} for ch in channels
    ]
    c.execute(insert(tables.PackageChannel), links)


def _subscription(
    ids: TimeOrderedIds,
    tenant: str,
    customer: str,
    plan: str,
    terms_id: str,
    terms_hash: str,
    anchor: Any,
    i: int,
    population: Population,
) -> dict[str, Any]:
    row = subscription_row(ids, tenant, customer, plan, terms_id, terms_hash, anchor)
    row["current_period_end"] = START + timedelta(days=20)
    if i >= population.expired_from:
        row["status"] = "expired"
        row["ended_at"] = START - timedelta(days=1)
    return row


def _line(
    ids: TimeOrderedIds, box: SecretBox, tenant: str, sub: str, i: int, at: Any
) -> dict[str, Any]:
    cred_id = ids.new("cred")
    secret = hash_secret(password(i))
    return {
        "id": cred_id,
        "tenant_id": tenant,
        "subscription_id": sub,
        "kind": "line",
        "login": username(i),
        "lookup": username(i),
        "secret_salt": secret.salt,
        "secret_digest": secret.digest,
        "sealed_secret": box.seal(password(i), cred_id),
        "label": None,
        "enabled": True,
        "created_at": at,
        "updated_at": at,
        "removed_at": None,
    }


# -- requests ---------------------------------------------------------------------------------
def body(category: str, i: int, clientid: int, rng: random.Random) -> bytes:
    user, secret = username(i), password(i)
    if category == "unknown":
        if rng.random() < 0.5:
            user = f"x{rng.randrange(10**7):07d}"
        else:
            secret = "wrong-password00"
    addr = f"10.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
    form = {
        "app": "live",
        "flashver": "LNX 9,0,124,2",
        "tcurl": "rtmp://127.0.0.1/live",
        "addr": addr,
        "clientid": str(clientid),
        "call": "play",
        "name": f"ch-{rng.randrange(1, CHANNELS + 1)}",
        "username": user,
        "password": secret,
    }
    return urlencode(form).encode()


def request_bytes(host: str, payload: bytes) -> bytes:
    head = (
        f"POST {PATH} HTTP/1.1\r\nHost: {host}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(payload)}\r\n\r\n"
    )
    return head.encode() + payload


def plan_requests(population: Population, count: int, seed_: int) -> list[tuple[str, bytes]]:
    """(category, form body) in a shuffled realistic mix; pre-built so the client only sends."""
    rng = random.Random(seed_)
    names = [m[0] for m in MIX]
    weights = [m[1] for m in MIX]
    planned = []
    for _ in range(count):
        category = rng.choices(names, weights)[0]
        i = population.of(category, rng)
        # Valid sessions reuse one of the subscriber's two ids; over-limit ones are new.
        clientid = rng.randrange(2) if category != "over_limit" else 2 + rng.randrange(10**6)
        planned.append((category, body(category, i, clientid, rng)))
    return planned


def warm_up_bodies() -> list[bytes]:
    """Fill both slots of the "full" subscribers, so that a third session is over the limit."""
    rng = random.Random(1)
    return [body("valid", i, slot, rng) for i in range(FULL_SUBSCRIBERS) for slot in (0, 1)]


# -- the load ---------------------------------------------------------------------------------
async def _connection(
    host: str, port: int, work: list[tuple[str, bytes]], out: list[tuple[str, int, float]]
) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for category, payload in work:
            started = time.perf_counter()
            writer.write(request_bytes(host, payload))
            status, length = await _read_head(reader)
            if length:
                await reader.readexactly(length)
            out.append((category, status, time.perf_counter() - started))
    finally:
        writer.close()


async def _read_head(reader: asyncio.StreamReader) -> tuple[int, int]:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split()[1])
    length = 0
    for line in lines[1:]:
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    return status, length


def _client(args: tuple[list[int], list[tuple[str, bytes]], int]) -> list[tuple[str, int, float]]:
    ports, work, connections = args
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass
    out: list[tuple[str, int, float]] = []

    async def main() -> None:
        shares = [work[k::connections] for k in range(connections)]
        await asyncio.gather(
            *(
                _connection(f"127.0.0.1:{ports[k % len(ports)]}", ports[k % len(ports)], s, out)
                for k, s in enumerate(shares)
            )
        )

    asyncio.run(main())
    return out


# -- servers ----------------------------------------------------------------------------------
@dataclass
class Servers:
    processes: list[subprocess.Popen[bytes]]
    ports: list[int]
    ready_seconds: float

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_servers(url: str, count: int, key_dir: Path, redis_url: str | None, log: Path) -> Servers:
    env = {
        **os.environ,
        "IPTV_BILLING_DATABASE_URL": url,
        "IPTV_BILLING_KEY_DIR": str(key_dir),
        "IPTV_BILLING_JOB_INTERVAL_SECONDS": "0",
        "IPTV_BILLING_CHECKPOINT_INTERVAL_SECONDS": "0",
        "IPTV_BILLING_ANCHORING": "false",
        "IPTV_BILLING_LOG_LEVEL": "warning",
        "IPTV_BILLING_GUESS_MAX_FAILURES": "1000",
    }
    if redis_url:
        env["IPTV_BILLING_REDIS_URL"] = redis_url
    started = time.perf_counter()
    ports = [_free_port() for _ in range(count)]
    processes = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "iptv_billing",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(p),
            ],
            env=env,
            stdout=log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        for p in ports
    ]
    servers = Servers(processes, ports, 0.0)
    try:
        for port in ports:
            _wait_ready(port, processes)
    except BaseException:
        servers.stop()
        raise
    servers.ready_seconds = time.perf_counter() - started
    return servers


def _wait_ready(port: int, processes: list[subprocess.Popen[bytes]]) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if any(p.poll() is not None for p in processes):
            raise RuntimeError("a server exited during start-up; see the log")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.25)
    raise RuntimeError(f"the server on port {port} did not start within {START_TIMEOUT} s")


# -- the benchmark ----------------------------------------------------------------------------
def _percentile(sorted_values: list[float], q: float) -> float:
    index = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[index]


def _load(
    ports: list[int], work: list[tuple[str, bytes]], clients: int, connections: int
) -> tuple[list[tuple[str, int, float]], float]:
    shares = [work[k::clients] for k in range(clients)]
    context = multiprocessing.get_context("spawn")
    started = time.perf_counter()
    with context.Pool(clients) as pool:
        parts = pool.map(_client, [(ports, s, connections) for s in shares])
    seconds = time.perf_counter() - started
    return [r for part in parts for r in part], seconds


def summarise(results: list[tuple[str, int, float]], seconds: float) -> dict[str, Any]:
    latencies = sorted(r[2] for r in results)
    wrong = sum(1 for category, status, _ in results if status != EXPECTED[category])
    by_category: dict[str, int] = {}
    for category, _, _ in results:
        by_category[category] = by_category.get(category, 0) + 1
    return {
        "decisions": len(results),
        "seconds": round(seconds, 2),
        "decisions_per_s": round(len(results) / seconds, 1) if seconds else None,
        "p50_ms": round(_percentile(latencies, 0.50) * 1000, 2),
        "p99_ms": round(_percentile(latencies, 0.99) * 1000, 2),
        "max_ms": round(latencies[-1] * 1000, 2),
        "mix": by_category,
        "wrong_answers": wrong,
    }


def run_benchmark(
    url: str,
    subscribers: int,
    requests: int,
    servers: int = 1,
    clients: int = 1,
    connections: int = 8,
    redis_url: str | None = None,
    load: str = "auto",
    seconds: int = 30,
) -> dict[str, Any]:
    if servers > 1 and not redis_url:
        raise SystemExit("error: several servers share sessions through Redis: pass --redis-url")
    if make_url(url).get_backend_name() == "sqlite":
        fresh_sqlite(url)
    with tempfile.TemporaryDirectory(prefix="bench-authorize-") as tmp:
        key_dir = Path(tmp) / "keys"
        database = open_database(url, migrate=True)
        seed_started = time.perf_counter()
        population = seed(database.engine, subscribers, key_dir)
        seed_seconds = time.perf_counter() - seed_started
        database.dispose()
        log = Path(tmp) / "servers.log"
        running = start_servers(url, servers, key_dir, redis_url, log)
        try:
            warm, _ = _load(running.ports, [("valid", b) for b in warm_up_bodies()], 1, 8)
            if any(status != 200 for _, status, _ in warm):
                raise RuntimeError(f"warm-up refused: see {log}")
            planned = plan_requests(population, requests, 7)
            use_wrk = load == "wrk" or (load == "auto" and wrk_binary() is not None)
            if use_wrk:
                figures = run_wrk(running.ports, PATH, planned, seconds, connections)
            else:
                results, elapsed = _load(running.ports, planned, clients, connections)
                figures = summarise(results, elapsed)
        finally:
            running.stop()
    return {
        "benchmark": "authorize",
        "database": make_url(url).get_backend_name(),
        "subscribers": subscribers,
        "servers": servers,
        "session_store": "redis" if redis_url else "in-process",
        "load_generator": "wrk" if use_wrk else f"python x{clients}",
        "connections": connections,
        **figures,
        "server_start_seconds": round(running.ready_seconds, 2),
        "seed_seconds": round(seed_seconds, 2),
        "machine": machine(),
    }
