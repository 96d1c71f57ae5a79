"""The storage port: what services need from a database, as typed protocols.

``adapters/sql`` implements them; tests may fake them. A ``UnitOfWork`` is one transaction:
everything done through its repositories commits together on ``commit()`` or not at all.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import datetime
from decimal import Decimal
from typing import Protocol, TypeVar

from iptv_billing.domain.entitlement import Window
from iptv_billing.domain.journal import JournalEntry
from iptv_billing.domain.rating import Aggregation
from iptv_billing.services.ppv_records import PpvEventRecord, PpvPurchaseRecord
from iptv_billing.services.records import (
    AnchorRecord,
    ApiKeyRecord,
    BillingRunRecord,
    ChannelRecord,
    CheckpointRecord,
    CosignatureRecord,
    CredentialRecord,
    CustomerRecord,
    IdempotencyEntry,
    InvoiceRecord,
    LogDraft,
    LogEntryRecord,
    PackageRecord,
    Page,
    PanelLineRecord,
    PaymentRecord,
    PlanRecord,
    ProgrammeRecord,
    ProvisioningAttemptRecord,
    ProvisioningDeliveryRecord,
    ProvisioningTargetRecord,
    StoredJournalEntry,
    SubscriptionRecord,
    TenantRecord,
    TermsRecord,
    WalletHoldRecord,
    WalletRecord,
)
from iptv_billing.services.usage_records import EventRow, MetricRecord, StoredUsageEvent
from iptv_billing.services.vod_records import VodItemRecord, VodRentalRecord


class TenantRepository(Protocol):
    def add(self, tenant: TenantRecord) -> None: ...
    def get(self, tenant_id: str) -> TenantRecord | None: ...
    def list(self) -> Sequence[TenantRecord]: ...
    def set_test_clock(self, tenant_id: str, now: datetime | None) -> None: ...


class ApiKeyRepository(Protocol):
    def add(self, key: ApiKeyRecord) -> None: ...
    def by_hash(self, key_hash: str) -> ApiKeyRecord | None: ...
    def list(self, tenant_id: str) -> Sequence[ApiKeyRecord]: ...
    def revoke(self, tenant_id: str, key_id: str, at: datetime) -> bool: ...


class IdempotencyRepository(Protocol):
    def get(self, tenant_id: str, key: str) -> IdempotencyEntry | None: ...
    def reserve(self, entry: IdempotencyEntry) -> bool:
        """Insert an in-progress entry; False if the key exists already."""
        ...

    def complete(self, tenant_id: str, key: str, status_code: int, body: str) -> None: ...
    def release(self, tenant_id: str, key: str) -> None: ...
    def release_stale(self, tenant_id: str, key: str, started_before: datetime) -> bool:
        """Release an in-progress reservation made before ``started_before`` (its request
        died); True if one was released."""
        ...

    def purge(self, created_before: datetime) -> int:
        """Forget every entry created before ``created_before``; how many went."""
        ...


class CatalogRepository(Protocol):
    def add_channel(self, channel: ChannelRecord) -> None: ...
    def get_channel(self, tenant_id: str, channel_id: str) -> ChannelRecord | None: ...
    def channels_by_code(self, tenant_id: str, codes: Sequence[str]) -> Sequence[ChannelRecord]: ...
    def list_channels(
        self, tenant_id: str, limit: int, after: str | None
    ) -> Page[ChannelRecord]: ...
    def next_stream_id(self, tenant_id: str) -> int: ...
    def fingerprints(self) -> dict[str, tuple[int, ...]]:
        """Per tenant, a value that changes whenever a channel or package is added."""
        ...

    def add_package(self, package: PackageRecord) -> None: ...
    def get_package(self, tenant_id: str, package_id: str) -> PackageRecord | None: ...
    def packages_by_code(self, tenant_id: str, codes: Sequence[str]) -> Sequence[PackageRecord]: ...
    def list_packages(
        self, tenant_id: str, limit: int, after: str | None
    ) -> Page[PackageRecord]: ...
    def add_plan(self, plan: PlanRecord) -> None: ...
    def get_plan(self, tenant_id: str, plan_id: str) -> PlanRecord | None: ...
    def plan_by_code(self, tenant_id: str, code: str) -> PlanRecord | None: ...
    def list_plans(self, tenant_id: str, limit: int, after: str | None) -> Page[PlanRecord]: ...
    def add_terms(self, terms: TermsRecord) -> None: ...
    def get_terms(self, tenant_id: str, terms_id: str) -> TermsRecord | None: ...
    def terms_by_ids(self, terms_ids: Sequence[str]) -> Sequence[TermsRecord]: ...
    def terms_of_plan(self, tenant_id: str, plan_id: str) -> Sequence[TermsRecord]: ...
    def all_terms(self, tenant_id: str) -> Sequence[TermsRecord]: ...


class CustomerRepository(Protocol):
    def add(self, customer: CustomerRecord) -> None: ...
    def get(self, tenant_id: str, customer_id: str) -> CustomerRecord | None: ...
    def update(self, customer: CustomerRecord) -> None: ...
    def collection_methods(self, tenant_id: str, customer_ids: Sequence[str]) -> dict[str, str]: ...
    def list(
        self, tenant_id: str, limit: int, after: str | None, email: str | None = None
    ) -> Page[CustomerRecord]: ...


class SubscriptionRepository(Protocol):
    def add(self, subscription: SubscriptionRecord) -> None: ...
    def get(
        self, tenant_id: str, subscription_id: str, *, for_update: bool = False
    ) -> SubscriptionRecord | None: ...
    def get_many(self, tenant_id: str, ids: Sequence[str]) -> dict[str, SubscriptionRecord]: ...
    def update(self, subscription: SubscriptionRecord) -> None:
        """Write the new state; raise Conflict if ``version`` moved underneath (lost update)."""
        ...

    def update_many(self, subscriptions: Sequence[SubscriptionRecord]) -> None: ...
    def list(
        self,
        tenant_id: str,
        limit: int,
        after: str | None,
        customer_id: str | None = None,
        status: str | None = None,
    ) -> Page[SubscriptionRecord]: ...
    def due(
        self, tenant_id: str, now: datetime, after: str | None, limit: int
    ) -> Sequence[SubscriptionRecord]:
        """Subscriptions whose period (or trial) ended by ``now``, in id order, locked
        (SKIP LOCKED on PostgreSQL) so several workers can share a billing run."""
        ...

    def on_terms(
        self,
        tenant_id: str,
        terms_ids: Sequence[str],
        statuses: Sequence[str],
        after: str | None,
        limit: int,
    ) -> Page[SubscriptionRecord]:
        """Subscriptions billed under any of ``terms_ids`` in one of ``statuses``, by id."""
        ...

    def count_by_status(self, tenant_id: str) -> dict[str, int]: ...


class InvoiceRepository(Protocol):
    def add_many(self, invoices: Sequence[InvoiceRecord]) -> int:
        """Insert invoices with their lines; cycle invoices whose (subscription, cycle_start)
        exists already are skipped. Returns how many were inserted."""
        ...

    def get(
        self, tenant_id: str, invoice_id: str, *, for_update: bool = False
    ) -> InvoiceRecord | None: ...
    def update(self, invoice: InvoiceRecord) -> None: ...
    def list(
        self,
        tenant_id: str,
        limit: int,
        after: str | None,
        customer_id: str | None = None,
        status: str | None = None,
        subscription_id: str | None = None,
    ) -> Page[InvoiceRecord]: ...
    def existing_cycles(self, subscription_ids: Sequence[str]) -> set[tuple[str, datetime]]: ...
    def take_numbers(self, tenant_id: str, series: str, count: int) -> int:
        """Reserve ``count`` consecutive numbers in ``series``; returns the first."""
        ...

    def oldest_unpaid_due(
        self, tenant_id: str, subscription_ids: Sequence[str]
    ) -> dict[str, datetime]: ...
    def overdue_subscriptions(
        self, tenant_id: str, due_before: datetime, after: str | None, limit: int
    ) -> Sequence[tuple[str, datetime]]:
        """(subscription id, oldest due date) of subscriptions with an unpaid finalized invoice
        due before ``due_before``, in subscription-id order."""
        ...

    def open_for_customer(self, tenant_id: str, customer_id: str) -> Sequence[InvoiceRecord]: ...
    def totals_by_currency(self, tenant_id: str) -> dict[str, dict[str, int]]: ...
    def count_by_status(self, tenant_id: str) -> dict[str, int]: ...
    def owed_by_customer(self, tenant_id: str) -> dict[tuple[str, str], int]:
        """(customer id, currency) → what finalized and uncollectible invoices still owe."""
        ...

    def numbering(self, tenant_id: str) -> Sequence[tuple[str, int, int]]:
        """(series, invoices numbered, highest number) per series."""
        ...

    def usage_invoiced(self, tenant_id: str, subscription_id: str, period_start: datetime) -> int:
        """What the subscription's billed invoices charged so far for the usage of the period
        starting at ``period_start`` (usage lines, in minor units)."""
        ...


class WalletRepository(Protocol):
    def get(self, tenant_id: str, customer_id: str, currency: str) -> WalletRecord | None: ...
    def ensure(self, wallet: WalletRecord) -> WalletRecord: ...
    def list(self, tenant_id: str, customer_id: str) -> Sequence[WalletRecord]: ...
    def credit(self, wallet_id: str, minor: int, at: datetime) -> int: ...
    def debit(self, wallet_id: str, minor: int, at: datetime) -> int | None:
        """Atomically take ``minor`` if the available balance (not held) covers it: the new
        balance, or None."""
        ...

    def totals(self, tenant_id: str) -> dict[str, int]: ...
    def balances(self, tenant_id: str) -> dict[tuple[str, str], tuple[int, int]]:
        """(customer id, currency) → (kept balance, pending), for every wallet of the tenant."""
        ...


class WalletAutomationRepository(Protocol):
    """Wallet automation settings and state, in guarded single statements."""

    def lock(self, tenant_id: str, wallet_id: str) -> WalletRecord | None: ...
    def save_settings(self, wallet: WalletRecord) -> None: ...
    def low_balance_due(self, tenant_id: str, limit: int) -> Sequence[WalletRecord]: ...
    def mark_notified(self, wallet_id: str) -> WalletRecord | None: ...
    def clear_recovered(self, tenant_id: str) -> int: ...
    def top_up_candidates(self, tenant_id: str, now: datetime, limit: int) -> Sequence[str]: ...
    def end_recovered_backoffs(self, tenant_id: str) -> int: ...
    def start_top_up(self, wallet_id: str, attempt: int, payment_id: str) -> bool: ...
    def finish_top_up(self, wallet_id: str, payment_id: str, retry_at: datetime | None) -> bool: ...


class JournalRepository(Protocol):
    def add(
        self, tenant_id: str, entries: Sequence[tuple[str, JournalEntry, str | None]], at: datetime
    ) -> None:
        """Append (entry id, entry, reference id) triples."""
        ...

    def entries_for(self, tenant_id: str, reference_id: str) -> Sequence[JournalEntry]: ...
    def by_ids(self, tenant_id: str, entry_ids: Sequence[str]) -> dict[str, StoredJournalEntry]:
        """Entries as stored, unchecked, for audits."""
        ...

    def ids(self, tenant_id: str) -> Iterator[str]: ...
    def account_balance(self, tenant_id: str, account: str, currency: str) -> int: ...
    def balances_by_account(self, tenant_id: str, prefix: str) -> dict[tuple[str, str], int]:
        """(account, currency) → sum of postings, for accounts starting with ``prefix``."""
        ...

    def imbalances(self, tenant_id: str) -> Sequence[tuple[str, str, int]]:
        """(entry id, currency, sum) for every entry that does not sum to zero."""
        ...


class PaymentRepository(Protocol):
    def add(self, payment: PaymentRecord) -> None: ...
    def get(
        self, tenant_id: str, payment_id: str, *, for_update: bool = False
    ) -> PaymentRecord | None: ...
    def by_provider_key(self, tenant_id: str, key: str) -> PaymentRecord | None: ...
    def update(self, payment: PaymentRecord) -> None: ...
    def list(
        self,
        tenant_id: str,
        limit: int,
        after: str | None,
        customer_id: str | None = None,
        invoice_id: str | None = None,
    ) -> Page[PaymentRecord]: ...
    def pending(self, tenant_id: str) -> Sequence[PaymentRecord]: ...


class BillingRunRepository(Protocol):
    def add(self, run: BillingRunRecord) -> None: ...
    def update(self, run: BillingRunRecord) -> None: ...
    def get(self, tenant_id: str, run_id: str) -> BillingRunRecord | None: ...
    def list(self, tenant_id: str, limit: int, after: str | None) -> Page[BillingRunRecord]: ...
    def add_failure(
        self, run_id: str, tenant_id: str, subscription_id: str, code: str, message: str
    ) -> None: ...
    def failures(self, tenant_id: str, run_id: str) -> Sequence[tuple[str, str, str]]: ...


Coordinate = tuple[int, int]  # a complete subtree (level, index), as in ledger.merkle


class TransparencyLogRepository(Protocol):
    """The tenant logs. Entries are staged and appended when the unit of work commits."""

    def stage(self, tenant_id: str, drafts: Sequence[LogDraft]) -> None: ...
    def append_staged(self) -> None:
        """Append what was staged (called by ``commit``, last, in the same transaction)."""
        ...

    def discard_staged(self) -> None: ...
    def size(self, tenant_id: str) -> int: ...
    def read_subtrees(self, tenant_id: str, size: int, coords: Sequence[Coordinate]) -> list[bytes]:
        """Hashes of complete subtrees of the tree of ``size`` entries, in order."""
        ...

    def commitments(self, tenant_id: str, start: int, end: int) -> list[bytes]: ...
    def stored_tiles(
        self, tenant_id: str, keys: Sequence[tuple[int, int]], *, cached: bool = True
    ) -> dict[tuple[int, int], bytes]: ...
    def partial_base(self, tenant_id: str, level: int, index: int, width: int) -> list[bytes]: ...
    def iter_entries(self, tenant_id: str, batch: int = 10_000) -> Iterator[LogEntryRecord]: ...
    def entries_about(
        self, tenant_id: str, about_ids: Sequence[str]
    ) -> Sequence[LogEntryRecord]: ...
    def tenants(self) -> Sequence[str]: ...
    def changes_since(
        self, tenant_id: str, start: int, kinds: Sequence[str], limit: int = 50_000
    ) -> Sequence[tuple[int, str, str | None]]:
        """(index, kind, about id) of the entries of ``kinds`` from index ``start`` on."""
        ...

    def add_checkpoint(self, checkpoint: CheckpointRecord) -> bool: ...
    def checkpoint(self, tenant_id: str, size: int) -> CheckpointRecord | None: ...
    def latest_checkpoint(self, tenant_id: str) -> CheckpointRecord | None: ...
    def recent_checkpoints(self, tenant_id: str, limit: int) -> Sequence[CheckpointRecord]: ...
    def checkpoints(self, tenant_id: str) -> Sequence[CheckpointRecord]: ...
    def add_cosignature(self, cosignature: CosignatureRecord) -> bool: ...
    def cosignatures(self, tenant_id: str, size: int) -> Sequence[CosignatureRecord]: ...
    def witness_size(self, tenant_id: str, witness: str) -> int: ...
    def add_anchor(self, anchor: AnchorRecord) -> bool: ...
    def latest_anchor(self, tenant_id: str) -> AnchorRecord | None: ...
    def anchor_at(self, tenant_id: str, size: int) -> AnchorRecord | None: ...


class CredentialRepository(Protocol):
    def add(self, credential: CredentialRecord) -> None:
        """Raise Conflict(``credential.taken``) when the lookup is in use."""
        ...

    def get(self, tenant_id: str, credential_id: str) -> CredentialRecord | None: ...
    def by_lookup(self, kind: str, lookup: str) -> CredentialRecord | None: ...
    def of_subscription(
        self, tenant_id: str, subscription_id: str
    ) -> Sequence[CredentialRecord]: ...
    def of_subscriptions(
        self, tenant_id: str, subscription_ids: Sequence[str]
    ) -> Sequence[CredentialRecord]:
        """Every credential of these subscriptions, removed ones included."""
        ...

    def update(self, credential: CredentialRecord) -> None: ...
    def iter_active(self, tenant_id: str, batch: int = 10_000) -> Iterator[CredentialRecord]: ...


class GuideRepository(Protocol):
    """The programme guide, per tenant and channel."""

    def add_many(self, programmes: Sequence[ProgrammeRecord]) -> None: ...
    def remove_between(
        self, tenant_id: str, channel_id: str, start: datetime, stop: datetime
    ) -> int:
        """Remove the channel's programmes overlapping [start, stop); how many went."""
        ...

    def between(
        self,
        tenant_id: str,
        channel_ids: Sequence[str],
        start: datetime,
        stop: datetime,
        limit: int | None = None,
    ) -> Sequence[ProgrammeRecord]:
        """Programmes of these channels overlapping [start, stop), by channel then start."""
        ...


