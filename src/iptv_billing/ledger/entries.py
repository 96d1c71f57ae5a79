"""What goes into the log: a salted commitment to a canonical record, never the record itself.

leaf input = SHA-256(salt || canonical record), salt = 32 random bytes per entry. The salt
keeps low-entropy records (an amount, a status) from being guessed from the public tiles; the
customer, who is handed salt and record in a receipt, recomputes the commitment.

The canonical record is RFC 8785 JSON of a value made only of ASCII-keyed objects, arrays,
strings, safe integers, booleans and null (money in minor units, times as fixed-width UTC
strings), so it does not depend on the database engine or on how a Decimal was spelt. For that
subset RFC 8785 is exactly compact JSON with sorted keys (the keys are ASCII, so code-point
order is UTF-16 order; strings escape only quote, backslash and control characters, in
lowercase ``u00xx`` escapes or the short forms): what ``orjson`` writes with ``OPT_SORT_KEYS``, at a
tenth of the cost of ``json`` on the append path. A property test holds the two to RFC 8785.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime

import orjson

from iptv_billing.ledger.errors import LedgerError

SALT_SIZE = 32
RECORD_VERSION = 1
MAX_SAFE_INTEGER = 2**53 - 1

_SORTED = orjson.OPT_SORT_KEYS


def encode_record(record: Mapping[str, object]) -> bytes:
    """The canonical bytes of a record built by this codebase (see the module docstring)."""
    try:
        return orjson.dumps(record, option=_SORTED)
    except (TypeError, orjson.JSONEncodeError) as exc:
        raise LedgerError("record.not_canonical", f"record cannot be encoded: {exc}") from exc


def check_record(record: object) -> None:
    """Refuse what ``encode_record`` would not encode canonically (floats, non-ASCII keys,
    integers beyond 2**53 - 1): used when a record comes from outside, e.g. a receipt."""
    if record is None or isinstance(record, bool | str):
        return
    if isinstance(record, int):
        if abs(record) > MAX_SAFE_INTEGER:
            raise LedgerError("record.integer_out_of_range", f"integer beyond 2**53-1: {record}")
        return
    if isinstance(record, list):
        for item in record:
            check_record(item)
        return
    if isinstance(record, dict):
        for key, value in record.items():
            if not isinstance(key, str) or not key.isascii():
                raise LedgerError("record.bad_key", f"record keys must be ASCII: {key!r}")
            check_record(value)
        return
    raise LedgerError("record.bad_value", f"records hold no {type(record).__name__}")


def commitment(salt: bytes, encoded_record: bytes) -> bytes:
    if len(salt) != SALT_SIZE:
        raise LedgerError("record.bad_salt", f"a salt is {SALT_SIZE} bytes, not {len(salt)}")
    return hashlib.sha256(salt + encoded_record).digest()


def moment(at: datetime) -> str:
    """A fixed-width UTC instant: what a record says about time, whatever the engine kept."""
    if at.tzinfo is None:
        raise LedgerError("record.naive_time", "record times must be timezone-aware")
    return at.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
