"""Tenant isolation and authentication over HTTP, on SQLite and PostgreSQL.

Tenant A builds one object of every kind; tenant B (with objects of its own) then aims every
route that takes an id at A's ids. The table of id routes is checked against the server's
OpenAPI document, so a new id route fails ``test_every_id_route_is_in_the_table`` until it
is added here.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from api_client import LIST_PATHS, ApiClient, Tenant, assert_problem, money
from server_harness import E2EServer

PUBLIC_PATHS = {"/healthz"}
# Paths answered without a key that the OpenAPI document does not list.
UNDOCUMENTED_PUBLIC = ("/openapi.json", "/docs", "/metrics")


def terms_body(price: str = "10.00") -> dict[str, Any]:
    return {"name": "Basic", "interval": {"unit": "month"}, "prices": [money(price)]}


@dataclass
class Objects:
    """One tenant's objects, by the path parameter that names each kind."""

    tenant: Tenant
    api: ApiClient
    ids: dict[str, str]  # the object each path parameter names
    filters: dict[str, str]  # the object each list filter names (one with related objects)
    email: str
    only_code: str  # a channel and package code no other tenant has
    extra: tuple[str, ...]

    def all_ids(self) -> set[str]:
        return set(self.ids.values()) | set(self.filters.values()) | set(self.extra)


def build_objects(server: E2EServer, tenant: Tenant, name: str) -> Objects:
    api = server.client(tenant)
    api.action("/v1/test-clock/freeze", {"at": "2030-04-01T08:00:00Z"})
    channel = api.create("/v1/channels", {"code": "news", "name": "News", "number": 1})
    only_code = f"{name}-only"
    api.create("/v1/channels", {"code": only_code, "name": "Own", "number": 2})
    api.create("/v1/packages", {"code": only_code, "name": "Own", "channel_codes": [only_code]})
    package = api.create(
        "/v1/packages", {"code": "basic", "name": "Basic", "channel_codes": ["news"]}
    )
    plan = api.create(
        "/v1/plans",
        {"code": "basic", "name": "Basic", "terms": {**terms_body(), "package_codes": ["basic"]}},
    )
    api.create("/v1/plans", {"code": "premium", "name": "Premium", "terms": terms_body("20.00")})
    email = f"{name}@example.com"
    customer = api.create("/v1/customers", {"name": name, "email": email, "currency": "EUR"})
    wallet = api.create(
        f"/v1/customers/{customer['id']}/wallet/top-ups", {"amount": money("25.00")}
    )
    subscription = api.create(
        "/v1/subscriptions", {"customer_id": customer["id"], "plan_id": plan["id"]}
    )
    hold = api.create(
        f"/v1/customers/{customer['id']}/wallet/holds",
        {"amount": money("1.00"), "purpose": "usage"},
    )
    cycle_invoice = subscription["latest_invoice"]
    payment = api.action(
        f"/v1/invoices/{cycle_invoice['id']}/pay",
        {"method": "bank_transfer", "amount": money("4.00")},
    )
    draft = api.create(
        "/v1/invoices",
        {
            "customer_id": customer["id"],
            "currency": "EUR",
            "lines": [{"description": "Installation", "unit_amount": money("30.00")}],
        },
    )
    run = api.create("/v1/billing-runs")
    key = api.create("/v1/api-keys", {"name": f"{name} reporting", "scope": "read_only"})
    line = api.create(f"/v1/subscriptions/{subscription['id']}/lines", {"label": name})
    target, delivery = provisioning_objects(server, api)
    metric = api.create("/v1/metrics", {"code": "plays", "name": "Plays", "aggregation": "count"})
    event = api.create(
        "/v1/ppv/events",
        {
            "code": "final",
            "name": "Final",
            "channel_id": channel["id"],
            "starts_at": "2030-04-02T20:00:00Z",
            "ends_at": "2030-04-02T22:00:00Z",
            "prices": [money("15.00")],
        },
    )
    purchase = api.create(
        f"/v1/ppv/events/{event['id']}/purchases",
        {
            "subscription_id": subscription["id"],
            "payment": {"method": "manual", "reference": f"{name}-cash"},
        },
    )
    item = api.create(
        "/v1/vod/items",
        {
            "code": "movie",
            "name": "Movie",
            "source_url": "http://origin.example.test/movie.mp4",
            "rental": {"prices": [money("3.99")], "hours": 48},
        },
    )
    rental = api.create(
        f"/v1/vod/items/{item['id']}/rentals",
        {
            "subscription_id": subscription["id"],
            "payment": {"method": "manual", "reference": f"{name}-rental"},
        },
    )
    ids = {
        "channel_id": channel["id"],
        "package_id": package["id"],
        "plan_id": plan["id"],
        "terms_id": plan["versions"][0]["id"],
        "customer_id": customer["id"],
        "subscription_id": subscription["id"],
        "invoice_id": draft["id"],
        "payment_id": payment["id"],
        "run_id": run["id"],
        "key_id": key["id"],
        "credential_id": line["id"],
        "target_id": target["id"],
        "delivery_id": delivery["id"],
        "metric_id": metric["id"],
        "event_id": event["id"],
        "purchase_id": purchase["id"],
        "hold_id": hold["id"],
        "item_id": item["id"],
        "rental_id": rental["id"],
    }
    filters = {
        "customer_id": customer["id"],
        "subscription_id": subscription["id"],
        "invoice_id": cycle_invoice["id"],
    }
    return Objects(tenant, api, ids, filters, email, only_code, extra=(wallet["id"],))


