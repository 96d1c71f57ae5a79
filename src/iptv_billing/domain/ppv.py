"""Pay-per-view events: the pure rules of selling and watching one.

An event airs on a channel from ``starts_at`` to ``ends_at``; a buyer may watch from the start
until ``ends_at + replay_hours`` (the viewing window). It is on sale from ``sale_starts_at``
(None: from its creation) until ``sale_ends_at`` (default: the event's end). Prices are per
currency; subscribers holding a package may get a percentage off or a fixed price instead
(the cheapest rule that applies wins). Countries in ``blackout_countries`` may neither buy nor
watch it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from enum import StrEnum
from typing import Any

from iptv_billing.domain.catalog import CODE_PATTERN, MAX_NAME_LENGTH
from iptv_billing.domain.entitlement import Window
from iptv_billing.domain.errors import Conflict, InvalidInput
from iptv_billing.domain.money import Money
from iptv_billing.domain.periods import require_aware

MAX_REPLAY_HOURS = 24 * 30
MAX_DURATION = timedelta(days=31)
MAX_CAPACITY = 1_000_000_000
_COUNTRY = re.compile(r"^[A-Z]{2}$")
_HUNDRED = Decimal(100)


class PpvStatus(StrEnum):
    SCHEDULED = "scheduled"
    CANCELLED = "cancelled"


def _invalid(code: str, message: str) -> InvalidInput:
    return InvalidInput(f"ppv.{code}", message)


def _check_code(value: object, what: str) -> str:
    if not isinstance(value, str) or not CODE_PATTERN.fullmatch(value):
        raise _invalid("invalid_code", f"{what} must match {CODE_PATTERN.pattern}")
    return value


def _moment(value: object, what: str) -> datetime:
    """Aware UTC within years 2000..2999 (so windows and replays never overflow)."""
    try:
        moment = require_aware(value, what)
    except OverflowError as exc:
        raise _invalid("invalid_window", f"{what} is out of range") from exc
    if not 2000 <= moment.year <= 2999:
        raise _invalid("invalid_window", f"{what} is out of range (years 2000..2999)")
    return moment


def _prices(values: Iterable[object], *, required: bool) -> tuple[Money, ...]:
    prices: list[Money] = []
    for price in values:
        if not isinstance(price, Money) or price.is_negative():
            raise _invalid("invalid_price", f"not a non-negative Money: {price!r}")
        prices.append(price)
    if required and not prices:
        raise _invalid("invalid_price", "at least one price is required")
    if len({p.code for p in prices}) != len(prices):
        raise _invalid("duplicate_currency", "one price per currency")
    return tuple(sorted(prices, key=lambda p: p.code))


def _find(prices: tuple[Money, ...], currency: str) -> Money | None:
    return next((p for p in prices if p.code == currency), None)


@dataclass(frozen=True, slots=True)
class SubscriberDiscount:
    """For subscribers holding ``package_code``: ``percent`` off, or fixed ``prices``."""

    package_code: str
    percent: Decimal | None = None
    prices: tuple[Money, ...] = ()

    def __post_init__(self) -> None:
        _check_code(self.package_code, "a discount's package code")
        object.__setattr__(self, "prices", _prices(self.prices, required=False))
        if (self.percent is None) == (not self.prices):
            raise _invalid("invalid_discount", "a discount is either a percent or fixed prices")
        if self.percent is not None:
            if not isinstance(self.percent, Decimal) or not self.percent.is_finite():
                raise _invalid("invalid_discount", "a percent is an exact decimal")
            if not Decimal(0) < self.percent <= _HUNDRED:
                raise _invalid("invalid_discount", "a percent is more than 0, at most 100")
            object.__setattr__(self, "percent", self.percent.normalize())

    def price(self, base: Money) -> Money | None:
        """The discounted price for ``base``'s currency; None when it has none there."""
        if self.percent is not None:
            return base.times((_HUNDRED - self.percent) / _HUNDRED, ROUND_HALF_UP)
        return _find(self.prices, base.code)

    def to_document(self) -> dict[str, Any]:
        if self.percent is not None:
            return {"package_code": self.package_code, "percent": str(self.percent)}
        return {
            "package_code": self.package_code,
            "prices": [{"currency": p.code, "minor": p.minor} for p in self.prices],
        }

    @classmethod
    def from_document(cls, doc: Mapping[str, Any]) -> SubscriberDiscount:
        percent = doc.get("percent")
        prices = tuple(Money.from_minor(p["minor"], p["currency"]) for p in doc.get("prices", ()))
        return cls(doc["package_code"], parse_percent(percent), prices)


