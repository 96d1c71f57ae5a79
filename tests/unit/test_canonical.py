from __future__ import annotations

import hashlib
from decimal import Decimal

import pytest
import rfc8785
from hypothesis import given, settings
from hypothesis import strategies as st

from iptv_billing.domain.canonical import canonical_json, sha256_hex
from iptv_billing.domain.errors import InvalidInput

# Every Unicode scalar value (surrogates have no UTF-8 form): ASCII, controls, BMP, astral.
text = st.text(st.characters(exclude_categories=["Cs"]), max_size=12)
integers = st.integers(min_value=-(2**53) + 1, max_value=2**53 - 1)
json_values = st.recursive(
    st.none() | st.booleans() | integers | text,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(text, children, max_size=5),
    max_leaves=25,
)


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_matches_the_reference_implementation(value: object) -> None:
    assert canonical_json(value) == rfc8785.dumps(value)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(text, integers, max_size=8))
def test_key_order_never_matters(obj: dict[str, int]) -> None:
    reordered = dict(reversed(list(obj.items())))
    assert canonical_json(reordered) == canonical_json(obj)


def test_keys_sort_by_utf16_code_units_not_code_points() -> None:
    # U+1F600 is D83D DE00 in UTF-16, which sorts before U+E000 though its code point is larger.
    value = {"\ue000": 1, "\U0001f600": 2, "a": 3}
    assert canonical_json(value) == '{"a":3,"\U0001f600":2,"\ue000":1}'.encode()
    assert canonical_json(value) == rfc8785.dumps(value)


def test_escapes_follow_jcs() -> None:
    assert canonical_json('\u0000\b\t\n\f\r\u001f"\\\u007f/é') == (
        b'"\\u0000\\b\\t\\n\\f\\r\\u001f\\"\\\\\x7f/\xc3\xa9"'
    )


def test_tuples_are_arrays() -> None:
    assert canonical_json({"b": (1, 2), "a": [True, None]}) == b'{"a":[true,null],"b":[1,2]}'


@pytest.mark.parametrize(
    "value",
    [1.0, {"a": 0.5}, [Decimal("1")], {1: "a"}, {"a": {1, 2}}, b"bytes", object()],
)
def test_unsupported_types_are_refused(value: object) -> None:
    with pytest.raises(InvalidInput) as caught:
        canonical_json(value)
    assert caught.value.code == "canonical.unsupported_type"


def test_integers_beyond_ijson_are_refused() -> None:
    assert canonical_json(2**53 - 1) == b"9007199254740991"
    with pytest.raises(InvalidInput) as caught:
        canonical_json(2**53)
    assert caught.value.code == "canonical.integer_out_of_range"


def test_lone_surrogates_are_refused() -> None:
    for value in ("\ud800", {"\udc00": 1}):
        with pytest.raises(InvalidInput) as caught:
            canonical_json(value)
        assert caught.value.code == "canonical.invalid_string"


def test_sha256_hex() -> None:
    assert sha256_hex(b"abc") == hashlib.sha256(b"abc").hexdigest()
    assert sha256_hex(b"") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
