"""Two-phase wallet holds, as TigerBeetle's pending transfers: reserve, then post or void once.

A hold takes money out of what can be spent without taking it from the customer. It ends in
exactly one of three ways: posted (all or part of it charged, the rest released), voided, or
expired when nobody resolved it in time (a crashed session, a dropped purchase). Only a pending
hold may end, which the repository enforces with a guarded status change.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from iptv_billing.domain.errors import Conflict, InvalidInput
from iptv_billing.domain.money import Money


class HoldStatus(StrEnum):
    PENDING = "pending"
    POSTED = "posted"
    VOIDED = "voided"
    EXPIRED = "expired"


# What a hold pays for; a posted hold credits the revenue account of that name.
PURPOSES = ("usage", "ppv", "rental", "purchase")
DEFAULT_TTL = timedelta(minutes=15)
MAX_TTL = timedelta(days=7)


def hold_expiry(now: datetime, ttl_seconds: int | None) -> datetime:
    """When a hold placed at ``now`` lapses; between one second and seven days."""
    if ttl_seconds is None:
        return now + DEFAULT_TTL
    if not 1 <= ttl_seconds <= MAX_TTL.total_seconds():
        raise InvalidInput(
            "wallet_hold.invalid_ttl", f"a hold lasts 1 to {int(MAX_TTL.total_seconds())} seconds"
        )
    return now + timedelta(seconds=ttl_seconds)


def check_purpose(purpose: str) -> str:
    if purpose not in PURPOSES:
        raise InvalidInput("wallet_hold.invalid_purpose", f"use one of {PURPOSES}")
    return purpose


def check_resolvable(status: str, expires_at: datetime, now: datetime) -> None:
    """A post or void needs a hold that is still pending and has not lapsed."""
    if status != HoldStatus.PENDING:
        raise Conflict("wallet_hold.not_pending", f"the hold is already {status}")
    if now >= expires_at:
        raise Conflict("wallet_hold.expired", "the hold lapsed; its funds are being released")


def amount_to_post(held: Money, requested: Money | None) -> Money:
    """What a post charges: all of the hold unless less is asked; never more, never zero."""
    if requested is None:
        return held
    if requested.currency != held.currency:
        raise InvalidInput(
            "money.currency_mismatch", f"a {requested.code} amount on a {held.code} hold"
        )
    if requested.minor <= 0:
        raise InvalidInput(
            "wallet_hold.invalid_amount", "post a positive amount; void a hold to charge nothing"
        )
    if requested > held:
        raise InvalidInput(
            "wallet_hold.post_exceeds_hold", f"the hold reserves {held}, not {requested}"
        )
    return requested
