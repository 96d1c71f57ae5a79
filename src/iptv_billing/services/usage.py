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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from operator import itemgetter

import orjson

from iptv_billing.domain.errors import InvalidInput
from iptv_billing.domain.rating import Aggregation
from iptv_billing.domain.usage import (
    AT,
    CUSTOMER,
    DEFAULT_GRACE,
    DUPLICATE,
    ID,
    MAX_BATCH,
    METRIC,
    SCALE,
    SUBSCRIPTION,
    Valid,
    Verdict,
    Window,
    canonical_events,
    check_events,
    rejected,
    value_text,
)
from iptv_billing.ledger.entries import RECORD_VERSION, moment
from iptv_billing.services.context import Context
from iptv_billing.services.ports import UnitOfWork
from iptv_billing.services.records import LogDraft
from iptv_billing.services.usage_records import MetricRecord

USAGE_BATCH = "usage_batch"
_UNIQUE_COUNT = Aggregation.UNIQUE_COUNT.value


class StableFacts:
    """Facts about a tenant's rows that never change once stored, as this process has read
    them: key → value per tenant. Customers are never deleted (closing one keeps its row) and
    a subscription never changes customer, so a "yes" never goes stale, and a batch of events
    for known customers and subscriptions skips their lookups; a "no" is never remembered.
    Bounded: forgotten whole when full."""

    def __init__(self, capacity: int = 1_000_000) -> None:
        self._capacity = capacity
        self._known: dict[str, dict[str, str]] = {}
        self._size = 0
        self._lock = threading.Lock()

    def of(self, tenant_id: str) -> Mapping[str, str]:
        return self._known.get(tenant_id, {})

    def unknown(self, tenant_id: str, keys: set[str]) -> set[str]:
        return keys.difference(self.of(tenant_id))

    def add(self, tenant_id: str, facts: Mapping[str, str]) -> None:
        with self._lock:
            if self._size + len(facts) > self._capacity:
                self._known, self._size = {}, 0
            self._known.setdefault(tenant_id, {}).update(facts)
            self._size += len(facts)


KNOWN_CUSTOMERS = StableFacts()  # customer id → itself
SUBSCRIPTION_OWNERS = StableFacts()  # subscription id → its customer id


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
    valid, indexes, verdicts = check_events(events, Window.around(now, grace))
    rows, indexes = _known(uow, ctx, valid, indexes, verdicts)
    batch_id = ctx.ids.new("ubat")
    stored = uow.usage.insert_new_events(ctx.tenant_id, batch_id, now, rows)
    accepted = rows
    if len(stored) != len(rows):  # ``stored`` is a subset of the rows' distinct ids
        accepted = []
        for row, index in zip(rows, indexes, strict=True):
            if row[ID] in stored:
                accepted.append(row)
            else:
                verdicts.append(Verdict(index, row[ID], DUPLICATE, "usage.duplicate"))
    verdicts.sort(key=lambda v: v.index)
    duplicates = sum(1 for v in verdicts if v.status == DUPLICATE)
    refused = len(verdicts) - duplicates
    if not accepted:
        return IngestResult(None, 0, duplicates, refused, tuple(verdicts))
    record = batch_record(ctx.tenant_id, batch_id, accepted, now)
    uow.log.stage(ctx.tenant_id, [LogDraft(USAGE_BATCH, batch_id, None, record, now)])
    digest = str(record["events_sha256"])
    return IngestResult(batch_id, len(accepted), duplicates, refused, tuple(verdicts), digest)


def _known(
    uow: UnitOfWork, ctx: Context, valid: list[Valid], indexes: list[int], verdicts: list[Verdict]
) -> tuple[list[Valid], list[int]]:
    """The events whose metric, customer and subscription the tenant has, each attributed to a
    subscription, and the first of each id (later ones are duplicates within the batch), with
    their indexes: at most four reads for the whole batch, none for known customers and
    subscriptions."""
    if not valid:
        return valid, indexes
    known = _Known.read(uow, ctx.tenant_id, valid)
    kept: list[Valid] = []
    kept_indexes: list[int] = []
    seen: set[str] = set()
    for event, index in zip(valid, indexes, strict=True):
        event_id = event[ID]
        event, code = known.check(event)
        if code is None and event_id in seen:
            code = "usage.duplicate"
        if code is None:
            seen.add(event_id)
            kept.append(event)
            kept_indexes.append(index)
        else:
            verdicts.append(rejected(index, event_id, code))
    return kept, kept_indexes


