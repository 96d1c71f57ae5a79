"""Usage ingestion: a batch of events checked, deduplicated, stored and logged at once.

Every event gets its own verdict (``domain.usage``); the valid ones are stored and one
``usage_batch`` log entry commits to them, in the same transaction. Logging each event would
cost more than storing it at 150,000 events a second; the batch's entry carries a SHA-256 over
its accepted events in a canonical form, so that an auditor holding the events (they carry
their ``batch_id``) recomputes it, and a changed, added or removed event is found.

Duplicates are exact under concurrency: the store's unique key decides which of two racing
batches stores an id (``UsageRepository.insert_new_events``); the other reports it duplicate.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import orjson

from iptv_billing.domain.errors import InvalidInput
from iptv_billing.domain.rating import Aggregation
from iptv_billing.domain.usage import (
    AT,
    CUSTOMER,
    DEFAULT_GRACE,
    DUPLICATE,
    ID,
    IX,
    MAX_BATCH,
    METRIC,
    PROPERTIES,
    SUBSCRIPTION,
    UNIQUE,
    VALUE,
    Valid,
    Verdict,
    Window,
    canonical_events,
    check_events,
    first_of_each_id,
)
from iptv_billing.ledger.entries import RECORD_VERSION, moment
from iptv_billing.services.context import Context
from iptv_billing.services.ports import UnitOfWork
from iptv_billing.services.records import LogDraft
from iptv_billing.services.usage_records import EventRow

USAGE_BATCH = "usage_batch"
_UNIQUE_COUNT = Aggregation.UNIQUE_COUNT.value


class KnownCustomers:
    """Customer ids this process has seen stored, per tenant. Customers are never deleted
    (closing one keeps its row), so a "yes" never goes stale and a batch of events for known
    customers skips the lookup. Bounded: forgotten whole when full."""

    def __init__(self, capacity: int = 1_000_000) -> None:
        self._capacity = capacity
        self._known: dict[str, set[str]] = {}
        self._size = 0
        self._lock = threading.Lock()

    def unknown(self, tenant_id: str, customer_ids: set[str]) -> set[str]:
        known = self._known.get(tenant_id)
        return customer_ids if known is None else customer_ids - known

    def add(self, tenant_id: str, customer_ids: set[str]) -> None:
        with self._lock:
            if self._size + len(customer_ids) > self._capacity:
                self._known, self._size = {}, 0
            self._known.setdefault(tenant_id, set()).update(customer_ids)
            self._size += len(customer_ids)


KNOWN_CUSTOMERS = KnownCustomers()


@dataclass(frozen=True, slots=True)
class IngestResult:
    batch_id: str | None  # None when nothing was accepted (and nothing logged)
    accepted: int
    duplicates: int
    rejected: int
    verdicts: tuple[Verdict, ...]  # the events not accepted, by index
    events_sha256: str | None = None


def check_batch(body: object) -> list[object]:
    """The events of a request body ``{"events": [...]}``; a body that is not one is refused
    whole (each event is judged on its own later)."""
    if type(body) is not dict or set(body) != {"events"}:
        raise InvalidInput("usage.invalid_batch", 'the body is {"events": [...]}')
    events = body["events"]
    if type(events) is not list:
        raise InvalidInput("usage.invalid_batch", "events is a list of event objects")
    if not events:
        raise InvalidInput("usage.empty_batch", "a batch holds at least one event")
    if len(events) > MAX_BATCH:
        raise InvalidInput(
            "usage.batch_too_large", f"a batch holds at most {MAX_BATCH} events, not {len(events)}"
        )
    return events


def ingest(
    uow: UnitOfWork, ctx: Context, events: Sequence[object], grace: timedelta = DEFAULT_GRACE
) -> IngestResult:
    """Store the batch's valid, new events and log the batch; a verdict for every other."""
    if len(events) > MAX_BATCH:
        raise InvalidInput("usage.batch_too_large", f"a batch holds at most {MAX_BATCH} events")
    now = ctx.now()
    valid, verdicts = check_events(events, Window.around(now, grace))
    valid = first_of_each_id(_known(uow, ctx, valid, verdicts), verdicts)
    batch_id = ctx.ids.new("ubat")
    rows: list[EventRow] = [
        (e[ID], e[CUSTOMER], e[METRIC], e[VALUE], e[UNIQUE], e[SUBSCRIPTION], e[AT], e[PROPERTIES])
        for e in valid
    ]
    stored = uow.usage.insert_new_events(ctx.tenant_id, batch_id, now, rows)
    accepted = [e for e in valid if e[ID] in stored]
    if len(accepted) != len(valid):
        verdicts += [
            Verdict(e[IX], e[ID], DUPLICATE, "usage.duplicate")
            for e in valid
            if e[ID] not in stored
        ]
    verdicts.sort(key=lambda v: v.index)
    duplicates = sum(1 for v in verdicts if v.status == DUPLICATE)
    rejected = len(verdicts) - duplicates
    if not accepted:
        return IngestResult(None, 0, duplicates, rejected, tuple(verdicts))
    record = batch_record(ctx.tenant_id, batch_id, accepted, now)
    uow.log.stage(ctx.tenant_id, [LogDraft(USAGE_BATCH, batch_id, None, record, now)])
    digest = str(record["events_sha256"])
    return IngestResult(batch_id, len(accepted), duplicates, rejected, tuple(verdicts), digest)