class ProvisioningRepository(Protocol):
    """Provisioning targets, their deliveries (the work queue) and the delivery log."""

    def add_target(self, target: ProvisioningTargetRecord) -> None: ...
    def get_target(
        self, tenant_id: str, target_id: str, *, lock: bool = False
    ) -> ProvisioningTargetRecord | None:
        """With ``lock``, the row is locked for this transaction, or None when another
        transaction holds it (PostgreSQL ``SKIP LOCKED``; SQLite has one writer anyway)."""
        ...

    def list_targets(
        self, tenant_id: str, limit: int, after: str | None
    ) -> Page[ProvisioningTargetRecord]: ...
    def enabled_targets(self) -> Sequence[ProvisioningTargetRecord]:
        """Every enabled target of every tenant."""
        ...

    def update_target(self, target: ProvisioningTargetRecord) -> None:
        """Write everything but the cursor (which only ``move_cursor`` changes)."""
        ...

    def move_cursor(self, target_id: str, expected: int, cursor: int) -> bool:
        """Set the cursor if it is still ``expected``; False if it moved meanwhile."""
        ...

    def add_deliveries(self, deliveries: Sequence[ProvisioningDeliveryRecord]) -> None: ...
    def open_syncs(
        self, target_id: str, subscription_ids: Sequence[str]
    ) -> dict[str, ProvisioningDeliveryRecord]:
        """The pending or failed delivery of each subscription, where there is one."""
        ...

    def retarget(self, delivery_id: str, log_index: int) -> bool:
        """Point a delivery that is still open at a later log entry (a coalesced change);
        False when it was closed meanwhile."""
        ...

    def claim(
        self, now: datetime, lease_until: datetime, token: str, limit: int, per_target: int
    ) -> Sequence[ProvisioningDeliveryRecord]:
        """Lease due deliveries of enabled targets to ``token`` until ``lease_until``.

        Panel syncs: any due, unleased, open delivery (``SKIP LOCKED`` on PostgreSQL, so
        concurrent claims are disjoint). Webhooks: per target, only while none of its open
        deliveries is leased and its oldest open one is due; then up to ``per_target`` of
        them, in log order. Returned in claim order (webhooks of a target by log index).
        """
        ...

    def release(self, delivery_ids: Sequence[str], token: str) -> None:
        """Drop the lease of claimed deliveries that were not attempted."""
        ...

    def get_delivery(
        self, tenant_id: str, delivery_id: str, *, for_update: bool = False
    ) -> ProvisioningDeliveryRecord | None: ...
    def update_delivery(self, delivery: ProvisioningDeliveryRecord) -> None: ...
    def list_deliveries(
        self,
        tenant_id: str,
        limit: int,
        after: str | None,
        status: str | None = None,
        target_id: str | None = None,
        subscription_id: str | None = None,
    ) -> Page[ProvisioningDeliveryRecord]: ...
    def add_attempt(self, attempt: ProvisioningAttemptRecord) -> None: ...
    def attempts_of(
        self, tenant_id: str, delivery_id: str
    ) -> Sequence[ProvisioningAttemptRecord]: ...
    def panel_lines(
        self, target_id: str, credential_ids: Sequence[str]
    ) -> dict[str, PanelLineRecord]: ...
    def save_panel_line(self, line: PanelLineRecord) -> None:
        """Insert or replace what the panel last accepted for the credential."""
        ...