@dataclass(frozen=True, slots=True)
class _Known:
    """What the batch's events refer to, as the tenant has it."""

    problems: dict[str, str | None]  # metric code → why its events are refused, or None
    needs_key: set[str]  # unique_count metrics
    missing: set[str]  # customers that do not exist
    owners: Mapping[str, str]  # subscription → customer
    live: dict[str, list[str]]  # customer → live subscriptions, for events that name none

    @classmethod
    def read(cls, uow: UnitOfWork, tenant: str, valid: list[Valid]) -> _Known:
        metrics = uow.usage.metrics_by_code(tenant, list({e[METRIC] for e in valid}))
        asked = KNOWN_CUSTOMERS.unknown(tenant, {e[CUSTOMER] for e in valid})
        found = uow.usage.known_customers(tenant, list(asked)) if asked else set()
        KNOWN_CUSTOMERS.add(tenant, {c: c for c in found})
        unnamed = {e[CUSTOMER] for e in valid if e[SUBSCRIPTION] is None}
        return cls(
            problems={code: _metric_problem(metric) for code, metric in metrics.items()},
            needs_key={c for c, m in metrics.items() if m.aggregation == _UNIQUE_COUNT},
            missing=asked - found,
            owners=_owners(uow, tenant, {e[SUBSCRIPTION] for e in valid}),
            live=uow.usage.live_subscriptions(tenant, list(unnamed)) if unnamed else {},
        )

    def check(self, event: Valid) -> tuple[Valid, str | None]:
        """The event (attributed to a subscription) and the code that refuses it, or None."""
        _, customer, metric, _, unique, subscription = event[:AT]
        code = self.problems.get(metric, "usage.unknown_metric")
        if code is not None:
            return event, code
        if customer in self.missing:
            return event, "usage.unknown_customer"
        if subscription is not None and self.owners.get(subscription) != customer:
            return event, "usage.unknown_subscription"
        if unique is None and metric in self.needs_key:
            return event, "usage.unique_key_required"
        return (event, None) if subscription is not None else _attributed(event, self.live)


def _metric_problem(metric: MetricRecord) -> str | None:
    return "usage.metric_archived" if metric.archived else None


def _owners(uow: UnitOfWork, tenant: str, named: set[str | None]) -> Mapping[str, str]:
    """Subscription id → customer id for the named subscriptions (those that exist)."""
    owners = SUBSCRIPTION_OWNERS.of(tenant)  # one snapshot: the cache may be reset meanwhile
    named.discard(None)
    asked = [s for s in named if s is not None and s not in owners]
    if not asked:
        return owners
    fetched = uow.usage.subscription_customers(tenant, asked)
    SUBSCRIPTION_OWNERS.add(tenant, fetched)
    return {**owners, **fetched}


def _attributed(event: Valid, live: dict[str, list[str]]) -> tuple[Valid, str | None]:
    """An event without a subscription is the customer's only live subscription's usage;
    with several, the client must say which (a period is billed per subscription)."""
    subscriptions = live.get(event[CUSTOMER], [])
    if len(subscriptions) > 1:
        return event, "usage.subscription_required"
    if not subscriptions:
        return event, "usage.no_subscription"
    return (*event[:SUBSCRIPTION], subscriptions[0], *event[SUBSCRIPTION + 1 :]), None  # type: ignore[return-value]


_MOMENTS: dict[datetime, str] = {}  # event time → utc_moment, process-wide (bounded)


def _value_text(scaled: int) -> str:
    return value_text(scaled) if scaled % SCALE else str(scaled // SCALE)


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
    """The batch's log record; its digest is ``events_digest`` of the accepted events, built
    here in one pass (times rendered once per distinct instant)."""
    stamps = _MOMENTS
    if len(stamps) > 100_000:
        stamps.clear()
    canonical: list[tuple[str, str, str, str, str]] = []
    add = canonical.append
    for event_id, customer, metric, scaled, _, _, when, _ in accepted:
        text = stamps.get(when)
        if text is None:
            text = stamps[when] = utc_moment(when)
        add((event_id, customer, metric, _value_text(scaled), text))
    canonical.sort(key=itemgetter(0))  # the ids are distinct
    # Fixed-width UTC text (event times are recent): its order is the times' order.
    moments = list(map(itemgetter(4), canonical))
    return {
        "v": RECORD_VERSION,
        "type": USAGE_BATCH,
        "tenant": tenant_id,
        "batch": batch_id,
        "accepted": len(accepted),
        "first_at": min(moments),
        "last_at": max(moments),
        "events_sha256": hashlib.sha256(orjson.dumps(canonical)).hexdigest(),
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
