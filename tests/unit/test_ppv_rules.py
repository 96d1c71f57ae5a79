"""Pay-per-view rules: validation codes, the viewing window, the sale window, prices with
subscriber discounts, blackouts, and the journal entries of a purchase and its refund."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iptv_billing.domain import journal
from iptv_billing.domain.entitlement import (
    Asset,
    AssetKind,
    Entitlement,
    Reason,
    Request,
    Window,
    decide,
)
from iptv_billing.domain.errors import Conflict, InvalidInput
from iptv_billing.domain.money import Money
from iptv_billing.domain.ppv import PpvEvent, PpvStatus, SubscriberDiscount
from iptv_billing.domain.subscription import SubscriptionStatus

START = datetime(2030, 6, 1, 20, 0, tzinfo=UTC)
END = START + timedelta(hours=2)


def event(**changes: Any) -> PpvEvent:
    fields: dict[str, Any] = {
        "code": "final",
        "name": "The Final",
        "channel_id": "chn_1",
        "starts_at": START,
        "ends_at": END,
        "prices": (Money.of("15.00", "EUR"), Money.of("18.00", "USD")),
        "replay_hours": 24,
        **changes,
    }
    return PpvEvent(**fields)


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"code": "Bad Code"}, "ppv.invalid_code"),
        ({"name": " "}, "ppv.invalid_name"),
        ({"ends_at": START}, "ppv.invalid_window"),
        ({"ends_at": START + timedelta(days=40)}, "ppv.invalid_window"),
        ({"starts_at": datetime(1990, 1, 1, tzinfo=UTC)}, "ppv.invalid_window"),
        ({"sale_starts_at": END, "sale_ends_at": START}, "ppv.invalid_sale_window"),
        ({"sale_ends_at": END + timedelta(hours=25)}, "ppv.invalid_sale_window"),
        ({"replay_hours": -1}, "ppv.invalid_replay"),
        ({"replay_hours": 721}, "ppv.invalid_replay"),
        ({"blackout_countries": ("fr",)}, "ppv.invalid_country"),
        ({"capacity": 0}, "ppv.invalid_capacity"),
        ({"prices": ()}, "ppv.invalid_price"),
        ({"prices": (Money.of("-1.00", "EUR"),)}, "ppv.invalid_price"),
        ({"prices": (Money.of("1", "EUR"), Money.of("2", "EUR"))}, "ppv.duplicate_currency"),
        (
            {"discounts": (SubscriberDiscount("sports", prices=(Money.of("1", "JPY"),)),)},
            "ppv.currency_not_offered",
        ),
        (
            {
                "discounts": (
                    SubscriberDiscount("sports", Decimal(10)),
                    SubscriberDiscount("sports", Decimal(20)),
                )
            },
            "ppv.duplicate_discount",
        ),
    ],
)
def test_invalid_events_are_refused_with_stable_codes(changes: dict[str, Any], code: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        event(**changes)
    assert caught.value.code == code


@pytest.mark.parametrize(
    ("percent", "prices"),
    [(None, ()), (Decimal(0), ()), (Decimal(101), ()), (Decimal("NaN"), ())],
)
def test_invalid_discounts(percent: Decimal | None, prices: tuple[Money, ...]) -> None:
    with pytest.raises(InvalidInput) as caught:
        SubscriberDiscount("sports", percent, prices)
    assert caught.value.code == "ppv.invalid_discount"


def test_the_sale_ends_with_the_event_by_default_and_the_window_includes_the_replay() -> None:
    e = event()
    assert e.sale_end == END
    assert e.window() == Window("final", START, END + timedelta(hours=24))
    assert not e.on_air(START - timedelta(seconds=1))
    assert e.on_air(START)
    assert e.on_air(END + timedelta(hours=23, minutes=59))
    assert not e.on_air(END + timedelta(hours=24))


def test_sale_window() -> None:
    e = event(sale_starts_at=START - timedelta(days=7))
    assert e.sale_refusal(START - timedelta(days=8)) == "ppv.sale_not_open"
    assert e.sale_refusal(START - timedelta(days=7)) is None
    assert e.sale_refusal(END - timedelta(seconds=1)) is None
    assert e.sale_refusal(END) == "ppv.sale_closed"
    with pytest.raises(Conflict) as caught:
        event(status=PpvStatus.CANCELLED).check_sale(START)
    assert caught.value.code == "ppv.cancelled"


def test_blackout_by_country_and_unknown_countries_pass() -> None:
    e = event(blackout_countries=("FR", "DE", "FR"))
    assert e.blackout_countries == ("DE", "FR")
    assert e.blacked_out("FR")
    assert e.blacked_out("de")
    assert not e.blacked_out("ES")
    assert not e.blacked_out(None)


def test_subscriber_discounts_take_the_cheapest_rule_held() -> None:
    e = event(
        discounts=(
            SubscriberDiscount("sports", Decimal(20)),
            SubscriberDiscount("vip", prices=(Money.of("9.99", "EUR"),)),
        )
    )
    assert e.price_for("EUR", []) == Money.of("15.00", "EUR")
    assert e.price_for("EUR", ["sports"]) == Money.of("12.00", "EUR")
    assert e.price_for("EUR", ["sports", "vip"]) == Money.of("9.99", "EUR")
    # vip has no USD price: its rule does not apply there
    assert e.price_for("USD", ["vip"]) == Money.of("18.00", "USD")
    with pytest.raises(InvalidInput) as caught:
        e.price_for("JPY", [])
    assert caught.value.code == "ppv.currency_not_offered"


def test_a_full_discount_is_free() -> None:
    e = event(discounts=(SubscriberDiscount("staff", Decimal(100)),))
    assert e.price_for("EUR", ["staff"]).is_zero()


@given(
    minor=st.integers(0, 10**9),
    percent=st.decimals(min_value=Decimal("0.01"), max_value=Decimal(100), places=2),
    held=st.booleans(),
)
def test_discounted_prices_never_exceed_the_base_nor_go_negative(
    minor: int, percent: Decimal, held: bool
) -> None:
    e = event(
        prices=(Money.from_minor(minor, "EUR"),),
        discounts=(SubscriberDiscount("sports", percent),),
    )
    price = e.price_for("EUR", ["sports"] if held else [])
    assert Money.zero("EUR") <= price <= Money.from_minor(minor, "EUR")
    if held:  # the rounded percentage of the base, exactly
        exact = Decimal(minor) * (100 - percent) / 100
        assert abs(Decimal(price.minor) - exact) <= Decimal("0.5")
    else:
        assert price.minor == minor


@given(
    offset=st.integers(-10 * 3600, 40 * 3600),
    replay=st.integers(0, 720),
)
def test_purchase_windows_cover_exactly_the_viewing_window(offset: int, replay: int) -> None:
    e = event(replay_hours=replay)
    at = START + timedelta(seconds=offset)
    assert e.window().covers("final", at) == e.on_air(at)
    assert e.on_air(at) == (START <= at < END + timedelta(hours=replay))


def test_the_decision_needs_a_purchase_covering_now() -> None:
    e = event()
    bought = Entitlement(
        "sub_1",
        SubscriptionStatus.ACTIVE,
        START + timedelta(days=30),
        frozenset({"basic"}),
        1,
        purchases=(e.window(),),
    )
    other = Entitlement(
        "sub_2", SubscriptionStatus.ACTIVE, START + timedelta(days=30), frozenset({"basic"}), 1
    )
    asset = Asset(AssetKind.PPV, "final")
    assert decide(bought, Request(asset, START + timedelta(minutes=5))).allowed
    assert decide(other, Request(asset, START)).reason is Reason.NOT_PURCHASED
    late = Request(asset, e.viewing_ends_at)
    assert decide(bought, late).reason is Reason.NOT_PURCHASED


@pytest.mark.parametrize("method", ["wallet", "card", "manual", "bank_transfer"])
def test_purchase_and_refund_entries_are_exact_reverses(method: str) -> None:
    amount = Money.of("12.50", "EUR")
    bought = journal.ppv_purchased("cus_1", method, amount)
    back = journal.ppv_refunded("cus_1", method, amount)
    source = "wallet:cus_1" if method == "wallet" else f"cash:{method}"
    assert {(p.account, p.amount.minor) for p in bought.postings} == {
        (source, 1250),
        ("revenue:ppv", -1250),
    }
    assert journal.balances([bought, back]) == {(source, "EUR"): 0, ("revenue:ppv", "EUR"): 0}
    with pytest.raises(InvalidInput):
        journal.ppv_purchased("cus_1", method, Money.zero("EUR"))
