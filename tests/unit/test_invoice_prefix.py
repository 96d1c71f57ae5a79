"""An operator can only choose an invoice prefix that every invoice can print."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from fakes import MemoryDatabase
from iptv_billing.domain.errors import InvalidInput
from iptv_billing.domain.invoice import check_invoice_prefix, format_invoice_number
from iptv_billing.services import access
from iptv_billing.services.clock import FixedClock
from iptv_billing.services.ids import TimeOrderedIds


@pytest.mark.parametrize("prefix", ["", "INV-", "ACME/2030/", "A_B-C", "ACME-INVOICES-20"])
def test_accepted_prefixes_print(prefix: str) -> None:
    assert format_invoice_number(check_invoice_prefix(prefix), 7) == f"{prefix}000007"


@pytest.mark.parametrize("prefix", ["ACME INV ", "ACME-INVOICES-2030-", "INV\n", "Ä-"])
def test_tenants_cannot_choose_an_unprintable_prefix(prefix: str) -> None:
    clock = FixedClock(datetime(2026, 1, 1, tzinfo=UTC))
    database = MemoryDatabase()
    with database.uow() as uow, pytest.raises(InvalidInput) as refused:
        access.create_tenant(uow, TimeOrderedIds(clock), clock, "Acme", "UTC", "EUR", prefix)
    assert refused.value.code == "invoice.invalid_prefix"


@pytest.mark.parametrize(
    ("check", "value"),
    [
        ("code", "sports\n"),
        ("currency", "EUR\n"),
        ("account", "cash:manual\n"),
    ],
)
def test_a_trailing_newline_never_slips_through_a_pattern(check: str, value: str) -> None:
    from iptv_billing.domain.catalog import check_code
    from iptv_billing.domain.journal import cash
    from iptv_billing.domain.money import currency

    refuse = {"code": check_code, "currency": currency, "account": lambda v: cash(v[5:])}[check]
    with pytest.raises(InvalidInput):
        refuse(value)
