"""The schema. Every business row carries ``tenant_id``, the natural shard key.

Money is stored as integer minor units (BIGINT) beside a CHAR(3) currency; invariants that
must never break are CHECK, UNIQUE and FOREIGN KEY constraints, not only checks in code.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

Id = String(40)
Code = String(64)
Currency = String(3)
Moment = DateTime(timezone=True)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


SUBSCRIPTION_STATUSES = (
    "trialing",
    "active",
    "past_due",
    "paused",
    "suspended",
    "cancelled",
    "expired",
)
INVOICE_STATUSES = ("draft", "finalized", "paid", "void", "uncollectible")
PAYMENT_STATUSES = ("pending", "succeeded", "failed", "refunded")
PAYMENT_METHODS = ("manual", "bank_transfer", "card", "wallet")
SCOPES = ("admin", "read_only", "integration")


class Tenant(Base):
    __tablename__ = "tenants"
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    timezone: Mapped[str] = mapped_column(String(64), default="UTC")
    default_currency: Mapped[str] = mapped_column(Currency)
    invoice_prefix: Mapped[str] = mapped_column(String(20), default="INV-")
    # A test clock: when set, this tenant's "now" is this frozen instant (Stripe-style).
    test_clock_now: Mapped[datetime | None] = mapped_column(Moment)
    created_at: Mapped[datetime] = mapped_column(Moment)


class ApiKey(Base):
    __tablename__ = "api_keys"
    __table_args__ = (CheckConstraint(_in("scope", SCOPES), name="scope"),)
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    scope: Mapped[str] = mapped_column(String(20))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(Moment)
    revoked_at: Mapped[datetime | None] = mapped_column(Moment)


class IdempotencyRecord(Base):
    """First response to a POST, replayed for the same key; scoped per tenant."""

    __tablename__ = "idempotency_records"
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    method: Mapped[str] = mapped_column(String(10))
    path: Mapped[str] = mapped_column(String(500))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer)  # NULL while in progress
    response_body: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(Moment)


class Channel(Base):
    __tablename__ = "channels"
    __table_args__ = (
        UniqueConstraint("tenant_id", "code"),
        Index("uq_channels_stream_id", "tenant_id", "stream_id", unique=True),
    )
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    code: Mapped[str] = mapped_column(Code)
    name: Mapped[str] = mapped_column(String(200))
    number: Mapped[int] = mapped_column(Integer)
    logo_url: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(Moment)
    # What players and streaming servers need (0006): Xtream apps ask for numeric stream ids,
    # M3U groups by category, XMLTV matches epg_id, and /live/... redirects to source_url.
    stream_id: Mapped[int | None] = mapped_column(Integer)
    category: Mapped[str] = mapped_column(String(100), default="General")
    epg_id: Mapped[str | None] = mapped_column(String(100))
    source_url: Mapped[str | None] = mapped_column(String(1000))
    catchup_days: Mapped[int] = mapped_column(Integer, default=0)


class Package(Base):
    __tablename__ = "packages"
    __table_args__ = (UniqueConstraint("tenant_id", "code"),)
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    code: Mapped[str] = mapped_column(Code)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(Moment)


class PackageChannel(Base):
    __tablename__ = "package_channels"
    package_id: Mapped[str] = mapped_column(ForeignKey("packages.id"), primary_key=True)
    channel_id: Mapped[str] = mapped_column(ForeignKey("channels.id"), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))


class Plan(Base):
    __tablename__ = "plans"
    __table_args__ = (UniqueConstraint("tenant_id", "code"),)
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    code: Mapped[str] = mapped_column(Code)
    name: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(Moment)


class TermsVersion(Base):
    """An immutable, content-addressed plan version (the billing terms document)."""

    __tablename__ = "terms_versions"
    __table_args__ = (
        UniqueConstraint("plan_id", "version"),
        UniqueConstraint("tenant_id", "terms_hash"),
        CheckConstraint("version >= 1", name="version_positive"),
    )
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    plan_id: Mapped[str] = mapped_column(ForeignKey("plans.id"))
    version: Mapped[int] = mapped_column(Integer)
    terms_hash: Mapped[str] = mapped_column(String(64))
    document: Mapped[str] = mapped_column(Text)  # canonical JSON; its SHA-256 is terms_hash
    effective_from: Mapped[datetime] = mapped_column(Moment)
    created_at: Mapped[datetime] = mapped_column(Moment)


class Customer(Base):
    __tablename__ = "customers"
    __table_args__ = (
        CheckConstraint(_in("status", ("active", "closed")), name="status"),
        CheckConstraint(
            _in("collection_method", ("charge_wallet", "send_invoice")), name="collection"
        ),
        Index("ix_customers_tenant_email", "tenant_id", "email"),
    )
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320))
    country: Mapped[str | None] = mapped_column(String(2))
    currency: Mapped[str] = mapped_column(Currency)
    language: Mapped[str] = mapped_column(String(35), default="en")
    tax_id: Mapped[str | None] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(20), default="active")
    collection_method: Mapped[str] = mapped_column(String(20), default="send_invoice")
    created_at: Mapped[datetime] = mapped_column(Moment)


class Subscription(Base):
    __tablename__ = "subscriptions"
    __table_args__ = (
        CheckConstraint(_in("status", SUBSCRIPTION_STATUSES), name="status"),
        CheckConstraint("current_period_end > current_period_start", name="period_order"),
        Index("ix_subscriptions_due", "tenant_id", "current_period_end", "id"),
        Index("ix_subscriptions_customer", "tenant_id", "customer_id"),
    )
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"))
    plan_id: Mapped[str] = mapped_column(ForeignKey("plans.id"))
    terms_id: Mapped[str] = mapped_column(ForeignKey("terms_versions.id"))
    terms_hash: Mapped[str] = mapped_column(String(64))
    pending_terms_id: Mapped[str | None] = mapped_column(ForeignKey("terms_versions.id"))
    status: Mapped[str] = mapped_column(String(20))
    currency: Mapped[str] = mapped_column(Currency)
    anchor: Mapped[datetime] = mapped_column(Moment)
    period_index: Mapped[int] = mapped_column(Integer)
    current_period_start: Mapped[datetime] = mapped_column(Moment)
    current_period_end: Mapped[datetime] = mapped_column(Moment)
    trial_end: Mapped[datetime | None] = mapped_column(Moment)
    cancel_at_period_end: Mapped[bool] = mapped_column(Boolean, default=False)
    addons: Mapped[str] = mapped_column(Text, default="[]")  # JSON [[code, quantity], ...]
    paused_at: Mapped[datetime | None] = mapped_column(Moment)
    ended_at: Mapped[datetime | None] = mapped_column(Moment)
    created_at: Mapped[datetime] = mapped_column(Moment)
    updated_at: Mapped[datetime] = mapped_column(Moment)
    version: Mapped[int] = mapped_column(Integer, default=1)


class Invoice(Base):
    __tablename__ = "invoices"
    __table_args__ = (
        CheckConstraint(_in("status", INVOICE_STATUSES), name="status"),
        CheckConstraint("amount_paid_minor >= 0", name="paid_non_negative"),
        CheckConstraint("number IS NULL OR status <> 'draft'", name="numbered_when_final"),
        # The backstop that makes a rerun of a billing run harmless.
        UniqueConstraint("subscription_id", "cycle_start", name="uq_invoices_cycle"),
        UniqueConstraint("tenant_id", "series", "number", name="uq_invoices_number"),
        Index("ix_invoices_tenant_status", "tenant_id", "status", "due_at"),
        Index("ix_invoices_customer", "tenant_id", "customer_id"),
    )
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"))
    subscription_id: Mapped[str | None] = mapped_column(ForeignKey("subscriptions.id"))
    terms_hash: Mapped[str | None] = mapped_column(String(64))
    billing_reason: Mapped[str] = mapped_column(String(40))
    cycle_start: Mapped[datetime | None] = mapped_column(Moment)  # set for cycle invoices only
    series: Mapped[str] = mapped_column(String(20))
    number: Mapped[int | None] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(20))
    currency: Mapped[str] = mapped_column(Currency)
    subtotal_minor: Mapped[int] = mapped_column(BigInteger)
    total_minor: Mapped[int] = mapped_column(BigInteger)
    amount_paid_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    period_start: Mapped[datetime | None] = mapped_column(Moment)
    period_end: Mapped[datetime | None] = mapped_column(Moment)
    created_at: Mapped[datetime] = mapped_column(Moment)
    finalized_at: Mapped[datetime | None] = mapped_column(Moment)
    due_at: Mapped[datetime | None] = mapped_column(Moment)
    paid_at: Mapped[datetime | None] = mapped_column(Moment)
    voided_at: Mapped[datetime | None] = mapped_column(Moment)


class InvoiceLine(Base):
    __tablename__ = "invoice_lines"
    __table_args__ = (
        UniqueConstraint("invoice_id", "position"),
        CheckConstraint("quantity >= 0", name="quantity_non_negative"),
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    position: Mapped[int] = mapped_column(Integer)
    kind: Mapped[str] = mapped_column(String(30))
    description: Mapped[str] = mapped_column(String(500))
    quantity: Mapped[int] = mapped_column(Integer)
    unit_amount_minor: Mapped[int] = mapped_column(BigInteger)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    period_start: Mapped[datetime | None] = mapped_column(Moment)
    period_end: Mapped[datetime | None] = mapped_column(Moment)


class InvoiceSequence(Base):
    """Next number per series; bumped in the finalizing transaction, so numbering is gapless."""

    __tablename__ = "invoice_sequences"
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    series: Mapped[str] = mapped_column(String(20), primary_key=True)
    next_number: Mapped[int] = mapped_column(BigInteger, default=1)


class Wallet(Base):
    __tablename__ = "wallets"
    __table_args__ = (
        UniqueConstraint("customer_id", "currency"),
        CheckConstraint("balance_minor >= 0", name="never_negative"),
        # Held money is part of the balance, so available = balance - pending is never negative.
        CheckConstraint(
            "pending_minor >= 0 AND pending_minor <= balance_minor", name="pending_covered"
        ),
        # Wallet automation (0011): auto top-up settings come whole; amounts are positive.
        CheckConstraint(
            "(auto_top_up_below_minor IS NULL) = (auto_top_up_amount_minor IS NULL) AND "
            "(auto_top_up_below_minor IS NULL) = (auto_top_up_payment_method IS NULL)",
            name="auto_top_up_whole",
        ),
        CheckConstraint(
            "(low_balance_threshold_minor IS NULL OR low_balance_threshold_minor > 0) AND "
            "(auto_top_up_below_minor IS NULL OR auto_top_up_below_minor > 0) AND "
            "(auto_top_up_amount_minor IS NULL OR auto_top_up_amount_minor > 0)",
            name="automation_positive",
        ),
        CheckConstraint("auto_top_up_attempt >= 0", name="auto_top_up_attempt"),
        # The recurring pass reads only the wallets that have a setting (partial indexes).
        Index(
            "ix_wallets_low_balance",
            "tenant_id",
            "low_balance_notified",
            sqlite_where=text("low_balance_threshold_minor IS NOT NULL"),
            postgresql_where=text("low_balance_threshold_minor IS NOT NULL"),
        ),
        Index(
            "ix_wallets_auto_top_up",
            "tenant_id",
            sqlite_where=text("auto_top_up_below_minor IS NOT NULL"),
            postgresql_where=text("auto_top_up_below_minor IS NOT NULL"),
        ),
    )
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"))
    currency: Mapped[str] = mapped_column(Currency)
    balance_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    pending_minor: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    updated_at: Mapped[datetime] = mapped_column(Moment)
    # Wallet automation (migration 0011): settings, then the state the recurring pass keeps.
    low_balance_threshold_minor: Mapped[int | None] = mapped_column(BigInteger)
    auto_top_up_below_minor: Mapped[int | None] = mapped_column(BigInteger)
    auto_top_up_amount_minor: Mapped[int | None] = mapped_column(BigInteger)
    auto_top_up_payment_method: Mapped[str | None] = mapped_column(String(100))
    low_balance_notified: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=false()
    )
    auto_top_up_attempt: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    auto_top_up_payment_id: Mapped[str | None] = mapped_column(String(40))
    auto_top_up_retry_at: Mapped[datetime | None] = mapped_column(Moment)


class JournalEntry(Base):
    __tablename__ = "journal_entries"
    __table_args__ = (Index("ix_journal_reference", "tenant_id", "reference_id"),)
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    kind: Mapped[str] = mapped_column(String(40))
    memo: Mapped[str] = mapped_column(String(500), default="")
    reference_id: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime] = mapped_column(Moment)


class JournalPosting(Base):
    __tablename__ = "journal_postings"
    __table_args__ = (
        CheckConstraint("amount_minor <> 0", name="non_zero"),
        Index("ix_postings_account", "tenant_id", "account", "currency"),
    )
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    entry_id: Mapped[str] = mapped_column(ForeignKey("journal_entries.id"), index=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    account: Mapped[str] = mapped_column(String(100))
    currency: Mapped[str] = mapped_column(Currency)
    amount_minor: Mapped[int] = mapped_column(BigInteger)


class Payment(Base):
    __tablename__ = "payments"
    __table_args__ = (
        CheckConstraint(_in("status", PAYMENT_STATUSES), name="status"),
        CheckConstraint(_in("method", PAYMENT_METHODS), name="method"),
        CheckConstraint("amount_minor > 0", name="positive"),
        UniqueConstraint("tenant_id", "provider_idempotency_key"),
        Index("ix_payments_customer", "tenant_id", "customer_id"),
    )
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"))
    invoice_id: Mapped[str | None] = mapped_column(ForeignKey("invoices.id"))
    method: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(Currency)
    applied_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    excess_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    provider: Mapped[str | None] = mapped_column(String(40))
    provider_payment_id: Mapped[str | None] = mapped_column(String(100))
    provider_idempotency_key: Mapped[str | None] = mapped_column(String(100))
    failure_code: Mapped[str | None] = mapped_column(String(60))
    reference: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(Moment)
    updated_at: Mapped[datetime] = mapped_column(Moment)


class BillingRun(Base):
    __tablename__ = "billing_runs"
    __table_args__ = (
        CheckConstraint(_in("status", ("running", "completed", "failed")), name="status"),
    )
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    status: Mapped[str] = mapped_column(String(20))
    as_of: Mapped[datetime] = mapped_column(Moment)
    started_at: Mapped[datetime] = mapped_column(Moment)
    finished_at: Mapped[datetime | None] = mapped_column(Moment)
    subscriptions_seen: Mapped[int] = mapped_column(Integer, default=0)
    invoices_created: Mapped[int] = mapped_column(Integer, default=0)
    transitions: Mapped[int] = mapped_column(Integer, default=0)
    failures: Mapped[int] = mapped_column(Integer, default=0)


class BillingRunFailure(Base):
    __tablename__ = "billing_run_failures"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("billing_runs.id"), index=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    subscription_id: Mapped[str] = mapped_column(String(40))
    code: Mapped[str] = mapped_column(String(80))
    message: Mapped[str] = mapped_column(String(1000))


# -- the transparency log (one per tenant) -----------------------------------------------------
Hash = LargeBinary(32)


class LogHead(Base):
    """The sequencer: locked by every append, so indices are gapless and in commit order."""

    __tablename__ = "log_heads"
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(Moment)


class LogEntry(Base):
    """One billing event: its cleartext record stays here; only the commitment is public."""

    __tablename__ = "log_entries"
    __table_args__ = (
        CheckConstraint("idx >= 0", name="index"),
        Index("ix_log_entries_about", "tenant_id", "about_id"),
    )
    # No foreign key: every append locks the tenant's log_heads row, which has one, and a
    # per-row check would cost more than the rest of the insert.
    tenant_id: Mapped[str] = mapped_column(Id, primary_key=True)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(40))
    subject_id: Mapped[str] = mapped_column(String(40))
    about_id: Mapped[str | None] = mapped_column(String(40))
    salt: Mapped[bytes] = mapped_column(Hash)
    record: Mapped[str] = mapped_column(Text)
    commitment: Mapped[bytes] = mapped_column(Hash)
    created_at: Mapped[datetime] = mapped_column(Moment)


class LogTile(Base):
    """A full tile with its inner nodes (511 hashes, level order); ``root`` repeats the last
    so that the level above can be read without loading whole tiles."""

    __tablename__ = "log_tiles"
    tenant_id: Mapped[str] = mapped_column(Id, primary_key=True)  # see LogEntry
    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hashes: Mapped[bytes] = mapped_column(LargeBinary)
    root: Mapped[bytes] = mapped_column(Hash)


class LogCheckpoint(Base):
    __tablename__ = "log_checkpoints"
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root: Mapped[bytes] = mapped_column(Hash)
    note: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(Moment)


class LogCosignature(Base):
    __tablename__ = "log_cosignatures"
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    witness: Mapped[str] = mapped_column(String(200), primary_key=True)
    line: Mapped[str] = mapped_column(Text)
    cosigned_at: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(Moment)


class LogAnchor(Base):
    __tablename__ = "log_anchors"
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root: Mapped[bytes] = mapped_column(Hash)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    contract: Mapped[str] = mapped_column(String(42))
    tx_hash: Mapped[str] = mapped_column(String(66))
    block_number: Mapped[int] = mapped_column(BigInteger)
    anchored_at: Mapped[datetime] = mapped_column(Moment)


# -- access: credentials and the programme guide (0006) ----------------------------------------
CREDENTIAL_KINDS = ("line", "token", "device")


class AccessCredential(Base):
    """How a subscription is let in: a username/password line, a URL token or a set-top box.

    ``lookup`` is what a player presents (username, SHA-256 of the token, MAC), unique among
    credentials in use across tenants, because player URLs carry no tenant. Line passwords and
    tokens are kept sealed (shown again on request, sent to panels) and, for lines, as a
    salted hash that the authorization path checks without unsealing anything.
    """

    __tablename__ = "access_credentials"
    __table_args__ = (
        CheckConstraint(_in("kind", CREDENTIAL_KINDS), name="kind"),
        Index(
            "uq_access_credentials_lookup",
            "kind",
            "lookup",
            unique=True,
            sqlite_where=text("removed_at IS NULL"),
            postgresql_where=text("removed_at IS NULL"),
        ),
        Index("ix_access_credentials_subscription", "tenant_id", "subscription_id"),
    )
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    subscription_id: Mapped[str] = mapped_column(ForeignKey("subscriptions.id"))
    kind: Mapped[str] = mapped_column(String(10))
    login: Mapped[str] = mapped_column(String(64))  # username, MAC, or the token's first 8
    lookup: Mapped[str] = mapped_column(String(64))
    secret_salt: Mapped[str | None] = mapped_column(String(32))
    secret_digest: Mapped[str | None] = mapped_column(String(64))
    sealed_secret: Mapped[str | None] = mapped_column(Text)
    label: Mapped[str | None] = mapped_column(String(200))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(Moment)
    updated_at: Mapped[datetime] = mapped_column(Moment)
    removed_at: Mapped[datetime | None] = mapped_column(Moment)


class Programme(Base):
    """One entry of the programme guide (XMLTV ``programme``), per channel and start time."""

    __tablename__ = "programmes"
    __table_args__ = (CheckConstraint("stop > start", name="order"),)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"), primary_key=True)
    channel_id: Mapped[str] = mapped_column(ForeignKey("channels.id"), primary_key=True)
    start: Mapped[datetime] = mapped_column(Moment, primary_key=True)
    stop: Mapped[datetime] = mapped_column(Moment)
    title: Mapped[str] = mapped_column(String(500))
    description: Mapped[str | None] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(String(100))
    lang: Mapped[str | None] = mapped_column(String(35))


# -- provisioning: panels and webhooks that follow the log (0007) ------------------------------
PROVISIONING_KINDS = ("xtream", "webhook")
DELIVERY_STATUSES = ("pending", "delivered", "failed", "dead", "rejected")
ATTEMPT_OUTCOMES = ("delivered", "retry", "rejected")


class ProvisioningTarget(Base):
    """An Xtream panel or a webhook receiver, fed from the tenant's log.

    ``cursor`` is the next log index to read (the log is the outbox). ``sealed_secret`` is the
    panel's ``api_pass`` or the webhook signing secret, sealed with the target id as context.
    """

    __tablename__ = "provisioning_targets"
    __table_args__ = (
        CheckConstraint(_in("kind", PROVISIONING_KINDS), name="kind"),
        CheckConstraint("cursor >= 0", name="cursor"),
        Index("ix_provisioning_targets_tenant", "tenant_id", "id"),
    )
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    kind: Mapped[str] = mapped_column(String(10))
    name: Mapped[str] = mapped_column(String(200))
    url: Mapped[str] = mapped_column(String(1000))
    sealed_secret: Mapped[str] = mapped_column(Text)
    bouquet_map: Mapped[str | None] = mapped_column(Text)  # JSON: package code -> [bouquet id]
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    cursor: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(Moment)
    updated_at: Mapped[datetime] = mapped_column(Moment)


class ProvisioningDelivery(Base):
    """One thing to tell one target: a webhook event, or a panel sync of a subscription.

    Claimed with a lease (``locked_until``, ``claim_token``) so that a crashed worker's claim
    is taken over once the lease has run out; ``claim_token`` fences the late result of the
    worker that lost its lease.
    """

    __tablename__ = "provisioning_deliveries"
    __table_args__ = (
        CheckConstraint(_in("status", DELIVERY_STATUSES), name="status"),
        CheckConstraint("attempts >= 0", name="attempts"),
        Index("ix_provisioning_deliveries_due", "status", "next_attempt_at"),
        Index("ix_provisioning_deliveries_target", "target_id", "status", "log_index"),
        Index("ix_provisioning_deliveries_subscription", "tenant_id", "subscription_id"),
    )
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    target_id: Mapped[str] = mapped_column(ForeignKey("provisioning_targets.id"))
    # None for customer-level webhook events (wallet notices, migration 0011).
    subscription_id: Mapped[str | None] = mapped_column(ForeignKey("subscriptions.id"))
    event_type: Mapped[str] = mapped_column(String(40))
    log_index: Mapped[int] = mapped_column(BigInteger)  # the entry that caused it (or last)
    payload: Mapped[str] = mapped_column(Text)  # JSON; never a secret
    status: Mapped[str] = mapped_column(String(10))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(Moment)
    locked_until: Mapped[datetime | None] = mapped_column(Moment)
    claim_token: Mapped[str | None] = mapped_column(String(40))
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(Moment)
    delivered_at: Mapped[datetime | None] = mapped_column(Moment)


class ProvisioningAttempt(Base):
    """The delivery log: one row per attempt, kept when a delivery is replayed."""

    __tablename__ = "provisioning_attempts"
    __table_args__ = (
        CheckConstraint(_in("outcome", ATTEMPT_OUTCOMES), name="outcome"),
        Index("ix_provisioning_attempts_delivery", "delivery_id", "attempted_at"),
    )
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    delivery_id: Mapped[str] = mapped_column(ForeignKey("provisioning_deliveries.id"))
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    attempted_at: Mapped[datetime] = mapped_column(Moment)
    status_code: Mapped[int | None] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(10))
    duration_ms: Mapped[int] = mapped_column(Integer)
    response_excerpt: Mapped[str] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(String(500))


class ProvisioningPanelLine(Base):
    """What a panel last accepted for a line or box: Xtream edits a line by username *and*
    password, so a password change needs the old one (sealed, context ``target:credential``)."""

    __tablename__ = "provisioning_panel_lines"
    target_id: Mapped[str] = mapped_column(ForeignKey("provisioning_targets.id"), primary_key=True)
    credential_id: Mapped[str] = mapped_column(
        ForeignKey("access_credentials.id"), primary_key=True
    )
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    remote_username: Mapped[str] = mapped_column(String(64))
    sealed_password: Mapped[str | None] = mapped_column(Text)  # None for set-top boxes
    synced_at: Mapped[datetime] = mapped_column(Moment)


# -- wallet holds (migration 0008) -------------------------------------------------------------
HOLD_STATUSES = ("pending", "posted", "voided", "expired")


class WalletHold(Base):
    """A two-phase reservation: pending until posted (part or all), voided or expired, once."""

    __tablename__ = "wallet_holds"
    __table_args__ = (
        CheckConstraint("amount_minor > 0", name="positive"),
        CheckConstraint("posted_minor >= 0 AND posted_minor <= amount_minor", name="posted_within"),
        CheckConstraint(_in("status", HOLD_STATUSES), name="status"),
        CheckConstraint("(status = 'pending') = (resolved_at IS NULL)", name="resolved"),
        Index("ix_wallet_holds_due", "status", "expires_at"),
        Index("ix_wallet_holds_customer", "tenant_id", "customer_id", "id"),
        # Session holds reserve for a subscription's metered period (migration 0013).
        CheckConstraint(
            "(subscription_id IS NULL) = (period_start IS NULL)", name="session_period"
        ),
        Index(
            "ix_wallet_holds_subscription",
            "tenant_id",
            "subscription_id",
            "status",
            postgresql_where=text("subscription_id IS NOT NULL"),
            sqlite_where=text("subscription_id IS NOT NULL"),
        ),
    )
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    wallet_id: Mapped[str] = mapped_column(ForeignKey("wallets.id"))
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"))
    currency: Mapped[str] = mapped_column(Currency)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    posted_minor: Mapped[int] = mapped_column(BigInteger)
    status: Mapped[str] = mapped_column(String(10))
    purpose: Mapped[str] = mapped_column(String(20))
    reference: Mapped[str | None] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(Moment)
    expires_at: Mapped[datetime] = mapped_column(Moment)
    resolved_at: Mapped[datetime | None] = mapped_column(Moment)
    subscription_id: Mapped[str | None] = mapped_column(ForeignKey("subscriptions.id"))
    period_start: Mapped[datetime | None] = mapped_column(Moment)


# -- usage metering (migration 0009) -----------------------------------------------------------
METRIC_AGGREGATIONS = ("count", "sum", "max", "unique_count", "latest")


def _bytewise(length: int) -> String:
    """A key compared byte by byte on PostgreSQL (``COLLATE "C"``): its B-tree then inserts
    and probes at twice the speed of one under a libc locale."""
    return String(length).with_variant(String(length, collation="C"), "postgresql")


class BillableMetric(Base):
    """What a tenant meters (viewing seconds, GB delivered, VOD plays) and how a period's
    events of it add up; its code is what usage events name."""

    __tablename__ = "billable_metrics"
    __table_args__ = (
        UniqueConstraint("tenant_id", "code"),
        CheckConstraint(_in("aggregation", METRIC_AGGREGATIONS), name="aggregation"),
    )
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    code: Mapped[str] = mapped_column(Code)
    name: Mapped[str] = mapped_column(String(200))
    aggregation: Mapped[str] = mapped_column(String(20))
    unit: Mapped[str] = mapped_column(String(40))
    archived: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(Moment)


class UsageEvent(Base):
    """One accepted usage event. The primary key is the dedup key: a client's event id is
    stored once per tenant, however often and however concurrently it is sent.

    No foreign keys, as on ``log_entries``: ingestion checks customer and metric per batch,
    and a per-row check would cost more than the rest of the insert at 150,000 rows a second.
    ``value_scaled`` is the value × 10**6, exact on both engines (SQLite has no exact
    NUMERIC). ``batch_id`` names the batch whose log entry commits to the event.
    """

    __tablename__ = "usage_events"
    __table_args__ = (
        CheckConstraint("value_scaled >= 0", name="value_non_negative"),
        # Rating reads a period's events: BRIN on PostgreSQL (events arrive roughly in time
        # order) costs ingestion next to nothing, where a B-tree on (customer, metric, time)
        # halved it in ``bench ingest``.
        Index("ix_usage_events_occurred_at", "occurred_at", postgresql_using="brin"),
        # What rating reads: one subscription's events over a period (migration 0014).
        # Subscription ids are unique across tenants; tenant and metric are filtered on the
        # rows, which keeps the entry that every ingested event inserts narrow.
        Index("ix_usage_events_rating", "subscription_id", "occurred_at"),
    )
    tenant_id: Mapped[str] = mapped_column(_bytewise(40), primary_key=True)
    event_id: Mapped[str] = mapped_column(_bytewise(128), primary_key=True)
    batch_id: Mapped[str] = mapped_column(Id)
    customer_id: Mapped[str] = mapped_column(Id)
    metric_code: Mapped[str] = mapped_column(Code)
    value_scaled: Mapped[int] = mapped_column(BigInteger)
    unique_key: Mapped[str | None] = mapped_column(String(128))
    subscription_id: Mapped[str | None] = mapped_column(Id)
    occurred_at: Mapped[datetime] = mapped_column(Moment)
    received_at: Mapped[datetime] = mapped_column(Moment)
    properties: Mapped[str | None] = mapped_column(Text)  # JSON object, at most 1 KiB


# -- pay-per-view (migration 0010) -------------------------------------------------------------
PPV_STATUSES = ("scheduled", "cancelled")
PPV_PURCHASE_STATUSES = ("paid", "refunded")
PPV_METHODS = ("wallet", "card", "manual", "bank_transfer")


class PpvEvent(Base):
    """A pay-per-view event on a channel. ``sold`` counts paid purchases; it moves only in
    guarded single statements, so that concurrent buyers never pass ``capacity``.
    ``updated_at`` changes on creation and cancellation only: the authorization index
    reloads the catalog when it moves."""

    __tablename__ = "ppv_events"
    __table_args__ = (
        UniqueConstraint("tenant_id", "code"),
        CheckConstraint(_in("status", PPV_STATUSES), name="status"),
        CheckConstraint("ends_at > starts_at", name="window"),
        CheckConstraint("replay_hours >= 0", name="replay"),
        CheckConstraint("sold >= 0", name="sold_non_negative"),
        CheckConstraint(
            "capacity IS NULL OR (capacity >= 1 AND sold <= capacity)", name="capacity"
        ),
        Index("ix_ppv_events_tenant_status", "tenant_id", "status"),
    )
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    code: Mapped[str] = mapped_column(Code)
    name: Mapped[str] = mapped_column(String(200))
    channel_id: Mapped[str] = mapped_column(ForeignKey("channels.id"))
    starts_at: Mapped[datetime] = mapped_column(Moment)
    ends_at: Mapped[datetime] = mapped_column(Moment)
    sale_starts_at: Mapped[datetime | None] = mapped_column(Moment)
    sale_ends_at: Mapped[datetime] = mapped_column(Moment)
    replay_hours: Mapped[int] = mapped_column(Integer, default=0)
    blackout_countries: Mapped[str] = mapped_column(String(1000), default="")  # "FR,DE"
    capacity: Mapped[int | None] = mapped_column(Integer)
    sold: Mapped[int] = mapped_column(Integer, default=0)
    discounts: Mapped[str] = mapped_column(Text, default="[]")  # JSON, minor units
    status: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(Moment)
    updated_at: Mapped[datetime] = mapped_column(Moment)


class PpvPrice(Base):
    __tablename__ = "ppv_prices"
    __table_args__ = (CheckConstraint("amount_minor >= 0", name="non_negative"),)
    event_id: Mapped[str] = mapped_column(ForeignKey("ppv_events.id"), primary_key=True)
    currency: Mapped[str] = mapped_column(Currency, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    amount_minor: Mapped[int] = mapped_column(BigInteger)


class PpvPurchase(Base):
    """One subscription's purchase of one event (once: UNIQUE), refunded at most once
    (``status`` moves paid → refunded in a guarded update)."""

    __tablename__ = "ppv_purchases"
    __table_args__ = (
        UniqueConstraint("event_id", "subscription_id"),
        CheckConstraint(_in("status", PPV_PURCHASE_STATUSES), name="status"),
        CheckConstraint(_in("method", PPV_METHODS), name="method"),
        CheckConstraint("amount_minor >= 0", name="non_negative"),
        CheckConstraint("(status = 'refunded') = (refunded_at IS NOT NULL)", name="refunded"),
        Index("ix_ppv_purchases_subscription", "tenant_id", "subscription_id"),
        Index("ix_ppv_purchases_event_status", "event_id", "status"),
    )
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    event_id: Mapped[str] = mapped_column(ForeignKey("ppv_events.id"))
    subscription_id: Mapped[str] = mapped_column(ForeignKey("subscriptions.id"))
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"))
    currency: Mapped[str] = mapped_column(Currency)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    method: Mapped[str] = mapped_column(String(20))
    reference: Mapped[str | None] = mapped_column(String(200))
    country: Mapped[str | None] = mapped_column(String(2))
    status: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(Moment)
    refunded_at: Mapped[datetime | None] = mapped_column(Moment)


# -- wallet automation (migration 0011) ----------------------------------------------------------
# Columns, checks and partial indexes on ``Wallet`` (above); ``provisioning_deliveries``
# rows may have no subscription (customer-level webhook events such as wallet notices).


# -- VOD rentals (migration 0012) ---------------------------------------------------------------
VOD_RENTAL_STATUSES = ("paid", "refunded")


class VodItem(Base):
    """A VOD item. ``stream_id`` is its Xtream number, a sequence of its own per tenant
    (``/movie/…`` URLs and ``get_vod_*`` never mix with live ids). ``packages`` are codes,
    comma-joined; ``rental_hours`` is NULL when the item is not for rent. ``updated_at``
    moves on every change: the authorization index reloads the catalog when it does."""

    __tablename__ = "vod_items"
    __table_args__ = (
        UniqueConstraint("tenant_id", "code"),
        CheckConstraint(
            "rental_hours IS NULL OR (rental_hours >= 1 AND rental_hours <= 720)",
            name="rental_hours",
        ),
        CheckConstraint("stream_id >= 1", name="stream_id_positive"),
        Index("uq_vod_items_stream_id", "tenant_id", "stream_id", unique=True),
    )
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    code: Mapped[str] = mapped_column(Code)
    name: Mapped[str] = mapped_column(String(200))
    stream_id: Mapped[int] = mapped_column(Integer)
    source_url: Mapped[str] = mapped_column(String(1000))
    category: Mapped[str] = mapped_column(String(100))
    poster_url: Mapped[str | None] = mapped_column(String(1000))
    year: Mapped[int | None] = mapped_column(Integer)
    duration_minutes: Mapped[int | None] = mapped_column(Integer)
    packages: Mapped[str] = mapped_column(String(2000), default="")  # "basic,movies"
    rental_hours: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(Moment)
    updated_at: Mapped[datetime] = mapped_column(Moment)


class VodPrice(Base):
    __tablename__ = "vod_prices"
    __table_args__ = (CheckConstraint("amount_minor >= 0", name="non_negative"),)
    item_id: Mapped[str] = mapped_column(ForeignKey("vod_items.id"), primary_key=True)
    currency: Mapped[str] = mapped_column(Currency, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    amount_minor: Mapped[int] = mapped_column(BigInteger)


class VodRental(Base):
    """One rental of an item by a subscription: the window it bought and the price paid,
    refunded at most once (``status`` moves paid → refunded in a guarded update)."""

    __tablename__ = "vod_rentals"
    __table_args__ = (
        CheckConstraint(_in("status", VOD_RENTAL_STATUSES), name="status"),
        CheckConstraint(_in("method", PPV_METHODS), name="method"),
        CheckConstraint("amount_minor >= 0", name="non_negative"),
        CheckConstraint("ends_at > starts_at", name="window"),
        CheckConstraint("(status = 'refunded') = (refunded_at IS NOT NULL)", name="refunded"),
        Index("ix_vod_rentals_subscription", "tenant_id", "subscription_id", "ends_at"),
        Index("ix_vod_rentals_item_subscription", "item_id", "subscription_id"),
    )
    id: Mapped[str] = mapped_column(Id, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id"))
    item_id: Mapped[str] = mapped_column(ForeignKey("vod_items.id"))
    subscription_id: Mapped[str] = mapped_column(ForeignKey("subscriptions.id"))
    customer_id: Mapped[str] = mapped_column(ForeignKey("customers.id"))
    currency: Mapped[str] = mapped_column(Currency)
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    method: Mapped[str] = mapped_column(String(20))
    reference: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(10))
    starts_at: Mapped[datetime] = mapped_column(Moment)
    ends_at: Mapped[datetime] = mapped_column(Moment)
    created_at: Mapped[datetime] = mapped_column(Moment)
    refunded_at: Mapped[datetime | None] = mapped_column(Moment)
