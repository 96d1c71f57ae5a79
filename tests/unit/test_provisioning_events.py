"""Webhook event types derived from consecutive subscription states, and event data that
never carries a secret."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from iptv_billing.services.provisioning import (
    credential_event,
    new_webhook_secret,
    subscription_event,
)


def record(**state: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "status": "active",
        "currency": "EUR",
        "terms": "t1",
        "pending_terms": None,
        "anchor": "2030-01-01T00:00:00.000000Z",
        "period": {
            "index": 0,
            "start": "2030-01-01T00:00:00.000000Z",
            "end": "2030-02-01T00:00:00.000000Z",
        },
        "trial_end": None,
        "cancel_at_period_end": False,
        "addons": [],
        "paused_at": None,
        "ended_at": None,
    }
    base.update(state)
    return {
        "v": 1,
        "type": "subscription_state",
        "tenant": "ten_1",
        "subscription": "sub_1",
        "customer": "cus_1",
        "plan": "plan_1",
        "at": "2030-01-01T00:00:00.000000Z",
        "state": base,
    }


def period(index: int) -> dict[str, Any]:
    return {"index": index, "start": f"s{index}", "end": f"e{index}"}


def test_the_first_state_is_created() -> None:
    event_type, data = subscription_event(record(), None)
    assert event_type == "subscription.created"
    assert (data["subscription"], data["customer"], data["plan"]) == ("sub_1", "cus_1", "plan_1")
    assert data["state"]["status"] == "active"
    assert data["changes"] == []


@pytest.mark.parametrize(
    ("after", "expected", "changes"),
    [
        ({"period": period(1)}, "subscription.renewed", ["period"]),
        ({"status": "paused", "paused_at": "x"}, "subscription.status_changed", None),
        ({"terms": "t2"}, "subscription.plan_changed", ["terms"]),
        ({"addons": [["screen", 1]]}, "subscription.addons_changed", ["addons"]),
        ({"cancel_at_period_end": True}, "subscription.updated", ["cancel_at_period_end"]),
        ({"pending_terms": "t2"}, "subscription.updated", ["pending_terms"]),
    ],
)
def test_each_change_has_its_type(
    after: dict[str, Any], expected: str, changes: list[str] | None
) -> None:
    event_type, data = subscription_event(record(**after), record())
    assert event_type == expected
    if changes is not None:
        assert data["changes"] == changes


def test_a_status_change_wins_and_names_both_ends() -> None:
    # A trial converting renews too (a new period); the status change is what is reported.
    before = record(status="trialing", period=period(-1))
    event_type, data = subscription_event(record(period=period(0)), before)
    assert event_type == "subscription.status_changed"
    assert (data["from"], data["to"]) == ("trialing", "active")
    assert data["changes"] == ["period", "status"]


def test_a_plan_change_at_renewal_is_a_plan_change_with_the_old_terms() -> None:
    event_type, data = subscription_event(record(terms="t2", period=period(1)), record())
    assert event_type == "subscription.plan_changed"
    assert data["previous_terms"] == "t1"
    assert data["changes"] == ["period", "terms"]


def test_inputs_are_not_modified() -> None:
    current, previous = record(terms="t2"), record()
    frozen = copy.deepcopy((current, previous))
    subscription_event(current, previous)
    assert (current, previous) == frozen


def test_credential_events_hold_the_login_and_state_only() -> None:
    logged = {
        "v": 1,
        "type": "access_credential",
        "tenant": "ten_1",
        "credential": "cred_1",
        "subscription": "sub_1",
        "kind": "line",
        "login": "alice01",
        "label": "TV room",
        "enabled": True,
        "removed": False,
        "event": "secret_reset",
        "at": "2030-01-01T00:00:00.000000Z",
    }
    assert credential_event(logged) == {
        "tenant": "ten_1",
        "subscription": "sub_1",
        "credential": "cred_1",
        "kind": "line",
        "login": "alice01",
        "label": "TV room",
        "enabled": True,
        "removed": False,
        "change": "secret_reset",
        "at": "2030-01-01T00:00:00.000000Z",
    }


def test_webhook_secrets_are_32_random_bytes() -> None:
    secret = new_webhook_secret(lambda n: bytes(range(n)))
    assert secret == "whsec_AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"
    assert new_webhook_secret(lambda n: b"\xff" * n) != secret