class WalletHoldRepository(Protocol):
    """Two-phase reservations. Every move of ``pending`` is one guarded statement, and a hold
    leaves ``pending`` only through ``resolve``, which succeeds once."""

    def reserve(self, hold: WalletHoldRecord) -> bool:
        """Add the hold to its wallet's pending if the available balance covers it, and store
        it; False (nothing written) when it does not."""
        ...

    def resolve(self, hold: WalletHoldRecord, status: str, posted_minor: int, at: datetime) -> bool:
        """End a pending hold: release it from pending and take ``posted_minor`` from the
        balance. False, changing nothing, when the hold was no longer pending."""
        ...

    def get(self, tenant_id: str, hold_id: str) -> WalletHoldRecord | None: ...
    def list(
        self,
        tenant_id: str,
        customer_id: str,
        limit: int,
        after: str | None,
        status: str | None = None,
    ) -> Page[WalletHoldRecord]: ...
    def lapsed(self, tenant_id: str, now: datetime, limit: int) -> Sequence[WalletHoldRecord]:
        """Pending holds whose time ran out, oldest first."""
        ...

    def pending_by_customer(self, tenant_id: str) -> dict[tuple[str, str], int]:
        """(customer id, currency) → sum of pending holds, for the books check."""
        ...


class UsageRepository(Protocol):
    """Billable metrics and usage events (issue 5)."""

    def add_metric(self, metric: MetricRecord) -> None:
        """Store a new metric; ``Conflict(metric.duplicate_code)`` when the code is taken."""
        ...

    def get_metric(self, tenant_id: str, metric_id: str) -> MetricRecord | None: ...
    def list_metrics(self, tenant_id: str, limit: int, after: str | None) -> Page[MetricRecord]: ...
    def metrics_by_code(self, tenant_id: str, codes: Sequence[str]) -> dict[str, MetricRecord]: ...
    def set_archived(self, tenant_id: str, metric_id: str, archived: bool) -> None: ...
    def known_customers(self, tenant_id: str, customer_ids: Sequence[str]) -> set[str]:
        """Those of ``customer_ids`` that are customers of the tenant."""
        ...

    def subscription_customers(
        self, tenant_id: str, subscription_ids: Sequence[str]
    ) -> dict[str, str]:
        """Subscription id → its customer id, for those of ``subscription_ids`` that exist."""
        ...

    def live_subscriptions(
        self, tenant_id: str, customer_ids: Sequence[str]
    ) -> dict[str, list[str]]:
        """Customer id → its subscriptions not cancelled or expired."""
        ...

    def insert_new_events(
        self, tenant_id: str, batch_id: str, received_at: datetime, events: Sequence[EventRow]
    ) -> set[str]:
        """Store the events whose id the tenant has not stored yet; the ids that were stored.
        Exact under concurrency: a unique key decides, so of two batches racing with the
        same id exactly one stores it. ``events`` hold distinct ids."""
        ...

    def events_of_batch(self, tenant_id: str, batch_id: str) -> Sequence[StoredUsageEvent]: ...
    def count_events(self, tenant_id: str) -> int: ...

    def period_totals(
        self,
        tenant_id: str,
        customer_id: str,
        subscription_id: str,
        metrics: Mapping[str, Aggregation],
        start: datetime,
        end: datetime,
    ) -> dict[str, Decimal]:
        """Metric code → the aggregate of the subscription's events in ``[start, end)``."""
        ...


