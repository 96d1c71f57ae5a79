"""Stream authorization: "may this viewer play this, now?" for every protocol adapter.

Credential → subscription's entitlement (from the in-memory ``AccessIndex``) → the pure
``decide`` → the session registry (connection limit, heartbeats). No database read happens on
this path. Failed logins count against the caller's IP (``GuessLimiter``); a blocked IP is
refused before its credentials are even looked at, so guessing gains nothing.

A channel carrying a pay-per-view event *is* that event (``Asset(PPV, code)``) during its
viewing window: only a purchase covering now lets a viewer in, and a blacked-out country is
refused. Outside the window the channel is its packages' again. A "yes" is never cached past
the moment the answer could change (the window's end, or the next event's start).

A VOD play (``AssetKind.VOD``) names a VOD item (its own Xtream numbers, apart from channels'):
its packages let a viewer in, and so does a rental whose window covers now; a "yes" given by
a rental is not cached past the rental's end.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from iptv_billing.domain.credentials import normalise_mac
from iptv_billing.domain.entitlement import (
    Asset,
    AssetKind,
    Decision,
    Entitlement,
    Reason,
    Request,
    decide,
)
from iptv_billing.domain.errors import InvalidInput
from iptv_billing.domain.ppv import PpvEvent
from iptv_billing.domain.sessions import OverLimit, Session
from iptv_billing.domain.vod import rented
from iptv_billing.services.access_index import AccessIndex, ChannelView, KnownCredential
from iptv_billing.services.clock import Clock
from iptv_billing.services.credentials import DEVICE, LINE, TOKEN, token_lookup
from iptv_billing.services.stream_ports import GuessLimiter, SessionRegistry
from iptv_billing.services.vod_records import VodItemRecord

_MAX_LOGIN = 128


@dataclass(frozen=True, slots=True)
class Presented:
    """What a player or server handed over: a line, a token or a set-top box's MAC."""

    kind: str
    login: str
    password: str | None = None

    @classmethod
    def line(cls, username: str, password: str) -> Presented:
        return cls(LINE, username, password)

    @classmethod
    def token(cls, token: str) -> Presented:
        return cls(TOKEN, token)

    @classmethod
    def device(cls, mac: str) -> Presented:
        return cls(DEVICE, mac)


@dataclass(frozen=True, slots=True)
class PlayRequest:
    presented: Presented | None
    stream: str  # a channel (or, for VOD, an item) code or Xtream numeric stream id
    ip: str
    kind: AssetKind = AssetKind.LIVE
    session_id: str | None = None  # the server's own stable id; None: a check without a session
    device: str | None = None  # defaults to the session id (every connection its own device)
    country: str | None = None
    aired_at: datetime | None = None  # catch-up


@dataclass(frozen=True, slots=True)
class PlayAnswer:
    decision: Decision
    credential: KnownCredential | None = None
    channel: ChannelView | None = None
    dropped: tuple[Session, ...] = ()  # sessions the server should end now
    vod: VodItemRecord | None = None  # the item of a VOD play

    @property
    def allowed(self) -> bool:
        return self.decision.allowed

    @property
    def reason(self) -> Reason | None:
        return self.decision.reason


@dataclass(frozen=True, slots=True)
class Account:
    """A credential's account as the player API shows it."""

    credential: KnownCredential
    entitlement: Entitlement
    now: datetime
    active_connections: int


def _refused(reason: Reason, credential: KnownCredential | None = None) -> PlayAnswer:
    sub = credential.subscription_id if credential else None
    return PlayAnswer(Decision(False, reason, subscription_id=sub), credential)


