"""Bad requests over HTTP, on SQLite and PostgreSQL: each gets the right 4xx as RFC 9457
problem+json with a stable code, and changes nothing the tenant can observe."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from api_client import LIST_PATHS, ApiClient, assert_problem, money, money_out
from server_harness import E2EServer

NOW = "2030-04-10T08:00:00Z"


@dataclass
class Shop:
    """A tenant with a little of everything, in known states."""

    api: ApiClient
    ids: dict[str, str] = field(default_factory=dict)


@pytest.fixture(scope="module")
def shop(e2e_server: E2EServer) -> Shop:
    api = e2e_server.client(e2e_server.fresh_tenant())
    api.action("/v1/test-clock/freeze", {"at": "2030-04-01T08:00:00Z"})
    api.create("/v1/channels", {"code": "news", "name": "News", "number": 1})
    plan = api.create(
        "/v1/plans",
        {
            "code": "basic",
            "name": "Basic",
            "terms": {"name": "Basic", "interval": {"unit": "month"}, "prices": [money("10.00")]},
        },
    )
    customer = api.create(
        "/v1/customers",
        {"name": "Eve", "email": "eve@example.com", "currency": "EUR"},
    )
    api.create(f"/v1/customers/{customer['id']}/wallet/top-ups", {"amount": money("50.00")})
    sub = api.create("/v1/subscriptions", {"customer_id": customer["id"], "plan_id": plan["id"]})
    paid = sub["latest_invoice"]
    api.action(f"/v1/invoices/{paid['id']}/pay", {"method": "wallet"})
    draft = api.create(
        "/v1/invoices",
        {
            "customer_id": customer["id"],
            "currency": "EUR",
            "lines": [{"description": "Installation", "unit_amount": money("30.00")}],
        },
    )
    finalized = api.create(
        "/v1/invoices",
        {
            "customer_id": customer["id"],
            "currency": "EUR",
            "lines": [{"description": "Remote", "unit_amount": money("12.00")}],
        },
    )
    api.action(f"/v1/invoices/{finalized['id']}/finalize", {"due_days": 30})
    api.action("/v1/test-clock/advance", {"to": NOW})
    ids = {
        "plan": plan["id"],
        "customer": customer["id"],
        "sub": sub["id"],
        "paid": paid["id"],
        "draft": draft["id"],
        "finalized": finalized["id"],
    }
    return Shop(api, ids)


METERED = {"name": "M", "interval": {"unit": "month"}, "prices": [money("0.00")]}
USAGE = {
    "metric": "minutes",
    "name": "Minutes",
    "aggregation": "sum",
    "prices": [{"currency": "EUR", "model": "per_unit", "unit_price": "0.01"}],
}


def observable(shop: Shop) -> dict[str, Any]:
    """What a bad request must not change."""
    api, ids = shop.api, shop.ids
    state: dict[str, Any] = {path: api.list_all(path) for path in LIST_PATHS}
    state["wallets"] = api.read(f"/v1/customers/{ids['customer']}/wallets")
    state["plan"] = api.read(f"/v1/plans/{ids['plan']}")
    state["clock"] = api.read("/v1/test-clock")
    return state


@dataclass(frozen=True)
class Bad:
    """A bad request: ``path`` may name ``{customer}``, ``{sub}``, ``{paid}``... of the shop."""

    name: str
    method: str
    path: str
    status: int
    code: str
    json: Any = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)


def top_up(amount: Any, currency: Any = "EUR", **extra: Any) -> dict[str, Any]:
    return {"amount": {"amount": amount, "currency": currency, **extra}}


TOP_UP = "/v1/customers/{customer}/wallet/top-ups"
CUSTOMER = {"name": "Ann", "email": "ann@example.com", "currency": "EUR"}
JSON = {"content-type": "application/json"}


CASES = [
    # -- not JSON at all
    Bad("malformed json", "POST", "/v1/customers", 400, "request.malformed_json",
        content=b'{"name": "Ann",', headers=JSON),
    Bad("unquoted keys", "POST", TOP_UP, 400, "request.malformed_json",
        content=b"{amount: {amount: '5.00', currency: 'EUR'}}", headers=JSON),
    Bad("invalid utf-8", "POST", "/v1/customers", 400, "request.malformed_json",
        content=b'{"name": "\xff\xfe"}', headers=JSON),
    Bad("json array body", "POST", "/v1/customers", 422, "request.invalid", json=[CUSTOMER]),
    Bad("empty body", "POST", "/v1/customers", 422, "request.invalid"),
    # -- wrong types and missing fields
    Bad("number as text", "POST", "/v1/channels", 422, "request.invalid",
        json={"code": "zdf", "name": "ZDF", "number": "two"}),
    Bad("name as number", "POST", "/v1/customers", 422, "request.invalid",
        json={**CUSTOMER, "name": 42}),
    Bad("fractional quantity", "POST", "/v1/invoices", 422, "request.invalid",
        json={"customer_id": "{customer}", "currency": "EUR",
              "lines": [{"description": "x", "unit_amount": money("1.00"), "quantity": 1.5}]}),
    Bad("missing field", "POST", "/v1/customers", 422, "request.invalid",
        json={"name": "Ann", "currency": "EUR"}),
    Bad("unknown enum", "POST", "/v1/subscriptions/{sub}/change-plan", 422, "request.invalid",
        json={"plan_id": "{plan}", "proration": "sometimes"}),
    Bad("bad channel code", "POST", "/v1/channels", 422, "request.invalid",
        json={"code": "Bad Code!", "name": "X", "number": 3}),
    Bad("invalid email", "POST", "/v1/customers", 422, "customer.invalid_email",
        json={**CUSTOMER, "email": "ann-at-example"}),
    Bad("unknown country", "POST", "/v1/customers", 422, "customer.invalid_country",
        json={**CUSTOMER, "country": "QQ"}),
    # -- money
    Bad("float money", "POST", TOP_UP, 422, "money.float_refused", json=top_up(12.5)),
    Bad("integer money", "POST", TOP_UP, 422, "money.amount_not_string", json=top_up(12)),
    Bad("boolean money", "POST", TOP_UP, 422, "money.amount_not_string", json=top_up(True)),
    Bad("unknown currency", "POST", TOP_UP, 422, "money.unknown_currency",
        json=top_up("5.00", "XYZ")),
    Bad("lowercase currency", "POST", TOP_UP, 422, "money.unknown_currency",
        json=top_up("5.00", "eur")),
    Bad("too precise", "POST", TOP_UP, 422, "money.too_precise", json=top_up("1.001")),
    Bad("too precise yen", "POST", TOP_UP, 422, "money.too_precise", json=top_up("5.5", "JPY")),
    Bad("negative", "POST", TOP_UP, 422, "wallet.invalid_amount", json=top_up("-5.00")),
    Bad("zero", "POST", TOP_UP, 422, "wallet.invalid_amount", json=top_up("0.00")),
    Bad("absurd", "POST", TOP_UP, 422, "money.invalid_amount",
        json=top_up("99999999999999999999")),
    Bad("beyond the limit", "POST", TOP_UP, 422, "money.amount_too_large",
        json=top_up("999999999999999999")),
    Bad("exponent", "POST", TOP_UP, 422, "money.invalid_amount", json=top_up("1e3")),
    Bad("nan", "POST", TOP_UP, 422, "money.invalid_amount", json=top_up("NaN")),
    Bad("money with minor", "POST", TOP_UP, 422, "request.invalid",
        json=top_up("5.00", minor=500)),
    Bad("negative payment", "POST", "/v1/payments", 422, "payment.invalid_amount",
        json={"customer_id": "{customer}", "amount": money("-5.00"), "method": "manual"}),
    Bad("payment in another currency", "POST", "/v1/payments", 422, "payment.currency_mismatch",
        json={"customer_id": "{customer}", "amount": money("5.00", "USD"), "method": "manual"}),
    Bad("float line price", "POST", "/v1/invoices", 422, "money.float_refused",
        json={"customer_id": "{customer}", "currency": "EUR",
              "lines": [{"description": "x", "unit_amount": {"amount": 0.1, "currency": "EUR"}}]}),
    Bad("float plan price", "POST", "/v1/plans", 422, "money.float_refused",
        json={"code": "float", "name": "F", "terms": {"name": "F", "interval": {"unit": "month"},
              "prices": [{"amount": 9.99, "currency": "EUR"}]}}),
    Bad("float usage price", "POST", "/v1/plans", 422, "usage.number_not_string",
        json={"code": "metered", "name": "M", "terms": {**METERED, "usage_charges": [
            {**USAGE, "prices": [{"currency": "EUR", "model": "per_unit", "unit_price": 0.01}]}]}}),
    Bad("usage of an unknown metric", "POST", "/v1/plans", 422, "terms.unknown_metric",
        json={"code": "metered", "name": "M", "terms": {**METERED, "usage_charges": [USAGE]}}),
    Bad("debit beyond the balance", "POST", "/v1/customers/{customer}/wallet/debits", 402,
        "wallet.insufficient_funds", json={"amount": money("500.00"), "description": "x"}),
    # -- unknown ids and routes
    Bad("unknown customer", "GET", "/v1/customers/cus_00000000000000000000", 404,
        "customer.not_found"),
    Bad("unknown plan", "POST", "/v1/subscriptions", 404, "plan.not_found",
        json={"customer_id": "{customer}", "plan_id": "plan_00000000000000000000"}),
    Bad("unknown invoice", "POST", "/v1/invoices/inv_00000000000000000000/pay", 404,
        "invoice.not_found", json={"method": "manual"}),
    Bad("unknown subscription", "POST", "/v1/subscriptions/sub_00000000000000000000/pause", 404,
        "subscription.not_found"),
    Bad("unknown payment", "GET", "/v1/payments/pay_00000000000000000000", 404,
        "payment.not_found"),
    Bad("unknown terms", "GET", "/v1/terms/terms_00000000000000000000", 404, "terms.not_found"),
    Bad("unknown run", "GET", "/v1/billing-runs/run_00000000000000000000", 404,
        "billing_run.not_found"),
    Bad("unknown route", "GET", "/v1/nothing-here", 404, "route.not_found"),
    Bad("id with bad characters", "GET", "/v1/customers/cus-1;drop", 422, "request.invalid"),
    Bad("overlong id", "GET", "/v1/invoices/" + "i" * 65, 422, "request.invalid"),
    Bad("method not allowed", "PUT", "/v1/customers", 405, "route.method_not_allowed",
        json=CUSTOMER),
    # -- illegal state transitions
    Bad("resume an active subscription", "POST", "/v1/subscriptions/{sub}/resume", 409,
        "subscription.illegal_transition"),
    Bad("void a paid invoice", "POST", "/v1/invoices/{paid}/void", 409,
        "invoice.illegal_transition"),
    Bad("finalize twice", "POST", "/v1/invoices/{finalized}/finalize", 409,
        "invoice.illegal_transition"),
    Bad("uncollectible draft", "POST", "/v1/invoices/{draft}/mark-uncollectible", 409,
        "invoice.illegal_transition"),
    Bad("pay a paid invoice", "POST", "/v1/invoices/{paid}/pay", 409, "invoice.nothing_due",
        json={"method": "bank_transfer", "amount": money("10.00")}),
    Bad("pay a paid invoice by card", "POST", "/v1/invoices/{paid}/pay", 409,
        "invoice.nothing_due", json={"method": "card", "payment_method": "pm_card_instant"}),
    Bad("pay a draft", "POST", "/v1/invoices/{draft}/pay", 409, "invoice.nothing_due",
        json={"method": "manual", "amount": money("30.00")}),
    Bad("pay a paid invoice, amount omitted", "POST", "/v1/invoices/{paid}/pay", 409,
        "invoice.nothing_due", json={"method": "bank_transfer"}),
    Bad("pay a draft, amount omitted", "POST", "/v1/invoices/{draft}/pay", 409,
        "invoice.nothing_due", json={"method": "manual"}),
    Bad("card without a method", "POST", "/v1/invoices/{finalized}/pay", 422,
        "payment.method_required", json={"method": "card"}),
    Bad("card numbers", "POST", "/v1/invoices/{finalized}/pay", 422, "request.invalid",
        json={"method": "card", "payment_method": "4242424242424242"}),
    Bad("same plan again", "POST", "/v1/subscriptions/{sub}/change-plan", 409,
        "subscription.same_terms", json={"plan_id": "{plan}", "proration": "prorate_now"}),
    Bad("currency the plan lacks", "POST", "/v1/subscriptions", 422,
        "terms.currency_not_offered", json={"customer_id": "{usd_customer}", "plan_id": "{plan}"}),
    Bad("duplicate channel code", "POST", "/v1/channels", 409, "channel.duplicate_code",
        json={"code": "news", "name": "News again", "number": 9}),
    Bad("invoice in another currency", "POST", "/v1/invoices", 422, "invoice.currency_mismatch",
        json={"customer_id": "{customer}", "currency": "USD",
              "lines": [{"description": "x", "unit_amount": money("1.00", "USD")}]}),
    # -- pagination and filters
    Bad("limit too large", "GET", "/v1/invoices?limit=1000", 422, "request.invalid"),
    Bad("limit zero", "GET", "/v1/invoices?limit=0", 422, "request.invalid"),
    Bad("limit negative", "GET", "/v1/customers?limit=-1", 422, "request.invalid"),
    Bad("limit not a number", "GET", "/v1/payments?limit=ten", 422, "request.invalid"),
    Bad("cursor with bad characters", "GET", "/v1/invoices?starting_after=x'--", 422,
        "request.invalid"),
    Bad("unknown status filter", "GET", "/v1/invoices?status=open", 422, "request.invalid"),
    # -- mass assignment
    Bad("tenant_id on create", "POST", "/v1/customers", 422, "request.invalid",
        json={**CUSTOMER, "tenant_id": "ten_00000000000000000000"}),
    Bad("id on create", "POST", "/v1/customers", 422, "request.invalid",
        json={**CUSTOMER, "id": "cus_mine"}),
    Bad("balance on top-up", "POST", TOP_UP, 422, "request.invalid",
        json={**top_up("1.00"), "balance": money("1000000.00")}),
    Bad("status on invoice", "POST", "/v1/invoices", 422, "request.invalid",
        json={"customer_id": "{customer}", "currency": "EUR", "status": "paid",
              "lines": [{"description": "x", "unit_amount": money("1.00")}]}),
    Bad("status on subscription", "POST", "/v1/subscriptions", 422, "request.invalid",
        json={"customer_id": "{customer}", "plan_id": "{plan}", "status": "active"}),
    Bad("currency on patch", "PATCH", "/v1/customers/{customer}", 422, "request.invalid",
        json={"currency": "USD"}),
    Bad("amount_paid on pay", "POST", "/v1/invoices/{finalized}/pay", 422, "request.invalid",
        json={"method": "manual", "amount_paid": money("12.00")}),
    Bad("version on terms", "POST", "/v1/plans/{plan}/versions", 422, "request.invalid",
        json={"name": "B", "interval": {"unit": "month"}, "prices": [money("1.00")],
              "version": 7}),
    # -- size
    Bad("oversized body", "POST", "/v1/customers", 413, "request.too_large",
        content=b'{"name": "' + b"x" * (1024 * 1024) + b'"}', headers=JSON),
    # -- the test clock
    Bad("naive freeze", "POST", "/v1/test-clock/freeze", 422, "request.invalid",
        json={"at": "2030-05-01T10:00:00"}),
    Bad("naive advance", "POST", "/v1/test-clock/advance", 422, "request.invalid",
        json={"to": "2030-05-01T10:00:00"}),
    Bad("freeze backwards", "POST", "/v1/test-clock/freeze", 409, "clock.backwards",
        json={"at": "2030-04-09T08:00:00Z"}),
    Bad("advance backwards", "POST", "/v1/test-clock/advance", 409, "clock.backwards",
        json={"to": "2030-04-01T08:00:00+00:00"}),
    Bad("advance to now", "POST", "/v1/test-clock/advance", 409, "clock.backwards",
        json={"to": "2030-04-10T10:00:00+02:00"}),
    Bad("advance too far", "POST", "/v1/test-clock/advance", 422, "clock.advance_too_far",
        json={"to": "2040-01-01T00:00:00Z"}),
    Bad("not a date", "POST", "/v1/test-clock/advance", 422, "request.invalid",
        json={"to": "next tuesday"}),
]  # fmt: skip


def resolve(value: Any, ids: dict[str, str]) -> Any:
    if isinstance(value, str):
        for name, id_ in ids.items():
            value = value.replace("{" + name + "}", id_)
        return value
    if isinstance(value, dict):
        return {k: resolve(v, ids) for k, v in value.items()}
    if isinstance(value, list):
        return [resolve(v, ids) for v in value]
    return value


@pytest.fixture(scope="module")
def usd_customer(shop: Shop) -> str:
    created = shop.api.create(
        "/v1/customers", {"name": "Sam", "email": "sam@example.com", "currency": "USD"}
    )
    shop.ids["usd_customer"] = created["id"]
    return str(created["id"])


def test_case_names_are_unique() -> None:
    names = [case.name for case in CASES]
    assert len(names) == len(set(names))


def params(cases: list[Bad]) -> list[Any]:
    return [pytest.param(case, id=case.name) for case in cases]


@pytest.mark.parametrize("case", params(CASES))
def test_bad_request(shop: Shop, usd_customer: str, case: Bad) -> None:
    before = observable(shop)
    response = shop.api.request(
        case.method,
        resolve(case.path, shop.ids),
        json=resolve(case.json, shop.ids),
        content=case.content,
        headers=case.headers,
    )
    problem = assert_problem(response, case.status, case.code)
    if case.status == 422 and case.code == "request.invalid":
        assert problem["errors"], problem  # says which field is wrong
        assert all({"loc", "msg", "code"} <= e.keys() for e in problem["errors"])
    assert len(response.content) < 20_000  # a hostile body never comes back
    assert observable(shop) == before


def test_bad_requests_with_an_idempotency_key_are_replayed_unchanged(shop: Shop) -> None:
    before = observable(shop)
    path = TOP_UP.replace("{customer}", shop.ids["customer"])
    first = shop.api.post(path, top_up(12.5), idempotency_key="bad-input-float")
    second = shop.api.post(path, top_up(12.5), idempotency_key="bad-input-float")
    assert_problem(first, 422, "money.float_refused")
    assert_problem(second, 422, "money.float_refused")
    assert second.content == first.content
    assert observable(shop) == before


def test_oversized_streamed_body(shop: Shop) -> None:
    before = observable(shop)

    def chunks() -> Iterator[bytes]:
        yield b'{"name": "'
        for _ in range(20):
            yield b"x" * 100_000
        yield b'"}'

    response = shop.api.http.post(
        "/v1/customers", content=chunks(), headers={**shop.api.headers(), **JSON}
    )
    assert_problem(response, 413, "request.too_large")
    assert observable(shop) == before


def test_top_up_past_the_largest_balance_changes_nothing(e2e_server: E2EServer) -> None:
    api = e2e_server.client(e2e_server.fresh_tenant())
    customer = api.create(
        "/v1/customers", {"name": "Rich", "email": "rich@example.com", "currency": "EUR"}
    )
    path = f"/v1/customers/{customer['id']}/wallet/top-ups"
    api.create(path, {"amount": money("9999999999999.99")})
    response = api.post(path, {"amount": money("0.02")})  # 10**15 + 1 minor units
    assert 400 <= response.status_code < 500
    wallets = api.get(f"/v1/customers/{customer['id']}/wallets")
    assert wallets.status_code == 200, wallets.text
    assert wallets.json()["data"][0]["balance"] == money_out("9999999999999.99")


def test_patch_with_null_clears_or_is_refused(e2e_server: E2EServer) -> None:
    api = e2e_server.client(e2e_server.fresh_tenant())
    customer = api.create(
        "/v1/customers",
        {
            "name": "Nia",
            "email": "nia@example.com",
            "currency": "EUR",
            "country": "AT",
            "tax_id": "ATU12345678",
        },
    )
    response = api.request(
        "PATCH", f"/v1/customers/{customer['id']}", json={"tax_id": None, "country": None}
    )
    stored = api.read(f"/v1/customers/{customer['id']}")
    if response.status_code == 200:  # merge-patch semantics: null removes the value
        assert (stored["tax_id"], stored["country"]) == (None, None)
    else:  # or null is refused, and nothing changes
        assert_problem(response, 422, response.json()["code"])
        assert (stored["tax_id"], stored["country"]) == ("ATU12345678", "AT")


def test_the_server_never_answered_500(e2e_server: E2EServer) -> None:
    assert e2e_server.unhandled_errors() == []