def provisioning_objects(server: E2EServer, api: ApiClient) -> tuple[Any, Any]:
    """A webhook target replaying the tenant's history to a path of this server, which
    answers 404 (so each event ends ``rejected``); waited for, so nothing changes later."""
    target = api.create(
        "/v1/provisioning/targets",
        {
            "kind": "webhook",
            "name": "sink",
            "url": f"{server.base_url}/hooks/sink",
            "from_beginning": True,
        },
    )
    deadline = time.monotonic() + 60
    while True:
        followed = api.read(f"/v1/provisioning/targets/{target['id']}")["cursor"] > 0
        deliveries = api.list_all("/v1/provisioning/deliveries", target_id=target["id"])
        if followed and deliveries and {d["status"] for d in deliveries} == {"rejected"}:
            return target, deliveries[0]
        assert time.monotonic() < deadline, deliveries
        time.sleep(0.2)


@pytest.fixture(scope="module")
def tenants(e2e_server: E2EServer) -> tuple[Objects, Objects]:
    a = build_objects(e2e_server, e2e_server.fresh_tenant(), "alice")
    b = build_objects(e2e_server, e2e_server.fresh_tenant(), "bob")
    return a, b


@pytest.fixture(scope="module")
def snapshot_before(tenants: tuple[Objects, Objects]) -> dict[str, Any]:
    return snapshot(tenants[0])


@pytest.fixture(scope="module")
def openapi(e2e_server: E2EServer) -> dict[str, Any]:
    document: dict[str, Any] = e2e_server.client(None).read("/openapi.json")
    return document


def operations(document: dict[str, Any]) -> list[tuple[str, str]]:
    return sorted(
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    )


# --------------------------------------------------------------------------- the id routes

Body = Callable[[Objects], Any] | None

