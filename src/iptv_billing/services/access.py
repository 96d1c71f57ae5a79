"""Who may call: tenants, API keys and their scopes.

Like every use case these take an open unit of work and leave committing to the caller.
A key's secret is shown once, at issue; only its SHA-256 is stored, so a leaked database
does not leak working keys.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from zoneinfo import available_timezones

from iptv_billing.domain.errors import Forbidden, InvalidInput, NotFound, Unauthorized
from iptv_billing.domain.invoice import check_invoice_prefix
from iptv_billing.domain.money import currency
from iptv_billing.services.clock import Clock
from iptv_billing.services.ids import IdGenerator
from iptv_billing.services.ports import UnitOfWork
from iptv_billing.services.records import ApiKeyRecord, TenantRecord

SECRET_PREFIX = "ib_live_"
DISPLAY_PREFIX_LENGTH = 12
# token_urlsafe(32) is 43 characters; anything much longer is junk, refused before hashing.
_MAX_SECRET_LENGTH = 128
_MAX_NAME_LENGTH = 200


class ApiKeyScope(StrEnum):
    """What a key may do. ``admin`` everything; the others only their own kind of route."""

    ADMIN = "admin"
    READ_ONLY = "read_only"
    INTEGRATION = "integration"


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller: always exactly one tenant."""

    tenant_id: str
    key_id: str
    scope: ApiKeyScope


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "surrogatepass")).hexdigest()


def parse_scope(value: str) -> ApiKeyScope:
    try:
        return ApiKeyScope(value)
    except ValueError:
        allowed = ", ".join(s.value for s in ApiKeyScope)
        raise InvalidInput("auth.invalid_scope", f"scope must be one of {allowed}") from None


def _check_name(name: str, code: str) -> str:
    name = name.strip()
    if not name or len(name) > _MAX_NAME_LENGTH or not name.isprintable():
        raise InvalidInput(code, f"a name is 1 to {_MAX_NAME_LENGTH} printable characters")
    return name


def issue_api_key(
    uow: UnitOfWork,
    ids: IdGenerator,
    clock: Clock,
    tenant_id: str,
    name: str,
    scope: ApiKeyScope | str,
) -> tuple[ApiKeyRecord, str]:
    """A new key for ``tenant_id``: its record and the secret, which is never stored."""
    scope = parse_scope(scope)
    name = _check_name(name, "auth.invalid_key_name")
    if uow.tenants.get(tenant_id) is None:
        raise NotFound("tenant.not_found", f"no tenant {tenant_id}")
    secret = SECRET_PREFIX + secrets.token_urlsafe(32)
    record = ApiKeyRecord(
        id=ids.new("key"),
        tenant_id=tenant_id,
        name=name,
        scope=scope.value,
        key_hash=hash_secret(secret),
        prefix=secret[:DISPLAY_PREFIX_LENGTH],
        created_at=clock.now(),
    )
    uow.api_keys.add(record)
    return record, secret


def authenticate(uow: UnitOfWork, secret: str) -> Principal:
    """The principal of a live key; one error for every failure so callers learn nothing."""
    invalid = Unauthorized("auth.invalid_key", "the API key is missing, unknown or revoked")
    if not secret.startswith(SECRET_PREFIX) or len(secret) > _MAX_SECRET_LENGTH:
        raise invalid
    key_hash = hash_secret(secret)
    record = uow.api_keys.by_hash(key_hash)
    # The lookup is by hash, so its timing reveals nothing about the secret; compare_digest
    # guards against a store that matched loosely (collation, truncation).
    if record is None or not hmac.compare_digest(record.key_hash, key_hash):
        raise invalid
    if record.revoked_at is not None:
        raise invalid
    try:
        scope = ApiKeyScope(record.scope)
    except ValueError:
        raise invalid from None
    return Principal(record.tenant_id, record.id, scope)


def require_scope(principal: Principal, needed: ApiKeyScope) -> None:
    """``needed`` names the kind of route: ADMIN (writes), READ_ONLY (reads), INTEGRATION.

    Admin keys pass everywhere; any other key only on its own kind of route.
    """
    if principal.scope is ApiKeyScope.ADMIN or principal.scope is needed:
        return
    raise Forbidden(
        "auth.insufficient_scope",
        f"a {principal.scope.value} key cannot do this; it needs {needed.value}",
        scope=principal.scope.value,
        needed=needed.value,
    )


def list_api_keys(uow: UnitOfWork, tenant_id: str) -> list[ApiKeyRecord]:
    return list(uow.api_keys.list(tenant_id))


def revoke_api_key(uow: UnitOfWork, clock: Clock, tenant_id: str, key_id: str) -> None:
    """Revoke a key of ``tenant_id``; another tenant's key is simply not found."""
    if not uow.api_keys.revoke(tenant_id, key_id, clock.now()):
        raise NotFound("api_key.not_found", f"no API key {key_id}")


@lru_cache(maxsize=1)
def _iana_zones() -> frozenset[str]:
    # The IANA names, not whatever ZoneInfo can open (paths, the host's "localtime" link).
    return frozenset(available_timezones() - {"localtime"})


def _check_timezone(name: str) -> None:
    if name not in _iana_zones():
        raise InvalidInput("tenant.invalid_timezone", f"not an IANA time zone: {name[:64]!r}")


def create_tenant(
    uow: UnitOfWork,
    ids: IdGenerator,
    clock: Clock,
    name: str,
    timezone: str,
    default_currency: str,
    invoice_prefix: str = "INV-",
) -> TenantRecord:
    name = _check_name(name, "tenant.invalid_name")
    _check_timezone(timezone)
    currency(default_currency)
    check_invoice_prefix(invoice_prefix)  # the same rule that prints it on every invoice
    tenant = TenantRecord(
        id=ids.new("ten"),
        name=name,
        timezone=timezone,
        default_currency=default_currency,
        invoice_prefix=invoice_prefix,
        test_clock_now=None,
        created_at=clock.now(),
    )
    uow.tenants.add(tenant)
    return tenant
