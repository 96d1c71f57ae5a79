"""The pure rules of usage ingestion: exact values, timestamps with offsets, one verdict per
event, the canonical form the batch's log entry hashes, and the COPY text of stored events."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any, cast

import pytest
from hypothesis import given
from hypothesis import strategies as st

from iptv_billing.adapters.sql.repositories.usage import copy_data
from iptv_billing.domain.errors import InvalidInput
from iptv_billing.domain.usage import (
    MAX_SCALED,
    SCALE,
    Window,
    canonical_events,
    check_events,
    parse_timestamp,
    scaled_value,
    value_decimal,
    value_text,
)
from iptv_billing.ledger.entries import moment
from iptv_billing.services.usage import check_batch, utc_moment
from iptv_billing.services.usage_records import EventRow

NOW = datetime(2028, 5, 1, 12, tzinfo=UTC)
WINDOW = Window.around(NOW, timedelta(days=3))


def event(**changes: Any) -> dict[str, Any]:
    return {
        "id": "e1",
        "customer_id": "cus_1",
        "metric": "viewing_seconds",
        "value": 1,
        "timestamp": "2028-05-01T11:00:00Z",
        **changes,
    }


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (0, 0),
        (30, 30 * SCALE),
        ("12.5", 12_500_000),
        ("0.000001", 1),
        ("1.2500000000", 1_250_000),  # zeros beyond six places are harmless
        ("-0", 0),
        (1.25, 1_250_000),
        (0.1, 100_000),
        (1e-06, 1),
        ("9223372036854.775807", MAX_SCALED),
    ],
)
def test_values_are_kept_exactly(raw: object, expected: int) -> None:
    assert scaled_value(raw) == expected


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        (-1, "usage.negative_value"),
        ("-0.5", "usage.negative_value"),
        (-0.5, "usage.negative_value"),
        ("1.0000001", "usage.invalid_value"),  # a seventh decimal place
        (1e-07, "usage.invalid_value"),
        (0.1 + 0.2, "usage.invalid_value"),  # 17 digits: not what the client meant
        (float("nan"), "usage.invalid_value"),
        (float("inf"), "usage.invalid_value"),
        ("1e3", "usage.invalid_value"),
        (" 1", "usage.invalid_value"),
        ("1_000", "usage.invalid_value"),
        ("NaN", "usage.invalid_value"),
        ("", "usage.invalid_value"),
        (True, "usage.invalid_value"),
        (None, "usage.invalid_value"),
        ([1], "usage.invalid_value"),
        (10**13, "usage.invalid_value"),
        ("9223372036854.775808", "usage.invalid_value"),
    ],
)
def test_values_that_are_not_exact_non_negative_numbers_are_refused(raw: object, code: str) -> None:
    assert scaled_value(raw) == code


@given(st.integers(min_value=0, max_value=MAX_SCALED))
def test_value_text_reads_back_to_the_same_value(scaled: int) -> None:
    text = value_text(scaled)
    assert scaled_value(text) == scaled
    assert Decimal(text) == value_decimal(scaled)
    assert "e" not in text.lower()
    assert not (text.endswith("0") and "." in text)


@given(st.decimals(min_value=0, max_value=10**8, places=6, allow_nan=False))
def test_json_fractions_of_up_to_15_digits_are_exact(value: Decimal) -> None:
    assert scaled_value(float(value)) == int(value * SCALE)


@pytest.mark.parametrize(
    ("raw", "valid"),
    [
        ("2028-05-01T11:00:00Z", True),
        ("2028-05-01T13:00:00.123456+02:00", True),
        ("2028-05-01T11:00:00", False),  # no offset
        ("2028-05-01", False),
        ("yesterday", False),
        (1714561200, False),
        (None, False),
    ],
)
def test_timestamps_need_an_offset(raw: object, valid: bool) -> None:
    parsed = parse_timestamp(raw)
    assert (parsed is not None) == valid
    if parsed is not None:
        assert parsed.utcoffset() is not None


@pytest.mark.parametrize(
    ("changes", "code"),
    [
        ({"id": ""}, "usage.invalid_id"),
        ({"id": "x" * 129}, "usage.invalid_id"),
        ({"id": "tab\there"}, "usage.invalid_id"),
        ({"id": 7}, "usage.invalid_id"),
        ({"customer_id": None}, "usage.invalid_customer"),
        ({"customer_id": "c" * 41}, "usage.invalid_customer"),
        ({"metric": 3}, "usage.invalid_metric"),
        ({"value": "x"}, "usage.invalid_value"),
        ({"value": -2}, "usage.negative_value"),
        ({"timestamp": "2028-05-01T11:00:00"}, "usage.invalid_timestamp"),
        ({"timestamp": "2028-04-28T11:59:59Z"}, "usage.too_late"),
        ({"timestamp": "2028-05-01T12:05:01Z"}, "usage.in_future"),
        ({"unique_key": ""}, "usage.invalid_unique_key"),
        ({"subscription_id": 5}, "usage.invalid_subscription"),
        ({"properties": []}, "usage.invalid_properties"),
        ({"properties": {"k": "v" * 1100}}, "usage.invalid_properties"),
        ({"colour": "red"}, "usage.invalid_event"),
    ],
)
def test_each_problem_rejects_only_its_event(changes: dict[str, Any], code: str) -> None:
    valid, indexes, verdicts = check_events([event(id="good"), event(**changes)], WINDOW)
    assert [v[0] for v in valid] == ["good"]
    assert indexes == [0]
    assert [(v.index, v.status, v.code) for v in verdicts] == [(1, "rejected", code)]
    assert verdicts[0].message


def test_edges_of_the_window_are_accepted() -> None:
    batch = [
        event(id="earliest", timestamp="2028-04-28T12:00:00Z"),
        event(id="latest", timestamp="2028-05-01T14:05:00+02:00"),
    ]
    valid, _, verdicts = check_events(batch, WINDOW)
    assert [v[0] for v in valid] == ["earliest", "latest"]
    assert verdicts == []


def test_non_objects_are_rejected_by_index() -> None:
    valid, indexes, verdicts = check_events([None, "x", 3, event()], WINDOW)
    assert len(valid) == 1
    assert indexes == [3]
    assert [(v.index, v.id, v.code) for v in verdicts] == [
        (0, None, "usage.invalid_event"),
        (1, None, "usage.invalid_event"),
        (2, None, "usage.invalid_event"),
    ]


def test_valid_events_come_out_in_the_stored_shape() -> None:
    valid, indexes, verdicts = check_events(
        [event(id="a", value="1.5", unique_key="k", properties={"b": 1, "a": 2}), event(id="b")],
        WINDOW,
    )
    assert valid[0] == (
        "a",
        "cus_1",
        "viewing_seconds",
        1_500_000,
        "k",
        None,
        datetime(2028, 5, 1, 11, tzinfo=UTC),
        '{"a":2,"b":1}',
    )
    assert (indexes, verdicts) == ([0, 1], [])


@given(
    st.lists(
        st.tuples(
            st.text(min_size=1, max_size=8),
            st.sampled_from(["cus_1", "cus_2"]),
            st.sampled_from(["m", "n"]),
            st.integers(min_value=0, max_value=10**12),
        ),
        max_size=20,
        unique_by=lambda e: e[0],
    ),
    st.randoms(),
)
def test_the_canonical_list_does_not_depend_on_batch_order(
    events: list[tuple[str, str, str, int]], rng: Any
) -> None:
    stamped = [(*e, "2028-05-01T11:00:00.000000Z") for e in events]
    shuffled = list(stamped)
    rng.shuffle(shuffled)
    assert canonical_events(stamped) == canonical_events(shuffled)
    assert all(isinstance(part, str) for row in canonical_events(stamped) for part in row)


@given(
    st.datetimes(
        min_value=datetime(2000, 1, 1),
        max_value=datetime(2100, 1, 1),
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
        ),
    )
)
def test_the_fast_moment_is_the_ledgers_moment(at: datetime) -> None:
    assert utc_moment(at) == moment(at)


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ([], "usage.invalid_batch"),
        ({"events": {}}, "usage.invalid_batch"),
        ({"events": [], "x": 1}, "usage.invalid_batch"),
        ({}, "usage.invalid_batch"),
        ({"events": []}, "usage.empty_batch"),
        ({"events": [{}] * 10_001}, "usage.batch_too_large"),
    ],
)
def test_bodies_that_are_not_a_batch_are_refused_whole(body: object, code: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_batch(body)
    assert refused.value.code == code


def test_a_full_batch_is_a_batch() -> None:
    assert len(check_batch({"events": [{}] * 10_000})) == 10_000


# -- COPY text of the stored events -------------------------------------------------------------
AT_ROW = datetime(2028, 5, 1, 11, tzinfo=UTC)


def row(**changes: Any) -> EventRow:
    fields = {
        "id": "e1",
        "customer": "cus_1",
        "metric": "m",
        "value": 5,
        "unique": None,
        "subscription": "sub_1",
        "at": AT_ROW,
        "properties": None,
        **changes,
    }
    return cast(EventRow, tuple(fields.values()))


def test_plain_events_are_copied_as_they_are() -> None:
    data = copy_data([row(), row(id="e2", unique="k", properties='{"a":1}')])
    assert data == (
        "e1\tcus_1\tm\t5\t\\N\tsub_1\t2028-05-01T11:00:00+00:00\t\\N\n"
        'e2\tcus_1\tm\t5\tk\tsub_1\t2028-05-01T11:00:00+00:00\t{"a":1}\n'
    )


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"unique": "\\N"}, "\\\\N"),  # the text "\N", not NULL
        ({"unique": "a\tb"}, "a\\tb"),
        ({"properties": '{"a":"x\\\\y"}'}, '{"a":"x\\\\\\\\y"}'),
        ({"id": "a\nb"}, "a\\nb"),
        ({"customer": "a\rb"}, "a\\rb"),
    ],
)
def test_fields_that_need_it_are_escaped(changes: dict[str, Any], field: str) -> None:
    data = copy_data([row(id="e0"), row(**changes)])
    lines = data.split("\n")
    assert lines[2:] == [""]
    assert field in lines[1].split("\t")
    assert lines[0] == "e0\tcus_1\tm\t5\t\\N\tsub_1\t2028-05-01T11:00:00+00:00\t\\N"
