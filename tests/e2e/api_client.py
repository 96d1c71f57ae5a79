"""Small helpers of the end-to-end tests: an authenticated JSON client, money and problems."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import httpx

PROBLEM_TYPE = "application/problem+json"
PROBLEM_FIELDS = {"type", "title", "status", "detail", "code", "instance"}
EXPONENTS = {"EUR": 2, "USD": 2, "JPY": 0, "BHD": 3}


@dataclass(frozen=True)
class Tenant:
    id: str
    name: str
    invoice_prefix: str
    keys: dict[str, str]  # scope -> secret


# Every collection a tenant can list: what the isolation and bad-input tests snapshot.
LIST_PATHS = (
    "/v1/channels",
    "/v1/packages",
    "/v1/plans",
    "/v1/customers",
    "/v1/subscriptions",
    "/v1/invoices",
    "/v1/payments",
    "/v1/billing-runs",
    "/v1/api-keys",
    "/v1/metrics",
    "/v1/ppv/events",
    "/v1/vod/items",
)


def money(amount: str, currency: str = "EUR") -> dict[str, str]:
    """Money as a request sends it."""
    return {"amount": amount, "currency": currency}


def money_out(amount: str, currency: str = "EUR") -> dict[str, Any]:
    """Money as every response renders it: the decimal string, the code and minor units."""
    exponent = EXPONENTS[currency]
    value = Decimal(amount)
    return {
        "amount": f"{value:.{exponent}f}",
        "currency": currency,
        "minor": int(value.scaleb(exponent)),
    }


def assert_money_shapes(value: Any, where: str = "$") -> None:
    """Every money object anywhere in ``value`` is ``{"amount", "currency", "minor"}``: a
    decimal string with the currency's number of places, and the same amount in minor units."""
    if isinstance(value, list):
        for index, item in enumerate(value):
            assert_money_shapes(item, f"{where}[{index}]")
        return
    if not isinstance(value, dict):
        return
    if "amount" in value and "currency" in value and not isinstance(value["amount"], dict):
        assert set(value) == {"amount", "currency", "minor"}, (where, value)
        amount, currency, minor = value["amount"], value["currency"], value["minor"]
        assert isinstance(amount, str), (where, value)
        assert isinstance(currency, str), (where, value)
        assert type(minor) is int, (where, value)
        places = len(amount.partition(".")[2])
        assert places == EXPONENTS.get(currency, places), (where, value)
        assert Decimal(amount).scaleb(places) == minor, (where, value)
        return
    for key, item in value.items():
        assert_money_shapes(item, f"{where}.{key}")


def new_key() -> str:
    return f"e2e-{uuid.uuid4()}"


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    """An RFC 9457 problem with ``status`` and the stable ``code``; returns its body."""
    assert response.status_code == status, (response.status_code, response.text)
    assert response.headers["content-type"] == PROBLEM_TYPE, response.headers
    body: dict[str, Any] = response.json()
    assert body.keys() >= PROBLEM_FIELDS, body
    assert body["status"] == status
    assert body["code"] == code, body
    assert body["type"].endswith("/" + code)
    assert body["instance"] == response.request.url.path
    assert isinstance(body["title"], str)
    assert isinstance(body["detail"], str)
    return body


class ApiClient:
    """One API key's view of the server; JSON in and out."""

    def __init__(self, http: httpx.Client, key: str | None) -> None:
        self.http = http
        self.key = key

    def headers(self, idempotency_key: str | None = None, **extra: str) -> dict[str, str]:
        headers = dict(extra)
        if self.key is not None:
            headers["Authorization"] = f"Bearer {self.key}"
        if idempotency_key is not None:
            headers["Idempotency-Key"] = idempotency_key
        return headers

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        content: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        return self.http.request(
            method,
            path,
            json=json,
            params=params,
            content=content,
            headers={**self.headers(idempotency_key), **(headers or {})},
        )

    def get(self, path: str, **params: Any) -> httpx.Response:
        return self.request("GET", path, params=params or None)

    def post(
        self, path: str, json: Any = None, idempotency_key: str | None = None
    ) -> httpx.Response:
        return self.request("POST", path, json=json, idempotency_key=idempotency_key)

    # -- asserting variants: the status must be the expected one; the JSON body is returned

    def ok(
        self,
        method: str,
        path: str,
        status: int = 200,
        *,
        json: Any = None,
        params: dict[str, Any] | None = None,
    ) -> Any:
        response = self.request(method, path, json=json, params=params)
        assert response.status_code == status, (method, path, response.status_code, response.text)
        assert response.headers["content-type"] == "application/json"
        body = response.json()
        assert_money_shapes(body)
        return body

    def read(self, path: str, **params: Any) -> Any:
        return self.ok("GET", path, params=params or None)

    def create(self, path: str, json: Any = None, status: int = 201) -> Any:
        return self.ok("POST", path, status, json=json)

    def action(self, path: str, json: Any = None) -> Any:
        return self.ok("POST", path, 200, json=json)

    def list_all(self, path: str, page_size: int = 100, **params: Any) -> list[dict[str, Any]]:
        """Every item of a list endpoint, following ``next_cursor``."""
        return list(self.iter_pages(path, page_size, **params))

    def iter_pages(self, path: str, page_size: int = 100, **params: Any) -> Iterator[Any]:
        cursor: str | None = None
        while True:
            query = {**params, "limit": page_size}
            if cursor is not None:
                query["starting_after"] = cursor
            page = self.read(path, **query)
            assert page["object"] == "list"
            yield from page["data"]
            if not page["has_more"]:
                assert page["next_cursor"] is None
                return
            cursor = page["next_cursor"]
            assert cursor == page["data"][-1]["id"]

    def count(self, path: str, **params: Any) -> int:
        return len(self.list_all(path, **params))

    def wallet_balance(self, customer_id: str, currency: str = "EUR") -> dict[str, Any]:
        wallets = self.read(f"/v1/customers/{customer_id}/wallets")["data"]
        for wallet in wallets:
            if wallet["balance"]["currency"] == currency:
                balance: dict[str, Any] = wallet["balance"]
                return balance
        return money_out("0", currency)
