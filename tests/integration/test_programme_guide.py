"""The programme guide's admin API against a real database: batch imports that replace what
they cover, validation that refuses a whole batch, and per-channel windows per tenant."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from operator_harness import START
from stream_harness import StreamOperator

from iptv_billing.domain.errors import InvalidInput
from iptv_billing.services import access, guide


@pytest.fixture
def op(database_url: str) -> Iterator[StreamOperator]:
    operator = StreamOperator(database_url)
    yield operator
    operator.close()


def key(op: StreamOperator, scope: str = "admin") -> dict[str, str]:
    _, secret = op.tx(
        lambda u, c: access.issue_api_key(u, op.ids, op.system, c.tenant_id, "guide", scope)
    )
    return {"Authorization": f"Bearer {secret}"}


def channel_id(op: StreamOperator, code: str) -> str:
    (found,) = op.read(lambda u, c: u.catalog.channels_by_code(c.tenant_id, [code]))
    return found.id


def at(hours: float) -> str:
    return (START + timedelta(hours=hours)).isoformat()


def show(channel: str, start: float, stop: float, title: str, **extra: Any) -> dict[str, Any]:
    return {"channel_id": channel, "start": at(start), "stop": at(stop), "title": title, **extra}


def send(op: StreamOperator, auth: dict[str, str], *items: dict[str, Any]) -> httpx.Response:
    return op.client.post("/v1/epg/programmes", json={"programmes": list(items)}, headers=auth)


def titles(op: StreamOperator, auth: dict[str, str], channel: str, **window: str) -> list[str]:
    answer = op.client.get(f"/v1/channels/{channel}/programmes", params=window, headers=auth)
    assert answer.status_code == 200, answer.text
    return [p["title"] for p in answer.json()["data"]]


def test_an_import_is_read_back_by_window(op: StreamOperator) -> None:
    auth, news = key(op), channel_id(op, "news-1")
    answer = send(
        op,
        auth,
        show(news, 1, 2, "Late", description="The night shift", category="News", lang="en"),
        show(news, 0, 1, "Early"),
        show(channel_id(op, "kids-1"), 0, 1, "Cartoons"),
    )
    assert answer.json() == {"object": "programme_import", "channels": 2, "added": 3, "replaced": 0}
    listed = op.client.get(f"/v1/channels/{news}/programmes", headers=auth).json()
    assert listed["object"] == "programme_list"
    assert listed["window_start"] == START.isoformat().replace("+00:00", "Z")
    assert [p["title"] for p in listed["data"]] == ["Early", "Late"]  # by start
    late = listed["data"][1]
    assert (late["description"], late["category"], late["lang"]) == (
        "The night shift",
        "News",
        "en",
    )
    assert late["start"] == at(1).replace("+00:00", "Z")
    # A window returns what overlaps it, also a programme that began before it.
    assert titles(op, auth, news, **{"from": at(0.5), "to": at(1.5)}) == ["Early", "Late"]
    assert titles(op, auth, news, **{"from": at(2), "to": at(3)}) == []


def test_a_second_import_replaces_what_it_covers(op: StreamOperator) -> None:
    auth, news = key(op), channel_id(op, "news-1")
    send(op, auth, show(news, 0, 1, "A"), show(news, 1, 2, "B"), show(news, 2, 3, "C"))
    # Corrects 1h..2h30 only: B goes, C (which overlaps the new range) goes, A stays.
    answer = send(op, auth, show(news, 1, 1.5, "B1"), show(news, 1.5, 2.5, "B2"))
    assert (answer.json()["added"], answer.json()["replaced"]) == (2, 2)
    assert titles(op, auth, news, **{"from": at(0), "to": at(5)}) == ["A", "B1", "B2"]
    # Sending the same schedule again changes nothing.
    again = send(op, auth, show(news, 1, 1.5, "B1"), show(news, 1.5, 2.5, "B2"))
    assert again.json()["replaced"] == 2
    assert titles(op, auth, news, **{"from": at(0), "to": at(5)}) == ["A", "B1", "B2"]


@pytest.mark.parametrize(
    ("items", "code"),
    [
        (lambda n: [show(n, 1, 1, "Zero")], "epg.invalid_programme"),
        (lambda n: [show(n, 2, 1, "Backwards")], "epg.invalid_programme"),
        (lambda n: [show(n, 0, 25, "Marathon")], "epg.invalid_programme"),
        (lambda n: [show(n, 0, 1, "   ")], "epg.invalid_programme"),
        (lambda n: [show(n, 0, 1, "Bell\x07")], "epg.invalid_programme"),
        (lambda n: [show(n, 0, 1, "Ok", lang="english!")], "epg.invalid_programme"),
        (lambda n: [show(n, 0, 2, "One"), show(n, 1, 3, "Two")], "epg.overlapping_programmes"),
        (lambda n: [show(n, 0, 1, "Ok"), show("chn_nope", 0, 1, "Ghost")], "epg.unknown_channels"),
        (
            lambda n: [{**show(n, 0, 1, "Old"), "start": "1900-01-01T00:00:00Z"}],
            "epg.invalid_programme",
        ),
    ],
)
def test_a_bad_item_refuses_the_whole_batch(op: StreamOperator, items: Any, code: str) -> None:
    auth, news = key(op), channel_id(op, "news-1")
    answer = send(op, auth, *items(news))
    assert answer.status_code == 422, answer.text
    assert answer.json()["code"] == code
    assert titles(op, auth, news, **{"from": at(-1), "to": at(24)}) == []


def test_the_api_refuses_malformed_bodies(op: StreamOperator) -> None:
    auth, news = key(op), channel_id(op, "news-1")
    naive = {**show(news, 0, 1, "Naive"), "start": "2028-01-31T10:00:00"}
    for body in (
        {"programmes": [naive]},
        {"programmes": [{**show(news, 0, 1, "x" * 501)}]},
        {"programmes": [{**show(news, 0, 1, "Extra"), "rating": "PG"}]},
        {"programmes": "all"},
        {},
    ):
        answer = op.client.post("/v1/epg/programmes", json=body, headers=auth)
        assert answer.status_code == 422, body
    too_many = [show(news, 0, 1, "x")] * (guide.MAX_BATCH + 1)
    assert 400 <= send(op, auth, *too_many).status_code < 500  # 413 or 422, never a 500


def test_the_service_caps_a_batch(op: StreamOperator) -> None:
    news = channel_id(op, "news-1")
    start = START
    items = [
        guide.ProgrammeItem(
            news, start + timedelta(minutes=i), start + timedelta(minutes=i + 1), "x"
        )
        for i in range(guide.MAX_BATCH + 1)
    ]
    with pytest.raises(InvalidInput, match="at most"):
        op.tx(lambda u, c: guide.import_programmes(u, c, items))
    done = op.tx(lambda u, c: guide.import_programmes(u, c, items[: guide.MAX_BATCH]))
    assert (done.channels, done.added) == (1, guide.MAX_BATCH)


def test_windows_are_checked(op: StreamOperator) -> None:
    auth, news = key(op), channel_id(op, "news-1")
    path = f"/v1/channels/{news}/programmes"
    for window in (
        {"from": at(2), "to": at(1)},
        {"from": at(0), "to": at(24 * 16)},
        {"from": "2028-01-31T10:00:00"},
        {"from": "0001-01-01T00:00:00Z"},
        {"to": "9999-12-31T23:59:59Z"},
        {"from": "yesterday"},
    ):
        answer = op.client.get(path, params=window, headers=auth)
        assert answer.status_code == 422, window
    missing = op.client.get("/v1/channels/chn_nope/programmes", headers=auth)
    assert (missing.status_code, missing.json()["code"]) == (404, "channel.not_found")


def test_reading_needs_a_key_and_writing_an_admin_key(op: StreamOperator) -> None:
    news = channel_id(op, "news-1")
    reader = key(op, "read_only")
    assert op.client.get(f"/v1/channels/{news}/programmes", headers=reader).status_code == 200
    assert send(op, reader, show(news, 0, 1, "Nope")).status_code == 403
    assert op.client.get(f"/v1/channels/{news}/programmes").status_code == 401
    machine = key(op, "integration")
    assert op.client.get(f"/v1/channels/{news}/programmes", headers=machine).status_code == 403
    assert send(op, machine, show(news, 0, 1, "Nope")).status_code == 403
    assert op.client.post("/v1/epg/programmes", json={"programmes": []}).status_code == 401


def test_a_retried_import_is_replayed(op: StreamOperator) -> None:
    auth, news = key(op), channel_id(op, "news-1")
    headers = {**auth, "Idempotency-Key": "guide-1"}
    body = {"programmes": [show(news, 0, 1, "Once")]}
    first = op.client.post("/v1/epg/programmes", json=body, headers=headers)
    second = op.client.post("/v1/epg/programmes", json=body, headers=headers)
    assert second.headers.get("idempotent-replayed") == "true"
    assert first.json() == second.json()


def test_tenants_see_only_their_own_channels(database_url: str) -> None:
    first, second = StreamOperator(database_url), StreamOperator(database_url)
    try:
        theirs = channel_id(first, "news-1")
        send(first, key(first), show(theirs, 0, 1, "Private"))
        mine = key(second)
        foreign = second.client.get(f"/v1/channels/{theirs}/programmes", headers=mine)
        assert (foreign.status_code, foreign.json()["code"]) == (404, "channel.not_found")
        refused = send(second, mine, show(theirs, 0, 1, "Overwrite"))
        assert refused.json()["code"] == "epg.unknown_channels"
        assert titles(first, key(first), theirs) == ["Private"]
    finally:
        first.close()
        second.close()


def test_the_guide_window_excludes_far_programmes(op: StreamOperator) -> None:
    news = channel_id(op, "news-1")
    items = [
        guide.ProgrammeItem(
            news, START - timedelta(days=3), START - timedelta(days=3, hours=-1), "Old"
        ),
        guide.ProgrammeItem(news, START, START + timedelta(hours=1), "Now"),
        guide.ProgrammeItem(
            news, START + timedelta(days=9), START + timedelta(days=9, hours=1), "Far"
        ),
    ]
    op.tx(lambda u, c: guide.import_programmes(u, c, items))
    record = op.read(lambda u, c: u.catalog.get_channel(c.tenant_id, news))
    assert record is not None
    span = guide.Window(START - timedelta(days=1), START + timedelta(days=7))
    found = op.read(lambda u, c: guide.programmes_of(u, c.tenant_id, [record], span))
    assert [(p.channel_id, p.title) for p in found] == [("news-1.example", "Now")]
    assert found[0].start == START.astimezone(UTC)
    assert isinstance(found[0].start, datetime)
