"""The authorization index: what every process keeps in memory so that a streaming server's
"may this viewer play?" never waits on the database, a lock or a billing run.

It is loaded once per tenant and then follows the tenant's transparency log: every change of a
subscription (billing runs included) and of a credential is a log entry, and log indices
commit in order, so reading the entries after the last one seen tells exactly which
subscriptions to reload. The catalog (channels, packages, PPV events, VOD items) is reloaded
when its fingerprint moves, and on a slower schedule. PPV purchases and VOD rentals are
``ppv_purchase`` / ``vod_rental`` entries about the subscription: they reload it like any other
change, with its purchase and rental windows (rentals already over are left out).
Readers see plain dictionaries; a single writer (``refresh``) replaces entries whole.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar

from iptv_billing.domain.catalog import BillingTerms
from iptv_billing.domain.credentials import SecretHash
from iptv_billing.domain.entitlement import Asset, AssetKind, Entitlement, entitlement_of
from iptv_billing.domain.ppv import PpvEvent
from iptv_billing.services.clock import Clock, SystemClock
from iptv_billing.services.context import tenant_clock
from iptv_billing.services.credentials import ACCESS_CREDENTIAL
from iptv_billing.services.log_records import SUBSCRIPTION_STATE
from iptv_billing.services.ports import UnitOfWork, UnitOfWorkFactory
from iptv_billing.services.ppv_records import PPV_PURCHASE
from iptv_billing.services.records import (
    ChannelRecord,
    CredentialRecord,
    Page,
    SubscriptionRecord,
    TenantRecord,
)
from iptv_billing.services.vod_records import VOD_RENTAL, VodItemRecord

FOLLOWED_KINDS = (SUBSCRIPTION_STATE, ACCESS_CREDENTIAL, PPV_PURCHASE, VOD_RENTAL)
_PAGE = 10_000
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class KnownCredential:
    id: str
    tenant_id: str
    subscription_id: str
    kind: str
    login: str
    secret: SecretHash | None  # lines only
    enabled: bool
    lookup: str = field(repr=False)  # a token's hash stays out of log lines


@dataclass(frozen=True, slots=True)
class ChannelView:
    """A channel as players see it, with the packages that carry it."""

    record: ChannelRecord
    packages: frozenset[str]

    def asset(self, kind: AssetKind = AssetKind.LIVE, aired_at: datetime | None = None) -> Asset:
        return Asset(kind, self.record.code, self.packages, aired_at)


@dataclass(frozen=True, slots=True)
class Catalog:
    by_code: dict[str, ChannelView]
    by_stream_id: dict[int, ChannelView]
    ordered: tuple[ChannelView, ...]  # by channel number, then code
    # Scheduled (not cancelled) PPV events: by channel code (ordered by start), and by code.
    ppv_by_channel: dict[str, tuple[PpvEvent, ...]] = field(default_factory=dict)
    ppv_by_code: dict[str, PpvEvent] = field(default_factory=dict)
    # VOD items: by code, by Xtream stream id (their own numbers), and ordered by stream id.
    vod_by_code: dict[str, VodItemRecord] = field(default_factory=dict)
    vod_by_stream_id: dict[int, VodItemRecord] = field(default_factory=dict)
    vod_ordered: tuple[VodItemRecord, ...] = ()

    def vod(self, stream: str) -> VodItemRecord | None:
        """A VOD item by its Xtream stream id (digits) or its code."""
        if stream.isdigit() and len(stream) <= 9:
            return self.vod_by_stream_id.get(int(stream))
        return self.vod_by_code.get(stream)

    def ppv_at(
        self, channel_code: str, at: datetime, aired_at: datetime | None = None
    ) -> PpvEvent | None:
        """The PPV event a channel is at ``at``: live, the latest started event whose viewing
        window covers ``at``; a catch-up of ``aired_at``, the event that aired then."""
        events = self.ppv_by_channel.get(channel_code)
        if not events:
            return None
        if aired_at is not None:
            return next((e for e in events if e.aired_during(aired_at)), None)
        return next((e for e in reversed(events) if e.on_air(at)), None)

    def next_ppv_start(self, channel_code: str, at: datetime) -> datetime | None:
        """When the channel next turns into a PPV event (a "yes" must not be cached past it)."""
        events = self.ppv_by_channel.get(channel_code, ())
        return next((e.starts_at for e in events if e.starts_at > at), None)


@dataclass
class TenantAccess:
    tenant: TenantRecord
    catalog: Catalog
    subscriptions: dict[str, SubscriptionRecord] = field(default_factory=dict)
    entitlements: dict[str, Entitlement] = field(default_factory=dict)
    credentials_of: dict[str, tuple[str, ...]] = field(default_factory=dict)  # sub → cred ids
    position: int = 0  # the next log index to read
    catalog_fingerprint: tuple[int, ...] = ()  # reload the catalog when this changes


class AccessIndex:
    def __init__(self, uow_factory: UnitOfWorkFactory, clock: Clock | None = None) -> None:
        self._uow = uow_factory
        self._clock = clock or SystemClock()  # only to leave rentals already over out
        self._tenants: dict[str, TenantAccess] = {}
        self._by_lookup: dict[tuple[str, str], KnownCredential] = {}
        self._by_id: dict[str, KnownCredential] = {}
        self._terms: dict[str, BillingTerms] = {}
        self._write = threading.Lock()

    # -- reads (any thread) --------------------------------------------------------------------
    def credential(self, kind: str, lookup: str) -> KnownCredential | None:
        return self._by_lookup.get((kind, lookup))

    def tenant(self, tenant_id: str) -> TenantAccess | None:
        return self._tenants.get(tenant_id)

    def entitlement(self, tenant_id: str, subscription_id: str) -> Entitlement | None:
        access = self._tenants.get(tenant_id)
        return None if access is None else access.entitlements.get(subscription_id)

    def credentials_of(self, tenant_id: str, subscription_id: str) -> list[KnownCredential]:
        access = self._tenants.get(tenant_id)
        ids = () if access is None else access.credentials_of.get(subscription_id, ())
        return [c for c in (self._by_id.get(i) for i in ids) if c is not None]

    @property
    def tenant_ids(self) -> tuple[str, ...]:
        return tuple(self._tenants)

    # -- loading and following -----------------------------------------------------------------
    def load_all(self) -> None:
        with self._uow(read_only=True) as uow:
            tenants = list(uow.tenants.list())
        for tenant in tenants:
            self.load_tenant(tenant.id)

    def load_tenant(self, tenant_id: str) -> None:
        """(Re)load one tenant whole: its catalog, subscriptions and credentials."""
        with self._write, self._uow(read_only=True) as uow:
            tenant = uow.tenants.get(tenant_id)
            if tenant is None:
                return
            # The log position first: whatever commits after it is read again by ``refresh``.
            position = uow.log.size(tenant_id)
            fingerprint = uow.catalog.fingerprints().get(tenant_id, ())
            access = TenantAccess(tenant, _load_catalog(uow, tenant_id), position=position)
            access.catalog_fingerprint = fingerprint
            for subs in _pages(lambda a: uow.subscriptions.list(tenant_id, _PAGE, a)):
                self._apply(uow, access, subs)
            self._tenants[tenant_id] = access

    def refresh(self) -> int:
        """Follow every tenant's log; load tenants that are new. How many subscriptions
        were reloaded."""
        with self._uow(read_only=True) as uow:
            tenants = {t.id: t for t in uow.tenants.list()}
            fingerprints = uow.catalog.fingerprints()
        changed = 0
        for tenant_id, tenant in tenants.items():
            if tenant_id not in self._tenants:
                self.load_tenant(tenant_id)
                continue
            access = self._tenants[tenant_id]
            access.tenant = tenant  # test clocks move
            fingerprint = fingerprints.get(tenant_id, ())
            if fingerprint != access.catalog_fingerprint:
                self._reload_catalog(access, fingerprint)
            changed += self._follow(tenant_id)
        return changed

    def follow_now(self, tenant_id: str) -> None:
        """Catch up with one tenant's log at once (after a write this process made, such as
        a set-top box's purchase), instead of waiting for the follower's next pass."""
        if tenant_id in self._tenants:
            self._follow(tenant_id)
        else:
            self.load_tenant(tenant_id)

    def refresh_catalogs(self) -> None:
        """Reload every catalog (a safety net for changes the fingerprints cannot see)."""
        with self._uow(read_only=True) as uow:
            fingerprints = uow.catalog.fingerprints()
        for tenant_id, access in list(self._tenants.items()):
            self._reload_catalog(access, fingerprints.get(tenant_id, ()))

    def _reload_catalog(self, access: TenantAccess, fingerprint: tuple[int, ...]) -> None:
        with self._uow(read_only=True) as uow:
            access.catalog = _load_catalog(uow, access.tenant.id)
        access.catalog_fingerprint = fingerprint

    def _follow(self, tenant_id: str) -> int:
        with self._write, self._uow(read_only=True) as uow:
            access = self._tenants[tenant_id]
            changes = uow.log.changes_since(tenant_id, access.position, FOLLOWED_KINDS)
            if not changes:
                return 0
            about = sorted({a for _, _, a in changes if a is not None})
            subs = list(uow.subscriptions.get_many(tenant_id, about).values())
            self._apply(uow, access, subs)
            access.position = changes[-1][0] + 1
            return len(subs)

    def _apply(
        self, uow: UnitOfWork, access: TenantAccess, subs: Sequence[SubscriptionRecord]
    ) -> None:
        if not subs:
            return
        tenant_id = access.tenant.id
        self._load_terms(uow, tenant_id, {s.terms_id for s in subs})
        creds = uow.credentials.of_subscriptions(tenant_id, [s.id for s in subs])
        ids = [s.id for s in subs]
        windows = uow.ppv.windows_of(tenant_id, ids)
        # Rentals over by the tenant's now can never let anyone in again: not kept.
        now = tenant_clock(access.tenant, self._clock).now()
        rentals = uow.vod.windows_of(tenant_id, ids, now)
        for sub in subs:
            access.subscriptions[sub.id] = sub
            bought = (*windows.get(sub.id, ()), *rentals.get(sub.id, ()))
            access.entitlements[sub.id] = entitlement_of(
                sub.id, sub.state, self._terms[sub.terms_id], purchases=bought
            )
        self._apply_credentials(access, creds, {s.id for s in subs})

    def _apply_credentials(
        self, access: TenantAccess, creds: Iterable[CredentialRecord], sub_ids: set[str]
    ) -> None:
        held: dict[str, list[str]] = {s: [] for s in sub_ids}
        for cred in creds:
            self._forget(cred.id)
            if cred.removed_at is None:
                known = _known(cred)
                self._by_id[cred.id] = known
                self._by_lookup[(cred.kind, cred.lookup)] = known
                held.setdefault(cred.subscription_id, []).append(cred.id)
        for sub_id, ids in held.items():
            access.credentials_of[sub_id] = tuple(sorted(ids))

    def _forget(self, credential_id: str) -> None:
        old = self._by_id.pop(credential_id, None)
        if old is not None:
            key = (old.kind, old.lookup)
            if self._by_lookup.get(key) is old:
                del self._by_lookup[key]

    def _load_terms(self, uow: UnitOfWork, tenant_id: str, ids: set[str]) -> None:
        missing = [i for i in ids if i not in self._terms]
        for record in uow.catalog.terms_by_ids(missing):
            self._terms[record.id] = BillingTerms.from_document(json.loads(record.document))


def _known(cred: CredentialRecord) -> KnownCredential:
    secret = None
    if cred.secret_salt is not None and cred.secret_digest is not None:
        secret = SecretHash(cred.secret_salt, cred.secret_digest)
    return KnownCredential(
        cred.id,
        cred.tenant_id,
        cred.subscription_id,
        cred.kind,
        cred.login,
        secret,
        cred.enabled,
        cred.lookup,
    )


def _pages(fetch: Callable[[str | None], Page[R]]) -> Iterator[list[R]]:
    """Every page of a keyset-paginated list, ``fetch(after)`` giving the page after an id."""
    after: str | None = None
    while True:
        page = fetch(after)
        yield list(page.items)
        if not page.has_more or not page.items:
            return
        after = getattr(page.items[-1], "id")  # noqa: B009  # records are keyed by id


def _load_catalog(uow: UnitOfWork, tenant_id: str) -> Catalog:
    channels = [
        c for page in _pages(lambda a: uow.catalog.list_channels(tenant_id, _PAGE, a)) for c in page
    ]
    packages = [
        p for page in _pages(lambda a: uow.catalog.list_packages(tenant_id, _PAGE, a)) for p in page
    ]
    carried: dict[str, set[str]] = {}
    for package in packages:
        for channel_id in package.channel_ids:
            carried.setdefault(channel_id, set()).add(package.code)
    views = [ChannelView(c, frozenset(carried.get(c.id, ()))) for c in channels]
    views.sort(key=lambda v: (v.record.number, v.record.code))
    codes = {c.id: c.code for c in channels}
    events = sorted(
        (r.event for r in uow.ppv.scheduled_events(tenant_id)), key=lambda e: e.starts_at
    )
    on_channel: dict[str, list[PpvEvent]] = {}
    for event in events:
        if event.channel_id in codes:
            on_channel.setdefault(codes[event.channel_id], []).append(event)
    items = tuple(uow.vod.all_items(tenant_id))
    return Catalog(
        by_code={v.record.code: v for v in views},
        by_stream_id={v.record.stream_id: v for v in views if v.record.stream_id is not None},
        ordered=tuple(views),
        ppv_by_channel={code: tuple(found) for code, found in on_channel.items()},
        ppv_by_code={e.code: e for e in events},
        vod_by_code={i.code: i for i in items},
        vod_by_stream_id={i.stream_id: i for i in items},
        vod_ordered=items,
    )
