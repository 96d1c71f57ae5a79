"""The Xtream panel client against a faithful fake of XC_VM's api.php, and the webhook sender
against a receiver that checks signatures with the domain's own ``verify``; both over real
HTTP on 127.0.0.1."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from iptv_billing.adapters.panels import (
    PanelError,
    SyncAction,
    WebhookSender,
    XtreamPanelClient,
    webhook_body,
)
from iptv_billing.domain.errors import Unauthorized
from iptv_billing.domain.provisioning import SYNCED_FIELDS, Outcome, PanelLine, verify
from xtream_panel_fake import FakeXtreamPanel, Fault

API_PASS = "panel-api-pass-Zk93"
LINE_PASSWORD = "line-pass-Hq27xv"
EXPIRY = datetime(2031, 3, 1, 12, 0, tzinfo=UTC)
MAC = "00:1A:79:12:34:56"


def a_line(**changes: object) -> PanelLine:
    line = PanelLine(
        username="alice01",
        password=LINE_PASSWORD,
        enabled=True,
        exp_date=EXPIRY,
        max_connections=2,
        bouquets=(3, 1),
        is_trial=False,
    )
    return replace(line, **changes)  # type: ignore[arg-type]


def a_mag_line(**changes: object) -> PanelLine:
    return a_line(username="", password="", mac=MAC.lower(), **changes)


@pytest.fixture
def panel() -> Iterator[FakeXtreamPanel]:
    with FakeXtreamPanel(API_PASS, hang_seconds=2.0) as fake:
        yield fake


@pytest.fixture
def client(panel: FakeXtreamPanel) -> Iterator[XtreamPanelClient]:
    with XtreamPanelClient(panel.base_url, API_PASS, timeout=0.5) as xtream:
        yield xtream


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def assert_no_secrets(exc: BaseException) -> None:
    text = "".join(traceback.format_exception(exc)) + repr(exc) + repr(getattr(exc, "details", ""))
    assert exc.__cause__ is None
    assert exc.__context__ is None
    assert API_PASS not in text
    assert LINE_PASSWORD not in text


# --- Xtream: create, info, sync ------------------------------------------------------------


def test_create_then_info_shows_every_field(
    client: XtreamPanelClient, panel: FakeXtreamPanel
) -> None:
    line = a_line(is_trial=True)
    created = client.create(line)

    stored = panel.line("alice01")
    assert created == stored.id
    assert stored.exp_date == int(EXPIRY.timestamp())
    assert stored.bouquet == "[1,3]"  # the JSON array text XC_VM keeps
    assert (stored.max_connections, stored.enabled, stored.is_trial) == (2, 1, 1)
    remote = client.info(line)
    assert remote is not None
    assert remote.exp_date == EXPIRY
    assert remote.bouquets == (1, 3)
    assert (remote.max_connections, remote.enabled, remote.is_trial) == (2, True, True)
    assert remote.admin_enabled is True
    assert remote.panel_id == stored.id


def test_info_of_an_absent_line_is_none(client: XtreamPanelClient) -> None:
    assert client.info(a_line()) is None


def test_sync_creates_then_is_a_no_op_when_equal(
    client: XtreamPanelClient, panel: FakeXtreamPanel
) -> None:
    first = client.sync(a_line())
    assert (first.action, first.changed, first.remote) == (SyncAction.CREATED, SYNCED_FIELDS, None)

    calls_before = len(panel.calls)
    second = client.sync(a_line())
    assert second.action is SyncAction.UNCHANGED
    assert second.changed == ()
    assert panel.actions()[calls_before:] == ["user/info"]  # nothing written


@pytest.mark.parametrize(
    ("change", "field_name"),
    [
        ({"exp_date": EXPIRY + timedelta(days=30)}, "exp_date"),
        ({"bouquets": (1, 3, 7)}, "bouquets"),
        ({"enabled": False}, "enabled"),
        ({"max_connections": 4}, "max_connections"),
        ({"is_trial": True}, "is_trial"),
    ],
)
def test_sync_edits_the_field_that_differs(
    client: XtreamPanelClient, panel: FakeXtreamPanel, change: dict[str, object], field_name: str
) -> None:
    client.sync(a_line())
    wanted = a_line(**change)

    result = client.sync(wanted)

    assert result.action is SyncAction.UPDATED
    assert result.changed == (field_name,)
    assert panel.actions()[-2:] == ["user/info", "user/edit"]
    assert client.sync(wanted).action is SyncAction.UNCHANGED  # the panel now matches


def test_sync_a_line_that_never_expires(client: XtreamPanelClient, panel: FakeXtreamPanel) -> None:
    client.sync(a_line())
    result = client.sync(a_line(exp_date=None))
    assert result.changed == ("exp_date",)
    assert panel.line("alice01").exp_date is None


def test_sync_falls_back_to_edit_when_create_says_exists(
    client: XtreamPanelClient, panel: FakeXtreamPanel
) -> None:
    # Another worker created the line between our info and our create.
    panel.add_line("alice01", LINE_PASSWORD, max_connections=1, enabled=0)
    panel.hide_next_info()

    result = client.sync(a_line())

    assert result.action is SyncAction.UPDATED
    assert panel.actions()[-3:] == ["user/info", "user/create", "user/edit"]
    stored = panel.line("alice01")
    assert (stored.max_connections, stored.enabled, stored.bouquet) == (2, 1, "[1,3]")


def test_sync_refuses_a_username_held_with_another_password(
    client: XtreamPanelClient, panel: FakeXtreamPanel
) -> None:
    panel.add_line("alice01", "someone-elses-password")

    with pytest.raises(PanelError) as caught:
        client.sync(a_line())

    assert caught.value.code == "panel.username_taken"
    assert caught.value.retryable is False
    assert caught.value.outcome is Outcome.REJECTED
    assert panel.line("alice01").password == "someone-elses-password"
    assert_no_secrets(caught.value)


def test_create_of_an_existing_line_raises_exists(client: XtreamPanelClient) -> None:
    client.create(a_line())
    with pytest.raises(PanelError) as caught:
        client.create(a_line())
    assert (caught.value.code, caught.value.panel_error) == ("panel.exists", "EXISTS")
    assert caught.value.retryable is False


def test_disable_and_enable(client: XtreamPanelClient, panel: FakeXtreamPanel) -> None:
    client.sync(a_line())

    client.disable(a_line())
    remote = client.info(a_line())
    assert remote is not None
    assert remote.enabled is False
    assert panel.line("alice01").max_connections == 2  # nothing else touched

    client.enable(a_line())
    remote = client.info(a_line())
    assert remote is not None
    assert remote.enabled is True


def test_edit_of_an_absent_line_is_not_found(client: XtreamPanelClient) -> None:
    with pytest.raises(PanelError) as caught:
        client.edit(a_line())
    assert caught.value.code == "panel.not_found"
    assert caught.value.retryable is False


def test_a_panel_ban_is_reported_and_left_alone(
    client: XtreamPanelClient, panel: FakeXtreamPanel
) -> None:
    client.sync(a_line())
    panel.line("alice01").admin_enabled = 0

    result = client.sync(a_line())

    assert result.action is SyncAction.UNCHANGED
    assert result.remote is not None
    assert result.remote.admin_enabled is False
    assert panel.line("alice01").admin_enabled == 0


# --- Xtream: MAG boxes (action=stb) --------------------------------------------------------


def test_mag_line_is_created_and_found_by_mac(
    client: XtreamPanelClient, panel: FakeXtreamPanel
) -> None:
    result = client.sync(a_mag_line())

    assert result.action is SyncAction.CREATED
    assert panel.actions() == ["stb/info", "stb/create"]
    stored = panel.mag(MAC)
    assert (stored.mac, stored.is_mag) == (MAC, 1)
    assert stored.username  # the panel generated it
    remote = client.info(a_mag_line())
    assert remote is not None
    assert remote.mac == MAC
    assert (remote.exp_date, remote.bouquets) == (EXPIRY, (1, 3))
    assert client.sync(a_mag_line()).action is SyncAction.UNCHANGED


def test_mag_line_is_edited_by_mac(client: XtreamPanelClient, panel: FakeXtreamPanel) -> None:
    client.sync(a_mag_line())
    later = EXPIRY + timedelta(days=31)

    result = client.sync(a_mag_line(exp_date=later, enabled=False))

    assert result.action is SyncAction.UPDATED
    assert set(result.changed) == {"exp_date", "enabled"}
    assert panel.actions()[-1] == "stb/edit"
    assert panel.mag(MAC).exp_date == int(later.timestamp())
    assert panel.mag(MAC).enabled == 0


def test_mag_enable_when_already_enabled_is_fine(client: XtreamPanelClient) -> None:
    # XC_VM answers {"result":false} when its UPDATE changed nothing; that is not a failure.
    client.sync(a_mag_line())
    client.enable(a_mag_line())
    remote = client.info(a_mag_line())
    assert remote is not None
    assert remote.enabled is True


def test_mag_disable_of_an_unknown_mac_is_not_found(client: XtreamPanelClient) -> None:
    with pytest.raises(PanelError) as caught:
        client.disable(a_mag_line())
    assert caught.value.code == "panel.not_found"


def test_mag_create_of_a_mac_in_use_falls_back_to_edit(
    client: XtreamPanelClient, panel: FakeXtreamPanel
) -> None:
    client.sync(a_mag_line(max_connections=1))
    panel.hide_next_info()

    result = client.sync(a_mag_line(max_connections=3))

    assert result.action is SyncAction.UPDATED
    assert panel.actions()[-3:] == ["stb/info", "stb/create", "stb/edit"]
    assert panel.mag(MAC).max_connections == 3


# --- Xtream: failures ----------------------------------------------------------------------


def test_a_500_is_retryable(client: XtreamPanelClient, panel: FakeXtreamPanel) -> None:
    panel.fail_next(1, Fault.ERROR_500)
    with pytest.raises(PanelError) as caught:
        client.sync(a_line())
    error = caught.value
    assert (error.retryable, error.status, error.outcome) == (True, 500, Outcome.RETRY)
    assert_no_secrets(error)
    # The outbox retries the same sync, which now goes through.
    assert client.sync(a_line()).action is SyncAction.CREATED


def test_a_timeout_is_retryable_and_the_retry_converges(
    client: XtreamPanelClient, panel: FakeXtreamPanel
) -> None:
    client.sync(a_line())
    # The edit hangs past the client's timeout; the panel still applies it, late.
    panel.fail_next(1, Fault.HANG)
    wanted = a_line(max_connections=5)

    with pytest.raises(PanelError) as caught:
        client.edit(wanted)

    error = caught.value
    assert (error.code, error.retryable, error.status) == ("panel.timeout", True, None)
    assert_no_secrets(error)
    assert client.sync(wanted).action in (SyncAction.UPDATED, SyncAction.UNCHANGED)
    assert panel.line("alice01").max_connections == 5


def test_an_html_404_is_rejected(client: XtreamPanelClient, panel: FakeXtreamPanel) -> None:
    panel.fail_next(1, Fault.HTML_404)
    with pytest.raises(PanelError) as caught:
        client.info(a_line())
    error = caught.value
    assert (error.code, error.status, error.retryable) == ("panel.not_json", 404, False)
    assert error.outcome is Outcome.REJECTED
    assert_no_secrets(error)


@pytest.mark.parametrize(
    ("answer", "code", "status"),
    [("json", "panel.unauthorized", 200), ("html404", "panel.not_json", 404)],
)
def test_a_wrong_api_pass_is_rejected_and_never_quoted(answer: str, code: str, status: int) -> None:
    with (
        FakeXtreamPanel(API_PASS, wrong_key_answer=answer) as fake,
        XtreamPanelClient(fake.base_url, "not-the-" + API_PASS, timeout=2) as wrong,
        pytest.raises(PanelError) as caught,
    ):
        wrong.sync(a_line())
    error = caught.value
    assert (error.code, error.status, error.retryable) == (code, status, False)
    assert "not-the-" not in str(error) + repr(error)
    assert_no_secrets(error)


def test_an_unreachable_panel_is_retryable() -> None:
    url = f"http://127.0.0.1:{free_port()}/admin"
    with XtreamPanelClient(url, API_PASS, timeout=2) as client, pytest.raises(PanelError) as caught:
        client.sync(a_line())
    error = caught.value
    assert (error.code, error.status, error.retryable) == ("panel.unreachable", None, True)
    assert_no_secrets(error)


def test_secrets_are_masked_in_httpx_request_logs(
    client: XtreamPanelClient, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="httpx"):
        client.sync(a_line())
        client.disable(a_line())
    assert "api.php" in caplog.text  # httpx did log the requests
    assert API_PASS not in caplog.text
    assert LINE_PASSWORD not in caplog.text


def test_a_caller_supplied_http_client_is_used_and_left_open(panel: FakeXtreamPanel) -> None:
    with httpx.Client() as http:
        client = XtreamPanelClient(panel.base_url, API_PASS, http=http)
        client.sync(a_line())
        client.close()
        assert not http.is_closed


# --- Webhooks ------------------------------------------------------------------------------

SECRET = b"whsec-0123456789abcdef"
NEW_SECRET = b"whsec-fedcba9876543210"


@dataclass
class Receiver:
    """A webhook endpoint: verifies each request with the domain's ``verify`` and answers
    ``status`` with ``answer``."""

    secrets: tuple[bytes, ...] = (SECRET,)
    status: int = 200
    answer: bytes = b"ok"
    delay: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    received: list[tuple[dict[str, str], bytes, str | None]] = field(default_factory=list)

    def handle(self, headers: dict[str, str], body: bytes) -> None:
        try:
            verify(self.secrets, body, headers.get("webhook-signature", ""), int(time.time()))
            problem = None
        except Unauthorized as exc:
            problem = exc.code
        self.received.append((headers, body, problem))


@pytest.fixture
def receiver() -> Iterator[tuple[Receiver, str]]:
    state = Receiver()

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            state.handle({k.lower(): v for k, v in self.headers.items()}, body)
            time.sleep(state.delay)
            try:
                self.send_response(state.status)
                for name, value in state.headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(state.answer)))
                self.end_headers()
                self.wfile.write(state.answer)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield state, f"http://127.0.0.1:{server.server_address[1]}/hooks/billing"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_a_webhook_is_delivered_signed_and_canonical(receiver: tuple[Receiver, str]) -> None:
    state, url = receiver
    now = int(time.time())
    payload = {"subscription": "sub_1", "status": "active", "lines": [{"username": "alice01"}]}

    with WebhookSender(timeout=2) as sender:
        result = sender.send(url, SECRET, "evt_1", "subscription.renewed", payload, now)

    assert (result.status, result.outcome, result.error) == (200, Outcome.DELIVERED, None)
    assert result.response_excerpt == "ok"
    assert result.duration_ms >= 0
    [(headers, body, problem)] = state.received
    assert problem is None  # the receiver's verify() accepted it
    assert json.loads(body) == {
        "id": "evt_1",
        "type": "subscription.renewed",
        "created": now,
        "data": payload,
    }
    assert body == webhook_body("evt_1", "subscription.renewed", payload, now)
    assert body.startswith(b'{"created":')  # sorted keys, compact
    assert b" " not in body
    assert headers["content-type"] == "application/json"
    assert headers["user-agent"] == "iptv-billing"
    assert headers["webhook-id"] == "evt_1"
    assert headers["webhook-timestamp"] == str(now)


def test_during_rotation_either_secret_verifies(receiver: tuple[Receiver, str]) -> None:
    state, url = receiver
    state.secrets = (NEW_SECRET,)  # the receiver already switched
    with WebhookSender(timeout=2) as sender:
        result = sender.send(url, [SECRET, NEW_SECRET], "evt_2", "t", {}, int(time.time()))
    assert result.outcome is Outcome.DELIVERED
    assert state.received[0][2] is None
    assert state.received[0][0]["webhook-signature"].count("v1=") == 2


def test_a_stale_signature_is_refused_by_the_receiver(receiver: tuple[Receiver, str]) -> None:
    state, url = receiver
    state.status = 200
    with WebhookSender(timeout=2) as sender:
        sender.send(url, SECRET, "evt_3", "t", {}, int(time.time()) - 3600)
    assert state.received[0][2] == "webhook.timestamp_too_old"


def test_a_replay_keeps_the_body_and_signs_anew(receiver: tuple[Receiver, str]) -> None:
    state, url = receiver
    created = int(time.time()) - 86_400
    with WebhookSender(timeout=2) as sender:
        sender.send(url, SECRET, "evt_4", "t", {"n": 1}, int(time.time()), created_unix=created)
    _, body, problem = state.received[0]
    assert problem is None
    assert body == webhook_body("evt_4", "t", {"n": 1}, created)


@pytest.mark.parametrize(
    ("status", "outcome"),
    [(503, Outcome.RETRY), (429, Outcome.RETRY), (400, Outcome.REJECTED), (410, Outcome.REJECTED)],
)
def test_receiver_statuses_are_classified(
    receiver: tuple[Receiver, str], status: int, outcome: Outcome
) -> None:
    state, url = receiver
    state.status, state.answer = status, b"nope: " + b"x" * 2000
    with WebhookSender(timeout=2) as sender:
        result = sender.send(url, SECRET, "evt_5", "t", {}, int(time.time()))
    assert (result.status, result.outcome) == (status, outcome)
    assert result.response_excerpt.startswith("nope: ")
    assert len(result.response_excerpt) == 500


def test_a_redirect_is_not_followed(receiver: tuple[Receiver, str]) -> None:
    state, url = receiver
    state.status, state.headers = 302, {"Location": "http://127.0.0.1:1/elsewhere"}
    with WebhookSender(timeout=2) as sender:
        result = sender.send(url, SECRET, "evt_6", "t", {}, int(time.time()))
    assert (result.status, result.outcome) == (302, Outcome.REJECTED)
    assert len(state.received) == 1


def test_connection_refused_is_retry_without_status() -> None:
    with WebhookSender(timeout=2) as sender:
        result = sender.send(
            f"http://127.0.0.1:{free_port()}/hook", SECRET, "evt_7", "t", {}, int(time.time())
        )
    assert (result.status, result.outcome, result.error) == (None, Outcome.RETRY, "ConnectError")
    assert result.response_excerpt == ""


def test_a_slow_receiver_is_retry_without_status(receiver: tuple[Receiver, str]) -> None:
    state, url = receiver
    state.delay = 1.0
    with WebhookSender(timeout=0.3) as sender:
        result = sender.send(url, SECRET, "evt_8", "t", {}, int(time.time()))
    assert (result.status, result.outcome, result.error) == (None, Outcome.RETRY, "ReadTimeout")


def test_an_unusable_url_is_rejected_not_raised() -> None:
    with WebhookSender(timeout=2) as sender:
        result = sender.send("ftp://example.invalid/x", SECRET, "evt_9", "t", {}, 0)
    assert (result.status, result.outcome) == (None, Outcome.REJECTED)
