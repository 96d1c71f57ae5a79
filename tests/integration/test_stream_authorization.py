"""Stream authorization against a real database: credentials issued through the services are
found by the in-memory index, billing's changes reach it through the log, and every refusal
names its reason."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from stream_harness import StreamOperator

from iptv_billing.domain.entitlement import Reason
from iptv_billing.domain.proration import ProrationMode
from iptv_billing.services import catalog, credentials, subscriptions
from iptv_billing.services.stream_auth import PlayRequest, Presented

IP = "198.51.100.7"


@pytest.fixture
def op(database_url: str) -> Iterator[StreamOperator]:
    operator = StreamOperator(database_url, max_failures=5)
    yield operator
    operator.close()


def play(op: StreamOperator, presented: Presented, stream: str = "news-1", **extra: object):  # type: ignore[no-untyped-def]
    return op.authorizer.authorize(PlayRequest(presented, stream, IP, **extra))  # type: ignore[arg-type]


def test_a_line_plays_its_packages_only(op: StreamOperator) -> None:
    viewer = op.viewer()
    line = Presented.line(viewer.username, viewer.password)
    assert play(op, line).allowed
    assert play(op, line, "3").allowed  # Xtream stream ids work as well as codes
    assert play(op, line, "sport-1").reason is Reason.NOT_IN_PACKAGE
    assert play(op, line, "no-such").reason is Reason.UNKNOWN_STREAM
    assert play(op, Presented.token(viewer.token)).allowed
    assert play(op, Presented.line(viewer.username, "wrong")).reason is Reason.UNKNOWN_CREDENTIAL


def test_guessing_is_blocked_per_ip(op: StreamOperator) -> None:
    viewer = op.viewer()
    for _ in range(5):
        assert (
            play(op, Presented.line(viewer.username, "guess")).reason is Reason.UNKNOWN_CREDENTIAL
        )
    good = Presented.line(viewer.username, viewer.password)
    assert play(op, good).reason is Reason.TOO_MANY_ATTEMPTS
    other_ip = op.authorizer.authorize(PlayRequest(good, "news-1", "203.0.113.9"))
    assert other_ip.allowed


def test_connection_limit_and_extra_screens(op: StreamOperator) -> None:
    viewer = op.viewer()
    line = Presented.line(viewer.username, viewer.password)
    assert play(op, line, session_id="a").allowed
    assert play(op, line, session_id="b").allowed
    assert play(op, line, session_id="c").reason is Reason.OVER_CONNECTION_LIMIT
    assert op.authorizer.heartbeat(PlayRequest(line, "news-1", IP, session_id="a")).allowed
    cmd = subscriptions.ChangeAddons((("screen", 1),), ProrationMode.NONE)
    op.tx(lambda u, c: subscriptions.change_addons(u, c, viewer.subscription.id, cmd))
    assert op.sync() == 1
    assert play(op, line, session_id="c").allowed  # the extra screen bought


def test_billing_changes_reach_the_index(op: StreamOperator) -> None:
    viewer = op.viewer()
    line = Presented.line(viewer.username, viewer.password)
    assert play(op, line, session_id="s1").allowed
    op.tx(lambda u, c: subscriptions.pause(u, c, viewer.subscription.id))
    op.sync()
    answer = op.authorizer.heartbeat(PlayRequest(line, "news-1", IP, session_id="s1"))
    assert answer.reason is Reason.PAUSED


def test_credential_changes_reach_the_index(op: StreamOperator) -> None:
    viewer = op.viewer()
    line = Presented.line(viewer.username, viewer.password)
    op.tx(lambda u, c: credentials.set_enabled(u, c, viewer.line_id, False))
    op.sync()
    assert play(op, line).reason is Reason.CREDENTIAL_DISABLED
    op.tx(lambda u, c: credentials.set_enabled(u, c, viewer.line_id, True))
    _, new_password = op.tx(
        lambda u, c: credentials.reset_secret(u, c, op.sealer, os.urandom, viewer.line_id)
    )
    op.sync()
    assert play(op, line).reason is Reason.UNKNOWN_CREDENTIAL
    assert play(op, Presented.line(viewer.username, new_password)).allowed
    revealed = op.read(lambda u, c: credentials.reveal(u, c, op.sealer, viewer.line_id))
    assert revealed == new_password
    op.tx(lambda u, c: credentials.remove(u, c, viewer.token_id))
    op.sync()
    assert play(op, Presented.token(viewer.token)).reason is Reason.UNKNOWN_CREDENTIAL


def test_devices_are_limited_and_reset(op: StreamOperator) -> None:
    viewer = op.viewer()
    sub_id = viewer.subscription.id
    op.tx(lambda u, c: credentials.register_device(u, c, sub_id, "00:1a:79:00:00:01"))
    op.tx(lambda u, c: credentials.register_device(u, c, sub_id, "00-1A-79-00-00-02"))
    with pytest.raises(Exception, match="limit"):
        op.tx(lambda u, c: credentials.register_device(u, c, sub_id, "00:1A:79:00:00:03"))
    op.sync()
    assert play(op, Presented.device("00:1a:79:00:00:02")).allowed
    assert op.tx(lambda u, c: credentials.reset_devices(u, c, sub_id)) == 2
    op.sync()
    assert play(op, Presented.device("00:1A:79:00:00:02")).reason is Reason.UNKNOWN_CREDENTIAL
    op.tx(lambda u, c: credentials.register_device(u, c, sub_id, "00:1A:79:00:00:02"))


def test_credential_changes_are_logged(op: StreamOperator) -> None:
    viewer = op.viewer()
    entries = op.read(lambda u, c: u.log.entries_about(c.tenant_id, [viewer.subscription.id]))
    kinds = [e.kind for e in entries]
    assert kinds.count("access_credential") == 2
    assert all(viewer.password not in e.record and viewer.token not in e.record for e in entries)


def test_usernames_are_unique_across_tenants(database_url: str) -> None:
    first = StreamOperator(database_url)
    second = StreamOperator(database_url)
    try:
        sub = first.viewer().subscription
        first.tx(
            lambda u, c: credentials.issue_line(u, c, first.sealer, os.urandom, sub.id, "alice")
        )
        other = second.viewer().subscription
        with pytest.raises(Exception, match="taken"):
            second.tx(
                lambda u, c: credentials.issue_line(
                    u, c, second.sealer, os.urandom, other.id, "alice"
                )
            )
    finally:
        first.close()
        second.close()


def test_new_channels_reach_the_index_within_a_refresh(op: StreamOperator) -> None:
    viewer = op.viewer()
    line = Presented.line(viewer.username, viewer.password)
    assert play(op, line, "news-3").reason is Reason.UNKNOWN_STREAM
    op.tx(lambda u, c: catalog.create_channel(u, c, catalog.CreateChannel("news-3", "N3", 9)))
    op.tx(
        lambda u, c: catalog.create_package(
            u, c, catalog.CreatePackage("extra", "Extra", ("news-3",))
        )
    )
    op.sync()
    # Known now, but in no package of the viewer's plan.
    assert play(op, line, "news-3").reason is Reason.NOT_IN_PACKAGE
