"""Schemathesis against the ASGI app in-process: no operation may answer 500, and successful
answers must match the OpenAPI document.

The app runs over a SQLite file seeded with a small catalog (plans, customers, subscriptions,
invoices, a payment, a billing run), authenticated as the seeded tenant's admin. Generated
path ids are mixed with the seeded ids, and generated bodies get seeded ids and plausible
money spliced in, so that requests reach the services rather than stopping at validation.

One test per operation (from the app's own OpenAPI document), each bounded by
``MAX_EXAMPLES``; hypothesis runs derandomized, so a run is reproducible.
"""

from __future__ import annotations

import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import response_schema_conformance
from server_harness import seed_tenants

from iptv_billing.api.app import create_app
from iptv_billing.api.deps import AppServices
from iptv_billing.bootstrap import Runtime, build_app, open_runtime, provisioning_worker
from iptv_billing.config import Settings
from iptv_billing.domain.secure_links import SecureLinkSigner

MAX_EXAMPLES = 50
CHECKS = [not_a_server_error, response_schema_conformance]


def _operations() -> list[tuple[str, str]]:
    # Building the document needs no database: the routes alone describe it.
    document = create_app(AppServices(None, None, None)).openapi()  # type: ignore[arg-type]
    return [
        (method.upper(), path)
        for path, item in document["paths"].items()
        for method in item
        if method in ("get", "post", "put", "patch", "delete")
    ]


OPERATIONS = _operations()


@dataclass
class Target:
    schema: Any
    auth: str
    ids: dict[str, list[str]]
    errors: list[str] = field(default_factory=list)


class ContainedApp:
    """The app as a server runs it: an unexpected exception is logged (here: recorded) after
    the 500 went out, instead of propagating into the client."""

    def __init__(self, app: Any, errors: list[str]) -> None:
        self.app = app
        self.errors = errors

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await self.app(scope, receive, send)
        except Exception:
            self.errors.append(traceback.format_exc())