# Every route with an id in its path, with a body that would be valid for B's own object, so
# that only the foreign id can make it fail. The code is the not-found code of the route's
# resource.
ID_ROUTES: dict[tuple[str, str], Body] = {
    ("DELETE", "/v1/api-keys/{key_id}"): None,
    ("GET", "/v1/channels/{channel_id}"): None,
    ("GET", "/v1/packages/{package_id}"): None,
    ("GET", "/v1/plans/{plan_id}"): None,
    ("POST", "/v1/plans/{plan_id}/versions"): lambda b: terms_body("11.00"),
    ("GET", "/v1/terms/{terms_id}"): None,
    ("GET", "/v1/customers/{customer_id}"): None,
    ("PATCH", "/v1/customers/{customer_id}"): lambda b: {"name": "Mallory", "status": "closed"},
    ("GET", "/v1/customers/{customer_id}/wallets"): None,
    ("POST", "/v1/customers/{customer_id}/wallet/top-ups"): lambda b: {"amount": money("1.00")},
    ("POST", "/v1/customers/{customer_id}/wallet/debits"): lambda b: {
        "amount": money("1.00"),
        "description": "drain",
    },
    ("GET", "/v1/subscriptions/{subscription_id}"): None,
    ("POST", "/v1/subscriptions/{subscription_id}/change-plan"): lambda b: {
        "plan_id": b.ids["plan_id"],
        "proration": "none",
    },
    ("POST", "/v1/subscriptions/{subscription_id}/addons"): lambda b: {
        "addons": [],
        "proration": "none",
    },
    ("POST", "/v1/subscriptions/{subscription_id}/pause"): None,
    ("POST", "/v1/subscriptions/{subscription_id}/resume"): None,
    ("POST", "/v1/subscriptions/{subscription_id}/cancel"): lambda b: {"at_period_end": False},
    ("GET", "/v1/invoices/{invoice_id}"): None,
    ("POST", "/v1/invoices/{invoice_id}/finalize"): lambda b: {"due_days": 0},
    ("POST", "/v1/invoices/{invoice_id}/void"): None,
    ("POST", "/v1/invoices/{invoice_id}/mark-uncollectible"): None,
    ("POST", "/v1/invoices/{invoice_id}/pay"): lambda b: {"method": "manual"},
    ("POST", "/v1/payments/{payment_id}/refresh"): None,
    ("GET", "/v1/payments/{payment_id}"): None,
    ("GET", "/v1/billing-runs/{run_id}"): None,
    ("GET", "/v1/invoices/{invoice_id}/receipt"): None,
    ("GET", "/v1/channels/{channel_id}/programmes"): None,
    ("POST", "/v1/subscriptions/{subscription_id}/lines"): lambda b: {},
    ("POST", "/v1/subscriptions/{subscription_id}/tokens"): lambda b: {},
    ("POST", "/v1/subscriptions/{subscription_id}/devices"): lambda b: {"mac": "00:1A:79:00:00:09"},
    ("POST", "/v1/subscriptions/{subscription_id}/devices/reset"): None,
    ("GET", "/v1/subscriptions/{subscription_id}/credentials"): None,
    ("GET", "/v1/credentials/{credential_id}"): None,
    ("GET", "/v1/credentials/{credential_id}/secret"): None,
    ("POST", "/v1/credentials/{credential_id}/reset-secret"): None,
    ("POST", "/v1/credentials/{credential_id}/disable"): None,
    ("POST", "/v1/credentials/{credential_id}/enable"): None,
    ("POST", "/v1/credentials/{credential_id}/remove"): None,
    ("GET", "/v1/provisioning/targets/{target_id}"): None,
    ("PATCH", "/v1/provisioning/targets/{target_id}"): lambda b: {"name": "Mallory"},
    ("POST", "/v1/provisioning/targets/{target_id}/disable"): None,
    ("POST", "/v1/provisioning/targets/{target_id}/enable"): None,
    ("GET", "/v1/provisioning/deliveries/{delivery_id}"): None,
    ("POST", "/v1/provisioning/deliveries/{delivery_id}/replay"): None,
    ("GET", "/v1/metrics/{metric_id}"): None,
    ("POST", "/v1/metrics/{metric_id}/archive"): None,
    ("GET", "/v1/ppv/events/{event_id}"): None,
    ("POST", "/v1/ppv/events/{event_id}/cancel"): None,
    ("POST", "/v1/ppv/events/{event_id}/purchases"): lambda b: {
        "subscription_id": b.ids["subscription_id"],
        "payment": {"method": "manual", "reference": "mallory"},
    },
    ("GET", "/v1/ppv/events/{event_id}/purchases"): None,
    ("GET", "/v1/subscriptions/{subscription_id}/purchases"): None,
    ("GET", "/v1/ppv/purchases/{purchase_id}"): None,
    ("POST", "/v1/ppv/purchases/{purchase_id}/refund"): None,
    ("GET", "/v1/vod/items/{item_id}"): None,
    ("POST", "/v1/vod/items/{item_id}/rentals"): lambda b: {
        "subscription_id": b.ids["subscription_id"],
        "payment": {"method": "manual", "reference": "mallory"},
    },
    ("GET", "/v1/subscriptions/{subscription_id}/rentals"): None,
    ("GET", "/v1/vod/rentals/{rental_id}"): None,
    ("POST", "/v1/vod/rentals/{rental_id}/refund"): None,
    ("POST", "/v1/customers/{customer_id}/wallet/holds"): lambda b: {
        "amount": money("1.00"),
        "purpose": "usage",
    },
    ("GET", "/v1/customers/{customer_id}/wallet/holds"): None,
    ("GET", "/v1/wallet-holds/{hold_id}"): None,
    ("POST", "/v1/wallet-holds/{hold_id}/post"): None,
    ("POST", "/v1/wallet-holds/{hold_id}/void"): None,
    ("GET", "/v1/subscriptions/{subscription_id}/upcoming-invoice"): None,
    ("PATCH", "/v1/customers/{customer_id}/wallets/{currency}"): lambda b: {
        "low_balance_threshold": "2.00"
    },
}
# GET routes that refuse the sample object for its state (the sample invoice is a draft,
# which charged nothing, so it has no receipt).
OWN_REFUSALS = {"/v1/invoices/{invoice_id}/receipt": (409, "receipt.not_logged")}
# Reads only an admin key may make (a line's password): a read-only key is refused first.
ADMIN_READS = {"/v1/credentials/{credential_id}/secret"}
# Business routes for machines (usage feeds): admin and integration keys, not read-only ones.
MACHINE_ROUTES = {("POST", "/v1/usage/events")}
STREAM_SERVER_ROUTES = {
    ("GET", "/integrations/nginx-rtmp/play"),
    ("POST", "/integrations/nginx-rtmp/play"),
    ("GET", "/integrations/nginx-rtmp/update"),
    ("POST", "/integrations/nginx-rtmp/update"),
    ("GET", "/integrations/nginx-rtmp/done"),
    ("POST", "/integrations/nginx-rtmp/done"),
    ("GET", "/integrations/nginx/auth"),
    ("GET", "/integrations/flussonic/auth"),
    ("POST", "/integrations/flussonic/auth"),
    ("POST", "/integrations/mediamtx/auth"),
    ("POST", "/integrations/mediamtx/unread"),
    ("POST", "/integrations/srs/hooks"),
    ("GET", "/integrations/ministra/oss"),
    ("GET", "/integrations/ministra/subscribe"),
    ("GET", "/integrations/ministra/unsubscribe"),
    ("GET", "/integrations/secure-link"),
}
# The transparency logs are public by design (c2sp.org/tlog-tiles): anyone may read any
# tenant's checkpoint and tiles, which carry commitments only, never records.
PUBLIC_ROUTES = {
    ("GET", "/ledger/{tenant_id}/checkpoint"),
    ("GET", "/ledger/{tenant_id}/tile/{path}"),
    # The Xtream player endpoints: the subscriber's line (or play token) is the credential.
    ("GET", "/player_api.php"),
    ("GET", "/get.php"),
    ("GET", "/xmltv.php"),
    ("GET", "/live/{username}/{password}/{stream}"),
    ("GET", "/movie/{username}/{password}/{stream}"),
    ("GET", "/play/{token}/{stream}"),
    ("GET", "/timeshift/{username}/{password}/{duration}/{start}/{stream}"),
    # The subscriber's own account: the line's username and password (HTTP Basic).
    ("GET", "/account"),
    ("POST", "/account/devices/reset"),
    # Streaming servers' and middleware's callbacks: the viewer's presented credentials (or
    # set-top box) are what is checked, in each protocol's own form (docs/integrations.md).
    *STREAM_SERVER_ROUTES,
}
NOT_FOUND_CODES = {
    "key_id": "api_key.not_found",
    "channel_id": "channel.not_found",
    "package_id": "package.not_found",
    "plan_id": "plan.not_found",
    "terms_id": "terms.not_found",
    "customer_id": "customer.not_found",
    "subscription_id": "subscription.not_found",
    "invoice_id": "invoice.not_found",
    "payment_id": "payment.not_found",
    "run_id": "billing_run.not_found",
    "credential_id": "credential.not_found",
    "target_id": "provisioning_target.not_found",
    "delivery_id": "provisioning_delivery.not_found",
    "metric_id": "metric.not_found",
    "event_id": "ppv_event.not_found",
    "purchase_id": "ppv_purchase.not_found",
    "hold_id": "wallet_hold.not_found",
    "item_id": "vod_item.not_found",
    "rental_id": "vod_rental.not_found",
}
# Path parameters that are values, not ids: the same for every tenant (the id before them is
# what must not be found).
VALUE_PARAMS = {"currency": "EUR"}
PARAM = re.compile(r"{(\w+)}")