class PpvRepository(Protocol):
    """Pay-per-view events, rentals and purchases (issue 5)."""

    def add_event(self, event: PpvEventRecord) -> None:
        """Conflict ``ppv.duplicate_code`` when the tenant has an event with that code."""
        ...

    def get_event(
        self, tenant_id: str, event_id: str, *, for_update: bool = False
    ) -> PpvEventRecord | None: ...
    def event_by_code(self, tenant_id: str, code: str) -> PpvEventRecord | None: ...
    def list_events(
        self, tenant_id: str, limit: int, after: str | None, status: str | None = None
    ) -> Page[PpvEventRecord]: ...
    def scheduled_events(self, tenant_id: str) -> Sequence[PpvEventRecord]:
        """Every event not cancelled: what the authorization index holds."""
        ...

    def take_seat(self, event_id: str) -> bool:
        """``sold += 1`` if the event is scheduled and below capacity, in one statement."""
        ...

    def release_seat(self, event_id: str) -> None: ...
    def cancel_event(self, tenant_id: str, event_id: str, at: datetime) -> bool:
        """scheduled → cancelled; False when it was cancelled already."""
        ...

    def cancelled_with_paid(self, tenant_id: str) -> Sequence[str]:
        """Ids of cancelled events that still have paid (unrefunded) purchases."""
        ...

    def add_purchase(self, purchase: PpvPurchaseRecord) -> None:
        """Conflict ``ppv.already_purchased`` when the subscription bought the event."""
        ...

    def get_purchase(self, tenant_id: str, purchase_id: str) -> PpvPurchaseRecord | None: ...
    def purchase_of(
        self, tenant_id: str, event_id: str, subscription_id: str
    ) -> PpvPurchaseRecord | None: ...
    def list_purchases(
        self,
        tenant_id: str,
        limit: int,
        after: str | None,
        *,
        event_id: str | None = None,
        subscription_id: str | None = None,
    ) -> Page[PpvPurchaseRecord]: ...
    def paid_purchases(
        self, tenant_id: str, event_id: str, limit: int
    ) -> Sequence[PpvPurchaseRecord]: ...
    def mark_refunded(self, purchase_id: str, at: datetime) -> bool:
        """paid → refunded in one guarded statement; False when it was not paid."""
        ...

    def windows_of(
        self, tenant_id: str, subscription_ids: Sequence[str]
    ) -> dict[str, tuple[Window, ...]]:
        """Per subscription, the viewing windows of its paid purchases of scheduled events."""
        ...


