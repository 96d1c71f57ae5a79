"""The ``iptv-billing`` command: serve, demo, bill, db, tenant, clock, books, ledger, verify,
witness, bench."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from iptv_billing.cli_common import (
    DatabaseUrl,
    TenantId,
    console,
    open_runtime_for,
    settings_for,
)
from iptv_billing.cli_ledger import ledger_app, verify_receipt_command
from iptv_billing.witness.cli import witness_app

app = typer.Typer(help="Verifiable billing for IPTV operators.", no_args_is_help=True)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
tenant_app = typer.Typer(help="Operators (tenants) and their API keys.", no_args_is_help=True)
clock_app = typer.Typer(help="A tenant's test clock.", no_args_is_help=True)
bench_app = typer.Typer(help="Benchmarks; each prints one JSON line.", no_args_is_help=True)
books_app = typer.Typer(help="Audit the books.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(tenant_app, name="tenant")
app.add_typer(clock_app, name="clock")
app.add_typer(bench_app, name="bench")
app.add_typer(books_app, name="books")
app.add_typer(ledger_app, name="ledger")
app.add_typer(witness_app, name="witness")
app.command("verify")(verify_receipt_command)
_settings = settings_for
_open = open_runtime_for


@app.command()
def serve(
    database_url: DatabaseUrl = None,
    host: Annotated[str | None, typer.Option(help="interface to listen on")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port")] = None,
    seed_demo: Annotated[bool, typer.Option(help="seed the demo operator if empty")] = False,
) -> None:
    """Serve the API (migrating the database first)."""
    import uvicorn

    from iptv_billing.bootstrap import build_app, seed_demo_if_empty

    settings = _settings(database_url)
    runtime = _open(database_url)
    if seed_demo:
        base = f"http://{host or settings.host}:{port or settings.port}"
        seed_demo_if_empty(runtime, settings, console.print, base)
    uvicorn.run(
        build_app(runtime, settings),
        host=host or settings.host,
        port=port or settings.port,
        log_level=settings.log_level,
        # One access-log line per request is costly on the callback path; only when asked.
        access_log=settings.log_level.lower() in ("debug", "info"),
    )


@app.command()
def demo(
    database_url: DatabaseUrl = None,
    subscribers: Annotated[int, typer.Option(min=1, max=100_000)] = 1000,
    days: Annotated[int, typer.Option(min=1, max=3660, help="days of billing to simulate")] = 92,
    seed: Annotated[int, typer.Option(help="random seed")] = 7,
) -> None:
    """Seed a realistic demo operator, run three months of billing, print a summary."""
    from iptv_billing.services.demo import DemoSeeder, summarize

    runtime = _open(database_url)
    seeder = DemoSeeder(runtime.database.uow, runtime.clock, runtime.ids, seed=seed)
    with console.status("seeding…") as status:
        result = seeder.seed(
            subscribers,
            days,
            settings_for(None).demo_api_key,
            progress=lambda m: status.update(f"demo: {m}"),
        )
    checkpoint = runtime.publisher.checkpoint(result.tenant_id)
    with runtime.database.uow(read_only=True) as uow:
        summary = summarize(uow, result.tenant_id)
    summary["transparency_log"] = {
        "origin": runtime.publisher.origin(result.tenant_id),
        "entries": checkpoint.size,
        "signed checkpoint root": checkpoint.root.hex(),
        "check it": f"iptv-billing ledger verify --tenant {result.tenant_id}",
    }
    _print_summary(result.tenant_id, result.api_key, summary)


def _print_summary(tenant_id: str, api_key: str, summary: dict[str, Any]) -> None:
    console.print(f"[bold]Demo tenant[/bold] {tenant_id}   admin API key: [bold]{api_key}[/bold]")
    for title, values in summary.items():
        table = Table(title=title.replace("_", " "), show_header=False, title_justify="left")
        for key, value in values.items():
            table.add_row(str(key), json.dumps(value) if isinstance(value, dict) else str(value))
        console.print(table)


@app.command()
def bill(
    tenant: TenantId,
    database_url: DatabaseUrl = None,
    batch_size: Annotated[int, typer.Option(min=1, max=100_000)] = 1000,
) -> None:
    """Run billing for a tenant up to its clock's now (safe to repeat)."""
    from iptv_billing.adapters.sql.uow import is_transient
    from iptv_billing.services.billing_run import BillingRunner

    runtime = _open(database_url)
    runner = BillingRunner(
        runtime.database.uow,
        runtime.clock,
        runtime.ids,
        batch_size=batch_size,
        is_transient=is_transient,
        after_run=runtime.publisher.after_billing_run,
    )
    columns = (TextColumn("renewing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("renew", total=None)
        run = runner.run(tenant, progress=lambda n: progress.advance(task, n))
    console.print_json(
        json.dumps(
            {
                "id": run.id,
                "as_of": run.as_of.isoformat(),
                "subscriptions": run.subscriptions_seen,
                "invoices": run.invoices_created,
                "transitions": run.transitions,
                "failures": run.failures,
            }
        )
    )


@db_app.command("upgrade")
def db_upgrade(database_url: DatabaseUrl = None) -> None:
    """Create or migrate the schema to the newest revision."""
    from iptv_billing.adapters.sql.migrate import upgrade_database

    upgrade_database(_settings(database_url).database_url)
    console.print("database is at the newest revision")


@tenant_app.command("create")
def tenant_create(
    name: Annotated[str, typer.Option()],
    timezone: Annotated[str, typer.Option()] = "UTC",
    currency: Annotated[str, typer.Option()] = "EUR",
    invoice_prefix: Annotated[str, typer.Option()] = "INV-",
    database_url: DatabaseUrl = None,
) -> None:
    """Create an operator and print its first admin API key (shown once)."""
    from iptv_billing.services import access

    runtime = _open(database_url)
    with runtime.database.uow() as uow:
        tenant = access.create_tenant(
            uow, runtime.ids, runtime.clock, name, timezone, currency, invoice_prefix
        )
        _, secret = access.issue_api_key(
            uow, runtime.ids, runtime.clock, tenant.id, "admin", "admin"
        )
        uow.commit()
    console.print_json(json.dumps({"tenant_id": tenant.id, "admin_api_key": secret}))


@clock_app.command("show")
def clock_show(tenant: TenantId, database_url: DatabaseUrl = None) -> None:
    runtime = _open(database_url)
    with runtime.database.uow(read_only=True) as uow:
        record = uow.tenants.get(tenant)
    if record is None:
        raise typer.BadParameter(f"no tenant {tenant}")
    frozen = record.test_clock_now
    console.print_json(
        json.dumps(
            {"frozen": frozen is not None, "now": (frozen or runtime.clock.now()).isoformat()}
        )
    )


@clock_app.command("freeze")
def clock_freeze(
    tenant: TenantId, at: Annotated[datetime, typer.Option()], database_url: DatabaseUrl = None
) -> None:
    """Freeze the tenant's clock at AT (ISO 8601 with offset)."""
    from iptv_billing.services import test_clocks
    from iptv_billing.services.context import load_context

    def change(uow: Any, runtime: Any) -> datetime:
        now = load_context(uow, tenant, runtime.clock, runtime.ids).now()
        return test_clocks.freeze(uow, tenant, _aware(at), now)

    _clock_change(database_url, change)


@clock_app.command("advance")
def clock_advance(
    tenant: TenantId,
    to: Annotated[datetime, typer.Option()],
    database_url: DatabaseUrl = None,
    run_billing: Annotated[bool, typer.Option(help="bill at the new time")] = True,
) -> None:
    """Advance the tenant's frozen clock to TO and run billing there."""
    from iptv_billing.adapters.sql.uow import is_transient
    from iptv_billing.services import test_clocks
    from iptv_billing.services.billing_run import BillingRunner

    runtime = _clock_change(
        database_url, lambda uow, _runtime: test_clocks.advance_to(uow, tenant, _aware(to))
    )
    if run_billing:
        runner = BillingRunner(
            runtime.database.uow,
            runtime.clock,
            runtime.ids,
            is_transient=is_transient,
            after_run=runtime.publisher.after_billing_run,
        )
        run = runner.run(tenant)
        console.print(f"billing run {run.id}: {run.invoices_created} invoices")


def _aware(moment: datetime) -> datetime:
    if moment.tzinfo is None:
        raise typer.BadParameter("give the time with a UTC offset, e.g. 2026-03-01T00:00:00+00:00")
    return moment


def _clock_change(database_url: str | None, change: Any) -> Any:
    runtime = _open(database_url)
    with runtime.database.uow() as uow:
        now = change(uow, runtime)
        uow.commit()
    console.print(f"test clock now {now.isoformat()}")
    return runtime


@books_app.command("check")
def books_check(tenant: TenantId, database_url: DatabaseUrl = None) -> None:
    """Check that the journal balances and agrees with wallets, invoices and numbering;
    exits 1 and lists every discrepancy when it does not."""
    from iptv_billing.services.audit import check_books

    runtime = _open(database_url)
    with runtime.database.uow(read_only=True) as uow:
        report = check_books(uow, tenant)
    rows = [dataclasses.asdict(d) for d in report.discrepancies]
    console.print_json(
        json.dumps({"tenant": tenant, "consistent": report.consistent, "discrepancies": rows})
    )
    if not report.consistent:
        raise typer.Exit(1)


@bench_app.command("billing-run")
def bench_billing_run(
    subscriptions: Annotated[int, typer.Option(min=1)] = 100_000,
    database_url: DatabaseUrl = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 2000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="processes sharing the run")] = 1,
) -> None:
    """Seed N due subscriptions in a fresh tenant, renew them all, print one JSON line."""
    from iptv_billing.bench.billing_run import run_benchmark

    url = database_url or "sqlite:///./bench-billing.db"
    print(json.dumps(run_benchmark(url, subscriptions, batch_size, workers)))