def fill(path: str, ids: dict[str, str]) -> str:
    return PARAM.sub(lambda m: {**VALUE_PARAMS, **ids}[m.group(1)], path)


def snapshot(owner: Objects) -> dict[str, Any]:
    """Everything the owner can read about its objects."""
    api, ids = owner.api, owner.ids
    lists = list(LIST_PATHS)
    state: dict[str, Any] = {path: api.list_all(path) for path in lists}
    for method, path in ID_ROUTES:
        if method == "GET":
            response = api.request(method, fill(path, ids))
            state[path] = (response.status_code, response.json())
    state["tenant"] = api.read("/v1/tenant")
    state["clock"] = api.read("/v1/test-clock")
    return state


def test_every_id_route_is_in_the_table(openapi: dict[str, Any]) -> None:
    documented = {(m, p) for m, p in operations(openapi) if "{" in p} - PUBLIC_ROUTES
    assert documented - ID_ROUTES.keys() == set(), "new id routes: add them to ID_ROUTES"
    assert ID_ROUTES.keys() - documented == set(), "ID_ROUTES lists routes that are gone"
    params = {name for _, path in documented for name in PARAM.findall(path)}
    assert params - VALUE_PARAMS.keys() <= NOT_FOUND_CODES.keys(), "map new {params}"


