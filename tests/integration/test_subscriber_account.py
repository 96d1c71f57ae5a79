"""The subscriber's own account with the line's credentials: status and boxes, and resetting
the boxes after a replacement; wrong credentials and guessing are refused."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from stream_harness import StreamOperator

from iptv_billing.services import access, credentials


@pytest.fixture
def op(database_url: str) -> Iterator[StreamOperator]:
    operator = StreamOperator(database_url, max_failures=3)
    yield operator
    operator.close()


def test_a_subscriber_sees_and_resets_their_boxes(op: StreamOperator) -> None:
    viewer = op.viewer()
    sub_id = viewer.subscription.id
    for mac in ("00:1A:79:00:00:0A", "00:1A:79:00:00:0B"):
        op.tx(lambda u, c, mac=mac: credentials.register_device(u, c, sub_id, mac))
    op.sync()
    auth = (viewer.username, viewer.password)
    account = op.client.get("/account", auth=auth)
    assert account.status_code == 200, account.text
    body = account.json()
    assert body["status"] == "Active"
    assert body["max_connections"] == 2
    assert sorted(d["mac"] for d in body["devices"]) == ["00:1A:79:00:00:0A", "00:1A:79:00:00:0B"]
    reset = op.client.post("/account/devices/reset", auth=auth)
    assert reset.json() == {"object": "devices_reset", "removed": 2}
    op.sync()
    assert op.client.get("/account", auth=auth).json()["devices"] == []
    # The slots are free again: a new box registers.
    op.tx(lambda u, c: credentials.register_device(u, c, sub_id, "00:1A:79:00:00:0C"))


def test_wrong_or_missing_credentials_and_guessing(op: StreamOperator) -> None:
    viewer = op.viewer()
    assert op.client.get("/account").json()["code"] == "account.credentials_required"
    for _ in range(3):
        wrong = op.client.post("/account/devices/reset", auth=(viewer.username, "nope"))
        assert wrong.status_code == 401
        assert wrong.json()["code"] == "account.unknown_credentials"
    blocked = op.client.get("/account", auth=(viewer.username, viewer.password))
    assert blocked.status_code == 429
    assert blocked.json()["code"] == "account.too_many_attempts"


def test_a_replayed_line_answer_is_kept_sealed(op: StreamOperator) -> None:
    """The first answer to an idempotent POST is stored for replays; a new line's password in
    it is stored encrypted, and the replay gives the same answer."""
    with op.database.uow() as uow:
        _, api_key = access.issue_api_key(uow, op.ids, op.system, op.tenant_id, "ops", "admin")
        uow.commit()
    sub_id = op.viewer().subscription.id
    headers = {"Authorization": f"Bearer {api_key}", "Idempotency-Key": "line-once"}
    first = op.client.post(f"/v1/subscriptions/{sub_id}/lines", json={}, headers=headers)
    again = op.client.post(f"/v1/subscriptions/{sub_id}/lines", json={}, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["Idempotent-Replayed"] == "true"
    stored = op.read(lambda u, c: u.idempotency.get(c.tenant_id, "line-once"))
    assert stored is not None
    assert stored.response_body is not None
    assert first.json()["secret"] not in stored.response_body
    assert stored.response_body.startswith("sealed:")