@bench_app.command("ledger")
def bench_ledger(
    database_url: Annotated[
        list[str] | None,
        typer.Option("--database-url", help="where to time appends (repeat); default SQLite"),
    ] = None,
    appends: Annotated[int, typer.Option(min=1)] = 200_000,
    batch: Annotated[int, typer.Option(min=1, help="entries per transaction")] = 3_000,
    proof_entries: Annotated[int, typer.Option(min=2, help="log size for proofs")] = 1_000_000,
    pymerkle_proof_entries: Annotated[int, typer.Option(min=2)] = 200_000,
    workers: Annotated[
        int, typer.Option(min=1, max=64, help="also time this many writers (one log each)")
    ] = 2,
) -> None:
    """Durable appends per second, inclusion-proof time and verification rate, beside
    pymerkle in the same run; one JSON line."""
    from iptv_billing.bench.ledger import run_benchmark

    figures = run_benchmark(
        list(database_url or []), appends, batch, proof_entries, pymerkle_proof_entries, workers
    )
    print(json.dumps(figures))


@bench_app.command("authorize")
def bench_authorize(
    database_url: DatabaseUrl = None,
    subscribers: Annotated[int, typer.Option(min=2_000)] = 100_000,
    requests: Annotated[int, typer.Option(min=1_000, help="decisions to time")] = 200_000,
    servers: Annotated[int, typer.Option(min=1, max=16, help="API processes")] = 1,
    clients: Annotated[int, typer.Option(min=1, max=16, help="load processes")] = 1,
    connections: Annotated[int, typer.Option(min=1, max=1024, help="concurrent requests")] = 8,
    redis_url: Annotated[
        str | None, typer.Option(help="share sessions through this Redis (needed for servers > 1)")
    ] = None,
    load: Annotated[
        str, typer.Option(help="load generator: auto (wrk when installed), wrk or python")
    ] = "auto",
    seconds: Annotated[int, typer.Option(min=5, max=3600, help="how long wrk runs")] = 30,
) -> None:
    """Stream-authorization decisions per second and their p50/p99 latency over HTTP, for a
    mix of valid, expired, over-limit and unknown viewers; one JSON line."""
    from iptv_billing.bench.authorize import run_benchmark

    if load not in ("auto", "wrk", "python"):
        raise typer.BadParameter("--load is auto, wrk or python")
    url = database_url or "sqlite:///./bench-authorize.db"
    figures = run_benchmark(
        url, subscribers, requests, servers, clients, connections, redis_url, load, seconds
    )
    print(json.dumps(figures))