def seed(client: Any, auth: str) -> dict[str, list[str]]:
    headers = {"Authorization": auth}

    def post(path: str, body: Any = None) -> Any:
        response = client.post(path, json=body, headers=headers)
        assert response.status_code < 300, (path, response.text)
        return response.json()

    def m(amount: str, currency: str = "EUR") -> dict[str, str]:
        return {"amount": amount, "currency": currency}

    post("/v1/test-clock/freeze", {"at": "2030-01-15T09:00:00Z"})
    channel = post("/v1/channels", {"code": "news", "name": "News", "number": 1})
    package = post("/v1/packages", {"code": "basic", "name": "Basic", "channel_codes": ["news"]})
    plan = post(
        "/v1/plans",
        {
            "code": "std",
            "name": "Standard",
            "terms": {
                "name": "Standard",
                "interval": {"unit": "month"},
                "prices": [m("10.00"), m("12.00", "USD")],
                "package_codes": ["basic"],
                "addons": [
                    {
                        "code": "extra",
                        "name": "Extra screen",
                        "kind": "extra_connection",
                        "connections": 1,
                        "prices": [m("2.00"), m("2.50", "USD")],
                    }
                ],
            },
        },
    )
    trial = post(
        "/v1/plans",
        {
            "code": "weekly",
            "name": "Weekly",
            "terms": {
                "name": "Weekly",
                "interval": {"unit": "week"},
                "prices": [m("3.00")],
                "trial_days": 5,
            },
        },
    )
    wallet_payer = post(
        "/v1/customers",
        {
            "name": "Ana",
            "email": "ana@example.com",
            "currency": "EUR",
            "collection_method": "charge_wallet",
        },
    )
    invoiced = post("/v1/customers", {"name": "Ben", "email": "ben@example.com", "currency": "EUR"})
    post(f"/v1/customers/{wallet_payer['id']}/wallet/top-ups", {"amount": m("50.00")})
    subs = [
        post("/v1/subscriptions", {"customer_id": wallet_payer["id"], "plan_id": plan["id"]}),
        post("/v1/subscriptions", {"customer_id": invoiced["id"], "plan_id": trial["id"]}),
        post(
            "/v1/subscriptions",
            {"customer_id": invoiced["id"], "plan_id": plan["id"], "addons": [{"code": "extra"}]},
        ),
    ]
    post(f"/v1/subscriptions/{subs[2]['id']}/pause")
    drafts = [
        post(
            "/v1/invoices",
            {
                "customer_id": invoiced["id"],
                "currency": "EUR",
                "lines": [{"description": f"Item {n}", "unit_amount": m(f"{n}.00")}],
            },
        )
        for n in (4, 6)
    ]
    post(f"/v1/invoices/{drafts[1]['id']}/finalize")
    payment = post(
        f"/v1/invoices/{subs[2]['latest_invoice']['id']}/pay",
        {"method": "card", "payment_method": "pm_card_visa"},
    )
    run = post("/v1/billing-runs")
    key = post("/v1/api-keys", {"name": "reporting", "scope": "read_only"})
    metric = post(
        "/v1/metrics", {"code": "viewing_seconds", "name": "Viewing", "aggregation": "sum"}
    )
    event = post(
        "/v1/ppv/events",
        {
            "code": "final",
            "name": "Final",
            "channel_id": channel["id"],
            "starts_at": "2030-01-16T20:00:00Z",
            "ends_at": "2030-01-16T22:00:00Z",
            "prices": [m("15.00"), m("18.00", "USD")],
            "capacity": 100,
        },
    )
    purchase = post(
        f"/v1/ppv/events/{event['id']}/purchases",
        {"subscription_id": subs[0]["id"], "payment": {"method": "wallet"}},
    )
    hold = post(
        f"/v1/customers/{wallet_payer['id']}/wallet/holds",
        {"amount": m("1.00"), "purpose": "usage"},
    )
    item = post(
        "/v1/vod/items",
        {
            "code": "movie",
            "name": "Movie",
            "source_url": "http://origin.example.test/movie.mp4",
            "packages": ["basic"],
            "rental": {"prices": [m("3.99"), m("4.49", "USD")], "hours": 48},
        },
    )
    rental = post(
        f"/v1/vod/items/{item['id']}/rentals",
        {"subscription_id": subs[0]["id"], "payment": {"method": "wallet"}},
    )
    return {
        "channel_id": [channel["id"]],
        "package_id": [package["id"]],
        "plan_id": [plan["id"], trial["id"]],
        "terms_id": [plan["versions"][0]["id"], trial["versions"][0]["id"]],
        "customer_id": [wallet_payer["id"], invoiced["id"]],
        "subscription_id": [s["id"] for s in subs],
        "invoice_id": [d["id"] for d in drafts]
        + [s["latest_invoice"]["id"] for s in subs if s["latest_invoice"]],
        "payment_id": [payment["id"]],
        "run_id": [run["id"]],
        "key_id": [key["id"]],
        "metric_id": [metric["id"]],
        "event_id": [event["id"]],
        "purchase_id": [purchase["id"]],
        "hold_id": [hold["id"]],
        "item_id": [item["id"]],
        "rental_id": [rental["id"]],
        "currency": ["EUR", "USD", "eur", "XXX"],
    }


def seed_players(client: Any, auth: str, subscription_id: str) -> dict[str, list[str]]:
    """Path values for the Xtream player routes: a real line of the seeded subscription (its
    plan carries the seeded channel, stream id 1) and near misses."""
    response = client.post(
        f"/v1/subscriptions/{subscription_id}/lines", json={}, headers={"Authorization": auth}
    )
    assert response.status_code == 201, response.text
    line = response.json()
    return {
        "credential_id": [line["id"], "cred_unknown"],
        "username": [line["login"], "nobody", "ü" * 70],
        "password": [line["secret"], "wrong", "..", "%00"],
        "token": ["A" * 32, ".."],
        "stream": ["1.ts", "1.m3u8", "news.ts", "2.ts", "999999999.ts", "1.mp4", "movie.mkv"],
        "duration": ["1", "30", "1440"],
        "start": ["2030-01-15:08-30", "2030-01-01:00-00", "2030-02-30:25-61"],
    }


