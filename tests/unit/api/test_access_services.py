"""The use cases behind the API plumbing: tenants, keys, scopes, fingerprints."""

from __future__ import annotations

import hashlib

import pytest

from fakes import MemoryDatabase, SeededTenant
from iptv_billing.api.deps import AppServices
from iptv_billing.domain.errors import Forbidden, InvalidInput, NotFound, Unauthorized
from iptv_billing.services.access import (
    ApiKeyScope,
    Principal,
    authenticate,
    create_tenant,
    issue_api_key,
    require_scope,
)
from iptv_billing.services.idempotency import request_fingerprint, validate_key


def test_keys_are_stored_as_hashes(services: AppServices, acme: SeededTenant) -> None:
    with services.database.uow() as uow:
        record, secret = issue_api_key(
            uow, services.ids, services.system_clock, acme.id, "ci", ApiKeyScope.INTEGRATION
        )
        uow.commit()
    assert secret.startswith("ib_live_")
    assert len(secret) == len("ib_live_") + 43
    assert record.key_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert record.prefix == secret[:12]
    with services.database.uow(read_only=True) as uow:
        assert authenticate(uow, secret) == Principal(acme.id, record.id, ApiKeyScope.INTEGRATION)


@pytest.mark.parametrize("secret", ["", "ib_live_", "ib_live_unknown", "sk_" + "a" * 43])
def test_unknown_keys_are_refused(database: MemoryDatabase, secret: str) -> None:
    with database.uow(read_only=True) as uow, pytest.raises(Unauthorized) as raised:
        authenticate(uow, secret)
    assert raised.value.code == "auth.invalid_key"


def test_keys_are_issued_for_existing_tenants_only(services: AppServices) -> None:
    with services.database.uow() as uow, pytest.raises(NotFound):
        issue_api_key(uow, services.ids, services.system_clock, "ten_x", "k", "admin")


@pytest.mark.parametrize(
    ("scope", "needed", "allowed"),
    [
        (ApiKeyScope.ADMIN, ApiKeyScope.ADMIN, True),
        (ApiKeyScope.ADMIN, ApiKeyScope.READ_ONLY, True),
        (ApiKeyScope.ADMIN, ApiKeyScope.INTEGRATION, True),
        (ApiKeyScope.READ_ONLY, ApiKeyScope.READ_ONLY, True),
        (ApiKeyScope.READ_ONLY, ApiKeyScope.ADMIN, False),
        (ApiKeyScope.READ_ONLY, ApiKeyScope.INTEGRATION, False),
        (ApiKeyScope.INTEGRATION, ApiKeyScope.INTEGRATION, True),
        (ApiKeyScope.INTEGRATION, ApiKeyScope.READ_ONLY, False),
        (ApiKeyScope.INTEGRATION, ApiKeyScope.ADMIN, False),
    ],
)
def test_scope_matrix(scope: ApiKeyScope, needed: ApiKeyScope, allowed: bool) -> None:
    caller = Principal("ten_1", "key_1", scope)
    if allowed:
        require_scope(caller, needed)
    else:
        with pytest.raises(Forbidden, match="cannot"):
            require_scope(caller, needed)


@pytest.mark.parametrize(
    ("timezone", "currency", "code"),
    [
        ("Mars/Olympus", "EUR", "tenant.invalid_timezone"),
        ("localtime", "EUR", "tenant.invalid_timezone"),
        ("../../etc/passwd", "EUR", "tenant.invalid_timezone"),
        ("", "EUR", "tenant.invalid_timezone"),
        ("Europe/Paris", "EUX", "money.unknown_currency"),
        ("Europe/Paris", "eur", "money.unknown_currency"),
    ],
)
def test_create_tenant_validates(
    services: AppServices, timezone: str, currency: str, code: str
) -> None:
    with services.database.uow() as uow, pytest.raises(InvalidInput) as raised:
        create_tenant(uow, services.ids, services.system_clock, "T", timezone, currency)
    assert raised.value.code == code


def test_create_tenant(services: AppServices) -> None:
    with services.database.uow() as uow:
        tenant = create_tenant(
            uow, services.ids, services.system_clock, " Acme ", "Asia/Tokyo", "JPY", "A-"
        )
        uow.commit()
    assert tenant.id.startswith("ten_")
    assert (tenant.name, tenant.invoice_prefix, tenant.test_clock_now) == ("Acme", "A-", None)


def test_fingerprint_ignores_json_spelling_but_not_content() -> None:
    base = request_fingerprint("POST", "/v1/x", b'{"a": 1, "b": [true, null]}')
    assert base == request_fingerprint("post", "/v1/x", b'{"b":[true,null],"a":1}')
    assert base != request_fingerprint("POST", "/v1/y", b'{"a": 1, "b": [true, null]}')
    assert base != request_fingerprint("POST", "/v1/x", b'{"a": 2, "b": [true, null]}')


def test_fingerprint_of_non_canonical_bodies_uses_the_bytes() -> None:
    for body in (b"not json", b'{"a": 1.5}', b"\xff\xfe"):
        assert request_fingerprint("POST", "/x", body) == request_fingerprint("POST", "/x", body)
    assert request_fingerprint("POST", "/x", b'{"a": 1.5}') != request_fingerprint(
        "POST", "/x", b'{"a":1.5}'
    )


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\there", "caf\u00e9"])
def test_bad_idempotency_keys(key: str) -> None:
    with pytest.raises(InvalidInput, match="printable ASCII"):
        validate_key(key)
