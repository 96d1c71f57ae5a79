"""Idempotency keys are forgotten after their retention, and a reservation left behind by a
process that died is taken over once it is stale; a live one still answers 409."""

from __future__ import annotations

from datetime import timedelta

import pytest
from operator_harness import START, Operator

from iptv_billing.domain.errors import Conflict
from iptv_billing.services import idempotency
from iptv_billing.services.clock import FixedClock

FINGERPRINT = idempotency.request_fingerprint("POST", "/v1/customers", b"{}")


def _begin(op: Operator, clock: FixedClock, key: str = "k-1") -> object:
    return idempotency.begin(
        op.database.uow, op.tenant_id, key, "POST", "/v1/customers", FINGERPRINT, clock
    )


def test_a_live_reservation_conflicts_and_a_stale_one_is_taken_over(operator: Operator) -> None:
    clock = FixedClock(START)
    assert _begin(operator, clock) is None  # reserved; its process then "dies"
    clock.set(START + timedelta(minutes=5))
    with pytest.raises(Conflict) as running:
        _begin(operator, clock)
    assert running.value.code == "idempotency.in_progress"
    clock.set(START + idempotency.STALE_AFTER + timedelta(seconds=1))
    assert _begin(operator, clock) is None  # taken over: the retry runs


def test_completed_keys_replay_until_they_expire(operator: Operator) -> None:
    clock = FixedClock(START)
    assert _begin(operator, clock) is None
    idempotency.finish(operator.database.uow, operator.tenant_id, "k-1", 201, '{"id": "x"}')
    clock.set(START + idempotency.STALE_AFTER * 2)
    replay = _begin(operator, clock)
    assert getattr(replay, "status_code", None) == 201  # completed keys are never "stale"
    assert idempotency.purge_expired(operator.database.uow, clock) == 0
    clock.set(START + idempotency.RETENTION + timedelta(seconds=1))
    assert idempotency.purge_expired(operator.database.uow, clock) == 1
    assert _begin(operator, clock) is None  # forgotten: a new request
