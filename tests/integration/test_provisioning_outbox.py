"""The provisioning outbox end to end: billing's changes reach a real (fake) Xtream panel and a
signature-checking webhook receiver by following the log; failures are retried on schedule,
nothing is lost, and claims survive crashed and concurrent workers. SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from provisioning_harness import ProvisioningOperator
from stream_harness import Viewer

from iptv_billing.domain.entitlement import RENEWAL_ALLOWANCE
from iptv_billing.domain.proration import ProrationMode
from iptv_billing.domain.provisioning import MAX_ATTEMPTS, PanelLine
from iptv_billing.services import credentials, provisioning, subscriptions
from iptv_billing.services.provisioning import LineSync, PanelTransport
from iptv_billing.services.records import ProvisioningDeliveryRecord, SubscriptionRecord
from xtream_panel_fake import Fault

MAC = "00:1A:79:00:00:0B"


@pytest.fixture
def op(database_url: str) -> Iterator[ProvisioningOperator]:
    operator = ProvisioningOperator(database_url, panel_timeout=0.5, hang_seconds=1.0)
    yield operator
    operator.close()


def current(op: ProvisioningOperator, viewer: Viewer) -> SubscriptionRecord:
    sub = op.read(lambda u, c: u.subscriptions.get(c.tenant_id, viewer.subscription.id))
    assert sub is not None
    return sub


def unix(moment: datetime) -> int:
    return int(moment.timestamp())


def renews_until(sub: SubscriptionRecord) -> int:
    """The panel's expiry of a renewing subscription: its period end plus the allowance the
    authorization path grants too (the billing run renews within it)."""
    return unix(sub.state.current_period.end + RENEWAL_ALLOWANCE)


class Gate:
    """A panel transport that holds each sync until released (a slow or stuck worker)."""

    def __init__(self, inner: PanelTransport) -> None:
        self.inner = inner
        self.entered = threading.Event()
        self.release = threading.Event()

    def sync_line(
        self, url: str, api_pass: str, line: PanelLine, previous_password: str | None
    ) -> LineSync:
        self.entered.set()
        assert self.release.wait(20)
        return self.inner.sync_line(url, api_pass, line, previous_password)


# --- Xtream: billing's changes reach the panel ------------------------------------------------


def test_a_new_line_is_created_and_renewals_move_its_expiry(op: ProvisioningOperator) -> None:
    target = op.xtream_target()
    viewer = op.subscriber()

    op.tick()

    line = op.panel.line(viewer.username)
    sub = current(op, viewer)
    assert line.password == viewer.password
    assert line.exp_date == renews_until(sub)
    assert (line.max_connections, line.bouquets, line.enabled, line.is_trial) == (2, [1, 2], 1, 0)
    [sync] = op.deliveries(target.id)
    assert (sync.event_type, sync.status, sync.attempts) == ("xtream.sync", "delivered", 1)
    assert json.loads(sync.payload) == {"subscription": sub.id}

    op.advance(31)
    op.bill()  # the period ends; the wallet pays the renewal
    op.tick()

    renewed = current(op, viewer)
    assert renewed.state.period_index == sub.state.period_index + 1
    assert op.panel.line(viewer.username).exp_date == renews_until(renewed) > line.exp_date - 1
    assert renews_until(renewed) > renews_until(sub)


def test_paused_and_suspended_lines_are_disabled(op: ProvisioningOperator) -> None:
    op.xtream_target()
    paying = op.subscriber()
    late = op.viewer()  # pays by invoice and never does
    op.tick()
    assert op.panel.line(paying.username).enabled == op.panel.line(late.username).enabled == 1

    op.tx(lambda u, c: subscriptions.pause(u, c, paying.subscription.id))
    op.advance(1)
    op.bill()  # the unpaid invoice is overdue: no grace, suspended at once
    op.tick()

    assert current(op, late).state.status.value == "suspended"
    assert op.panel.line(paying.username).enabled == 0
    assert op.panel.line(late.username).enabled == 0

    op.tx(lambda u, c: subscriptions.resume(u, c, paying.subscription.id))
    op.tick()
    assert op.panel.line(paying.username).enabled == 1
    assert op.panel.line(late.username).enabled == 0


def test_a_plan_change_changes_the_bouquets(op: ProvisioningOperator) -> None:
    op.xtream_target()
    viewer = op.subscriber()
    op.tick()
    assert op.panel.line(viewer.username).bouquets == [1, 2]

    cmd = subscriptions.ChangePlan(op.plans["sports"], ProrationMode.NONE)
    op.tx(lambda u, c: subscriptions.change_plan(u, c, viewer.subscription.id, cmd))
    op.tick()

    line = op.panel.line(viewer.username)
    assert line.bouquets == [1, 2, 4, 5]  # basic and sports
    assert line.max_connections == 1  # the sports plan's


def test_extra_screens_raise_max_connections(op: ProvisioningOperator) -> None:
    op.xtream_target()
    viewer = op.subscriber()
    cmd = subscriptions.ChangeAddons((("screen", 2),), ProrationMode.NONE)
    op.tx(lambda u, c: subscriptions.change_addons(u, c, viewer.subscription.id, cmd))
    op.tick()
    assert op.panel.line(viewer.username).max_connections == 4


def test_a_password_reset_edits_the_line_with_the_old_password(op: ProvisioningOperator) -> None:
    op.xtream_target()
    viewer = op.subscriber()
    op.tick()
    _, first = op.tx(
        lambda u, c: credentials.reset_secret(u, c, op.sealer, os.urandom, viewer.line_id)
    )
    _, newest = op.tx(
        lambda u, c: credentials.reset_secret(u, c, op.sealer, os.urandom, viewer.line_id)
    )
    calls_before = len(op.panel.calls)

    op.tick()

    edits = [c for c in op.panel.calls[calls_before:] if c["sub"] == "edit"]
    # Found by the password the panel knew (never the intermediate one), set to the newest.
    assert edits[0]["password"] == viewer.password
    assert edits[0]["user_data[password]"] == newest
    assert first not in json.dumps(op.panel.calls)
    assert op.panel.line(viewer.username).password == newest

    # ... and from now on the panel finds the line by the new password.
    op.tx(lambda u, c: credentials.set_enabled(u, c, viewer.line_id, False))
    calls_before = len(op.panel.calls)
    op.tick()
    assert op.panel.line(viewer.username).enabled == 0
    assert {c["password"] for c in op.panel.calls[calls_before:]} == {newest}


def test_a_lost_password_change_answer_is_recovered(op: ProvisioningOperator) -> None:
    """The panel took the new password but the worker never stored it (crash, timeout):
    the old one no longer finds the line, and the sync goes on with the new one."""
    op.xtream_target()
    viewer = op.subscriber()
    op.tick()
    _, new = op.tx(
        lambda u, c: credentials.reset_secret(u, c, op.sealer, os.urandom, viewer.line_id)
    )
    op.panel.line(viewer.username).password = new  # changed behind our back

    op.tick()

    assert op.panel.line(viewer.username).password == new
    assert {d.status for d in op.deliveries()} == {"delivered"}


def test_set_top_boxes_are_provisioned_by_mac_and_switched_off(op: ProvisioningOperator) -> None:
    op.xtream_target()
    viewer = op.subscriber()
    device = op.tx(lambda u, c: credentials.register_device(u, c, viewer.subscription.id, MAC))
    op.tick()
    box = op.panel.mag(MAC)
    assert (box.is_mag, box.enabled, box.bouquets) == (1, 1, [1, 2])
    assert box.exp_date == renews_until(current(op, viewer))

    op.tx(lambda u, c: credentials.remove(u, c, device.id))
    op.tick()

    assert op.panel.mag(MAC).enabled == 0
    assert op.panel.line(viewer.username).enabled == 1  # the line is not the box


def test_changes_to_one_subscription_are_coalesced(op: ProvisioningOperator) -> None:
    target = op.xtream_target()
    viewer = op.subscriber()
    sub_id = viewer.subscription.id
    screens = subscriptions.ChangeAddons((("screen", 1),), ProrationMode.NONE)
    op.tx(lambda u, c: subscriptions.change_addons(u, c, sub_id, screens))
    op.tx(lambda u, c: subscriptions.pause(u, c, sub_id))
    op.tx(lambda u, c: credentials.set_enabled(u, c, viewer.line_id, False))

    op.worker.follow_all()

    [sync] = op.deliveries(target.id)
    head = op.read(lambda u, c: u.log.size(c.tenant_id))
    assert sync.log_index == head - 1  # points at the latest change
    op.tick()
    assert op.panel.line(viewer.username).enabled == 0
    assert len(op.deliveries(target.id)) == 1
    assert [c["sub"] for c in op.panel.calls] == ["info", "create"]


def test_a_change_during_a_sync_runs_the_sync_again(op: ProvisioningOperator) -> None:
    target = op.xtream_target()
    viewer = op.subscriber()
    gate = Gate(op.xtream)
    slow = op.new_worker(gate)
    results: list[provisioning.TickResult] = []
    worker = threading.Thread(target=lambda: results.append(slow.tick()))
    worker.start()
    assert gate.entered.wait(10)  # the sync read the active state and is on its way

    op.tx(lambda u, c: subscriptions.pause(u, c, viewer.subscription.id))
    op.worker.follow_all()  # coalesced into the sync in flight
    [sync] = op.deliveries(target.id)
    assert sync.log_index == op.read(lambda u, c: u.log.size(c.tenant_id)) - 1
    gate.release.set()
    worker.join(10)

    assert results[0].deliveries.requeued == 1  # it saw the newer change and ran again
    assert op.panel.line(viewer.username).enabled == 0
    [sync] = op.deliveries(target.id)
    assert sync.status == "delivered"
    assert [a.outcome for a in op.attempts(sync.id)] == ["delivered", "delivered"]


def test_an_unmapped_package_is_rejected_until_the_map_is_fixed(op: ProvisioningOperator) -> None:
    target = op.xtream_target(mapping={"basic": [1]})
    viewer = op.subscriber("sports")
    op.tick()
    [sync] = op.deliveries(target.id)
    assert sync.status == "rejected"
    assert sync.last_error is not None
    assert "provisioning.unmapped_package" in sync.last_error
    assert viewer.username not in op.panel.lines

    op.tx(
        lambda u, c: provisioning.update_target(
            u, c, op.sealer, target.id, bouquet_map={"basic": [1], "sports": [9]}
        )
    )
    op.tx(lambda u, c: provisioning.replay(u, c, sync.id, op.clock.now()))
    op.tick()
    assert op.panel.line(viewer.username).bouquets == [1, 9]


def test_a_new_panel_receives_existing_lines_and_a_disabled_one_catches_up(
    op: ProvisioningOperator,
) -> None:
    early = op.subscriber()
    target = op.xtream_target()  # from the log's beginning
    op.tick()
    assert early.username in op.panel.lines

    op.tx(lambda u, c: provisioning.set_enabled(u, c, target.id, False))
    later = op.subscriber()
    op.tick()
    assert later.username not in op.panel.lines

    op.tx(lambda u, c: provisioning.set_enabled(u, c, target.id, True))
    op.tick()
    assert op.panel.line(later.username).password == later.password


# --- webhooks ---------------------------------------------------------------------------------


def test_webhooks_carry_every_change_in_log_order_signed(op: ProvisioningOperator) -> None:
    target = op.webhook_target()
    viewer = op.subscriber()
    sub_id = viewer.subscription.id
    op.advance(31)
    op.bill()
    op.tx(lambda u, c: subscriptions.pause(u, c, sub_id))
    op.tx(lambda u, c: subscriptions.resume(u, c, sub_id))
    screens = subscriptions.ChangeAddons((("screen", 1),), ProrationMode.NONE)
    op.tx(lambda u, c: subscriptions.change_addons(u, c, sub_id, screens))
    op.tx(
        lambda u, c: subscriptions.change_addons(
            u, c, sub_id, subscriptions.ChangeAddons((), ProrationMode.NONE)
        )
    )
    plan = subscriptions.ChangePlan(op.plans["sports"], ProrationMode.NONE)
    op.tx(lambda u, c: subscriptions.change_plan(u, c, sub_id, plan))
    op.tx(lambda u, c: credentials.reset_secret(u, c, op.sealer, os.urandom, viewer.line_id))
    op.tx(lambda u, c: subscriptions.cancel(u, c, sub_id, True))

    op.tick()

    received = op.receiver.received
    assert [r.problem for r in received] == [None] * len(received)  # every signature verified
    events = [r.event for r in received]
    assert [e["type"] for e in events] == [
        "subscription.created",
        "credential.changed",  # the line
        "credential.changed",  # the token
        "subscription.renewed",
        "subscription.status_changed",  # paused
        "subscription.status_changed",  # resumed
        "subscription.addons_changed",
        "subscription.addons_changed",
        "subscription.plan_changed",
        "credential.changed",  # the password reset
        "subscription.updated",  # cancels at period end
    ]
    indices = [e["data"]["log_index"] for e in events]
    assert indices == sorted(indices)
    assert (events[4]["data"]["from"], events[4]["data"]["to"]) == ("active", "paused")
    assert (events[5]["data"]["from"], events[5]["data"]["to"]) == ("paused", "active")
    assert events[9]["data"]["change"] == "secret_reset"
    assert events[10]["data"]["changes"] == ["cancel_at_period_end"]
    assert events[0]["data"]["state"]["status"] == "active"
    deliveries = op.deliveries(target.id)
    assert [e["id"] for e in events] == [d.id for d in deliveries]
    assert {r.headers["webhook-id"] for r in received} == {d.id for d in deliveries}
    bodies = b"".join(r.body for r in received)
    assert viewer.password.encode() not in bodies
    assert viewer.token.encode() not in bodies
    assert {d.status for d in deliveries} == {"delivered"}


def test_a_failing_receiver_holds_later_events_back_until_it_recovers(
    op: ProvisioningOperator,
) -> None:
    target = op.webhook_target()
    op.subscriber()
    op.receiver.answers.extend([503])

    op.tick()

    first, *rest = op.deliveries(target.id)
    assert (first.status, first.attempts, first.last_error) == ("failed", 1, "HTTP 503")
    assert first.next_attempt_at == op.clock.now() + timedelta(seconds=10)
    assert {d.status for d in rest} == {"pending"}
    assert len(op.receiver.received) == 1  # nothing overtook the failed event

    op.tick()  # not due yet
    assert len(op.receiver.received) == 1

    op.later(10)
    op.tick()
    ids = [e["id"] for e in op.receiver.events()]
    assert ids == [first.id, first.id] + [d.id for d in rest]  # the retry, then the rest
    assert {d.status for d in op.deliveries(target.id)} == {"delivered"}
    assert [(a.outcome, a.status_code) for a in op.attempts(first.id)] == [
        ("retry", 503),
        ("delivered", 200),
    ]


def test_a_rejected_event_stays_visible_and_does_not_hold_the_queue(
    op: ProvisioningOperator,
) -> None:
    target = op.webhook_target()
    op.subscriber()
    op.receiver.answers.extend([400])

    op.tick()

    first, *rest = op.deliveries(target.id)
    assert (first.status, first.last_error) == ("rejected", "HTTP 400")
    assert {d.status for d in rest} == {"delivered"}
    [attempt] = op.attempts(first.id)
    assert (attempt.outcome, attempt.status_code, attempt.response_excerpt) == (
        "rejected",
        400,
        "nope",
    )

    op.tx(lambda u, c: provisioning.replay(u, c, first.id, op.clock.now()))
    op.tick()
    assert op.deliveries(target.id)[0].status == "delivered"
    assert op.receiver.events()[-1]["id"] == first.id  # same event id, so receivers dedupe


# --- failures, retries, dead deliveries -------------------------------------------------------


def test_a_panel_error_is_retried_on_schedule_and_nothing_is_lost(
    op: ProvisioningOperator,
) -> None:
    target = op.xtream_target()
    viewer = op.subscriber()
    op.panel.fail_next(1, Fault.ERROR_500)

    op.tick()

    [sync] = op.deliveries(target.id)
    assert (sync.status, sync.attempts) == ("failed", 1)
    assert sync.last_error is not None
    assert "panel.not_json" in sync.last_error
    assert sync.next_attempt_at == op.clock.now() + timedelta(seconds=10)
    calls = len(op.panel.calls)
    op.later(9)
    op.tick()
    assert len(op.panel.calls) == calls  # not due yet

    op.later(1)
    op.tick()

    assert op.panel.line(viewer.username).password == viewer.password
    [sync] = op.deliveries(target.id)
    assert (sync.status, sync.attempts) == ("delivered", 2)
    assert [(a.outcome, a.status_code) for a in op.attempts(sync.id)] == [
        ("retry", 500),
        ("delivered", 200),
    ]


def test_a_panel_timeout_is_retried(op: ProvisioningOperator) -> None:
    target = op.xtream_target()
    viewer = op.subscriber()
    op.panel.fail_next(1, Fault.HANG)  # longer than the transport waits

    op.tick()

    [sync] = op.deliveries(target.id)
    assert sync.status == "failed"
    assert sync.last_error is not None
    assert "panel.timeout" in sync.last_error
    op.later(10)
    op.tick()
    assert op.deliveries(target.id)[0].status == "delivered"
    assert op.panel.line(viewer.username).enabled == 1


def test_exhausted_retries_go_dead_and_a_replay_delivers(op: ProvisioningOperator) -> None:
    target = op.xtream_target()
    viewer = op.subscriber()
    op.panel.fail_next(MAX_ATTEMPTS, Fault.ERROR_500)

    for _ in range(MAX_ATTEMPTS):
        op.tick()
        op.later(2 * 3600)  # the longest wait of the schedule

    [sync] = op.deliveries(target.id)
    assert (sync.status, sync.attempts) == ("dead", MAX_ATTEMPTS)
    assert viewer.username not in op.panel.lines
    dead = op.client.get("/v1/provisioning/deliveries?status=dead", headers=op.auth()).json()
    assert [d["id"] for d in dead["data"]] == [sync.id]
    assert dead["data"][0]["next_attempt_at"] is None

    replayed = op.client.post(f"/v1/provisioning/deliveries/{sync.id}/replay", headers=op.auth())
    assert replayed.status_code == 200, replayed.text
    assert (replayed.json()["status"], replayed.json()["attempts"]) == ("pending", 0)
    op.tick()

    detail = op.client.get(f"/v1/provisioning/deliveries/{sync.id}", headers=op.auth()).json()
    assert (detail["status"], detail["attempts"]) == ("delivered", 1)
    assert len(detail["attempt_log"]) == MAX_ATTEMPTS + 1  # the log is kept
    assert op.panel.line(viewer.username).password == viewer.password


# --- leases and concurrent workers ------------------------------------------------------------


def test_a_crashed_workers_claim_is_taken_over_after_its_lease(op: ProvisioningOperator) -> None:
    target = op.xtream_target()
    viewer = op.subscriber()
    op.worker.follow_all()
    [sync] = op.deliveries(target.id)
    claimed = provisioning.claim_due(op.database.uow, op.clock.now(), "crashed", batch=10)
    assert [d.id for d in claimed] == [sync.id]  # ... and then that worker died

    assert op.worker.deliver().claimed == 0
    op.later(119)
    assert op.worker.deliver().claimed == 0  # the lease still holds

    op.later(1)
    stats = op.worker.deliver()

    assert (stats.claimed, stats.delivered) == (1, 1)
    assert op.panel.line(viewer.username).enabled == 1


def test_a_late_result_of_a_lost_lease_changes_nothing(op: ProvisioningOperator) -> None:
    target = op.xtream_target()
    viewer = op.subscriber()
    gate = Gate(op.xtream)
    slow = op.new_worker(gate)
    results: list[provisioning.TickResult] = []
    thread = threading.Thread(target=lambda: results.append(slow.tick()))
    thread.start()
    assert gate.entered.wait(10)

    op.later(121)  # the slow worker's lease ran out
    assert op.worker.deliver().delivered == 1
    gate.release.set()
    thread.join(10)

    assert results[0].deliveries.superseded == 1
    [sync] = op.deliveries(target.id)
    assert (sync.status, sync.attempts, sync.claim_token) == ("delivered", 1, None)
    assert len(op.attempts(sync.id)) == 2  # both attempts are in the log
    assert op.panel.line(viewer.username).enabled == 1


def _queue(
    op: ProvisioningOperator, target_id: str, sub_id: str, count: int, event_type: str
) -> list[str]:
    now = op.clock.now()
    head = op.read(lambda u, c: u.log.size(c.tenant_id))
    records = [
        ProvisioningDeliveryRecord(
            id=op.ids.new("pdl"),
            tenant_id=op.tenant_id,
            target_id=target_id,
            subscription_id=sub_id,
            event_type=event_type,
            log_index=head + n,
            payload="{}",
            status="pending",
            attempts=0,
            next_attempt_at=now,
            locked_until=None,
            claim_token=None,
            last_error=None,
            created_at=now,
        )
        for n in range(count)
    ]
    op.tx(lambda u, c: u.provisioning.add_deliveries(records))
    return [r.id for r in records]


def _claim_concurrently(
    op: ProvisioningOperator, workers: int, batch: int
) -> dict[str, list[list[str]]]:
    barrier = threading.Barrier(workers)
    claims: dict[str, list[list[str]]] = {}
    errors: list[BaseException] = []

    def claimer(name: str) -> None:
        try:
            barrier.wait(10)
            got: list[list[str]] = []
            while claimed := provisioning.claim_due(
                op.database.uow, op.clock.now(), name, batch=batch
            ):
                got.append([d.id for d in claimed])
            claims[name] = got
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=claimer, args=(f"w{n}",)) for n in range(workers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    return claims


def test_concurrent_claims_of_panel_syncs_are_disjoint(op: ProvisioningOperator) -> None:
    target = op.xtream_target()
    viewer = op.subscriber()
    queued = _queue(op, target.id, viewer.subscription.id, 60, "xtream.sync")

    claims = _claim_concurrently(op, workers=4, batch=7)

    taken = [i for batches in claims.values() for batch in batches for i in batch]
    assert sorted(taken) == sorted(queued)  # every one claimed, none twice
    owners = {d.id: d.claim_token for d in op.deliveries(target.id)}
    for name, batches in claims.items():
        assert {owners[i] for batch in batches for i in batch} <= {name}


def test_one_worker_at_a_time_sends_a_webhook_targets_events(op: ProvisioningOperator) -> None:
    target = op.webhook_target()
    viewer = op.subscriber()
    op.worker.follow_all()
    followed = [d.id for d in op.deliveries(target.id)]
    queued = followed + _queue(op, target.id, viewer.subscription.id, 30, "subscription.updated")

    claims = _claim_concurrently(op, workers=3, batch=100)

    holders = {name: batches for name, batches in claims.items() if batches}
    assert len(holders) == 1  # the first claim's leases keep the others out
    [batches] = holders.values()
    assert batches == [queued[: provisioning.PER_TARGET]]  # the oldest, in log order


def test_two_workers_deliver_every_event_once_in_order(op: ProvisioningOperator) -> None:
    targets = [op.webhook_target(f"hook{n}") for n in range(3)]
    for _ in range(4):
        op.subscriber()
    second = op.new_worker()
    errors: list[BaseException] = []
    barrier = threading.Barrier(2)

    def run(worker: provisioning.ProvisioningWorker) -> None:
        try:
            barrier.wait(10)
            for _ in range(5):
                worker.tick()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(w,)) for w in (op.worker, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    op.tick()  # whatever a busy target left for later

    assert not errors, errors
    for n, target in enumerate(targets):
        deliveries = op.deliveries(target.id)
        assert len(deliveries) == 4 * 3  # created + line + token, per subscriber
        assert {d.status for d in deliveries} == {"delivered"}
        received = [e["id"] for e in op.receiver.events(f"hook{n}")]
        assert received == [d.id for d in deliveries]  # once each, in log order


def test_follow_moves_the_cursor_once(op: ProvisioningOperator) -> None:
    target = op.webhook_target()
    op.subscriber()
    stale = replace(target)  # the cursor as it was before anyone followed

    op.worker.follow_all()
    moved = op.read(lambda u, c: provisioning.get_target(u, c, target.id))
    assert moved.cursor == op.read(lambda u, c: u.log.size(c.tenant_id))

    with pytest.raises(Exception, match="another worker followed"):
        op.tx(lambda u, c: provisioning.follow(u, c, stale))
    assert len(op.deliveries(target.id)) == 3  # the stale follow added nothing


def test_a_sync_closed_meanwhile_is_not_reused(op: ProvisioningOperator) -> None:
    target = op.xtream_target()
    viewer = op.subscriber()
    op.tick()
    [done] = op.deliveries(target.id)

    # A worker closed it between a follower's read and its update: the update must not land.
    assert not op.tx(lambda u, c: u.provisioning.retarget(done.id, done.log_index + 5))
    op.tx(lambda u, c: subscriptions.pause(u, c, viewer.subscription.id))
    op.tick()

    first, second = op.deliveries(target.id)
    assert (first.id, first.log_index) == (done.id, done.log_index)
    assert second.status == "delivered"
    assert op.panel.line(viewer.username).enabled == 0