@bench_app.command("ingest")
def bench_ingest(
    database_url: DatabaseUrl = None,
    events: Annotated[int, typer.Option(min=1, help="events to send")] = 1_000_000,
    batch: Annotated[int, typer.Option(min=1, max=10_000, help="events per call")] = 10_000,
    duplicates: Annotated[
        float, typer.Option(min=0.0, max=0.5, help="share of each batch repeating earlier ids")
    ] = 0.05,
    customers: Annotated[int, typer.Option(min=1)] = 10_000,
    workers: Annotated[int, typer.Option(min=1, max=64, help="ingesting processes")] = 1,
    http: Annotated[bool, typer.Option(help="also time batches POSTed to the app")] = False,
) -> None:
    """Usage events ingested per second (validation, deduplication, storage and the batch's
    log entry, through the service the API calls); one JSON line."""
    from iptv_billing.bench.ingest import run_benchmark

    url = database_url or "sqlite:///./bench-ingest.db"
    print(json.dumps(run_benchmark(url, events, batch, duplicates, customers, workers, http)))


@bench_app.command("rating")
def bench_rating(
    database_url: DatabaseUrl = None,
    subscriptions: Annotated[int, typer.Option(min=1, help="metered subscriptions")] = 10_000,
    events: Annotated[int, typer.Option(min=1, help="usage events per subscription")] = 100,
    batch_size: Annotated[int, typer.Option(min=1, max=100_000)] = 1000,
) -> None:
    """Usage events rated into renewal invoices per second by the billing run, checked
    against the same events rated in memory; one JSON line."""
    from iptv_billing.bench.rating import run_benchmark

    url = database_url or "sqlite:///./bench-rating.db"
    print(json.dumps(run_benchmark(url, subscriptions, events, batch_size)))


def main() -> None:
    """The console script. A refused request (unknown tenant, bad time zone, …) is a one-line
    error with its stable code and exit status 2, never a traceback."""
    from iptv_billing.domain.errors import BillingError
    from iptv_billing.ledger.errors import LedgerError

    try:
        app()
    except (BillingError, LedgerError) as error:
        Console(stderr=True).print(f"[red]{error.code}[/red]: {error.message}")
        raise SystemExit(2) from None