def parse_percent(value: object) -> Decimal | None:
    """A percent from its text form ("12.5"); None stays None. Floats are refused."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 20:
        raise _invalid("invalid_discount", 'a percent is a decimal string such as "12.5"')
    try:
        return Decimal(value)
    except InvalidOperation as exc:
        raise _invalid("invalid_discount", f"not a decimal: {value!r}") from exc


@dataclass(frozen=True, slots=True, kw_only=True)
class PpvEvent:
    code: str
    name: str
    channel_id: str
    starts_at: datetime
    ends_at: datetime
    prices: tuple[Money, ...]
    sale_starts_at: datetime | None = None
    sale_ends_at: datetime | None = None  # None: the event's end
    replay_hours: int = 0
    blackout_countries: tuple[str, ...] = ()
    capacity: int | None = None
    discounts: tuple[SubscriberDiscount, ...] = ()
    status: PpvStatus = PpvStatus.SCHEDULED

    def __post_init__(self) -> None:
        _check_code(self.code, "an event code")
        if not isinstance(self.name, str) or not self.name.strip():
            raise _invalid("invalid_name", "an event needs a name")
        if len(self.name) > MAX_NAME_LENGTH:
            raise _invalid("invalid_name", f"a name is at most {MAX_NAME_LENGTH} characters")
        if not isinstance(self.channel_id, str) or not self.channel_id:
            raise _invalid("invalid_channel", "an event airs on a channel")
        self._check_times()
        self._check_numbers()
        object.__setattr__(self, "prices", _prices(self.prices, required=True))
        countries = tuple(self.blackout_countries)
        if not all(isinstance(c, str) and _COUNTRY.fullmatch(c) for c in countries):
            raise _invalid("invalid_country", "countries are ISO 3166-1 alpha-2 codes (FR)")
        object.__setattr__(self, "blackout_countries", tuple(sorted(set(countries))))
        self._check_discounts()
        object.__setattr__(self, "status", PpvStatus(self.status))

    def _check_times(self) -> None:
        start = _moment(self.starts_at, "starts_at")
        end = _moment(self.ends_at, "ends_at")
        if end <= start:
            raise _invalid("invalid_window", "an event ends after it starts")
        if end - start > MAX_DURATION:
            raise _invalid("invalid_window", f"an event lasts at most {MAX_DURATION.days} days")
        object.__setattr__(self, "starts_at", start)
        object.__setattr__(self, "ends_at", end)
        sale_start = self.sale_starts_at
        if sale_start is not None:
            sale_start = _moment(sale_start, "sale_starts_at")
            object.__setattr__(self, "sale_starts_at", sale_start)
        sale_end = _moment(self.sale_ends_at or end, "sale_ends_at")
        object.__setattr__(self, "sale_ends_at", sale_end)
        if sale_start is not None and sale_end <= sale_start:
            raise _invalid("invalid_sale_window", "the sale ends after it starts")

    def _check_numbers(self) -> None:
        replay = self.replay_hours
        if not isinstance(replay, int) or isinstance(replay, bool):
            raise _invalid("invalid_replay", "replay_hours is a whole number of hours")
        if not 0 <= replay <= MAX_REPLAY_HOURS:
            raise _invalid("invalid_replay", f"replay_hours is 0..{MAX_REPLAY_HOURS}")
        # Selling is pointless once nothing can be watched any more.
        if self.sale_end > self.viewing_ends_at:
            raise _invalid("invalid_sale_window", "the sale ends by the end of the replay")
        capacity = self.capacity
        if capacity is not None and (
            not isinstance(capacity, int)
            or isinstance(capacity, bool)
            or not 1 <= capacity <= MAX_CAPACITY
        ):
            raise _invalid("invalid_capacity", f"capacity is 1..{MAX_CAPACITY} or none")

    def _check_discounts(self) -> None:
        discounts = tuple(self.discounts)
        if not all(isinstance(d, SubscriberDiscount) for d in discounts):
            raise _invalid("invalid_discount", "discounts are SubscriberDiscount objects")
        if len({d.package_code for d in discounts}) != len(discounts):
            raise _invalid("duplicate_discount", "one discount per package")
        offered = {p.code for p in self.prices}
        for discount in discounts:
            extra = {p.code for p in discount.prices} - offered
            if extra:
                raise _invalid(
                    "currency_not_offered", f"discount in {sorted(extra)}, which has no price"
                )
        object.__setattr__(self, "discounts", tuple(sorted(discounts, key=_package)))

    # -- time ----------------------------------------------------------------------------------
    @property
    def sale_end(self) -> datetime:
        return self.sale_ends_at or self.ends_at

    @property
    def viewing_ends_at(self) -> datetime:
        return self.ends_at + timedelta(hours=self.replay_hours)

    def window(self) -> Window:
        """What a purchase grants: watching from the start to the end of the replay."""
        return Window(self.code, self.starts_at, self.viewing_ends_at)

    def on_air(self, at: datetime) -> bool:
        """Whether ``at`` falls in the viewing window (the channel is this event then)."""
        return self.starts_at <= at < self.viewing_ends_at

    def aired_during(self, aired_at: datetime) -> bool:
        """Whether a programme that aired at ``aired_at`` is part of this event."""
        return self.starts_at <= aired_at < self.ends_at

    # -- selling -------------------------------------------------------------------------------
    def sale_refusal(self, at: datetime) -> str | None:
        """Why it cannot be bought at ``at`` (a stable code), or None when it can."""
        if self.status is PpvStatus.CANCELLED:
            return "ppv.cancelled"
        if self.sale_starts_at is not None and at < self.sale_starts_at:
            return "ppv.sale_not_open"
        if at >= self.sale_end:
            return "ppv.sale_closed"
        return None

    def check_sale(self, at: datetime) -> None:
        refusal = self.sale_refusal(at)
        if refusal is not None:
            raise Conflict(refusal, _SALE_MESSAGES[refusal])

    def blacked_out(self, country: str | None) -> bool:
        """Unknown countries are not blacked out: servers that send none cannot be checked."""
        return country is not None and country.upper() in self.blackout_countries

    def base_price(self, currency: str) -> Money:
        price = _find(self.prices, currency)
        if price is None:
            raise _invalid("currency_not_offered", f"event {self.code} has no {currency} price")
        return price

    def price_for(self, currency: str, packages: Iterable[str]) -> Money:
        """The price a subscription holding ``packages`` pays: the cheapest of the base price
        and every discount of a package it holds."""
        base = self.base_price(currency)
        held = set(packages)
        candidates = [base]
        for discount in self.discounts:
            if discount.package_code in held:
                price = discount.price(base)
                if price is not None:
                    candidates.append(price)
        return min(candidates)


_SALE_MESSAGES = {
    "ppv.cancelled": "the event is cancelled",
    "ppv.sale_not_open": "the event is not on sale yet",
    "ppv.sale_closed": "the sale of this event has ended",
}


def _package(discount: SubscriberDiscount) -> str:
    return discount.package_code


def discounts_to_document(discounts: Iterable[SubscriberDiscount]) -> list[dict[str, Any]]:
    return [d.to_document() for d in discounts]


def discounts_from_document(doc: Iterable[Mapping[str, Any]]) -> tuple[SubscriberDiscount, ...]:
    return tuple(SubscriberDiscount.from_document(d) for d in doc)