def _known(
    uow: UnitOfWork, ctx: Context, valid: list[Valid], verdicts: list[Verdict]
) -> list[Valid]:
    """The events whose metric, customer and subscription the tenant has, each attributed to a
    subscription: at most four reads for the whole batch."""
    if not valid:
        return valid
    tenant = ctx.tenant_id
    metrics = uow.usage.metrics_by_code(tenant, list({e[METRIC] for e in valid}))
    asked = KNOWN_CUSTOMERS.unknown(tenant, {e[CUSTOMER] for e in valid})
    found = uow.usage.known_customers(tenant, list(asked)) if asked else set()
    KNOWN_CUSTOMERS.add(tenant, found)
    missing = asked - found
    wanted = {e[SUBSCRIPTION] for e in valid if e[SUBSCRIPTION] is not None}
    owners = uow.usage.subscription_customers(tenant, list(wanted)) if wanted else {}
    unnamed = {e[CUSTOMER] for e in valid if e[SUBSCRIPTION] is None}
    live = uow.usage.live_subscriptions(tenant, list(unnamed)) if unnamed else {}
    kept: list[Valid] = []
    for event in valid:
        metric = metrics.get(event[METRIC])
        code = None
        if metric is None:
            code = "usage.unknown_metric"
        elif metric.archived:
            code = "usage.metric_archived"
        elif event[CUSTOMER] in missing:
            code = "usage.unknown_customer"
        elif event[SUBSCRIPTION] is not None and owners.get(event[SUBSCRIPTION]) != event[CUSTOMER]:
            code = "usage.unknown_subscription"
        elif event[UNIQUE] is None and metric.aggregation == _UNIQUE_COUNT:
            code = "usage.unique_key_required"
        else:
            event, code = _attributed(event, live)
        if code is None:
            kept.append(event)
        else:
            verdicts.append(Verdict(event[IX], event[ID], "rejected", code))
    return kept


def _attributed(event: Valid, live: dict[str, list[str]]) -> tuple[Valid, str | None]:
    """An event without a subscription is the customer's only live subscription's usage;
    with several, the client must say which (a period is billed per subscription)."""
    if event[SUBSCRIPTION] is not None:
        return event, None
    subscriptions = live.get(event[CUSTOMER], [])
    if len(subscriptions) > 1:
        return event, "usage.subscription_required"
    if not subscriptions:
        return event, "usage.no_subscription"
    return (*event[:SUBSCRIPTION], subscriptions[0], *event[SUBSCRIPTION + 1 :]), None  # type: ignore[return-value]


def utc_moment(at: datetime) -> str:
    """``ledger.entries.moment`` at a fifth of its cost (isoformat, not strftime)."""
    utc = at.astimezone(UTC)
    if utc.year < 1000:  # pragma: no cover - event times are checked to be recent
        return moment(at)
    return utc.isoformat(timespec="microseconds")[:-6] + "Z"


def events_digest(events: Sequence[tuple[str, str, str, int, str]]) -> str:
    """SHA-256 (hex) of the RFC 8785 JSON of ``canonical_events``: an array of arrays of
    strings, for which RFC 8785 is compact JSON."""
    return hashlib.sha256(orjson.dumps(canonical_events(events))).hexdigest()


def batch_record(
    tenant_id: str, batch_id: str, accepted: Sequence[Valid], at: datetime
) -> dict[str, object]:
    stamps: dict[datetime, str] = {}
    canonical = []
    for event in accepted:
        when = event[AT]
        text = stamps.get(when)
        if text is None:
            text = stamps[when] = utc_moment(when)
        canonical.append((event[ID], event[CUSTOMER], event[METRIC], event[VALUE], text))
    times = [event[AT] for event in accepted]
    return {
        "v": RECORD_VERSION,
        "type": USAGE_BATCH,
        "tenant": tenant_id,
        "batch": batch_id,
        "accepted": len(accepted),
        "first_at": moment(min(times)),
        "last_at": moment(max(times)),
        "events_sha256": events_digest(canonical),
        "at": moment(at),
    }


def stored_batch_digest(uow: UnitOfWork, tenant_id: str, batch_id: str) -> tuple[int, str]:
    """(count, SHA-256) of a batch's events as stored now: what an audit compares with the
    batch's log record."""
    events = uow.usage.events_of_batch(tenant_id, batch_id)
    canonical = [
        (e.event_id, e.customer_id, e.metric_code, e.value_scaled, moment(e.occurred_at))
        for e in events
    ]
    return len(canonical), events_digest(canonical)