class VodRepository(Protocol):
    """VOD items and their rentals (issue 5)."""

    def next_stream_id(self, tenant_id: str) -> int:
        """The next Xtream number of the tenant's VOD items (apart from channels')."""
        ...

    def add_item(self, record: VodItemRecord) -> None:
        """Conflict ``vod.duplicate_code`` when the tenant has an item with that code."""
        ...

    def get_item(self, tenant_id: str, item_id: str) -> VodItemRecord | None: ...
    def item_by_code(self, tenant_id: str, code: str) -> VodItemRecord | None: ...
    def list_items(self, tenant_id: str, limit: int, after: str | None) -> Page[VodItemRecord]: ...
    def all_items(self, tenant_id: str) -> Sequence[VodItemRecord]:
        """Every item, by stream id: what the authorization index holds."""
        ...

    def add_rental(self, rental: VodRentalRecord) -> None: ...
    def get_rental(self, tenant_id: str, rental_id: str) -> VodRentalRecord | None: ...
    def current_rental(
        self, tenant_id: str, item_id: str, subscription_id: str, at: datetime
    ) -> VodRentalRecord | None:
        """A paid rental of the item by the subscription whose window covers ``at``."""
        ...

    def list_rentals(
        self, tenant_id: str, limit: int, after: str | None, *, subscription_id: str
    ) -> Page[VodRentalRecord]: ...
    def mark_refunded(self, rental_id: str, at: datetime) -> bool:
        """paid → refunded in one guarded statement; False when it was not paid."""
        ...

    def windows_of(
        self, tenant_id: str, subscription_ids: Sequence[str], at: datetime
    ) -> dict[str, tuple[Window, ...]]:
        """Per subscription, the windows of its paid rentals not ended by ``at``."""
        ...


class UnitOfWork(Protocol):
    tenants: TenantRepository
    api_keys: ApiKeyRepository
    idempotency: IdempotencyRepository
    catalog: CatalogRepository
    customers: CustomerRepository
    subscriptions: SubscriptionRepository
    invoices: InvoiceRepository
    wallets: WalletRepository
    journal: JournalRepository
    payments: PaymentRepository
    billing_runs: BillingRunRepository
    log: TransparencyLogRepository
    credentials: CredentialRepository
    guide: GuideRepository
    provisioning: ProvisioningRepository
    holds: WalletHoldRepository
    usage: UsageRepository
    ppv: PpvRepository
    wallet_automation: WalletAutomationRepository
    vod: VodRepository

    def __enter__(self) -> UnitOfWork: ...
    def __exit__(self, *exc: object) -> None: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...


class UnitOfWorkFactory(Protocol):
    def __call__(self, *, read_only: bool = False) -> UnitOfWork: ...


_T = TypeVar("_T")


class Transact(Protocol):
    """``fn(uow)`` in one committed unit of work, rerun whole on a transient conflict (a
    deadlock, a serialization failure, a busy SQLite): ``Database.transact``."""

    def __call__(self, fn: Callable[[UnitOfWork], _T]) -> _T: ...
