"""``bench ledger``: durable appends, inclusion-proof generation and verification, next to the
``pymerkle`` package measured in the same run on the same machine.

Appends go through the production path: entries staged in a unit of work and appended at
commit (salted commitments of canonical records, full tiles written in the same transaction),
``batch`` entries per transaction as a billing run writes them (two or three per renewal,
a thousand renewals a batch). Proofs come from the stored tiles of a log of ``proof_entries``
entries, in a process whose tile cache starts cold; verification is RFC 9162 in pure Python.
"""

from __future__ import annotations

import functools
import multiprocessing
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from iptv_billing.adapters.sql.uow import Database, open_database
from iptv_billing.bench.machine import machine
from iptv_billing.ledger import merkle
from iptv_billing.services.access import create_tenant
from iptv_billing.services.clock import FixedClock
from iptv_billing.services.ids import TimeOrderedIds
from iptv_billing.services.records import LogDraft

AT = datetime(2026, 11, 1, tzinfo=UTC)
PROOFS = 20_000


def billing_record(n: int, tenant_id: str) -> dict[str, object]:
    """What a renewal's finalization entry looks like in the log (about 300 bytes)."""
    return {
        "v": 1,
        "type": "journal_entry",
        "tenant": tenant_id,
        "entry": f"je_06h0{n:016d}",
        "kind": "invoice_finalized",
        "memo": "",
        "reference": f"inv_06h0{n:016d}",
        "at": "2026-11-01T00:00:00.000000Z",
        "postings": [
            {"account": f"receivable:cus_06h0{n:016d}", "currency": "EUR", "minor": 999},
            {"account": "revenue:subscriptions", "currency": "EUR", "minor": -999},
        ],
    }


def _tenant(database: Database) -> str:
    clock = FixedClock(AT)
    with database.uow() as uow:
        tenant = create_tenant(uow, TimeOrderedIds(clock), clock, "bench", "UTC", "EUR")
        uow.commit()
    return tenant.id


def _append(database: Database, tenant_id: str, count: int, batch: int, small: bool) -> float:
    """Append ``count`` entries in transactions of ``batch``; seconds taken."""
    started = time.perf_counter()
    done = 0
    while done < count:
        size = min(batch, count - done)
        drafts = [
            LogDraft(
                "journal_entry",
                f"je_{done + i}",
                f"inv_{done + i}",
                {"n": done + i} if small else billing_record(done + i, tenant_id),
                AT,
            )
            for i in range(size)
        ]
        with database.uow() as uow:
            uow.log.stage(tenant_id, drafts)
            uow.commit()
        done += size
    return time.perf_counter() - started


_start_line: Any = None  # a Barrier shared by the worker processes


def _hold_at_start(barrier: Any) -> None:
    global _start_line
    _start_line = barrier


def _append_worker(url: str, tenant_id: str, count: int, batch: int) -> float:
    """Seconds one writer takes, timed from when every writer is ready (imports and
    connections are not appends)."""
    database = open_database(url, migrate=False)
    try:
        with database.uow(read_only=True) as uow:
            uow.log.size(tenant_id)  # connected
        if _start_line is not None:
            _start_line.wait()
        return _append(database, tenant_id, count, batch, small=False)
    finally:
        database.dispose()


def measure_appends(url: str, count: int, batch: int, workers: int = 1) -> dict[str, Any]:
    """``workers`` processes, each appending ``count / workers`` entries to its own tenant's
    log (one log has one writer at a time: its sequencer row is locked by each append)."""
    database = open_database(url)
    try:
        tenants = [_tenant(database) for _ in range(workers)]
        engine = database.dialect_name
    finally:
        database.dispose()
    share = count // workers
    if workers == 1:
        seconds = _append_worker(url, tenants[0], share, batch)
    else:
        context = multiprocessing.get_context("spawn")
        barrier = context.Barrier(workers)
        with ProcessPoolExecutor(
            workers, mp_context=context, initializer=_hold_at_start, initargs=(barrier,)
        ) as pool:
            jobs = [pool.submit(_append_worker, url, t, share, batch) for t in tenants]
            seconds = max(job.result() for job in jobs)
    return {
        "engine": engine,
        "workers": workers,
        "entries": share * workers,
        "batch": batch,
        "seconds": round(seconds, 2),
        "entries_per_s": round(share * workers / seconds),
    }


