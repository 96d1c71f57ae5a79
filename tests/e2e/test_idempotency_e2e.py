"""``Idempotency-Key`` over HTTP, on SQLite and PostgreSQL: replays, reuse, tenants,
concurrency, and money moved once."""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from api_client import ApiClient, Tenant, assert_problem, money, money_out, new_key
from server_harness import E2EServer

REPLAYED = "idempotent-replayed"


def customer_body(name: str = "Ida") -> dict[str, Any]:
    return {"name": name, "email": f"{name.lower()}@example.com", "currency": "EUR"}


def test_same_key_same_body_replays_and_creates_once(api: ApiClient) -> None:
    key = new_key()
    first = api.post("/v1/customers", customer_body(), idempotency_key=key)
    assert first.status_code == 201
    assert REPLAYED not in first.headers
    for _ in range(3):
        again = api.post("/v1/customers", customer_body(), idempotency_key=key)
        assert again.status_code == 201
        assert again.headers[REPLAYED] == "true"
        assert again.headers["content-type"] == "application/json"
        assert again.content == first.content
    # Key order and spacing do not make another request.
    reordered = json.dumps(dict(reversed(list(customer_body().items()))), indent=2).encode()
    same = api.request(
        "POST",
        "/v1/customers",
        content=reordered,
        idempotency_key=key,
        headers={"content-type": "application/json"},
    )
    assert (same.status_code, same.headers[REPLAYED]) == (201, "true")
    assert same.json() == first.json()
    assert [c["id"] for c in api.list_all("/v1/customers")] == [first.json()["id"]]


def test_requests_without_a_key_run_each_time(api: ApiClient) -> None:
    api.create("/v1/customers", customer_body())
    api.create("/v1/customers", customer_body())
    assert api.count("/v1/customers") == 2


def test_a_4xx_answer_is_replayed_too(api: ApiClient) -> None:
    key = new_key()
    bad = {**customer_body(), "email": "not-an-email"}
    first = api.post("/v1/customers", bad, idempotency_key=key)
    assert_problem(first, 422, "customer.invalid_email")
    again = api.post("/v1/customers", bad, idempotency_key=key)
    assert_problem(again, 422, "customer.invalid_email")
    assert again.headers[REPLAYED] == "true"
    assert again.content == first.content
    assert api.count("/v1/customers") == 0


def test_actions_are_replayed_not_repeated(api: ApiClient) -> None:
    api.action("/v1/test-clock/freeze", {"at": "2030-04-01T08:00:00Z"})
    plan = api.create(
        "/v1/plans",
        {
            "code": "basic",
            "name": "Basic",
            "terms": {"name": "Basic", "interval": {"unit": "month"}, "prices": [money("9.00")]},
        },
    )
    customer = api.create("/v1/customers", customer_body())
    sub = api.create("/v1/subscriptions", {"customer_id": customer["id"], "plan_id": plan["id"]})
    invoice_id = sub["latest_invoice"]["id"]
    key = new_key()
    body = {"method": "bank_transfer", "amount": money("4.00")}
    first = api.post(f"/v1/invoices/{invoice_id}/pay", body, idempotency_key=key)
    second = api.post(f"/v1/invoices/{invoice_id}/pay", body, idempotency_key=key)
    assert first.status_code == second.status_code == 200
    assert second.headers[REPLAYED] == "true"
    assert second.json() == first.json()
    assert len(api.list_all("/v1/payments", invoice_id=invoice_id)) == 1
    assert api.read(f"/v1/invoices/{invoice_id}")["amount_paid"] == money_out("4.00")

    card = {"method": "card", "payment_method": "pm_card_instant"}
    card_key = new_key()
    charged = [api.post(f"/v1/invoices/{invoice_id}/pay", card, card_key) for _ in range(2)]
    assert [r.status_code for r in charged] == [200, 200]
    assert charged[1].json() == charged[0].json()
    assert charged[0].json()["amount"] == money_out("5.00")
    assert len(api.list_all("/v1/payments", invoice_id=invoice_id)) == 2
    assert api.read(f"/v1/invoices/{invoice_id}")["status"] == "paid"


def test_same_key_other_request_is_refused(api: ApiClient) -> None:
    key = new_key()
    created = api.post("/v1/customers", customer_body("Una"), idempotency_key=key)
    assert created.status_code == 201
    other_body = api.post("/v1/customers", customer_body("Otto"), idempotency_key=key)
    assert_problem(other_body, 409, "idempotency.key_reused")
    other_path = api.post(
        "/v1/channels", {"code": "news", "name": "News", "number": 1}, idempotency_key=key
    )
    assert_problem(other_path, 409, "idempotency.key_reused")
    assert [c["name"] for c in api.list_all("/v1/customers")] == ["Una"]
    assert api.count("/v1/channels") == 0
    # The original request still replays.
    replay = api.post("/v1/customers", customer_body("Una"), idempotency_key=key)
    assert (replay.status_code, replay.json()) == (201, created.json())


