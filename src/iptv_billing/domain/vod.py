"""VOD items and their rentals: the pure rules.

An item is watchable by subscribers holding one of its ``packages`` (possibly none), and, when
it carries ``rental`` terms, by anyone who rents it: a rental grants the window from the moment
of the rental to ``hours`` later (``Window``), at the price in the renter's currency. Rental
prices may change; a rental keeps the price it was sold at.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from iptv_billing.domain.catalog import CODE_PATTERN, MAX_NAME_LENGTH
from iptv_billing.domain.entitlement import Asset, AssetKind, Window
from iptv_billing.domain.errors import Conflict, InvalidInput
from iptv_billing.domain.money import Money

MAX_RENTAL_HOURS = 24 * 30
MAX_DURATION_MINUTES = 24 * 60
MIN_YEAR, MAX_YEAR = 1870, 2999
MAX_CATEGORY_LENGTH = 100
MAX_URL_LENGTH = 1000
DEFAULT_CATEGORY = "Movies"
SOURCE_PATTERN = re.compile(r"^(https?|rtmp|rtsp|srt)://\S+$")
POSTER_PATTERN = re.compile(r"^https?://\S+$")


def _invalid(code: str, message: str) -> InvalidInput:
    return InvalidInput(f"vod.{code}", message)


def _whole(value: object, low: int, high: int, code: str, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise _invalid(code, f"{what} is a whole number {low}..{high}")
    return value


@dataclass(frozen=True, slots=True)
class RentalTerms:
    """What renting costs (one price per currency) and how long it lasts."""

    prices: tuple[Money, ...]
    hours: int

    def __post_init__(self) -> None:
        prices = tuple(self.prices)
        if not prices:
            raise _invalid("invalid_price", "a rental needs at least one price")
        if not all(isinstance(p, Money) and not p.is_negative() for p in prices):
            raise _invalid("invalid_price", "prices are non-negative amounts")
        if len({p.code for p in prices}) != len(prices):
            raise _invalid("duplicate_currency", "one price per currency")
        object.__setattr__(self, "prices", tuple(sorted(prices, key=lambda p: p.code)))
        _whole(self.hours, 1, MAX_RENTAL_HOURS, "invalid_hours", "hours")

    def price(self, currency: str) -> Money:
        found = next((p for p in self.prices if p.code == currency), None)
        if found is None:
            raise _invalid("currency_not_offered", f"no rental price in {currency}")
        return found


@dataclass(frozen=True, slots=True, kw_only=True)
class VodItem:
    code: str
    name: str
    source_url: str
    category: str = DEFAULT_CATEGORY
    poster_url: str | None = None
    year: int | None = None
    duration_minutes: int | None = None
    packages: tuple[str, ...] = ()  # package codes whose subscribers watch it without renting
    rental: RentalTerms | None = None  # None: not for rent

    def __post_init__(self) -> None:
        if not isinstance(self.code, str) or not CODE_PATTERN.fullmatch(self.code):
            raise _invalid("invalid_code", f"a code must match {CODE_PATTERN.pattern}")
        if not isinstance(self.name, str) or not self.name.strip():
            raise _invalid("invalid_name", "an item needs a name")
        if len(self.name) > MAX_NAME_LENGTH:
            raise _invalid("invalid_name", f"a name is at most {MAX_NAME_LENGTH} characters")
        if not isinstance(self.source_url, str) or len(self.source_url) > MAX_URL_LENGTH:
            raise _invalid("invalid_source", "a source URL is at most 1000 characters")
        if not SOURCE_PATTERN.fullmatch(self.source_url):
            raise _invalid("invalid_source", "a source URL is http(s), rtmp, rtsp or srt")
        poster = self.poster_url
        if poster is not None and (
            len(poster) > MAX_URL_LENGTH or not POSTER_PATTERN.fullmatch(poster)
        ):
            raise _invalid("invalid_poster", "a poster URL is an http(s) URL")
        category = self.category
        if not isinstance(category, str) or not category.strip():
            raise _invalid("invalid_category", "a category is a non-empty label")
        if len(category) > MAX_CATEGORY_LENGTH:
            raise _invalid("invalid_category", f"a category is at most {MAX_CATEGORY_LENGTH}")
        if self.year is not None:
            _whole(self.year, MIN_YEAR, MAX_YEAR, "invalid_year", "year")
        if self.duration_minutes is not None:
            _whole(self.duration_minutes, 1, MAX_DURATION_MINUTES, "invalid_duration", "minutes")
        packages = tuple(self.packages)
        if not all(isinstance(p, str) and CODE_PATTERN.fullmatch(p) for p in packages):
            raise _invalid("invalid_package", "packages are package codes")
        object.__setattr__(self, "packages", tuple(sorted(set(packages))))
        if self.rental is not None and not isinstance(self.rental, RentalTerms):
            raise _invalid("invalid_rental", "rental terms are RentalTerms")

    @property
    def rentable(self) -> bool:
        return self.rental is not None

    def asset(self) -> Asset:
        return Asset(AssetKind.VOD, self.code, frozenset(self.packages))

    def rental_price(self, currency: str) -> Money:
        if self.rental is None:
            raise Conflict("vod.not_rentable", f"{self.code} is not for rent")
        return self.rental.price(currency)

    def rental_window(self, at: datetime) -> Window:
        """What renting at ``at`` grants: watching from then for the rental's hours."""
        if self.rental is None:
            raise Conflict("vod.not_rentable", f"{self.code} is not for rent")
        return Window(self.code, at, at + timedelta(hours=self.rental.hours))


def rented(windows: Iterable[Window], code: str, at: datetime) -> Window | None:
    """The window (the latest-ending) in which ``code`` is rented at ``at``, or None."""
    covering = [w for w in windows if w.covers(code, at)]
    return max(covering, key=lambda w: w.end, default=None)