def _percentiles(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    return {
        "mean_us": round(statistics.fmean(ordered) * 1e6, 1),
        "p50_us": round(ordered[len(ordered) // 2] * 1e6, 1),
        "p99_us": round(ordered[int(len(ordered) * 0.99)] * 1e6, 1),
    }


def _timed(calls: int, fn: Callable[[int], object], rng: random.Random, n: int) -> list[float]:
    samples = []
    for _ in range(calls):
        index = rng.randrange(n)
        started = time.perf_counter()
        fn(index)
        samples.append(time.perf_counter() - started)
    return samples


def measure_proofs(url: str, entries: int, batch: int, seed: int) -> dict[str, Any]:
    """Build a log of ``entries`` (small records: only the tree matters here), then time
    inclusion proofs for random indices at the full size, and their verification."""
    database = open_database(url)
    rng = random.Random(seed)
    try:
        tenant_id = _tenant(database)
        build = _append(database, tenant_id, entries, max(batch, 10_000), small=True)
        fresh = open_database(url, migrate=False)  # a new process's view: empty tile cache
        with fresh.uow(read_only=True) as uow:
            read = functools.partial(uow.log.read_subtrees, tenant_id, entries)
            root = merkle.tree_root(entries, read)
            samples = _timed(
                PROOFS, lambda i: merkle.inclusion_proof(i, entries, read), rng, entries
            )
            leaves = {}
            proofs = {}
            for index in (rng.randrange(entries) for _ in range(2_000)):
                leaves[index] = merkle.leaf_hash(
                    uow.log.commitments(tenant_id, index, index + 1)[0]
                )
                proofs[index] = merkle.inclusion_proof(index, entries, read)
        fresh.dispose()
    finally:
        database.dispose()
    checks = list(proofs.items()) * 10
    started = time.perf_counter()
    for index, proof in checks:
        merkle.verify_inclusion(leaves[index], index, entries, proof, root)
    verify_seconds = time.perf_counter() - started
    return {
        "entries": entries,
        "build_seconds": round(build, 1),
        "proof_generation": _percentiles(samples),
        "verifications_per_s": round(len(checks) / verify_seconds),
    }


def measure_pymerkle(
    directory: Path, count: int, proof_entries: int, batch: int, seed: int
) -> dict[str, Any]:
    """The same figures for ``pymerkle`` (its SQLite-backed tree for durable appends, its
    in-memory tree for proofs at ``proof_entries``)."""
    from pymerkle import InmemoryTree, SqliteTree, verify_inclusion

    rng = random.Random(seed)
    data = [f"entry {n} {'x' * 280}".encode() for n in range(batch)]
    tree = SqliteTree(str(directory / "pymerkle.db"))
    started = time.perf_counter()
    done = 0
    while done < count:
        tree.append_entries(data[: min(batch, count - done)])  # one transaction per call
        done += batch
    append_seconds = time.perf_counter() - started
    memory = InmemoryTree()
    built = time.perf_counter()
    for n in range(proof_entries):
        memory.append_entry(n.to_bytes(8, "big"))
    build_seconds = time.perf_counter() - built
    root = memory.get_state()
    samples = _timed(
        min(PROOFS, 2_000), lambda i: memory.prove_inclusion(i + 1), rng, proof_entries
    )
    checks = [
        (i + 1, memory.prove_inclusion(i + 1))
        for i in (rng.randrange(proof_entries) for _ in range(500))
    ]
    started = time.perf_counter()
    for index, proof in checks * 4:
        verify_inclusion(memory.get_leaf(index), root, proof)
    verify_seconds = time.perf_counter() - started
    return {
        "version": _version("pymerkle"),
        "appends": {
            "engine": "sqlite (pymerkle.SqliteTree)",
            "entries": count,
            "batch": batch,
            "seconds": round(append_seconds, 2),
            "entries_per_s": round(count / append_seconds),
        },
        "proofs": {
            "entries": proof_entries,
            "tree": "pymerkle.InmemoryTree",
            "build_seconds": round(build_seconds, 1),
            "proof_generation": _percentiles(samples),
            "verifications_per_s": round(len(checks) * 4 / verify_seconds),
        },
    }


def _version(package: str) -> str:
    from importlib.metadata import version

    return version(package)


def run_benchmark(
    urls: list[str],
    appends: int,
    batch: int,
    proof_entries: int,
    pymerkle_proof_entries: int,
    max_workers: int = 2,
    seed: int = 1,
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-ledger-") as scratch:
        directory = Path(scratch)
        urls = urls or [f"sqlite:///{directory / 'appends.db'}"]
        result: dict[str, Any] = {
            "benchmark": "ledger",
            "appends": [
                measure_appends(url, appends, batch, workers)
                for url in urls
                for workers in sorted({1, max_workers})
            ],
            "proofs": measure_proofs(
                f"sqlite:///{directory / 'proofs.db'}", proof_entries, batch, seed
            ),
            "pymerkle": measure_pymerkle(directory, appends, pymerkle_proof_entries, batch, seed),
            "goals": {"appends_per_s": 200_000, "proof_generation_us_at_10M": 50},
            "machine": machine(),
            "pid": os.getpid(),
        }
    return result