def test_keys_are_per_tenant(e2e_server: E2EServer) -> None:
    a = e2e_server.client(e2e_server.fresh_tenant())
    b = e2e_server.client(e2e_server.fresh_tenant())
    key = new_key()
    first_a = a.post("/v1/customers", customer_body(), idempotency_key=key)
    first_b = b.post("/v1/customers", customer_body(), idempotency_key=key)
    assert first_a.status_code == first_b.status_code == 201
    assert REPLAYED not in first_b.headers
    assert first_a.json()["id"] != first_b.json()["id"]
    assert [c["id"] for c in b.list_all("/v1/customers")] == [first_b.json()["id"]]
    assert [c["id"] for c in a.list_all("/v1/customers")] == [first_a.json()["id"]]
    # Each tenant now replays its own answer, even for a body the other one used.
    assert b.post("/v1/customers", customer_body(), idempotency_key=key).json() == first_b.json()
    other = b.post("/v1/customers", customer_body("Zed"), idempotency_key=key)
    assert_problem(other, 409, "idempotency.key_reused")


def test_answers_about_credentials_are_not_stored(e2e_server: E2EServer, tenant: Tenant) -> None:
    admin = e2e_server.client(tenant)
    reader = e2e_server.client(tenant, "read_only")
    stranger = ApiClient(admin.http, "ib_live_unknown")
    key = new_key()
    assert_problem(stranger.post("/v1/customers", customer_body(), key), 401, "auth.invalid_key")
    assert_problem(
        reader.post("/v1/customers", customer_body(), key), 403, "auth.insufficient_scope"
    )
    created = admin.post("/v1/customers", customer_body(), key)
    assert created.status_code == 201
    assert REPLAYED not in created.headers
    assert admin.count("/v1/customers") == 1


@pytest.mark.parametrize(
    "bad_key", ["k" * 256, "", "schlüssel", "tab\tkey"], ids=["too-long", "empty", "utf8", "tab"]
)
def test_malformed_keys_are_refused(api: ApiClient, bad_key: str) -> None:
    headers = [(name.encode(), value.encode()) for name, value in api.headers().items()]
    headers.append((b"Idempotency-Key", bad_key.encode()))  # sent as raw UTF-8 bytes
    response = api.http.post("/v1/customers", json=customer_body(), headers=headers)
    assert_problem(response, 422, "idempotency.invalid_key")
    assert api.count("/v1/customers") == 0


def test_concurrent_duplicates_create_one_object(e2e_server: E2EServer, tenant: Tenant) -> None:
    key = new_key()
    body = customer_body("Con")
    workers = 10
    barrier = threading.Barrier(workers)

    def attempt(_: int) -> httpx.Response:
        with httpx.Client(base_url=e2e_server.base_url, timeout=60, trust_env=False) as http:
            client = ApiClient(http, tenant.keys["admin"])
            barrier.wait()
            response = client.post("/v1/customers", body, idempotency_key=key)
            response.read()
            return response

    with ThreadPoolExecutor(workers) as pool:
        responses = list(pool.map(attempt, range(workers)))

    created = [r for r in responses if r.status_code == 201]
    busy = [r for r in responses if r.status_code == 409]
    assert len(created) + len(busy) == workers, [r.text for r in responses]
    assert created, "at least the first request succeeds"
    assert len({r.content for r in created}) == 1  # replays carry the very same body
    assert sum(REPLAYED not in r.headers for r in created) == 1  # one execution
    for response in busy:
        assert_problem(response, 409, "idempotency.in_progress")
    api = e2e_server.client(tenant)
    (only,) = api.list_all("/v1/customers")
    assert only == created[0].json()
    # Once settled, every retry replays.
    late = api.post("/v1/customers", body, idempotency_key=key)
    assert (late.status_code, late.headers[REPLAYED]) == (201, "true")


def test_top_up_twice_with_one_key_credits_once(api: ApiClient) -> None:
    customer = api.create("/v1/customers", customer_body("Tom"))
    path = f"/v1/customers/{customer['id']}/wallet/top-ups"
    body = {"amount": money("20.00"), "method": "bank_transfer"}
    key = new_key()
    first = api.post(path, body, idempotency_key=key)
    second = api.post(path, body, idempotency_key=key)
    assert first.status_code == second.status_code == 201
    assert second.json() == first.json()
    assert first.json()["balance"] == money_out("20.00")
    assert api.wallet_balance(customer["id"]) == money_out("20.00")
    third = api.post(path, body, idempotency_key=new_key())
    assert third.json()["balance"] == money_out("40.00")


# --------------------------------------------------------------------------- product bugs


def test_read_only_key_cannot_replay_an_admin_answer(e2e_server: E2EServer, tenant: Tenant) -> None:
    admin = e2e_server.client(tenant)
    reader = e2e_server.client(tenant, "read_only")
    key = new_key()
    body = {"name": "ops automation", "scope": "admin"}
    created = admin.post("/v1/api-keys", body, key)
    assert created.status_code == 201
    stolen = reader.post("/v1/api-keys", body, key)
    assert "secret" not in stolen.text
    assert_problem(stolen, 403, "auth.insufficient_scope")


def test_card_payment_accepts_any_valid_key(api: ApiClient) -> None:
    """Keys of up to 255 printable characters are valid; a card payment must work with one."""
    customer = api.create("/v1/customers", customer_body("Kim"))
    draft = api.create(
        "/v1/invoices",
        {
            "customer_id": customer["id"],
            "currency": "EUR",
            "lines": [{"description": "Box", "unit_amount": money("49.00")}],
        },
    )
    invoice = api.action(f"/v1/invoices/{draft['id']}/finalize")
    key = "order-" + "7" * 194  # 200 characters
    response = api.post(
        f"/v1/invoices/{invoice['id']}/pay",
        {"method": "card", "payment_method": "pm_card_instant"},
        idempotency_key=key,
    )
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "succeeded"
    assert api.read(f"/v1/invoices/{invoice['id']}")["status"] == "paid"