def seed_stream_servers(client: Any, auth: str, subscription_id: str) -> dict[str, list[str]]:
    """Values for the stream-server callbacks' fields: a real token and set-top box of the
    seeded subscription, the seeded channel, and each protocol's verbs."""
    headers = {"Authorization": auth}
    base = f"/v1/subscriptions/{subscription_id}"
    token = client.post(f"{base}/tokens", json={}, headers=headers)
    box = client.post(f"{base}/devices", json={"mac": "00:1A:79:00:00:01"}, headers=headers)
    assert (token.status_code, box.status_code) == (201, 201), (token.text, box.text)
    return {
        "token": [token.json()["secret"]],
        "mac": ["00:1A:79:00:00:01", "00-1a-79-00-00-02"],
        "name": ["news", "1"],
        "call": ["play", "update_play", "update_publish", "play_done", "publish"],
        "action": ["on_play", "on_stop", "on_publish", "read", "playback", "publish"],
        "clientid": ["1", "2"],
        "client_id": ["1", "vid-1"],
        "request_type": ["new_session", "update_session"],
        "session_id": ["6217fd62-16da-4206-9da9-0173d7552a14"],
        "package_id": ["basic", "nope", "movie"],
    }


def seed_provisioning(client: Any, auth: str, runtime: Runtime) -> dict[str, list[str]]:
    """A webhook target and an Xtream panel that follow the seeded history (the worker's
    follow only: nothing is sent), for the provisioning routes' ids."""
    headers = {"Authorization": auth}
    bodies = [
        {
            "kind": "webhook",
            "name": "hook",
            "url": "http://127.0.0.1:9/hook",
            "from_beginning": True,
        },
        {
            "kind": "xtream",
            "name": "panel",
            "url": "http://127.0.0.1:9/admin",
            "secret": "fuzz-api-pass",
            "bouquet_map": {"basic": [1]},
        },
    ]
    targets = [client.post("/v1/provisioning/targets", json=b, headers=headers) for b in bodies]
    assert [t.status_code for t in targets] == [201, 201], [t.text for t in targets]
    assert runtime.sealer is not None
    provisioning_worker(runtime, runtime.sealer).follow_all()
    listed = client.get("/v1/provisioning/deliveries?limit=100", headers=headers)
    deliveries = listed.json()["data"]
    assert deliveries, listed.text
    return {
        "target_id": [t.json()["id"] for t in targets],
        "delivery_id": [d["id"] for d in deliveries[:5]],
    }


@pytest.fixture(scope="module")
def target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    path: Path = tmp_path_factory.mktemp("fuzz") / "fuzz.db"
    url = f"sqlite:///{path}"
    keys = path.parent / "keys"
    settings = Settings(database_url=url, key_dir=keys, anchoring=False)
    runtime: Runtime = open_runtime(settings)  # migrates the new file
    try:
        (tenant,), _ = seed_tenants(url, 1, "fuzz")
        auth = f"Bearer {tenant.keys['admin']}"
        app = build_app(runtime)
        with asgi.get_client(cast(Any, app)) as client:  # a requests session over the ASGI app
            ids = seed(client, auth) | {
                "tenant_id": [tenant.id],
                "path": ["0/000", "0/000.p/3", "entries/000.p/1", "1/000", "0/x001/000", "9"],
            }
            ids |= seed_players(client, auth, ids["subscription_id"][0])
            assert runtime.stream is not None
            streaming = seed_stream_servers(client, auth, ids["subscription_id"][0])
            ids |= {key: ids.get(key, []) + values for key, values in streaming.items()}
            runtime.stream.index.load_all()  # the seeded line, without waiting for the follower
            ids |= seed_provisioning(client, auth, runtime)
        # Each case runs the app's lifespan again: the index is loaded above, and the
        # follower thread (which can start once only) is not needed for the fuzzing.
        app.router.on_startup.clear()
        signer = SecureLinkSigner("fuzz-secure-link-secret")
        app.state.services = replace(app.state.services, secure_link_signer=signer)
        errors: list[str] = []
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        schema.app = ContainedApp(app, errors)
        yield Target(schema, auth, ids, errors)
    finally:
        runtime.database.dispose()


