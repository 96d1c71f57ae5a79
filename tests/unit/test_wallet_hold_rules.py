"""Wallet holds, pure: expiry bounds, which holds may end, what a post charges, and that every
hold's journal entries balance and leave nothing on the held account."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import get_args

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iptv_billing.api.routers.wallet_holds import Purpose
from iptv_billing.domain import journal
from iptv_billing.domain.errors import Conflict, InvalidInput
from iptv_billing.domain.money import Money
from iptv_billing.domain.wallet_holds import (
    DEFAULT_TTL,
    PURPOSES,
    amount_to_post,
    check_purpose,
    check_resolvable,
    hold_expiry,
)

NOW = datetime(2027, 3, 1, 12, 0, tzinfo=UTC)


def eur(minor: int) -> Money:
    return Money.from_minor(minor, "EUR")


def test_the_api_offers_exactly_the_domain_purposes() -> None:
    assert get_args(Purpose) == PURPOSES
    with pytest.raises(InvalidInput) as raised:
        check_purpose("gift")
    assert raised.value.code == "wallet_hold.invalid_purpose"


def test_expiry_defaults_to_fifteen_minutes_and_is_bounded() -> None:
    assert hold_expiry(NOW, None) == NOW + DEFAULT_TTL
    assert hold_expiry(NOW, 1) == NOW + timedelta(seconds=1)
    assert hold_expiry(NOW, 7 * 86_400) == NOW + timedelta(days=7)
    for bad in (0, -5, 7 * 86_400 + 1):
        with pytest.raises(InvalidInput) as raised:
            hold_expiry(NOW, bad)
        assert raised.value.code == "wallet_hold.invalid_ttl"


def test_only_a_pending_hold_within_its_time_may_end() -> None:
    check_resolvable("pending", NOW + timedelta(seconds=1), NOW)
    for status in ("posted", "voided", "expired"):
        with pytest.raises(Conflict) as raised:
            check_resolvable(status, NOW + timedelta(hours=1), NOW)
        assert raised.value.code == "wallet_hold.not_pending"
    with pytest.raises(Conflict) as lapsed:
        check_resolvable("pending", NOW, NOW)
    assert lapsed.value.code == "wallet_hold.expired"


def test_a_post_charges_at_most_the_hold_and_never_nothing() -> None:
    assert amount_to_post(eur(500), None) == eur(500)
    assert amount_to_post(eur(500), eur(120)) == eur(120)
    cases = {
        "wallet_hold.post_exceeds_hold": eur(501),
        "wallet_hold.invalid_amount": eur(0),
        "money.currency_mismatch": Money.from_minor(100, "USD"),
    }
    for code, amount in cases.items():
        with pytest.raises(InvalidInput) as raised:
            amount_to_post(eur(500), amount)
        assert raised.value.code == code


@given(
    held=st.integers(min_value=1, max_value=10**12),
    share=st.fractions(min_value=0, max_value=1),
    ending=st.sampled_from(["post", "void", "expire"]),
)
def test_a_hold_and_its_ending_net_to_the_charge(held: int, share: object, ending: str) -> None:
    """Placed then ended, the held account is back to zero, the wallet lost exactly what was
    charged, and revenue gained it: no money made or lost whatever the split."""
    posted = max(1, int(held * share))  # type: ignore[operator]
    entries = [journal.hold_placed("cus_1", eur(held))]
    if ending == "post":
        entries.append(journal.hold_posted("cus_1", eur(held), eur(posted), "usage"))
    else:
        entries.append(journal.hold_released("cus_1", eur(held), expired=ending == "expire"))
    totals = journal.balances(entries)
    charged = posted if ending == "post" else 0
    assert totals.get(("wallet_held:cus_1", "EUR"), 0) == 0
    assert totals.get(("wallet:cus_1", "EUR"), 0) == charged  # a debit: the liability shrank
    assert totals.get(("revenue:usage", "EUR"), 0) == -charged
    assert sum(totals.values()) == 0


def test_posting_more_than_held_is_not_an_entry() -> None:
    with pytest.raises(InvalidInput) as raised:
        journal.hold_posted("cus_1", eur(100), eur(101), "ppv")
    assert raised.value.code == "wallet_hold.post_exceeds_hold"
