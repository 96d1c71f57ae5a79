"""Catalog value objects and billing terms: an immutable plan version identified by its hash.

A subscription points at the exact terms it was sold under. The identity is the SHA-256 of the
canonical JSON of ``to_document()``, so two terms with equal content have the same hash however
they were built: set-like tuples are sorted and deduplicated on construction.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TypeVar

from iptv_billing.domain.canonical import canonical_json, sha256_hex
from iptv_billing.domain.errors import InvalidInput
from iptv_billing.domain.money import Money
from iptv_billing.domain.periods import BillingInterval, PeriodUnit, require_aware
from iptv_billing.domain.usage_charges import UsageCharge, check_usage_charges

CODE_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
MAX_NAME_LENGTH = 200
_UTC_TEXT = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{6})?Z$")
_E = TypeVar("_E", bound=StrEnum)


class AddOnKind(StrEnum):
    EXTRA_CONNECTION = "extra_connection"
    EXTRA_PACKAGE = "extra_package"


# -- validation helpers ------------------------------------------------------------------------
def check_code(value: object, what: str = "code") -> str:
    if not isinstance(value, str) or not CODE_PATTERN.fullmatch(value):
        raise InvalidInput("catalog.invalid_code", f"{what} must match {CODE_PATTERN.pattern}")
    return value


def _check_name(value: object) -> str:
    if not isinstance(value, str) or not value.strip() or len(value) > MAX_NAME_LENGTH:
        raise InvalidInput("catalog.invalid_name", f"a name is 1..{MAX_NAME_LENGTH} characters")
    return value


def _check_int(value: object, low: int, high: int, what: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise InvalidInput("terms.invalid_value", f"{what} must be an integer {low}..{high}")
    return value


def _code_set(values: Iterable[object], what: str) -> tuple[str, ...]:
    """Sorted and deduplicated, so that the order codes were listed in never changes a hash."""
    return tuple(sorted({check_code(v, what) for v in values}))


def _price_list(values: Iterable[object], *, required: bool) -> tuple[Money, ...]:
    prices: list[Money] = []
    for price in values:
        if not isinstance(price, Money) or price.is_negative():
            raise InvalidInput("terms.invalid_price", f"not a non-negative Money: {price!r}")
        prices.append(price)
    if required and not prices:
        raise InvalidInput("terms.invalid_price", "at least one price is required")
    if len({p.code for p in prices}) != len(prices):
        raise InvalidInput("terms.duplicate_currency", "one price per currency")
    return tuple(sorted(prices, key=lambda p: p.code))


def _find_price(prices: tuple[Money, ...], code: str) -> Money | None:
    for price in prices:
        if price.currency.code == code:
            return price
    return None


def _require_offered(prices: tuple[Money, ...], offered: set[str], what: str) -> None:
    for price in prices:
        if price.code not in offered:
            raise InvalidInput(
                "terms.currency_not_offered", f"{what} in {price.code}, which the plan lacks"
            )


# -- document encoding -------------------------------------------------------------------------
def format_utc(moment: datetime) -> str:
    """RFC 3339 in UTC with a ``Z``; microseconds only when present, so it round-trips."""
    utc = require_aware(moment).replace(tzinfo=None)
    return utc.isoformat(timespec="microseconds" if utc.microsecond else "seconds") + "Z"


def parse_utc(text: object) -> datetime:
    """The inverse of ``format_utc``; any other spelling is refused (it would change hashes)."""
    if not isinstance(text, str) or not _UTC_TEXT.fullmatch(text):
        raise InvalidInput("terms.invalid_document", f"not an RFC 3339 UTC time: {text!r}")
    try:
        return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)
    except ValueError as exc:
        raise InvalidInput("terms.invalid_document", f"not a valid time: {text}") from exc


def money_to_document(amount: Money) -> dict[str, Any]:
    return {"currency": amount.code, "minor": amount.minor}


def money_from_document(doc: object) -> Money:
    d = _exact(doc, ("currency", "minor"))
    return Money.from_minor(_int(d["minor"]), _str(d["currency"]))


def _exact(doc: object, keys: tuple[str, ...]) -> Mapping[str, Any]:
    if not isinstance(doc, Mapping) or set(doc) != set(keys):
        got = sorted(map(str, doc)) if isinstance(doc, Mapping) else type(doc).__name__
        raise InvalidInput("terms.invalid_document", f"expected keys {sorted(keys)}, got {got}")
    return doc


def _str(value: object) -> str:
    if not isinstance(value, str):
        raise InvalidInput("terms.invalid_document", f"expected a string: {value!r}")
    return value


def _int(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidInput("terms.invalid_document", f"expected an integer: {value!r}")
    return value


def _member(enum: type[_E], value: object) -> _E:
    if isinstance(value, str) and value in enum._value2member_map_:
        return enum(value)
    raise InvalidInput("terms.invalid_document", f"not a {enum.__name__}: {value!r}")


def _list(value: object) -> list[Any]:
    if not isinstance(value, list | tuple):
        raise InvalidInput("terms.invalid_document", f"expected a list: {value!r}")
    return list(value)


# -- catalog objects ---------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Channel:
    code: str
    name: str
    number: int  # the position in the subscriber's channel list (EPG / M3U order)

    def __post_init__(self) -> None:
        check_code(self.code, "channel code")
        _check_name(self.name)
        if not isinstance(self.number, int) or isinstance(self.number, bool):
            raise InvalidInput("catalog.invalid_channel_number", "channel number is an integer")
        if not 1 <= self.number <= 99_999:
            raise InvalidInput("catalog.invalid_channel_number", "channel number is 1..99999")


@dataclass(frozen=True, slots=True)
class Package:
    code: str
    name: str
    channel_codes: tuple[str, ...]

    def __post_init__(self) -> None:
        check_code(self.code, "package code")
        _check_name(self.name)
        object.__setattr__(self, "channel_codes", _code_set(self.channel_codes, "channel code"))


@dataclass(frozen=True, slots=True)
class AddOnTerms:
    """An option bought on top of a plan: more simultaneous connections or more packages."""

    code: str
    name: str
    kind: AddOnKind
    prices: tuple[Money, ...]
    connections: int = 0
    package_codes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        check_code(self.code, "add-on code")
        _check_name(self.name)
        try:
            object.__setattr__(self, "kind", AddOnKind(self.kind))
        except ValueError as exc:
            raise InvalidInput("terms.invalid_value", f"unknown add-on kind: {self.kind}") from exc
        object.__setattr__(self, "prices", _price_list(self.prices, required=True))
        _check_int(self.connections, 0, 100, "add-on connections")
        object.__setattr__(self, "package_codes", _code_set(self.package_codes, "package code"))
        # An add-on that grants nothing would be billed for nothing.
        if self.kind is AddOnKind.EXTRA_CONNECTION and self.connections < 1:
            raise InvalidInput("terms.invalid_value", "an extra_connection add-on adds >= 1")
        if self.kind is AddOnKind.EXTRA_PACKAGE and not self.package_codes:
            raise InvalidInput("terms.invalid_value", "an extra_package add-on names packages")

    def price_in(self, code: str) -> Money:
        price = _find_price(self.prices, code)
        if price is None:
            raise InvalidInput(
                "terms.currency_not_offered", f"add-on {self.code} has no {code} price"
            )
        return price

    def to_document(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "name": self.name,
            "kind": self.kind.value,
            "prices": [money_to_document(p) for p in self.prices],
            "connections": self.connections,
            "package_codes": list(self.package_codes),
        }

    @classmethod
    def from_document(cls, doc: object) -> AddOnTerms:
        d = _exact(doc, _ADDON_KEYS)
        return cls(
            code=_str(d["code"]),
            name=_str(d["name"]),
            kind=_member(AddOnKind, d["kind"]),
            prices=tuple(money_from_document(p) for p in _list(d["prices"])),
            connections=_int(d["connections"]),
            package_codes=tuple(_str(c) for c in _list(d["package_codes"])),
        )


_ADDON_KEYS = ("code", "name", "kind", "prices", "connections", "package_codes")


@dataclass(frozen=True, slots=True, kw_only=True)
class BillingTerms:
    """One immutable version of a plan: the contract a subscription is billed under.

    Keyword-only: fifteen fields are too many to pass by position safely.
    """

    plan_code: str
    version: int
    name: str
    interval: BillingInterval
    prices: tuple[Money, ...]
    effective_from: datetime
    setup_fees: tuple[Money, ...] = ()
    trial_days: int = 0
    max_connections: int = 1
    package_codes: tuple[str, ...] = ()
    addons: tuple[AddOnTerms, ...] = ()
    payment_due_days: int = 0
    grace_days: int = 3
    suspend_after_days: int = 14
    expire_after_days: int = 60
    usage_charges: tuple[UsageCharge, ...] = ()
    usage_threshold: tuple[Money, ...] = ()  # invoice usage early once a period's reaches it
    usage_cap: tuple[Money, ...] = ()  # a period's usage charges never exceed it
    # Computed once: renewals compare hashes on every run and the terms never change.
    _hash: str = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        check_code(self.plan_code, "plan code")
        _check_int(self.version, 1, 2**31 - 1, "version")
        _check_name(self.name)
        if not isinstance(self.interval, BillingInterval):
            raise InvalidInput("period.invalid_interval", "interval must be a BillingInterval")
        self._normalise_collections()
        object.__setattr__(self, "effective_from", require_aware(self.effective_from))
        self._check_numbers()
        object.__setattr__(self, "_hash", sha256_hex(self.canonical()))

    def _normalise_collections(self) -> None:
        prices = _price_list(self.prices, required=True)
        offered = {p.code for p in prices}
        setup_fees = _price_list(self.setup_fees, required=False)
        _require_offered(setup_fees, offered, "a setup fee")
        addons = tuple(self.addons)
        for addon in addons:
            if not isinstance(addon, AddOnTerms):
                raise InvalidInput("terms.invalid_value", f"not an AddOnTerms: {addon!r}")
            _require_offered(addon.prices, offered, f"add-on {addon.code}")
        if len({a.code for a in addons}) != len(addons):
            raise InvalidInput("terms.duplicate_addon", "add-on codes must be unique")
        object.__setattr__(self, "prices", prices)
        object.__setattr__(self, "setup_fees", setup_fees)
        object.__setattr__(self, "addons", tuple(sorted(addons, key=lambda a: a.code)))
        object.__setattr__(self, "package_codes", _code_set(self.package_codes, "package code"))
        charges = check_usage_charges(self.usage_charges, offered)
        object.__setattr__(self, "usage_charges", charges)
        for name in ("usage_threshold", "usage_cap"):
            limits = _price_list(getattr(self, name), required=False)
            _require_offered(limits, offered, name)
            if limits and not charges:
                raise InvalidInput("terms.invalid_value", f"{name} needs usage charges")
            object.__setattr__(self, name, limits)

    def _check_numbers(self) -> None:
        _check_int(self.trial_days, 0, 365, "trial_days")
        _check_int(self.max_connections, 1, 100, "max_connections")
        _check_int(self.payment_due_days, 0, 90, "payment_due_days")
        _check_int(self.grace_days, 0, 365, "grace_days")
        # Dunning steps must come in order: past due, then suspended, then expired.
        _check_int(self.suspend_after_days, self.grace_days, 365, "suspend_after_days")
        _check_int(self.expire_after_days, self.suspend_after_days, 3650, "expire_after_days")

    # -- identity -------------------------------------------------------------------------------
    @property
    def terms_hash(self) -> str:
        """Lowercase hex SHA-256 of ``canonical()``: the identity of these terms."""
        return self._hash

    def canonical(self) -> bytes:
        return canonical_json(self.to_document())

    def to_document(self) -> dict[str, Any]:
        return {
            "plan_code": self.plan_code,
            "version": self.version,
            "name": self.name,
            "interval": {"unit": self.interval.unit.value, "count": self.interval.count},
            "prices": [money_to_document(p) for p in self.prices],
            "setup_fees": [money_to_document(p) for p in self.setup_fees],
            "trial_days": self.trial_days,
            "max_connections": self.max_connections,
            "package_codes": list(self.package_codes),
            "addons": [a.to_document() for a in self.addons],
            "effective_from": format_utc(self.effective_from),
            "payment_due_days": self.payment_due_days,
            "grace_days": self.grace_days,
            "suspend_after_days": self.suspend_after_days,
            "expire_after_days": self.expire_after_days,
            **self._usage_document(),
        }

    def _usage_document(self) -> dict[str, Any]:
        # Only present when used: terms without usage keep the hash they always had.
        if not self.usage_charges:
            return {}
        return {
            "usage_charges": [c.to_document() for c in self.usage_charges],
            "usage_threshold": [money_to_document(m) for m in self.usage_threshold],
            "usage_cap": [money_to_document(m) for m in self.usage_cap],
        }

    @classmethod
    def from_document(cls, doc: object) -> BillingTerms:
        """Strict inverse of ``to_document``: unknown, missing or mistyped keys are refused."""
        usage = isinstance(doc, Mapping) and "usage_charges" in doc
        d = _exact(doc, _TERMS_KEYS + _USAGE_KEYS if usage else _TERMS_KEYS)
        iv = _exact(d["interval"], ("unit", "count"))
        return cls(
            plan_code=_str(d["plan_code"]),
            version=_int(d["version"]),
            name=_str(d["name"]),
            interval=BillingInterval(_member(PeriodUnit, iv["unit"]), _int(iv["count"])),
            prices=tuple(money_from_document(p) for p in _list(d["prices"])),
            setup_fees=tuple(money_from_document(p) for p in _list(d["setup_fees"])),
            trial_days=_int(d["trial_days"]),
            max_connections=_int(d["max_connections"]),
            package_codes=tuple(_str(c) for c in _list(d["package_codes"])),
            addons=tuple(AddOnTerms.from_document(a) for a in _list(d["addons"])),
            effective_from=parse_utc(d["effective_from"]),
            payment_due_days=_int(d["payment_due_days"]),
            grace_days=_int(d["grace_days"]),
            suspend_after_days=_int(d["suspend_after_days"]),
            expire_after_days=_int(d["expire_after_days"]),
            **(_usage_fields(d) if usage else {}),
        )

    # -- lookups --------------------------------------------------------------------------------
    @property
    def currencies(self) -> tuple[str, ...]:
        return tuple(p.code for p in self.prices)

    def price_in(self, code: str) -> Money:
        price = _find_price(self.prices, code)
        if price is None:
            raise InvalidInput(
                "terms.currency_not_offered", f"{self.plan_code} v{self.version} has no {code}"
            )
        return price

    def setup_fee_in(self, code: str) -> Money:
        """The setup fee in ``code``; zero when the plan charges none (the currency must exist)."""
        price = self.price_in(code)
        fee = _find_price(self.setup_fees, code)
        return fee if fee is not None else Money(0, price.currency)

    def addon(self, code: str) -> AddOnTerms:
        for addon in self.addons:
            if addon.code == code:
                return addon
        raise InvalidInput("terms.unknown_addon", f"{self.plan_code} has no add-on {code!r}")


_TERMS_KEYS = (
    "plan_code",
    "version",
    "name",
    "interval",
    "prices",
    "setup_fees",
    "trial_days",
    "max_connections",
    "package_codes",
    "addons",
    "effective_from",
    "payment_due_days",
    "grace_days",
    "suspend_after_days",
    "expire_after_days",
)
_USAGE_KEYS = ("usage_charges", "usage_threshold", "usage_cap")


def _usage_fields(d: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "usage_charges": tuple(
            UsageCharge.from_document(c, check_code) for c in _list(d["usage_charges"])
        ),
        "usage_threshold": tuple(money_from_document(m) for m in _list(d["usage_threshold"])),
        "usage_cap": tuple(money_from_document(m) for m in _list(d["usage_cap"])),
    }


def usage_limit(limits: tuple[Money, ...], code: str) -> Money | None:
    """A threshold or cap in ``code``, if the terms set one."""
    return _find_price(limits, code)
