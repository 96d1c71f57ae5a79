"""Lines, tokens and set-top boxes: how a subscription's viewers are let in.

Every change is logged (``access_credential`` entries, about the subscription), which is also
how the authorization index in every process learns of it. Records carry the login (username,
MAC, a token's first characters) and the state, never a secret.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import replace
from typing import Protocol

from iptv_billing.domain.catalog import BillingTerms
from iptv_billing.domain.credentials import (
    check_device_limit,
    check_username,
    hash_secret,
    new_password,
    new_token,
    normalise_mac,
)
from iptv_billing.domain.entitlement import entitlement_of
from iptv_billing.domain.errors import Conflict, InvalidInput, NotFound
from iptv_billing.ledger.entries import RECORD_VERSION, moment
from iptv_billing.services.context import Context
from iptv_billing.services.lookup import get_subscription
from iptv_billing.services.ports import UnitOfWork
from iptv_billing.services.records import CredentialRecord, LogDraft, SubscriptionRecord

ACCESS_CREDENTIAL = "access_credential"
LINE, TOKEN, DEVICE = "line", "token", "device"
TOKEN_LOGIN_CHARS = 6
_MAX_LABEL = 200
_USERNAME_ATTEMPTS = 5

RandomBytes = Callable[[int], bytes]


class Sealer(Protocol):
    """Encrypts secrets that must be shown again (``adapters.secret_box.SecretBox``)."""

    def seal(self, plaintext: str, context: str) -> str: ...
    def unseal(self, sealed: str, context: str) -> str: ...


def token_lookup(token: str) -> str:
    """Tokens are found by their SHA-256: a 192-bit random value needs no salt."""
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


# -- the log ----------------------------------------------------------------------------------
def credential_state(cred: CredentialRecord) -> dict[str, object]:
    """What a credential lets in, as logged and as ``ledger verify`` compares it. The
    fingerprint covers the lookup and the password hash: a line added, re-enabled or given
    another password behind the log's back no longer matches its last record."""
    secret = f"{cred.lookup}|{cred.secret_salt or ''}|{cred.secret_digest or ''}"
    return {
        "subscription": cred.subscription_id,
        "kind": cred.kind,
        "login": cred.login,
        "label": cred.label,
        "enabled": cred.enabled,
        "removed": cred.removed_at is not None,
        "fingerprint": hashlib.sha256(secret.encode()).hexdigest(),
    }


def credential_record(cred: CredentialRecord, event: str) -> dict[str, object]:
    return {
        "v": RECORD_VERSION,
        "type": ACCESS_CREDENTIAL,
        "tenant": cred.tenant_id,
        "credential": cred.id,
        **credential_state(cred),
        "event": event,
        "at": moment(cred.updated_at),
    }


def _log(uow: UnitOfWork, ctx: Context, cred: CredentialRecord, event: str) -> None:
    draft = LogDraft(
        ACCESS_CREDENTIAL,
        cred.id,
        cred.subscription_id,
        credential_record(cred, event),
        cred.updated_at,
    )
    uow.log.stage(ctx.tenant_id, [draft])


# -- issuing ----------------------------------------------------------------------------------
def issue_line(
    uow: UnitOfWork,
    ctx: Context,
    sealer: Sealer,
    random_bytes: RandomBytes,
    subscription_id: str,
    username: str | None = None,
    label: str | None = None,
) -> tuple[CredentialRecord, str]:
    """A username and a generated password (returned once here, kept sealed)."""
    sub = get_subscription(uow, ctx, subscription_id)
    if username is not None:
        return _add_line(uow, ctx, sealer, random_bytes, sub, check_username(username), label)
    for _ in range(_USERNAME_ATTEMPTS):  # a generated name can collide, if rarely
        try:
            return _add_line(
                uow, ctx, sealer, random_bytes, sub, _new_username(random_bytes), label
            )
        except Conflict:
            continue
    raise Conflict("credential.taken", "could not find a free username; name one")


def _new_username(random_bytes: RandomBytes) -> str:
    return "u" + new_password(random_bytes)[:9].lower()


def _add_line(
    uow: UnitOfWork,
    ctx: Context,
    sealer: Sealer,
    random_bytes: RandomBytes,
    sub: SubscriptionRecord,
    username: str,
    label: str | None,
) -> tuple[CredentialRecord, str]:
    password = new_password(random_bytes)
    cred = _new(ctx, sub, LINE, username, username, label)
    cred = _with_secret(cred, sealer, random_bytes, password, hashed=True)
    uow.credentials.add(cred)
    _log(uow, ctx, cred, "issued")
    return cred, password


def issue_token(
    uow: UnitOfWork,
    ctx: Context,
    sealer: Sealer,
    random_bytes: RandomBytes,
    subscription_id: str,
    label: str | None = None,
) -> tuple[CredentialRecord, str]:
    """A play token for signed or token URLs (``?token=``, ``/play/{token}``)."""
    sub = get_subscription(uow, ctx, subscription_id)
    token = new_token(random_bytes)
    cred = _new(ctx, sub, TOKEN, token[:TOKEN_LOGIN_CHARS], token_lookup(token), label)
    cred = _with_secret(cred, sealer, random_bytes, token, hashed=False)
    uow.credentials.add(cred)
    _log(uow, ctx, cred, "issued")
    return cred, token