class StreamAuthorizer:
    def __init__(
        self,
        index: AccessIndex,
        sessions: SessionRegistry,
        limiter: GuessLimiter,
        clock: Clock,
        policy: OverLimit = OverLimit.REFUSE_NEW,
        *,
        blocking: bool = False,
    ) -> None:
        self.index = index
        # True when the session store does network I/O (Redis): async adapters then call
        # this from a worker thread instead of the event loop.
        self.blocking = blocking
        self.sessions = sessions
        self.limiter = limiter
        self._clock = clock
        self.policy = policy

    # -- who ----------------------------------------------------------------------------------
    def now_for(self, tenant_id: str) -> datetime:
        """The tenant's time: its test clock when it runs one."""
        access = self.index.tenant(tenant_id)
        frozen = access.tenant.test_clock_now if access else None
        return frozen or self._clock.now()

    def login(self, presented: Presented | None, ip: str) -> KnownCredential | Reason:
        """The credential presented, or why not; failures count against ``ip``."""
        if self.limiter.blocked(ip, self._clock.now()):
            return Reason.TOO_MANY_ATTEMPTS
        credential = self._find(presented) if presented else None
        if credential is None:
            self.limiter.failed(ip, self._clock.now())
            return Reason.UNKNOWN_CREDENTIAL
        return credential

    def _find(self, presented: Presented) -> KnownCredential | None:
        login = presented.login
        if not login or len(login) > _MAX_LOGIN:
            return None
        if presented.kind == LINE:
            found = self.index.credential(LINE, login)
            password = presented.password or ""
            if found is None or found.secret is None or not found.secret.matches(password):
                return None
            return found
        if presented.kind == TOKEN:
            return self.index.credential(TOKEN, token_lookup(login))
        try:
            return self.index.credential(DEVICE, normalise_mac(login))
        except InvalidInput:
            return None

    def account(self, presented: Presented | None, ip: str) -> Account | Reason:
        found = self.login(presented, ip)
        if isinstance(found, Reason):
            return found
        entitlement = self._entitlement(found)
        if entitlement is None:
            return Reason.UNKNOWN_CREDENTIAL
        now = self.now_for(found.tenant_id)
        key = session_key(found)
        active = len(self.sessions.live(key, now))
        return Account(found, entitlement, now, active)

    def _entitlement(self, credential: KnownCredential) -> Entitlement | None:
        granted = self.index.entitlement(credential.tenant_id, credential.subscription_id)
        if granted is None or credential.enabled:
            return granted
        return _disabled(granted)

    # -- what ---------------------------------------------------------------------------------
    def channel(self, credential: KnownCredential, stream: str) -> ChannelView | None:
        access = self.index.tenant(credential.tenant_id)
        if access is None:
            return None
        catalog = access.catalog
        if stream.isdigit() and len(stream) <= 9:
            return catalog.by_stream_id.get(int(stream))
        return catalog.by_code.get(stream)

    def vod_item(self, credential: KnownCredential, stream: str) -> VodItemRecord | None:
        access = self.index.tenant(credential.tenant_id)
        return None if access is None else access.catalog.vod(stream)

    # -- plays --------------------------------------------------------------------------------
    def authorize(self, request: PlayRequest) -> PlayAnswer:
        """A new play (or a check without a session, when ``session_id`` is None)."""
        return self._play(request, heartbeat=False)

    def heartbeat(self, request: PlayRequest) -> PlayAnswer:
        """A session still playing (nginx-rtmp ``on_update``, Flussonic re-check): refused
        when its right ended or the session was dropped in favour of another."""
        return self._play(request, heartbeat=True)

    def finish(self, presented: Presented | None, session_id: str, ip: str) -> bool:
        found = self._find(presented) if presented else None
        if found is None:
            return False
        return self.sessions.end(session_key(found), session_id) is not None

    def _play(self, request: PlayRequest, *, heartbeat: bool) -> PlayAnswer:
        found = self.login(request.presented, request.ip)
        if isinstance(found, Reason):
            return _refused(found)
        entitlement = self._entitlement(found)
        if entitlement is None:
            return _refused(Reason.UNKNOWN_CREDENTIAL, found)
        if request.kind is AssetKind.VOD:
            return self._play_vod(request, found, entitlement, heartbeat=heartbeat)
        channel = self.channel(found, request.stream)
        if channel is None:
            return _refused(Reason.UNKNOWN_STREAM, found)
        now = self.now_for(found.tenant_id)
        event = self._ppv(found, channel, request, now)
        if event is not None and event.blacked_out(request.country):
            return _refused(Reason.COUNTRY_NOT_ALLOWED, found)
        if event is not None:
            asset = Asset(AssetKind.PPV, event.code)
        else:
            asset = channel.asset(request.kind, request.aired_at)
        # Everything but the connection limit, which the session registry decides atomically.
        ask = Request(asset, now, request.country, is_known_session=True)
        decision = decide(entitlement, ask)
        if decision.allowed:
            decision = self._cap_cache(decision, found, channel, event, now)
        if not decision.allowed or request.session_id is None:
            return PlayAnswer(decision, found, channel)
        return self._admit(request, found, channel, decision, now, heartbeat=heartbeat)

    def _play_vod(
        self,
        request: PlayRequest,
        credential: KnownCredential,
        entitlement: Entitlement,
        *,
        heartbeat: bool,
    ) -> PlayAnswer:
        item = self.vod_item(credential, request.stream)
        if item is None:
            return _refused(Reason.UNKNOWN_STREAM, credential)
        now = self.now_for(credential.tenant_id)
        asset = item.item.asset()
        decision = decide(entitlement, Request(asset, now, request.country, is_known_session=True))
        window = rented(entitlement.purchases, asset.code, now)
        if decision.allowed and window is not None and not asset.packages & entitlement.packages:
            # Let in by the rental alone: no cached "yes" outlives it.
            decision = replace(decision, cache_for=min(decision.cache_for, window.end - now))
        if not decision.allowed or request.session_id is None:
            return PlayAnswer(decision, credential, vod=item)
        answer = self._admit(request, credential, None, decision, now, heartbeat=heartbeat)
        return replace(answer, vod=item)

    def _ppv(
        self, credential: KnownCredential, channel: ChannelView, request: PlayRequest, now: datetime
    ) -> PpvEvent | None:
        access = self.index.tenant(credential.tenant_id)
        if access is None or request.kind not in (AssetKind.LIVE, AssetKind.CATCHUP):
            return None
        aired = request.aired_at if request.kind is AssetKind.CATCHUP else None
        return access.catalog.ppv_at(channel.record.code, now, aired)

    def _cap_cache(
        self,
        decision: Decision,
        credential: KnownCredential,
        channel: ChannelView,
        event: PpvEvent | None,
        now: datetime,
    ) -> Decision:
        """No cached "yes" outlives the PPV window it was given in, or reaches into the next
        event's start on this channel."""
        if event is not None:
            boundary: datetime | None = event.viewing_ends_at
        else:
            access = self.index.tenant(credential.tenant_id)
            boundary = access.catalog.next_ppv_start(channel.record.code, now) if access else None
        if boundary is None or boundary - now >= decision.cache_for:
            return decision
        return replace(decision, cache_for=max(timedelta(0), boundary - now))

    def _admit(
        self,
        request: PlayRequest,
        credential: KnownCredential,
        channel: ChannelView | None,
        decision: Decision,
        now: datetime,
        *,
        heartbeat: bool,
    ) -> PlayAnswer:
        key = session_key(credential)
        session_id = request.session_id or ""
        if heartbeat and self.sessions.touch(key, session_id, now) is not None:
            return PlayAnswer(decision, credential, channel)
        if heartbeat and self.policy is OverLimit.DROP_OLDEST:
            # Unknown on a heartbeat: it was dropped for a newer session (or expired); letting
            # it back in would drop that one in turn.
            return _refused(Reason.OVER_CONNECTION_LIMIT, credential)
        device = request.device or session_id
        candidate = Session(session_id, device, request.ip, now, now)
        admission = self.sessions.admit(key, candidate, decision.max_connections, self.policy, now)
        if not admission.accepted:
            return _refused(Reason.OVER_CONNECTION_LIMIT, credential)
        return PlayAnswer(decision, credential, channel, admission.dropped)


def session_key(credential: KnownCredential) -> str:
    """Sessions are counted per subscription: its credentials share the connection limit."""
    return f"{credential.tenant_id}:{credential.subscription_id}"


def _disabled(entitlement: Entitlement) -> Entitlement:
    return replace(entitlement, enabled=False)
