"""VOD rules: item and rental-terms validation codes, the rental window, prices per currency,
what ``decide`` makes of a VOD asset with and without a rental, the journal entries of a
rental and its refund, and the Xtream movie entries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from iptv_billing.domain import journal
from iptv_billing.domain.entitlement import Entitlement, Reason, Request, Window, decide
from iptv_billing.domain.errors import Conflict, InvalidInput
from iptv_billing.domain.money import Money
from iptv_billing.domain.subscription import SubscriptionStatus
from iptv_billing.domain.vod import RentalTerms, VodItem, rented
from iptv_billing.domain.xtream import Movie, category_id, vod_categories, vod_info, vod_streams

NOW = datetime(2030, 6, 1, 20, 0, tzinfo=UTC)
TERMS = RentalTerms((Money.of("3.99", "EUR"), Money.of("4.49", "USD")), 48)


def item(**changes: Any) -> VodItem:
    fields: dict[str, Any] = {
        "code": "big-movie",
        "name": "Big Movie",
        "source_url": "http://origin.example.test/vod/big.mp4",
        "packages": ("movies",),
        "rental": TERMS,
        **changes,
    }
    return VodItem(**fields)


def entitlement(
    packages: frozenset[str] = frozenset({"basic"}), purchases: tuple[Window, ...] = ()
) -> Entitlement:
    return Entitlement(
        "sub_1",
        SubscriptionStatus.ACTIVE,
        NOW + timedelta(days=10),
        packages,
        2,
        purchases=purchases,
    )


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"code": "Big Movie"}, "vod.invalid_code"),
        ({"name": " "}, "vod.invalid_name"),
        ({"name": "x" * 201}, "vod.invalid_name"),
        ({"source_url": "ftp://x/y"}, "vod.invalid_source"),
        ({"source_url": "http://" + "x" * 1000}, "vod.invalid_source"),
        ({"poster_url": "javascript:alert(1)"}, "vod.invalid_poster"),
        ({"category": ""}, "vod.invalid_category"),
        ({"year": 1500}, "vod.invalid_year"),
        ({"year": True}, "vod.invalid_year"),
        ({"duration_minutes": 0}, "vod.invalid_duration"),
        ({"packages": ("Not A Code",)}, "vod.invalid_package"),
    ],
)
def test_an_invalid_item_is_refused_with_a_stable_code(changes: dict[str, Any], code: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        item(**changes)
    assert raised.value.code == code


@pytest.mark.parametrize(
    ("prices", "hours", "code"),
    [
        ((), 24, "vod.invalid_price"),
        ((Money.of("-1.00", "EUR"),), 24, "vod.invalid_price"),
        ((Money.of("1.00", "EUR"), Money.of("2.00", "EUR")), 24, "vod.duplicate_currency"),
        ((Money.of("1.00", "EUR"),), 0, "vod.invalid_hours"),
        ((Money.of("1.00", "EUR"),), 721, "vod.invalid_hours"),
        ((Money.of("1.00", "EUR"),), 2.5, "vod.invalid_hours"),
    ],
)
def test_invalid_rental_terms(prices: tuple[Money, ...], hours: Any, code: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        RentalTerms(prices, hours)
    assert raised.value.code == code


def test_packages_are_sorted_and_deduplicated_and_prices_by_currency() -> None:
    movie = item(packages=("premium", "movies", "premium"))
    assert movie.packages == ("movies", "premium")
    assert movie.rental_price("USD") == Money.of("4.49", "USD")
    with pytest.raises(InvalidInput) as raised:
        movie.rental_price("GBP")
    assert raised.value.code == "vod.currency_not_offered"


def test_the_rental_window_runs_for_the_rental_hours() -> None:
    window = item().rental_window(NOW)
    assert window == Window("big-movie", NOW, NOW + timedelta(hours=48))
    assert window.covers("big-movie", NOW)
    assert window.covers("big-movie", NOW + timedelta(hours=47, minutes=59))
    assert not window.covers("big-movie", NOW + timedelta(hours=48))
    assert rented([window], "big-movie", NOW + timedelta(hours=1)) == window
    assert rented([window], "big-movie", NOW + timedelta(hours=48)) is None
    assert rented([window], "other", NOW) is None


def test_an_item_not_for_rent_cannot_be_rented() -> None:
    free = item(rental=None)
    assert not free.rentable
    with pytest.raises(Conflict) as raised:
        free.rental_window(NOW)
    assert raised.value.code == "vod.not_rentable"


def test_decide_lets_package_holders_and_renters_in_and_no_one_else() -> None:
    asset = item().asset()
    ask = Request(asset, NOW + timedelta(hours=1))
    assert decide(entitlement(frozenset({"movies"})), ask).allowed
    refused = decide(entitlement(), ask)
    assert refused.reason is Reason.NOT_IN_PACKAGE
    window = item().rental_window(NOW)
    assert decide(entitlement(purchases=(window,)), ask).allowed
    after = Request(asset, NOW + timedelta(hours=48))
    assert decide(entitlement(purchases=(window,)), after).reason is Reason.NOT_IN_PACKAGE
    other = Window("other-movie", NOW, NOW + timedelta(hours=48))
    assert decide(entitlement(purchases=(other,)), ask).reason is Reason.NOT_IN_PACKAGE


def test_the_journal_entries_of_a_rental_and_its_refund() -> None:
    price = Money.of("3.99", "EUR")
    paid = journal.rental_purchased("cus_1", "wallet", price)
    assert paid.kind == "rental_purchased"
    assert {(p.account, p.amount.minor) for p in paid.postings} == {
        ("wallet:cus_1", 399),
        ("revenue:rental", -399),
    }
    back = journal.rental_refunded("cus_1", "card", price)
    assert back.kind == "rental_refunded"
    assert {(p.account, p.amount.minor) for p in back.postings} == {
        ("revenue:rental", 399),
        ("cash:card", -399),
    }
    with pytest.raises(InvalidInput):
        journal.rental_purchased("cus_1", "wallet", Money.of("0.00", "EUR"))


def test_xtream_movie_entries() -> None:
    movies = [
        Movie(1, "Big Movie", "Movies", NOW, "http://o.test/big.MKV?x=1", "http://p.test/1.jpg"),
        Movie(2, "Doc", "Docs", NOW, "http://o.test/hls/doc/index.m3u8", None, 2021, 95),
        Movie(3, "Odd", "Movies", NOW, "http://o.test/stream", None),
    ]
    assert [c["category_name"] for c in vod_categories(movies)] == ["Movies", "Docs"]
    entries = vod_streams(movies)
    assert [e["stream_id"] for e in entries] == [1, 2, 3]
    assert [e["container_extension"] for e in entries] == ["mkv", "m3u8", "mp4"]
    assert {e["stream_type"] for e in entries} == {"movie"}
    assert entries[0]["stream_icon"] == "http://p.test/1.jpg"
    docs = vod_streams(movies, category_id("Docs"))
    assert [(e["num"], e["stream_id"]) for e in docs] == [(2, 2)]
    info = vod_info(movies[1])
    assert info["info"] == {
        "name": "Doc",
        "movie_image": "",
        "releasedate": "2021",
        "duration_secs": 5700,
        "duration": "01:35:00",
        "plot": "",
        "genre": "Docs",
        "rating": "",
    }
    assert info["movie_data"]["stream_id"] == 2  # type: ignore[index]
