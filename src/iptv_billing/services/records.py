"""What the services read and write through the ports: plain frozen records.

Domain value objects (``BillingTerms``, ``SubscriptionState``) carry the rules; these records add
the identities and bookkeeping fields that storage and the API need.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Generic, TypeVar

from iptv_billing.domain.invoice import InvoiceLine
from iptv_billing.domain.subscription import SubscriptionState


@dataclass(frozen=True, slots=True)
class TenantRecord:
    id: str
    name: str
    timezone: str
    default_currency: str
    invoice_prefix: str
    test_clock_now: datetime | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ApiKeyRecord:
    id: str
    tenant_id: str
    name: str
    scope: str
    key_hash: str
    prefix: str
    created_at: datetime
    revoked_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class IdempotencyEntry:
    tenant_id: str
    key: str
    method: str
    path: str
    request_hash: str
    status_code: int | None
    response_body: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ChannelRecord:
    id: str
    tenant_id: str
    code: str
    name: str
    number: int
    logo_url: str | None
    created_at: datetime
    stream_id: int | None = None  # the number Xtream apps and /live/... URLs use
    category: str = "General"
    epg_id: str | None = None  # XMLTV channel id (M3U tvg-id)
    source_url: str | None = None  # where players are sent to watch it
    catchup_days: int = 0  # how far back the archive reaches; 0: no catch-up


@dataclass(frozen=True, slots=True)
class PackageRecord:
    id: str
    tenant_id: str
    code: str
    name: str
    channel_ids: tuple[str, ...]
    created_at: datetime


@dataclass(frozen=True, slots=True)
class PlanRecord:
    id: str
    tenant_id: str
    code: str
    name: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class TermsRecord:
    id: str
    tenant_id: str
    plan_id: str
    version: int
    terms_hash: str
    document: str
    effective_from: datetime
    created_at: datetime


@dataclass(frozen=True, slots=True)
class CustomerRecord:
    id: str
    tenant_id: str
    name: str
    email: str
    country: str | None
    currency: str
    language: str
    tax_id: str | None
    status: str
    collection_method: str
    created_at: datetime


@dataclass(frozen=True, slots=True)
class SubscriptionRecord:
    id: str
    tenant_id: str
    customer_id: str
    plan_id: str
    terms_id: str
    pending_terms_id: str | None
    state: SubscriptionState
    created_at: datetime
    updated_at: datetime
    version: int = 1


@dataclass(frozen=True, slots=True)
class InvoiceRecord:
    id: str
    tenant_id: str
    customer_id: str
    subscription_id: str | None
    terms_hash: str | None
    billing_reason: str
    cycle_start: datetime | None
    series: str
    number: int | None
    status: str
    currency: str
    subtotal_minor: int
    total_minor: int
    amount_paid_minor: int
    period_start: datetime | None
    period_end: datetime | None
    created_at: datetime
    finalized_at: datetime | None = None
    due_at: datetime | None = None
    paid_at: datetime | None = None
    voided_at: datetime | None = None
    lines: tuple[InvoiceLine, ...] = field(default=())

    @property
    def amount_due_minor(self) -> int:
        if self.status not in ("finalized", "uncollectible"):
            return 0
        return max(self.total_minor - self.amount_paid_minor, 0)


@dataclass(frozen=True, slots=True)
class WalletRecord:
    id: str
    tenant_id: str
    customer_id: str
    currency: str
    balance_minor: int
    updated_at: datetime
    pending_minor: int = 0  # held by pending holds; still part of the balance
    # Automation settings (migration 0011); amounts in this wallet's currency.
    low_balance_threshold_minor: int | None = None
    auto_top_up_below_minor: int | None = None
    auto_top_up_amount_minor: int | None = None
    auto_top_up_payment_method: str | None = None
    # Automation state: notified of this crossing; the auto top-up in flight and its counter.
    low_balance_notified: bool = False
    auto_top_up_attempt: int = 0
    auto_top_up_payment_id: str | None = None
    auto_top_up_retry_at: datetime | None = None

    @property
    def available_minor(self) -> int:
        return self.balance_minor - self.pending_minor


@dataclass(frozen=True, slots=True)
class WalletHoldRecord:
    id: str
    tenant_id: str
    wallet_id: str
    customer_id: str
    currency: str
    amount_minor: int
    posted_minor: int
    status: str  # domain.wallet_holds.HoldStatus
    purpose: str
    reference: str | None
    description: str
    created_at: datetime
    expires_at: datetime
    resolved_at: datetime | None = None
    # A session hold reserves for this subscription's metered period (its start).
    subscription_id: str | None = None
    period_start: datetime | None = None


@dataclass(frozen=True, slots=True)
class PaymentRecord:
    id: str
    tenant_id: str
    customer_id: str
    invoice_id: str | None
    method: str
    status: str
    amount_minor: int
    currency: str
    applied_minor: int
    excess_minor: int
    provider: str | None
    provider_payment_id: str | None
    provider_idempotency_key: str | None
    failure_code: str | None
    reference: str | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class BillingRunRecord:
    id: str
    tenant_id: str
    status: str
    as_of: datetime
    started_at: datetime
    finished_at: datetime | None
    subscriptions_seen: int
    invoices_created: int
    transitions: int
    failures: int


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: tuple[T, ...]
    has_more: bool


@dataclass(frozen=True, slots=True)
class LogDraft:
    """A billing event on its way into the transparency log (salt and index come at append).

    ``subject_id`` names what the record describes (a journal entry, a subscription);
    ``about_id`` what a customer would look it up by (an invoice, payment, wallet, subscription).
    """

    kind: str
    subject_id: str
    about_id: str | None
    record: dict[str, object]
    at: datetime


@dataclass(frozen=True, slots=True)
class LogEntryRecord:
    tenant_id: str
    idx: int
    kind: str
    subject_id: str
    about_id: str | None
    salt: bytes
    record: str
    commitment: bytes
    created_at: datetime


@dataclass(frozen=True, slots=True)
class CheckpointRecord:
    tenant_id: str
    size: int
    root: bytes
    note: str  # the signed note as issued, log signatures only
    created_at: datetime


@dataclass(frozen=True, slots=True)
class CosignatureRecord:
    tenant_id: str
    size: int
    witness: str
    line: str  # "— <name> <base64>" as the witness sent it
    cosigned_at: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class AnchorRecord:
    tenant_id: str
    size: int
    root: bytes
    chain_id: int
    contract: str
    tx_hash: str
    block_number: int
    anchored_at: datetime


@dataclass(frozen=True, slots=True)
class StoredJournalEntry:
    """A journal entry as the database holds it, for audits: nothing checked."""

    id: str
    kind: str
    memo: str
    reference_id: str | None
    created_at: datetime
    postings: tuple[tuple[str, str, int], ...]  # (account, currency, amount in minor units)


@dataclass(frozen=True, slots=True)
class CredentialRecord:
    """A line (username and password), a URL token or a set-top box (MAC) of a subscription."""

    id: str
    tenant_id: str
    subscription_id: str
    kind: str  # line | token | device
    login: str  # username, MAC, or a token's first characters (never the whole token)
    lookup: str  # username, MAC, or the token's SHA-256
    secret_salt: str | None
    secret_digest: str | None
    sealed_secret: str | None
    label: str | None
    enabled: bool
    created_at: datetime
    updated_at: datetime
    removed_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ProgrammeRecord:
    tenant_id: str
    channel_id: str
    start: datetime
    stop: datetime
    title: str
    description: str | None = None
    category: str | None = None
    lang: str | None = None


@dataclass(frozen=True, slots=True)
class ProvisioningTargetRecord:
    """An Xtream panel or a webhook receiver of a tenant; ``cursor`` is the next log index
    it reads. ``sealed_secret`` is the api_pass or the signing secret (context: the id)."""

    id: str
    tenant_id: str
    kind: str  # xtream | webhook
    name: str
    url: str
    sealed_secret: str = field(repr=False)
    bouquet_map: str | None  # JSON: package code -> [bouquet id]; Xtream only
    enabled: bool
    cursor: int
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ProvisioningDeliveryRecord:
    """One event for a webhook, or one panel sync of a subscription (``xtream.sync``)."""

    id: str
    tenant_id: str
    target_id: str
    subscription_id: str | None  # None for customer-level events (wallet notices)
    event_type: str
    log_index: int
    payload: str  # JSON, never a secret
    status: str  # pending | delivered | failed | dead | rejected
    attempts: int
    next_attempt_at: datetime
    locked_until: datetime | None
    claim_token: str | None
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class ProvisioningAttemptRecord:
    id: str
    delivery_id: str
    tenant_id: str
    attempted_at: datetime
    status_code: int | None
    outcome: str  # delivered | retry | rejected
    duration_ms: int
    response_excerpt: str
    error: str | None


@dataclass(frozen=True, slots=True)
class PanelLineRecord:
    """What a panel last accepted for a credential (its password, sealed; None for boxes)."""

    target_id: str
    credential_id: str
    tenant_id: str
    remote_username: str
    sealed_password: str | None = field(repr=False)
    synced_at: datetime