@pytest.mark.parametrize(("method", "path"), sorted(ID_ROUTES))
def test_foreign_ids_are_not_found(
    tenants: tuple[Objects, Objects], snapshot_before: dict[str, Any], method: str, path: str
) -> None:
    a, b = tenants
    make_body = ID_ROUTES[(method, path)]
    body = make_body(b) if make_body else None
    # The route works on B's own object (so a 404 below is about the id, not the request)...
    if method == "GET":
        own = b.api.request(method, fill(path, b.ids))
        refusal = OWN_REFUSALS.get(path)
        if refusal:  # a refusal about the object's state, which proves the id was found
            assert_problem(own, *refusal)
        else:
            assert own.status_code == 200, own.text
    # ...and answers 404 for A's, to B's admin key and (for reads) to B's read-only key.
    callers = [b.api]
    if method == "GET" and path not in ADMIN_READS:
        callers.append(ApiClient(b.api.http, b.tenant.keys["read_only"]))
    last_param = [p for p in PARAM.findall(path) if p not in VALUE_PARAMS][-1]
    for caller in callers:
        response = caller.request(method, fill(path, a.ids), json=body)
        assert not response.is_success
        problem = assert_problem(response, 404, NOT_FOUND_CODES[last_param])
        assert a.ids[last_param] in problem["detail"]  # names the id it was asked for


