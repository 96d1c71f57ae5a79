"""Billable metrics and usage ingestion on SQLite and PostgreSQL: the API's shapes and
refusals, deduplication within and across batches and between racing batches, one log entry
per batch whose digest matches the stored events, and a log audit that stays clean."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from operator_harness import START, Operator
from stream_harness import StreamOperator, Viewer

from iptv_billing.adapters.sql.uow import is_transient
from iptv_billing.api.app import create_app
from iptv_billing.api.deps import AppServices
from iptv_billing.services import access, metrics, usage
from iptv_billing.services.context import load_context
from iptv_billing.services.ledger_audit import verify_log
from iptv_billing.services.ports import UnitOfWork
from iptv_billing.services.records import CustomerRecord
from iptv_billing.services.usage_feed import UsageFeed

EVENTS = "/v1/usage/events"
AT = START.isoformat()


class UsageOperator(Operator):
    """An operator with an app, an admin key and an integration key."""

    def __init__(self, url: str, grace_seconds: float = 3 * 86_400) -> None:
        super().__init__(url)
        services = AppServices(
            self.database, self.ids, self.system, is_transient, usage_grace_seconds=grace_seconds
        )
        self.client = TestClient(create_app(services), raise_server_exceptions=False)
        self.admin = self._key("admin")
        self.integration = self._key("integration")
        self.reader = self._key("read_only")

    def customer(self, *args: Any, **kwargs: Any) -> CustomerRecord:
        """A customer with one subscription: events that name no subscription are its usage."""
        if "usage" not in self.plans:
            self.plan("usage", "1.00")
        record = super().customer(*args, **kwargs)
        self.subscribe(record.id, "usage")
        return record

    def _key(self, scope: str) -> str:
        with self.database.uow() as uow:
            _, key = access.issue_api_key(uow, self.ids, self.system, self.tenant_id, scope, scope)
            uow.commit()
        return key

    def post(self, path: str, body: Any, key: str | None = None, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key or self.admin}", **kw.pop("headers", {})}
        return self.client.post(path, json=body, headers=headers, **kw)

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.client.get(
            path, params=params, headers={"Authorization": f"Bearer {self.admin}"}
        )

    def metric(self, code: str, aggregation: str = "sum") -> str:
        cmd = metrics.CreateMetric(code, code.title(), aggregation, "unit")
        return self.tx(lambda u, c: metrics.create_metric(u, c, cmd)).id

    def ingest(self, events: list[Any]) -> usage.IngestResult:
        def work(uow: UnitOfWork) -> usage.IngestResult:
            ctx = load_context(uow, self.tenant_id, self.system, self.ids)
            return usage.ingest(uow, ctx, events)

        return self.database.transact(work)


@pytest.fixture
def op(database_url: str) -> Iterator[UsageOperator]:
    operator = UsageOperator(database_url)
    yield operator
    operator.close()


def event(customer: str, event_id: str, **changes: Any) -> dict[str, Any]:
    return {
        "id": event_id,
        "customer_id": customer,
        "metric": "viewing_seconds",
        "value": 30,
        "timestamp": AT,
        **changes,
    }


def problem(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["code"] == code, response.json()


# -- metrics ------------------------------------------------------------------------------------
def test_metrics_are_created_listed_read_and_archived(op: UsageOperator) -> None:
    created = op.post(
        "/v1/metrics",
        {"code": "viewing_seconds", "name": "Viewing", "aggregation": "sum", "unit": "second"},
    )
    assert created.status_code == 201, created.text
    metric = created.json()
    assert (metric["object"], metric["aggregation"], metric["archived"]) == (
        "billable_metric",
        "sum",
        False,
    )
    for code in ("plays", "channels"):
        body = {"code": code, "name": code, "aggregation": "count"}
        assert op.post("/v1/metrics", body).status_code == 201
    first = op.get("/v1/metrics", limit=2).json()
    assert first["has_more"] is True
    assert len(first["data"]) == 2
    rest = op.get("/v1/metrics", limit=2, starting_after=first["next_cursor"]).json()
    listed = [m["code"] for m in first["data"] + rest["data"]]
    assert sorted(listed) == ["channels", "plays", "viewing_seconds"]
    assert op.get(f"/v1/metrics/{metric['id']}").json() == metric
    archived = op.post(f"/v1/metrics/{metric['id']}/archive", None)
    assert archived.status_code == 200
    assert archived.json()["archived"] is True


def test_metric_refusals(op: UsageOperator) -> None:
    body = {"code": "gb", "name": "GB", "aggregation": "sum", "unit": "GB"}
    assert op.post("/v1/metrics", body).status_code == 201
    problem(op.post("/v1/metrics", body), 409, "metric.duplicate_code")
    problem(op.post("/v1/metrics", {**body, "aggregation": "avg"}), 422, "request.invalid")
    problem(op.post("/v1/metrics", {**body, "code": "Bad Code"}), 422, "request.invalid")
    problem(op.get("/v1/metrics/bm_nothing"), 404, "metric.not_found")
    problem(op.post("/v1/metrics", body, key=op.reader), 403, "auth.insufficient_scope")


# -- ingestion over HTTP -------------------------------------------------------------------------
def test_every_event_gets_its_verdict_and_the_valid_ones_are_stored(op: UsageOperator) -> None:
    op.metric("viewing_seconds")
    op.metric("channels", "unique_count")
    archived = op.metric("old")
    op.tx(lambda u, c: metrics.archive_metric(u, c, archived))
    cus = op.customer().id
    other = op.customer().id
    late = (START - timedelta(days=3, seconds=1)).isoformat()
    early = (START + timedelta(minutes=5, seconds=1)).isoformat()
    batch: list[Any] = [
        event(cus, "ok-1", value="12.5", properties={"class": "hd"}),  # 0 accepted
        event(cus, "ok-1"),  # 1 duplicate within the batch
        event(cus, "m-1", metric="nothing"),  # 2
        event(cus, "m-2", metric="old"),  # 3
        event("cus_nobody", "c-1"),  # 4
        event(cus, "v-1", value=-1),  # 5
        event(cus, "v-2", value="ten"),  # 6
        event(cus, "v-3", value="1.0000001"),  # 7
        event(cus, "t-1", timestamp=late),  # 8
        event(cus, "t-2", timestamp=early),  # 9
        event(cus, "t-3", timestamp="2028-01-31T10:00:00"),  # 10 no offset
        event(cus, "u-1", metric="channels"),  # 11 no unique_key
        event(cus, "u-2", metric="channels", unique_key="news-1"),  # 12 accepted
        event(cus, "s-1", subscription_id="sub_nothing"),  # 13
        event(cus, "p-1", properties={"x": "y" * 2000}),  # 14
        event(cus, "f-1", extra=1),  # 15
        "not an event",  # 16
        event(cus, ""),  # 17
        event(other, "ok-2", value=0, timestamp=(START - timedelta(days=2)).isoformat()),  # 18
    ]
    answer = op.post(EVENTS, {"events": batch}, key=op.integration)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert (body["accepted"], body["duplicates"], body["rejected"]) == (3, 1, 15)
    codes = {r["index"]: r["code"] for r in body["results"]}
    assert codes == {
        1: "usage.duplicate",
        2: "usage.unknown_metric",
        3: "usage.metric_archived",
        4: "usage.unknown_customer",
        5: "usage.negative_value",
        6: "usage.invalid_value",
        7: "usage.invalid_value",
        8: "usage.too_late",
        9: "usage.in_future",
        10: "usage.invalid_timestamp",
        11: "usage.unique_key_required",
        13: "usage.unknown_subscription",
        14: "usage.invalid_properties",
        15: "usage.invalid_event",
        16: "usage.invalid_event",
        17: "usage.invalid_id",
    }
    assert all(r["message"] for r in body["results"])
    stored = op.read(lambda u, c: u.usage.events_of_batch(c.tenant_id, body["batch_id"]))
    assert {(e.event_id, e.value_scaled) for e in stored} == {
        ("ok-1", 12_500_000),
        ("u-2", 30_000_000),
        ("ok-2", 0),
    }
    assert next(e for e in stored if e.event_id == "ok-1").properties == '{"class":"hd"}'
    again = op.post(EVENTS, {"events": batch[:1]}, key=op.integration).json()
    assert (again["accepted"], again["duplicates"], again["batch_id"]) == (0, 1, None)


def test_a_batch_is_refused_whole_only_when_it_is_not_one(op: UsageOperator) -> None:
    cus = op.customer().id
    op.metric("viewing_seconds")
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {op.admin}"}
    problem(
        op.client.post(EVENTS, content=b"{nope", headers=headers), 400, "request.malformed_json"
    )
    problem(op.post(EVENTS, [event(cus, "a")]), 422, "usage.invalid_batch")
    problem(op.post(EVENTS, {"events": "x"}), 422, "usage.invalid_batch")
    problem(op.post(EVENTS, {"events": [], "more": 1}), 422, "usage.invalid_batch")
    problem(op.post(EVENTS, {"events": []}), 422, "usage.empty_batch")
    problem(
        op.post(EVENTS, {"events": [event(cus, "a")]}, key=op.reader),
        403,
        "auth.insufficient_scope",
    )
    too_many = [event(cus, f"e{i}") for i in range(10_001)]
    problem(op.post(EVENTS, {"events": too_many}), 422, "usage.batch_too_large")
    assert op.read(lambda u, c: u.usage.count_events(c.tenant_id)) == 0
    full = op.post(EVENTS, {"events": too_many[:10_000]})  # over 1 MiB: this route takes more
    assert full.status_code == 200, full.text
    assert full.json()["accepted"] == 10_000
    assert full.json()["results"] == []
    assert len(orjson.dumps({"events": too_many[:10_000]})) > 1024 * 1024


def test_a_retried_post_with_its_idempotency_key_replays_the_answer(op: UsageOperator) -> None:
    cus = op.customer().id
    op.metric("viewing_seconds")
    body = {"events": [event(cus, "k-1"), event(cus, "k-2")]}
    first = op.post(EVENTS, body, headers={"Idempotency-Key": "batch-7"})
    second = op.post(EVENTS, body, headers={"Idempotency-Key": "batch-7"})
    assert first.json()["accepted"] == 2
    assert second.headers.get("Idempotent-Replayed") == "true"
    assert second.json() == first.json()


# -- deduplication, log and audit ---------------------------------------------------------------
def test_duplicates_across_batches_are_counted_exactly(op: UsageOperator) -> None:
    op.metric("viewing_seconds")
    cus = op.customer().id
    first = op.ingest([event(cus, f"e{i}") for i in range(100)])
    second = op.ingest([event(cus, f"e{i}") for i in range(50, 150)])
    assert (first.accepted, first.duplicates) == (100, 0)
    assert (second.accepted, second.duplicates) == (50, 50)
    assert op.read(lambda u, c: u.usage.count_events(c.tenant_id)) == 150


def test_racing_batches_store_each_id_once(op: UsageOperator) -> None:
    op.metric("viewing_seconds")
    customers = [op.customer().id for _ in range(5)]
    batches = [
        [event(customers[i % 5], f"r{i}") for i in range(start, start + 600)]
        for start in (0, 200, 400, 100)
    ]
    results: list[usage.IngestResult] = []
    errors: list[BaseException] = []
    gate = threading.Barrier(len(batches))

    def run(events: list[Any]) -> None:
        try:
            gate.wait()
            results.append(op.ingest(events))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(b,)) for b in batches]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    distinct = {e["id"] for b in batches for e in b}
    assert sum(r.accepted for r in results) == len(distinct) == 1000
    assert sum(r.accepted + r.duplicates for r in results) == sum(map(len, batches))
    assert op.read(lambda u, c: u.usage.count_events(c.tenant_id)) == len(distinct)


def test_each_batch_has_one_log_entry_that_commits_to_its_events(op: UsageOperator) -> None:
    op.metric("viewing_seconds")
    cus = op.customer().id
    before = op.read(lambda u, c: u.log.size(c.tenant_id))
    result = op.ingest(
        [
            event(cus, "b", value="0.25", timestamp="2028-01-31T11:00:00+01:00"),
            event(cus, "a", value=7, timestamp=(START - timedelta(hours=1)).isoformat()),
        ]
    )
    op.ingest([event(cus, "a")])  # all duplicates: nothing logged
    assert op.read(lambda u, c: u.log.size(c.tenant_id)) == before + 1
    entry = op.read(lambda u, c: list(u.log.iter_entries(c.tenant_id, 100))[-1])
    record = orjson.loads(entry.record)
    assert (entry.kind, entry.subject_id, record["type"]) == (
        "usage_batch",
        result.batch_id,
        "usage_batch",
    )
    assert record["accepted"] == 2
    assert record["first_at"] == "2028-01-31T09:00:00.000000Z"
    assert record["last_at"] == "2028-01-31T10:00:00.000000Z"
    expected = usage.events_digest(
        [
            ("a", cus, "viewing_seconds", 7_000_000, "2028-01-31T09:00:00.000000Z"),
            ("b", cus, "viewing_seconds", 250_000, "2028-01-31T10:00:00.000000Z"),
        ]
    )
    assert record["events_sha256"] == result.events_sha256 == expected
    stored = op.read(lambda u, c: usage.stored_batch_digest(u, c.tenant_id, result.batch_id or ""))
    assert stored == (2, expected)
    audit = op.read(lambda u, c: verify_log(u, c.tenant_id))
    assert audit.consistent, audit.problems


def test_the_grace_window_follows_the_setting(database_url: str) -> None:
    op = UsageOperator(database_url, grace_seconds=3600)
    try:
        op.metric("viewing_seconds")
        cus = op.customer().id
        batch = [
            event(cus, "in", timestamp=(START - timedelta(minutes=59)).isoformat()),
            event(cus, "out", timestamp=(START - timedelta(minutes=61)).isoformat()),
        ]
        body = op.post(EVENTS, {"events": batch}).json()
        assert body["accepted"] == 1
        assert [(r["id"], r["code"]) for r in body["results"]] == [("out", "usage.too_late")]
    finally:
        op.close()


# -- feeds from streaming servers ---------------------------------------------------------------
RTMP = "/integrations/nginx-rtmp"
FLUSSONIC = "/integrations/flussonic/auth"


@pytest.fixture
def streaming(database_url: str) -> Iterator[tuple[StreamOperator, UsageFeed]]:
    """A streaming operator whose app feeds viewing time into usage (flushed by hand)."""
    operator = StreamOperator(database_url)
    feed = UsageFeed(
        operator.index,
        operator.database.uow,
        operator.system,
        operator.ids,
        operator.authorizer.now_for,
    )
    app: Any = operator.client.app
    app.state.services = replace(app.state.services, usage_feed=feed)
    yield operator, feed
    operator.close()


def opt_in(op: StreamOperator, *codes: str) -> None:
    for code in codes:
        cmd = metrics.CreateMetric(code, code, "sum", "second")
        op.tx(lambda u, c, cmd=cmd: metrics.create_metric(u, c, cmd))


def stored_usage(op: Operator) -> list[tuple[str, str, int]]:
    def work(uow: UnitOfWork, ctx: Any) -> list[tuple[str, str, int]]:
        batches = [e.subject_id for e in uow.log.iter_entries(ctx.tenant_id, 1000)]
        events = [e for b in batches for e in uow.usage.events_of_batch(ctx.tenant_id, b)]
        return sorted((e.event_id, e.metric_code, e.value_scaled // 1_000_000) for e in events)

    return op.read(work)


def test_nginx_rtmp_sessions_become_viewing_seconds(
    streaming: tuple[StreamOperator, UsageFeed],
) -> None:
    op, feed = streaming
    opt_in(op, "viewing_seconds")
    viewer = op.viewer()
    assert (
        op.client.post(f"{RTMP}/play", data={**rtmp_fields(viewer), "call": "play"}).status_code
        == 200
    )
    for played in ("30", "130", "130"):  # the last one a retried callback
        update = {**rtmp_fields(viewer), "call": "update_play", "time": played}
        assert op.client.post(f"{RTMP}/update", data=update).status_code == 200
    assert feed.flush() == 2  # two whole minutes, nothing written before the flush
    done = {**rtmp_fields(viewer), "call": "play_done"}
    assert op.client.post(f"{RTMP}/done", data=done).status_code == 200
    assert feed.flush() == 1  # the last 10 seconds
    events = stored_usage(op)
    assert [value for _, _, value in events] == [60, 60, 10]
    assert {metric for _, metric, _ in events} == {"viewing_seconds"}
    assert len({event_id for event_id, _, _ in events}) == 3
    assert feed.flush() == 0
    audit = op.read(lambda u, c: verify_log(u, c.tenant_id))
    assert audit.consistent, audit.problems


def test_flussonic_updates_meter_time_and_bytes(
    streaming: tuple[StreamOperator, UsageFeed],
) -> None:
    op, feed = streaming
    opt_in(op, "viewing_seconds", "delivered_bytes")
    viewer = op.viewer()
    base = {
        "name": "news-1",
        "ip": "203.0.113.9",
        "session_id": "6217fd62-16da-4206-9da9-0173d7552a14",
    }
    base["qs"] = f"username={viewer.username}&password={viewer.password}"
    assert (
        op.client.get(FLUSSONIC, params={**base, "request_type": "new_session"}).status_code == 200
    )
    for duration, sent in (("0", "0"), ("65", "5000000"), ("125", "9000000")):
        update = {**base, "request_type": "update_session", "duration": duration, "bytes": sent}
        assert op.client.get(FLUSSONIC, params=update).status_code == 200
    assert feed.flush() == 4
    by_metric: dict[str, int] = {}
    for _, metric, value in stored_usage(op):
        by_metric[metric] = by_metric.get(metric, 0) + value
    assert by_metric == {"viewing_seconds": 120, "delivered_bytes": 9_000_000}


def test_a_tenant_without_the_metrics_gets_no_usage(
    streaming: tuple[StreamOperator, UsageFeed],
) -> None:
    op, feed = streaming
    viewer = op.viewer()
    assert (
        op.client.post(f"{RTMP}/play", data={**rtmp_fields(viewer), "call": "play"}).status_code
        == 200
    )
    update = {**rtmp_fields(viewer), "call": "update_play", "time": "600"}
    assert op.client.post(f"{RTMP}/update", data=update).status_code == 200
    assert feed.flush() == 0
    assert op.read(lambda u, c: u.usage.count_events(c.tenant_id)) == 0


def rtmp_fields(viewer: Viewer) -> dict[str, str]:
    return {
        "addr": "203.0.113.9",
        "clientid": "7",
        "app": "live",
        "name": "news-1",
        "username": viewer.username,
        "password": viewer.password,
    }
