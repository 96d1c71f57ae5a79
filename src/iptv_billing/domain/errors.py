"""One base error with stable string codes; the API maps kinds to HTTP statuses in one place."""

from __future__ import annotations

from enum import Enum
from typing import Any


class ErrorKind(Enum):
    """What sort of failure this is; decides the HTTP status, never the message."""

    INVALID = "invalid"  # the request itself is wrong (422)
    NOT_FOUND = "not_found"  # no such object for this tenant (404)
    CONFLICT = "conflict"  # the object's state forbids it now (409)
    PAYMENT_REQUIRED = "payment_required"  # funds are missing (402)
    UNAUTHORIZED = "unauthorized"  # no or bad credentials (401)
    FORBIDDEN = "forbidden"  # credentials lack the scope (403)
    UNAVAILABLE = "unavailable"  # a dependency is down; retry later (503)
    RATE_LIMITED = "rate_limited"  # too many attempts from this caller; wait (429)


class BillingError(Exception):
    """A user-facing failure with a stable `code` such as ``money.float_refused``."""

    kind: ErrorKind = ErrorKind.INVALID

    def __init__(self, code: str, message: str, **details: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code!r}, {self.message!r})"


class InvalidInput(BillingError):
    kind = ErrorKind.INVALID


class NotFound(BillingError):
    kind = ErrorKind.NOT_FOUND


class Conflict(BillingError):
    kind = ErrorKind.CONFLICT


class InsufficientFunds(BillingError):
    kind = ErrorKind.PAYMENT_REQUIRED


class Unauthorized(BillingError):
    kind = ErrorKind.UNAUTHORIZED


class Forbidden(BillingError):
    kind = ErrorKind.FORBIDDEN


class Unavailable(BillingError):
    kind = ErrorKind.UNAVAILABLE


class TooManyRequests(BillingError):
    kind = ErrorKind.RATE_LIMITED


class InvariantViolated(Exception):
    """A bug, not bad input: an invariant the code must keep did not hold.

    Raised explicitly (never via ``assert``, which ``-O`` strips).
    """