def test_foreign_ids_change_nothing(
    tenants: tuple[Objects, Objects], snapshot_before: dict[str, Any]
) -> None:
    """After every attack above, A reads exactly what it read before."""
    a, _ = tenants
    assert snapshot(a) == snapshot_before


def test_foreign_ids_in_bodies_are_not_found(tenants: tuple[Objects, Objects]) -> None:
    a, b = tenants
    before = snapshot(a)
    b_counts = {p: b.api.count(p) for p in ("/v1/subscriptions", "/v1/invoices", "/v1/payments")}
    attempts = [
        (
            "/v1/subscriptions",
            {"customer_id": a.ids["customer_id"], "plan_id": b.ids["plan_id"]},
            "customer.not_found",
        ),
        (
            "/v1/subscriptions",
            {"customer_id": b.ids["customer_id"], "plan_id": a.ids["plan_id"]},
            "plan.not_found",
        ),
        (
            f"/v1/subscriptions/{b.ids['subscription_id']}/change-plan",
            {"plan_id": a.ids["plan_id"], "proration": "prorate_now"},
            "plan.not_found",
        ),
        (
            "/v1/invoices",
            {
                "customer_id": a.ids["customer_id"],
                "currency": "EUR",
                "lines": [{"description": "x", "unit_amount": money("1.00")}],
            },
            "customer.not_found",
        ),
        (
            "/v1/payments",
            {"customer_id": a.ids["customer_id"], "amount": money("1.00"), "method": "manual"},
            "customer.not_found",
        ),
        (
            "/v1/payments",
            {
                "customer_id": b.ids["customer_id"],
                "amount": money("1.00"),
                "method": "manual",
                "invoice_id": a.ids["invoice_id"],
            },
            "invoice.not_found",
        ),
    ]
    for path, body, code in attempts:
        assert_problem(b.api.post(path, body), 404, code)
    # Codes are per tenant: B cannot build on A's channels or packages.
    assert_problem(
        b.api.post("/v1/packages", {"code": "x", "name": "X", "channel_codes": [a.only_code]}),
        422,
        "package.unknown_channels",
    )
    terms = {**terms_body(), "package_codes": [a.only_code]}
    assert_problem(
        b.api.post("/v1/plans", {"code": "x", "name": "X", "terms": terms}),
        422,
        "terms.unknown_packages",
    )
    # ...while the same codes are free for B to use for its own objects.
    assert_problem(
        b.api.post("/v1/channels", {"code": "news", "name": "News", "number": 1}),
        409,
        "channel.duplicate_code",
    )
    assert snapshot(a) == before
    assert {p: b.api.count(p) for p in b_counts} == b_counts


def test_lists_never_show_another_tenants_objects(
    tenants: tuple[Objects, Objects], openapi: dict[str, Any]
) -> None:
    a, b = tenants
    foreign = a.all_ids()
    id_filters = {"customer_id", "subscription_id", "invoice_id"}
    checked = 0
    for method, path in operations(openapi):
        if method != "GET" or "{" in path or not path.startswith("/v1/"):
            continue
        page = b.api.read(path)
        if page.get("object") != "list":
            continue
        checked += 1
        own = {item["id"] for item in b.api.list_all(path)}
        assert own, f"B has objects in {path}"
        assert own.isdisjoint(foreign), path
        parameters = {p["name"] for p in openapi["paths"][path]["get"].get("parameters", [])}
        for name in sorted(parameters & id_filters):
            filtered = b.api.read(path, **{name: a.filters[name]})
            assert (filtered["data"], filtered["has_more"]) == ([], False), (path, name)
            mine = b.api.read(path, **{name: b.filters[name]})
            assert mine["data"], (path, name)
        if "email" in parameters:
            assert b.api.read(path, email=a.email)["data"] == []
            assert len(b.api.read(path, email=b.email)["data"]) == 1
        # A's id as a cursor neither errors nor leaks: B just gets its own ids after it.
        after = b.api.read(path, starting_after=a.ids["customer_id"], limit=100)
        assert {i["id"] for i in after["data"]} <= own
    assert checked == 14  # api-keys, channels, packages, plans, customers, subscriptions,
    # invoices, payments, billing-runs, provisioning targets and deliveries, metrics, PPV events,
    # VOD items


