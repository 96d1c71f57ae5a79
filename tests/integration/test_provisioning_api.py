"""The provisioning API: targets (webhook secrets shown once), deliveries with their attempt
log, replay, and the refusals (bad input 4xx, unknown or foreign ids 404). SQLite and
PostgreSQL, through the real app in process."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from provisioning_harness import API_PASS, ProvisioningOperator

from iptv_billing.services import access


@pytest.fixture
def op(database_url: str) -> Iterator[ProvisioningOperator]:
    operator = ProvisioningOperator(database_url)
    yield operator
    operator.close()


def post(op: ProvisioningOperator, path: str, body: Any = None) -> httpx.Response:
    return op.client.post(path, json=body, headers=op.auth())


def get(op: ProvisioningOperator, path: str, **params: Any) -> httpx.Response:
    return op.client.get(path, params=params, headers=op.auth())


def problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code, body
    return body


def xtream_body(op: ProvisioningOperator, **changes: Any) -> dict[str, Any]:
    return {
        "kind": "xtream",
        "name": "Main panel",
        "url": op.panel.base_url,
        "secret": API_PASS,
        "bouquet_map": {"basic": [2, 1, 2], "sports": [4]},
        **changes,
    }


def test_an_xtream_target_is_created_and_read_back(op: ProvisioningOperator) -> None:
    created = post(op, "/v1/provisioning/targets", xtream_body(op))
    assert created.status_code == 201, created.text
    target = created.json()
    assert target["object"] == "provisioning_target"
    assert (target["kind"], target["enabled"], target["cursor"], target["secret"]) == (
        "xtream",
        True,
        0,  # panels start from the log's beginning: existing lines are provisioned
        None,
    )
    assert target["bouquet_map"] == {"basic": [1, 2], "sports": [4]}
    read = get(op, f"/v1/provisioning/targets/{target['id']}").json()
    assert "secret" not in read
    assert API_PASS not in str(read)
    assert read == {k: v for k, v in target.items() if k != "secret"}
    listed = get(op, "/v1/provisioning/targets").json()
    assert [t["id"] for t in listed["data"]] == [target["id"]]


def test_a_webhook_secret_is_generated_and_shown_once(op: ProvisioningOperator) -> None:
    op.subscriber()
    head = op.read(lambda u, c: u.log.size(c.tenant_id))
    body = {"kind": "webhook", "name": "CRM", "url": "https://crm.example.com/hooks?src=tv"}
    created = post(op, "/v1/provisioning/targets", body)
    assert created.status_code == 201, created.text
    target = created.json()
    assert target["secret"].startswith("whsec_")
    assert len(target["secret"]) == len("whsec_") + 43  # 32 bytes, base64url
    assert target["cursor"] == head  # only changes from now on
    assert target["bouquet_map"] is None
    again = get(op, f"/v1/provisioning/targets/{target['id']}").json()
    assert target["secret"] not in str(again)

    own = post(op, "/v1/provisioning/targets", {**body, "secret": "s" * 16})
    assert own.json()["secret"] is None  # the operator's own secret is not echoed


@pytest.mark.parametrize(
    ("changes", "status", "code"),
    [
        ({"secret": None}, 422, "provisioning.secret_required"),
        ({"url": "ftp://panel.example.com/admin"}, 422, "request.invalid"),
        ({"url": "http://panel.example.com/admin?x=1"}, 422, "provisioning.invalid_url"),
        ({"bouquet_map": {"basic": [0]}}, 422, "request.invalid"),
        ({"bouquet_map": {"Not A Code": [1]}}, 422, "request.invalid"),
        ({"kind": "ftp"}, 422, "request.invalid"),
        ({"name": ""}, 422, "request.invalid"),
        ({"surprise": True}, 422, "request.invalid"),
        (
            {"kind": "webhook", "secret": None, "bouquet_map": {"basic": [1]}},
            422,
            "provisioning.bouquet_map_not_allowed",
        ),
        (
            {"kind": "webhook", "secret": "short", "bouquet_map": None},
            422,
            "provisioning.invalid_secret",
        ),
    ],
)
def test_bad_targets_are_refused(
    op: ProvisioningOperator, changes: dict[str, Any], status: int, code: str
) -> None:
    problem(post(op, "/v1/provisioning/targets", xtream_body(op, **changes)), status, code)
    assert get(op, "/v1/provisioning/targets").json()["data"] == []


def test_targets_are_disabled_enabled_and_changed(op: ProvisioningOperator) -> None:
    target = post(op, "/v1/provisioning/targets", xtream_body(op)).json()
    path = f"/v1/provisioning/targets/{target['id']}"

    assert post(op, f"{path}/disable").json()["enabled"] is False
    assert get(op, path).json()["enabled"] is False
    assert post(op, f"{path}/disable").json()["enabled"] is False  # already so
    assert post(op, f"{path}/enable").json()["enabled"] is True

    patched = op.client.patch(
        path, json={"name": "Backup panel", "bouquet_map": {"basic": [7]}}, headers=op.auth()
    )
    assert patched.status_code == 200, patched.text
    assert (patched.json()["name"], patched.json()["bouquet_map"]) == (
        "Backup panel",
        {"basic": [7]},
    )
    hook = post(
        op, "/v1/provisioning/targets", {"kind": "webhook", "name": "h", "url": "http://h.example"}
    )
    problem(
        op.client.patch(
            f"/v1/provisioning/targets/{hook.json()['id']}",
            json={"bouquet_map": {"basic": [1]}},
            headers=op.auth(),
        ),
        422,
        "provisioning.bouquet_map_not_allowed",
    )


def test_deliveries_are_listed_filtered_and_shown_with_attempts(op: ProvisioningOperator) -> None:
    panel = op.xtream_target()
    hook = op.webhook_target(from_beginning=True)
    viewer = op.subscriber()
    other = op.subscriber()
    op.tick()

    everything = get(op, "/v1/provisioning/deliveries", limit=100).json()
    assert len(everything["data"]) == 2 + 2 * 3  # a sync and 3 events per subscriber
    syncs = get(op, "/v1/provisioning/deliveries", target_id=panel.id).json()["data"]
    assert {d["event_type"] for d in syncs} == {"xtream.sync"}
    mine = get(
        op, "/v1/provisioning/deliveries", subscription_id=viewer.subscription.id, limit=100
    ).json()["data"]
    assert {d["subscription_id"] for d in mine} == {viewer.subscription.id}
    assert len(mine) == 4
    assert get(op, "/v1/provisioning/deliveries", status="failed").json()["data"] == []
    first = get(op, "/v1/provisioning/deliveries", limit=3).json()
    assert first["has_more"] is True
    rest = get(
        op, "/v1/provisioning/deliveries", limit=100, starting_after=first["next_cursor"]
    ).json()
    ids = [d["id"] for d in first["data"] + rest["data"]]
    assert ids == sorted(ids) == sorted(d["id"] for d in everything["data"])

    events = get(op, "/v1/provisioning/deliveries", target_id=hook.id, limit=100).json()["data"]
    created = next(
        d
        for d in events
        if d["event_type"] == "subscription.created"
        and d["subscription_id"] == other.subscription.id
    )
    detail = get(op, f"/v1/provisioning/deliveries/{created['id']}").json()
    assert (detail["status"], detail["attempts"], detail["next_attempt_at"]) == (
        "delivered",
        1,
        None,
    )
    assert detail["payload"]["subscription"] == other.subscription.id
    [attempt] = detail["attempt_log"]
    assert (attempt["outcome"], attempt["status_code"], attempt["response_excerpt"]) == (
        "delivered",
        200,
        "ok",
    )

    replayed = post(op, f"/v1/provisioning/deliveries/{created['id']}/replay")
    assert replayed.json()["status"] == "pending"
    again = post(op, f"/v1/provisioning/deliveries/{created['id']}/replay")
    assert again.json()["status"] == "pending"  # queued already: nothing changes
    op.tick()
    assert get(op, f"/v1/provisioning/deliveries/{created['id']}").json()["status"] == "delivered"
    assert op.receiver.events()[-1]["id"] == created["id"]


def test_bad_filters_are_refused(op: ProvisioningOperator) -> None:
    problem(get(op, "/v1/provisioning/deliveries", status="lost"), 422, "request.invalid")
    problem(get(op, "/v1/provisioning/deliveries", target_id="x y"), 422, "request.invalid")
    problem(get(op, "/v1/provisioning/deliveries", limit=0), 422, "request.invalid")


@pytest.mark.parametrize(
    ("method", "path", "code"),
    [
        ("GET", "/v1/provisioning/targets/ptg_0000", "provisioning_target.not_found"),
        ("PATCH", "/v1/provisioning/targets/ptg_0000", "provisioning_target.not_found"),
        ("POST", "/v1/provisioning/targets/ptg_0000/disable", "provisioning_target.not_found"),
        ("POST", "/v1/provisioning/targets/ptg_0000/enable", "provisioning_target.not_found"),
        ("GET", "/v1/provisioning/deliveries/pdl_0000", "provisioning_delivery.not_found"),
        (
            "POST",
            "/v1/provisioning/deliveries/pdl_0000/replay",
            "provisioning_delivery.not_found",
        ),
    ],
)
def test_unknown_ids_are_not_found(
    op: ProvisioningOperator, method: str, path: str, code: str
) -> None:
    body = {"name": "x"} if method == "PATCH" else None
    response = op.client.request(method, path, json=body, headers=op.auth())
    assert "_0000" in problem(response, 404, code)["detail"]


def test_another_tenants_targets_and_deliveries_are_not_found(
    op: ProvisioningOperator, database_url: str
) -> None:
    target = op.webhook_target(from_beginning=True)
    op.subscriber()
    op.tick()
    delivery = op.deliveries(target.id)[0]
    other = ProvisioningOperator(database_url)
    try:
        for path, code in (
            (f"/v1/provisioning/targets/{target.id}", "provisioning_target.not_found"),
            (f"/v1/provisioning/deliveries/{delivery.id}", "provisioning_delivery.not_found"),
        ):
            problem(get(other, path), 404, code)
        problem(
            post(other, f"/v1/provisioning/deliveries/{delivery.id}/replay"),
            404,
            "provisioning_delivery.not_found",
        )
        problem(
            post(other, f"/v1/provisioning/targets/{target.id}/disable"),
            404,
            "provisioning_target.not_found",
        )
        assert get(other, "/v1/provisioning/deliveries", target_id=target.id).json()["data"] == []
        assert get(other, "/v1/provisioning/targets").json()["data"] == []
    finally:
        other.close()
    assert op.deliveries(target.id)[0].status == "delivered"


def test_read_only_keys_read_but_do_not_configure(op: ProvisioningOperator) -> None:
    with op.database.uow() as uow:
        _, key = access.issue_api_key(
            uow, op.ids, op.system, op.tenant_id, "reporting", "read_only"
        )
        uow.commit()
    headers = {"Authorization": f"Bearer {key}"}
    refused = op.client.post("/v1/provisioning/targets", json=xtream_body(op), headers=headers)
    assert refused.status_code == 403
    assert op.client.get("/v1/provisioning/targets", headers=headers).status_code == 200
    assert op.client.get("/v1/provisioning/deliveries", headers=headers).status_code == 200
