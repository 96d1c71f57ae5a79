"""Log records: the fast canonical encoder is RFC 8785 for every record the code can build."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iptv_billing.domain.canonical import canonical_json
from iptv_billing.ledger.entries import (
    MAX_SAFE_INTEGER,
    check_record,
    commitment,
    encode_record,
    moment,
)
from iptv_billing.ledger.errors import LedgerError

keys = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=12)
scalars = (
    st.none()
    | st.booleans()
    | st.integers(-MAX_SAFE_INTEGER, MAX_SAFE_INTEGER)
    | st.text(st.characters(exclude_categories=("Cs",)), max_size=30)
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(keys, values, max_size=6))
def test_encode_record_is_rfc8785(record: dict[str, object]) -> None:
    check_record(record)
    assert encode_record(record) == canonical_json(record)


@pytest.mark.parametrize(
    "bad", [{"x": 1.5}, {"é": 1}, {"x": 2**53}, {"x": {1, 2}}, {"x": b"bytes"}]
)
def test_check_record_refuses_what_is_not_canonical(bad: dict[str, object]) -> None:
    with pytest.raises(LedgerError):
        check_record(bad)


def test_the_commitment_binds_salt_and_record() -> None:
    record = encode_record({"amount": 100})
    a, b = bytes(32), bytes([1]) + bytes(31)
    assert commitment(a, record) != commitment(b, record)
    assert commitment(a, record) != commitment(a, encode_record({"amount": 101}))
    with pytest.raises(LedgerError):
        commitment(bytes(16), record)


def test_moment_is_fixed_width_utc_whatever_the_zone() -> None:
    at = datetime(2026, 3, 29, 1, 30, tzinfo=UTC)
    berlin = at.astimezone(timezone(timedelta(hours=2)))
    assert moment(at) == moment(berlin) == "2026-03-29T01:30:00.000000Z"
    with pytest.raises(LedgerError):
        moment(datetime(2026, 1, 1))