def test_tenant_and_clock_are_per_tenant(
    e2e_server: E2EServer, tenants: tuple[Objects, Objects]
) -> None:
    a, b = tenants
    assert a.api.read("/v1/tenant")["id"] == a.tenant.id
    assert b.api.read("/v1/tenant")["id"] == b.tenant.id
    other = e2e_server.client(e2e_server.fresh_tenant())
    assert other.read("/v1/test-clock")["frozen"] is False
    a.api.action("/v1/test-clock/advance", {"to": "2030-04-02T08:00:00Z", "run_billing": False})
    assert b.api.read("/v1/test-clock")["now"] == "2030-04-01T08:00:00Z"
    assert other.read("/v1/test-clock")["frozen"] is False
    # A's keys do not work as B's, and revoking a key is only possible in its own tenant.
    assert a.tenant.keys["admin"] != b.tenant.keys["admin"]
    assert {k["id"] for k in b.api.list_all("/v1/api-keys")}.isdisjoint(
        {k["id"] for k in a.api.list_all("/v1/api-keys")}
    )


# --------------------------------------------------------------------------- authentication


def sample_path(path: str) -> str:
    return PARAM.sub("x_0000", path)


def test_stream_server_callbacks_answer_anonymous_callers_in_their_own_forms(
    e2e_server: E2EServer,
) -> None:
    """No API key is asked for: a request without credentials gets the protocol's refusal."""
    anonymous = e2e_server.client(None)
    forms = [
        ("POST", "/integrations/nginx-rtmp/play", 403),
        ("GET", "/integrations/nginx-rtmp/update", 403),
        ("POST", "/integrations/nginx-rtmp/done", 200),
        ("GET", "/integrations/nginx/auth", 403),
        ("GET", "/integrations/flussonic/auth", 403),
        ("POST", "/integrations/mediamtx/auth", 403),
        ("POST", "/integrations/srs/hooks", 403),
    ]
    for method, path, status in forms:
        response = anonymous.request(method, path)
        assert response.status_code == status, (path, response.text)
        assert "www-authenticate" not in response.headers
    envelope = anonymous.get("/integrations/ministra/oss?mac=00:1A:79:00:00:09").json()
    assert envelope == {"status": "ERROR", "error": "Unknown device"}


def test_only_health_and_the_public_logs_are_public(
    e2e_server: E2EServer, openapi: dict[str, Any], tenants: tuple[Objects, Objects]
) -> None:
    paths = set(openapi["paths"])
    public_logs = {p for _, p in PUBLIC_ROUTES}
    assert {p for p in paths if not p.startswith("/v1/")} == PUBLIC_PATHS | public_logs
    anonymous = e2e_server.client(None)
    for path in sorted(PUBLIC_PATHS) + list(UNDOCUMENTED_PUBLIC):
        assert anonymous.get(path).status_code == 200, path
    a, _ = tenants
    a.api.read(f"/v1/invoices/{a.filters['invoice_id']}/receipt")  # signs a checkpoint
    checkpoint = anonymous.get(f"/ledger/{a.tenant.id}/checkpoint")
    assert checkpoint.status_code == 200
    assert checkpoint.text.startswith(f"iptv-billing.localhost/log/{a.tenant.id}\n")


def test_public_metrics_name_routes_not_objects(
    e2e_server: E2EServer, tenants: tuple[Objects, Objects]
) -> None:
    a, b = tenants
    a.api.read(f"/v1/customers/{a.ids['customer_id']}")
    metrics = e2e_server.client(None).get("/metrics").text
    assert 'route="/v1/customers/{customer_id}"' in metrics
    for secret in (a.all_ids() | b.all_ids()) | {a.tenant.id, b.tenant.id, a.email}:
        assert secret not in metrics