SAMPLE_AMOUNTS = [
    "0", "0.00", "0.01", "10.00", "12.5", "-1.00", "1.001", "999999999999999999", "1e3", "+3",
    "5.", ".5", " 7 ", "9999999999999.99", "10000000000000.00", "NaN",
]  # fmt: skip
AMOUNTS = st.one_of(
    st.sampled_from(SAMPLE_AMOUNTS), st.from_regex(r"-?\d{1,19}(\.\d{0,4})?", fullmatch=True)
)
CURRENCIES = st.sampled_from(["EUR", "USD", "JPY", "BHD", "XYZ", "eur", "GBP"])
CODES = st.lists(st.sampled_from(["basic", "news", "extra", "nope"]), max_size=3)


def splice(body: Any, ids: dict[str, list[str]], data: st.DataObject, depth: int = 0) -> Any:
    """``body`` with, at random, seeded ids in id fields and plausible money in money objects."""
    if isinstance(body, list) and depth < 4:
        return [splice(item, ids, data, depth + 1) for item in body]
    if not isinstance(body, dict) or depth >= 4:
        return body
    out = {}
    for key, value in body.items():
        if key in ids and data.draw(st.booleans()):
            value = data.draw(st.sampled_from(ids[key]))
        elif isinstance(value, dict) and set(value) == {"amount", "currency"}:
            value = {"amount": data.draw(AMOUNTS), "currency": data.draw(CURRENCIES)}
        elif key == "currency" and data.draw(st.booleans()):
            value = data.draw(CURRENCIES)
        elif key == "email" and data.draw(st.booleans()):
            value = "fuzz@example.com"
        elif key in ("package_codes", "channel_codes") and data.draw(st.booleans()):
            value = data.draw(CODES)
        elif key == "payment_method" and data.draw(st.booleans()):
            value = data.draw(st.sampled_from(["pm_card_instant", "pm_card_declined"]))
        else:
            value = splice(value, ids, data, depth + 1)
        out[key] = value
    return out


def params() -> list[Any]:
    return [pytest.param(method, path, id=f"{method} {path}") for method, path in OPERATIONS]


@pytest.mark.parametrize(("method", "path"), params())
def test_operation(target: Target, method: str, path: str) -> None:
    operation = target.schema[path][method]
    names = [parameter.name for parameter in operation.path_parameters]
    modes = [GenerationMode.POSITIVE, GenerationMode.NEGATIVE]
    strategy = st.one_of(*(operation.as_strategy(mode) for mode in modes))
    if names:
        seeded = st.tuples(*(st.sampled_from(target.ids[n]) for n in names)).flatmap(
            lambda values: operation.as_strategy(
                path_parameters=dict(zip(names, values, strict=True))
            )
        )
        strategy = st.one_of(strategy, seeded)

    @given(case=strategy, data=st.data())
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any, data: st.DataObject) -> None:
        if isinstance(case.body, dict):
            case.body = splice(case.body, target.ids, data)
        if isinstance(case.query, dict):  # the stream-server callbacks' fields
            case.query = splice(case.query, target.ids, data)
        headers = dict(case.headers or {})
        headers.pop("X-API-Key", None)
        if data.draw(st.integers(0, 3)):  # keep a generated Idempotency-Key now and then
            headers.pop("Idempotency-Key", None)
        headers["Authorization"] = target.auth
        case.headers = headers
        seen = len(target.errors)
        response = case.call()
        if response.status_code >= 500:
            pytest.fail(
                f"{response.status_code} for\n{case.as_curl_command()}\n{response.text[:500]}\n"
                + "".join(target.errors[seen:])[-3000:],
                pytrace=False,
            )
        case.validate_response(response, checks=CHECKS)

    run()
