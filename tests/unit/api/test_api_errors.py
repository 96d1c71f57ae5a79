"""problem+json for every failure, and no 500 for bad input."""

from __future__ import annotations

from typing import Any

import pytest
from api_support import KINDS, Probe, assert_problem
from fastapi.testclient import TestClient

from fakes import SeededTenant
from iptv_billing.api.errors import MAX_BODY_BYTES

STATUS = {
    "invalid": 422,
    "not_found": 404,
    "conflict": 409,
    "payment_required": 402,
    "unauthorized": 401,
    "forbidden": 403,
    "unavailable": 503,
}


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_each_error_kind_maps_to_its_status(
    client: TestClient, acme: SeededTenant, kind: str
) -> None:
    response = client.post(f"/probe/fail/{kind}", headers=acme.auth())
    body = assert_problem(response, STATUS[kind], f"probe.{kind}")
    assert body["detail"] == f"probe failure {kind}"
    assert body["details"] == {"kind": kind}
    if kind == "unauthorized":
        assert response.headers["www-authenticate"] == "Bearer"


def test_malformed_json_is_400(client: TestClient, acme: SeededTenant) -> None:
    headers = {**acme.auth(), "content-type": "application/json"}
    response = client.post("/probe/echo", content=b'{"text": ', headers=headers)
    assert_problem(response, 400, "request.malformed_json")


def test_deeply_nested_json_is_a_4xx(client: TestClient, acme: SeededTenant) -> None:
    headers = {**acme.auth(), "content-type": "application/json"}
    response = client.post("/probe/echo", content=b"[" * 100_000, headers=headers)
    assert 400 <= response.status_code < 500


def test_validation_errors_list_loc_and_msg_but_never_the_input(
    client: TestClient, acme: SeededTenant
) -> None:
    huge = "x" * 50_000
    response = client.post("/probe/echo", json={"text": 5, huge: 1}, headers=acme.auth())
    body = assert_problem(response, 422, "request.invalid")
    assert {tuple(e["loc"][:2]) for e in body["errors"]} >= {("body", "text")}
    assert all(set(e) == {"loc", "msg", "code"} for e in body["errors"])
    assert len(response.content) < 5_000


def test_float_money_is_refused_with_its_own_code(client: TestClient, acme: SeededTenant) -> None:
    payload = {"text": "hi", "price": {"amount": 12.5, "currency": "EUR"}}
    response = client.post("/probe/echo", json=payload, headers=acme.auth())
    body = assert_problem(response, 422, "money.float_refused")
    assert "decimal string" in body["errors"][0]["msg"]


@pytest.mark.parametrize(
    ("price", "code"),
    [
        ({"amount": 12, "currency": "EUR"}, "money.amount_not_string"),
        ({"amount": "12.505", "currency": "EUR"}, "money.too_precise"),
        ({"amount": "12,50", "currency": "EUR"}, "money.invalid_amount"),
        ({"amount": "1", "currency": "ZZZ"}, "money.unknown_currency"),
        ({"amount": "1", "currency": "EUR", "minor": 100}, "request.invalid"),
    ],
)
def test_bad_money_is_422(
    client: TestClient, acme: SeededTenant, price: dict[str, Any], code: str
) -> None:
    response = client.post("/probe/echo", json={"text": "x", "price": price}, headers=acme.auth())
    assert_problem(response, 422, code)


def test_decimal_string_money_is_accepted(client: TestClient, acme: SeededTenant) -> None:
    payload = {"text": "hi", "price": {"amount": "12.5", "currency": "EUR"}}
    response = client.post("/probe/echo", json=payload, headers=acme.auth())
    assert response.status_code == 201
    assert response.json()["price"] == {"amount": "12.50", "currency": "EUR", "minor": 1250}


def test_unknown_route_and_method(client: TestClient) -> None:
    assert_problem(client.get("/nope"), 404, "route.not_found")
    response = client.delete("/healthz")
    assert_problem(response, 405, "route.method_not_allowed")
    assert "GET" in response.headers["allow"]


def test_too_large_body_is_413(client: TestClient, acme: SeededTenant, probe: Probe) -> None:
    body = b'{"text": "' + b"x" * MAX_BODY_BYTES + b'"}'
    headers = {**acme.auth(), "content-type": "application/json"}
    assert_problem(
        client.post("/probe/echo", content=body, headers=headers), 413, "request.too_large"
    )

    def chunks() -> Any:  # no Content-Length: the limit applies while streaming
        yield body[: len(body) // 2]
        yield body[len(body) // 2 :]

    streamed = client.post("/probe/echo", content=chunks(), headers=headers)
    assert_problem(streamed, 413, "request.too_large")
    assert probe.calls == 0


def test_unexpected_errors_are_500_without_internals(
    client: TestClient, acme: SeededTenant, caplog: pytest.LogCaptureFixture
) -> None:
    response = client.post("/probe/boom", headers=acme.auth())
    assert_problem(response, 500, "internal.error")
    assert "secret internals" not in response.text
    assert "secret internals" in caplog.text  # the traceback is logged