def test_every_v1_route_requires_a_key(e2e_server: E2EServer, openapi: dict[str, Any]) -> None:
    anonymous = e2e_server.client(None)
    routes = [(m, p) for m, p in operations(openapi) if p.startswith("/v1/")]
    assert len(routes) > 40
    for method, path in routes:
        for headers, code in (
            ({}, "auth.missing_key"),
            ({"Authorization": "Bearer ib_live_not-a-real-key"}, "auth.invalid_key"),
            ({"Authorization": "Basic YWRtaW46YWRtaW4="}, "auth.invalid_key"),
            ({"X-API-Key": "ib_live_not-a-real-key"}, "auth.invalid_key"),
        ):
            response = anonymous.request(method, sample_path(path), headers=headers)
            problem = assert_problem(response, 401, code)
            assert response.headers["www-authenticate"] == "Bearer", (method, path)
            assert "secret" not in problem


def test_x_api_key_header_is_accepted(e2e_server: E2EServer, tenant: Tenant) -> None:
    http = e2e_server.client(None).http
    response = http.get("/v1/tenant", headers={"X-API-Key": tenant.keys["read_only"]})
    assert response.status_code == 200
    assert response.json()["id"] == tenant.id


def test_read_only_key_cannot_write(
    e2e_server: E2EServer, tenants: tuple[Objects, Objects], openapi: dict[str, Any]
) -> None:
    a, _ = tenants
    before = snapshot(a)
    reader = e2e_server.client(a.tenant, "read_only")
    writes = [(m, p) for m, p in operations(openapi) if p.startswith("/v1/") and m != "GET"]
    for method, path in writes:
        make_body = ID_ROUTES.get((method, path))
        response = reader.request(method, fill(path, a.ids), json=make_body(a) if make_body else {})
        problem = assert_problem(response, 403, "auth.insufficient_scope")
        needed = "integration" if (method, path) in MACHINE_ROUTES else "admin"
        assert problem["details"] == {"scope": "read_only", "needed": needed}
    for method, path in operations(openapi):
        if method == "GET" and path.startswith("/v1/"):
            response = reader.request(method, fill(path, a.ids))
            if path in ADMIN_READS:
                assert_problem(response, 403, "auth.insufficient_scope")
                continue
            expected = OWN_REFUSALS.get(path, (200,))[0]
            assert response.status_code == expected, path
    assert snapshot(a) == before


def test_integration_key_has_no_business_routes_yet(
    e2e_server: E2EServer, tenants: tuple[Objects, Objects], openapi: dict[str, Any]
) -> None:
    """Integration keys are for machine endpoints (stream authorization, planned); none of
    the milestone-1 routes admit them."""
    a, _ = tenants
    machine = e2e_server.client(a.tenant, "integration")
    for method, path in operations(openapi):
        if path.startswith("/v1/") and (method, path) not in MACHINE_ROUTES:
            response = machine.request(method, fill(path, a.ids))
            assert_problem(response, 403, "auth.insufficient_scope")
    # Usage ingestion is one: the key gets through to the body's check.
    usage = machine.request("POST", "/v1/usage/events", json={"events": []})
    assert_problem(usage, 422, "usage.empty_batch")


def test_revoked_key_stops_working(e2e_server: E2EServer, tenant: Tenant) -> None:
    admin = e2e_server.client(tenant)
    created = admin.create("/v1/api-keys", {"name": "temporary", "scope": "read_only"})
    assert created["secret"].startswith(created["prefix"])
    temporary = ApiClient(admin.http, created["secret"])
    assert temporary.get("/v1/tenant").status_code == 200
    assert admin.request("DELETE", f"/v1/api-keys/{created['id']}").status_code == 204
    assert_problem(temporary.get("/v1/tenant"), 401, "auth.invalid_key")
    assert_problem(
        admin.request("DELETE", f"/v1/api-keys/{created['id']}"), 404, "api_key.not_found"
    )
    listed = {k["id"]: k for k in admin.list_all("/v1/api-keys")}
    assert listed[created["id"]]["revoked_at"] is not None
    assert all("secret" not in k for k in listed.values())
