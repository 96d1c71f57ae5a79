"""Usage events as ingestion checks them: pure rules over plain dicts, one verdict per event.

A batch arrives as parsed JSON (10,000 events a call, 150,000 a second): events stay dicts and
come out as plain tuples, with no object per event, because at that rate the Python side is
the cost. Anything wrong with one event rejects that event with a stable code and never the
batch; what needs the database (does the metric, the customer exist? was the id seen
before?) is decided by the service on the survivors.

Values are exact: a JSON integer, a decimal string (``"12.5"``), or a JSON fraction with at
most 15 significant digits (what a double holds exactly; longer ones must be strings). They
are kept as integers scaled by 10**6 (six decimal places, up to 9.2 trillion units).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Final

import orjson

MAX_BATCH = 10_000
MAX_ID = 128
MAX_REF = 40  # customer and subscription ids: the width of the id columns
MAX_CODE = 64
MAX_UNIQUE_KEY = 128
MAX_PROPERTIES_BYTES = 1024
DECIMALS = 6
SCALE = 10**DECIMALS
MAX_SCALED = 2**63 - 1
FLOAT_DIGITS = 15
FUTURE_SKEW = timedelta(minutes=5)
DEFAULT_GRACE = timedelta(days=3)

ACCEPTED, DUPLICATE, REJECTED = "accepted", "duplicate", "rejected"
FIELDS = frozenset(
    {"id", "customer_id", "metric", "value", "unique_key", "subscription_id", "timestamp"}
    | {"properties"}
)

# Stable codes of a single event's verdict, with what the client is told.
MESSAGES: dict[str, str] = {
    "usage.invalid_event": "an event is a JSON object of the documented fields",
    "usage.invalid_id": f"id is a printable string of 1..{MAX_ID} characters",
    "usage.invalid_customer": "customer_id is a customer id string",
    "usage.invalid_metric": "metric is a billable metric code",
    "usage.invalid_value": (
        f"value is a finite number (integer, decimal string, or a JSON fraction of at most "
        f"{FLOAT_DIGITS} digits) with at most {DECIMALS} decimal places"
    ),
    "usage.negative_value": "value must not be negative",
    "usage.invalid_timestamp": "timestamp is an RFC 3339 date-time with an offset",
    "usage.too_late": "timestamp is older than the grace window for late events",
    "usage.in_future": "timestamp is more than 5 minutes in the future",
    "usage.invalid_unique_key": f"unique_key is a string of 1..{MAX_UNIQUE_KEY} characters",
    "usage.invalid_subscription": "subscription_id is a subscription id string",
    "usage.invalid_properties": f"properties is a JSON object of at most {MAX_PROPERTIES_BYTES} "
    "bytes",
    "usage.unknown_metric": "no billable metric with this code",
    "usage.metric_archived": "the billable metric is archived",
    "usage.unknown_customer": "no such customer",
    "usage.unknown_subscription": "no such subscription of this customer",
    "usage.subscription_required": "the customer has several subscriptions: name one",
    "usage.no_subscription": "the customer has no subscription to bill this usage on",
    "usage.unique_key_required": "a unique_count metric needs unique_key",
    "usage.duplicate": "an event with this id was received before",
}

# (id, customer id, metric code, value × 10**6, unique key, subscription id, time, properties
#  as JSON text): the shape storage takes (``services.usage_records.EventRow``), so that the
# valid events go to the store as they are; their indexes in the batch travel alongside.
Valid = tuple[str, str, str, int, str | None, str | None, datetime, str | None]
ID: Final = 0
CUSTOMER: Final = 1
METRIC: Final = 2
VALUE: Final = 3
UNIQUE: Final = 4
SUBSCRIPTION: Final = 5
AT: Final = 6
PROPERTIES: Final = 7

_DECIMAL_TEXT = re.compile(r"(-?)(\d{1,19})(?:\.(\d{1,30}))?")


@dataclass(frozen=True, slots=True)
class Verdict:
    """Why one event of the batch was not stored (accepted events get none)."""

    index: int
    id: str | None
    status: str  # DUPLICATE or REJECTED
    code: str

    @property
    def message(self) -> str:
        return MESSAGES[self.code]


def rejected(index: int, event_id: str | None, code: str) -> Verdict:
    return Verdict(index, event_id, DUPLICATE if code == "usage.duplicate" else REJECTED, code)


# -- values -------------------------------------------------------------------------------------
def scaled_value(raw: object) -> int | str:
    """The value × 10**6 as an exact integer, or the code that rejects it."""
    kind = type(raw)
    if kind is int:
        number: int = raw  # type: ignore[assignment]
        if number < 0:
            return "usage.negative_value"
        return number * SCALE if number <= MAX_SCALED // SCALE else "usage.invalid_value"
    if kind is str:
        return _scaled_text(raw)  # type: ignore[arg-type]
    if kind is float:
        return _scaled_float(raw)  # type: ignore[arg-type]
    return "usage.invalid_value"


def _scaled_text(text: str) -> int | str:
    match = _DECIMAL_TEXT.fullmatch(text)
    if match is None:
        return "usage.invalid_value"
    sign, whole, fraction = match.groups()
    fraction = fraction or ""
    if fraction[DECIMALS:].strip("0"):
        return "usage.invalid_value"
    scaled = int(whole) * SCALE + int(fraction[:DECIMALS].ljust(DECIMALS, "0"))
    if sign and scaled:
        return "usage.negative_value"
    return scaled if scaled <= MAX_SCALED else "usage.invalid_value"


def _scaled_float(number: float) -> int | str:
    if not math.isfinite(number):
        return "usage.invalid_value"
    if number < 0:
        return "usage.negative_value"
    # repr is the shortest text that reads back as this double; up to 15 digits it is the
    # text the client sent, beyond that it may not be.
    exact = Decimal(repr(number))
    if len(exact.as_tuple().digits) > FLOAT_DIGITS:
        return "usage.invalid_value"
    try:
        scaled = exact.scaleb(DECIMALS)
        if scaled != scaled.to_integral_value():
            return "usage.invalid_value"
    except InvalidOperation:  # pragma: no cover - finite, at most 15 digits
        return "usage.invalid_value"
    result = int(scaled)
    return result if result <= MAX_SCALED else "usage.invalid_value"


def value_text(scaled: int) -> str:
    """The canonical decimal text of a scaled value: no exponent, no trailing zeros."""
    whole, fraction = divmod(scaled, SCALE)
    if not fraction:
        return str(whole)
    return f"{whole}.{fraction:06d}".rstrip("0")


def value_decimal(scaled: int) -> Decimal:
    return Decimal(scaled).scaleb(-DECIMALS)


# -- timestamps ---------------------------------------------------------------------------------
def parse_timestamp(raw: object) -> datetime | None:
    """An aware instant from RFC 3339 text with an offset (``Z`` or ``±hh:mm``)."""
    if type(raw) is not str or not 10 < len(raw) <= 40 or "T" not in raw.upper():
        return None
    try:
        at = datetime.fromisoformat(raw)
    except ValueError:
        return None
    return at if at.tzinfo is not None else None


# -- events -------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Window:
    """Which event times are accepted now: late by up to ``grace``, early by ``FUTURE_SKEW``."""

    earliest: datetime
    latest: datetime

    @classmethod
    def around(cls, now: datetime, grace: timedelta = DEFAULT_GRACE) -> Window:
        return cls(now - grace, now + FUTURE_SKEW)


def check_events(
    events: Sequence[object], window: Window
) -> tuple[list[Valid], list[int], list[Verdict]]:
    """Each event checked on its own (shape, value, time): the valid ones as tuples, their
    indexes in the batch, and a verdict for each other. One pass, checks inlined: at 10,000
    events a batch the function calls were half the cost."""
    valid: list[Valid] = []
    indexes: list[int] = []
    verdicts: list[Verdict] = []
    times: dict[str, _Timed] = {}  # events of a batch share few distinct times
    fields, field_count = FIELDS, len(FIELDS)
    for index, event in enumerate(events):
        if type(event) is not dict:
            verdicts.append(Verdict(index, None, REJECTED, "usage.invalid_event"))
            continue
        get = event.get
        event_id = get("id")
        if type(event_id) is not str or not 0 < len(event_id) <= MAX_ID:
            verdicts.append(Verdict(index, None, REJECTED, "usage.invalid_id"))
            continue
        customer, metric = get("customer_id"), get("metric")
        unique, subscription = get("unique_key"), get("subscription_id")
        code: str | None = None
        if len(event) > field_count or not fields.issuperset(event):
            code = "usage.invalid_event"
        elif not event_id.isprintable():
            code = "usage.invalid_id"
        elif type(customer) is not str or not 0 < len(customer) <= MAX_REF:
            code = "usage.invalid_customer"
        elif type(metric) is not str or not 0 < len(metric) <= MAX_CODE:
            code = "usage.invalid_metric"
        elif unique is not None and (
            type(unique) is not str or not 0 < len(unique) <= MAX_UNIQUE_KEY
        ):
            code = "usage.invalid_unique_key"
        elif subscription is not None and (
            type(subscription) is not str or not 0 < len(subscription) <= MAX_REF
        ):
            code = "usage.invalid_subscription"
        if code is not None:
            verdicts.append(Verdict(index, event_id, REJECTED, code))
            continue
        raw_time = get("timestamp")
        timed = times.get(raw_time) if type(raw_time) is str else None
        if timed is None:
            timed = _timed(raw_time, window)
            if type(raw_time) is str and len(times) < MAX_BATCH:
                times[raw_time] = timed
        at, code = timed
        if code is not None:
            verdicts.append(Verdict(index, event_id, REJECTED, code))
            continue
        scaled = get("value")
        if type(scaled) is not int or not 0 <= scaled <= _MAX_WHOLE:
            scaled = scaled_value(scaled)
            if type(scaled) is str:
                verdicts.append(Verdict(index, event_id, REJECTED, scaled))
                continue
        else:
            scaled *= SCALE
        properties = get("properties")
        if properties is not None:
            properties = _properties(properties)
            if properties is None:
                verdicts.append(Verdict(index, event_id, REJECTED, "usage.invalid_properties"))
                continue
        valid.append(
            (event_id, customer, metric, scaled, unique, subscription, at, properties)  # type: ignore[arg-type]
        )
        indexes.append(index)
    return valid, indexes, verdicts


_MAX_WHOLE = MAX_SCALED // SCALE


_Timed = tuple[datetime, None] | tuple[None, str]  # (time, None) or (None, the problem)


def _timed(raw: object, window: Window) -> _Timed:
    at = parse_timestamp(raw)
    if at is None:
        return None, "usage.invalid_timestamp"
    if at < window.earliest:
        return None, "usage.too_late"
    if at > window.latest:
        return None, "usage.in_future"
    return at, None


def _properties(value: object) -> str | None:
    if type(value) is not dict:
        return None
    encoded = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    return encoded.decode() if len(encoded) <= MAX_PROPERTIES_BYTES else None


def canonical_events(events: Sequence[tuple[str, str, str, int, str]]) -> list[list[str]]:
    """The accepted events as the batch's log record commits to them: (id, customer, metric,
    value text, time as ``ledger.entries.moment``), sorted by id. An auditor holding the
    events rebuilds this list and hashes its RFC 8785 JSON."""
    text = value_text
    return [
        [
            event_id,
            customer,
            metric,
            str(scaled // SCALE) if scaled % SCALE == 0 else text(scaled),
            at,
        ]
        for event_id, customer, metric, scaled, at in sorted(events)
    ]