def register_device(
    uow: UnitOfWork, ctx: Context, subscription_id: str, mac: str, label: str | None = None
) -> CredentialRecord:
    """A set-top box, known by its MAC; at most one per connection the subscription has."""
    sub = get_subscription(uow, ctx, subscription_id)
    mac = normalise_mac(mac)
    devices = [
        c for c in uow.credentials.of_subscription(ctx.tenant_id, sub.id) if c.kind == DEVICE
    ]
    if any(d.login == mac for d in devices):
        raise Conflict("credential.taken", "that device is registered to this subscription")
    check_device_limit(len(devices), device_limit(uow, sub))
    cred = _new(ctx, sub, DEVICE, mac, mac, label)
    uow.credentials.add(cred)
    _log(uow, ctx, cred, "registered")
    return cred


def device_limit(uow: UnitOfWork, sub: SubscriptionRecord) -> int:
    """One box per simultaneous connection of the plan and its add-ons."""
    terms = uow.catalog.get_terms(sub.tenant_id, sub.terms_id)
    if terms is None:
        raise NotFound("terms.not_found", f"no terms {sub.terms_id}")
    document = BillingTerms.from_document(json.loads(terms.document))
    return entitlement_of(sub.id, sub.state, document).max_connections


# -- changing ---------------------------------------------------------------------------------
def get_credential(uow: UnitOfWork, ctx: Context, credential_id: str) -> CredentialRecord:
    cred = uow.credentials.get(ctx.tenant_id, credential_id)
    if cred is None or cred.removed_at is not None:
        raise NotFound("credential.not_found", f"no credential {credential_id}")
    return cred


def set_enabled(
    uow: UnitOfWork, ctx: Context, credential_id: str, enabled: bool
) -> CredentialRecord:
    cred = get_credential(uow, ctx, credential_id)
    if cred.enabled == enabled:
        return cred
    cred = replace(cred, enabled=enabled, updated_at=ctx.now())
    uow.credentials.update(cred)
    _log(uow, ctx, cred, "enabled" if enabled else "disabled")
    return cred


def reset_secret(
    uow: UnitOfWork, ctx: Context, sealer: Sealer, random_bytes: RandomBytes, credential_id: str
) -> tuple[CredentialRecord, str]:
    """A new password (line) or a new token; the old one stops working at once."""
    old = get_credential(uow, ctx, credential_id)
    if old.kind == DEVICE:
        raise InvalidInput("credential.no_secret", "a device has no secret; remove it instead")
    if old.kind == LINE:
        secret = new_password(random_bytes)
        cred = _with_secret(old, sealer, random_bytes, secret, hashed=True)
    else:
        secret = new_token(random_bytes)
        cred = replace(old, login=secret[:TOKEN_LOGIN_CHARS], lookup=token_lookup(secret))
        cred = _with_secret(cred, sealer, random_bytes, secret, hashed=False)
    cred = replace(cred, updated_at=ctx.now())
    if cred.lookup != old.lookup and uow.credentials.by_lookup(cred.kind, cred.lookup):
        raise Conflict("credential.taken", "the new token collides; try again")
    uow.credentials.update(cred)
    _log(uow, ctx, cred, "secret_reset")
    return cred, secret


def remove(uow: UnitOfWork, ctx: Context, credential_id: str) -> CredentialRecord:
    cred = get_credential(uow, ctx, credential_id)
    cred = replace(cred, removed_at=ctx.now(), updated_at=ctx.now(), enabled=False)
    uow.credentials.update(cred)
    _log(uow, ctx, cred, "removed")
    return cred


def reset_devices(uow: UnitOfWork, ctx: Context, subscription_id: str) -> int:
    """Forget every set-top box of the subscription (a subscriber replacing boxes)."""
    sub = get_subscription(uow, ctx, subscription_id)
    devices = [
        c for c in uow.credentials.of_subscription(ctx.tenant_id, sub.id) if c.kind == DEVICE
    ]
    for device in devices:
        remove(uow, ctx, device.id)
    return len(devices)


def reveal(uow: UnitOfWork, ctx: Context, sealer: Sealer, credential_id: str) -> str:
    """The password or token, for the subscriber's own playlist URL."""
    cred = get_credential(uow, ctx, credential_id)
    if cred.sealed_secret is None:
        raise InvalidInput("credential.no_secret", "a device has no secret")
    return sealer.unseal(cred.sealed_secret, cred.id)


# -- helpers ----------------------------------------------------------------------------------
def _new(
    ctx: Context, sub: SubscriptionRecord, kind: str, login: str, lookup: str, label: str | None
) -> CredentialRecord:
    if label is not None and (len(label) > _MAX_LABEL or not label.isprintable()):
        raise InvalidInput("credential.invalid_label", f"a label is up to {_MAX_LABEL} characters")
    now = ctx.now()
    return CredentialRecord(
        id=ctx.ids.new("cred"),
        tenant_id=ctx.tenant_id,
        subscription_id=sub.id,
        kind=kind,
        login=login,
        lookup=lookup,
        secret_salt=None,
        secret_digest=None,
        sealed_secret=None,
        label=label,
        enabled=True,
        created_at=now,
        updated_at=now,
    )


def _with_secret(
    cred: CredentialRecord, sealer: Sealer, random_bytes: RandomBytes, secret: str, *, hashed: bool
) -> CredentialRecord:
    digest = hash_secret(secret, random_bytes) if hashed else None
    return replace(
        cred,
        secret_salt=digest.salt if digest else None,
        secret_digest=digest.digest if digest else None,
        sealed_secret=sealer.seal(secret, cred.id),
    )
