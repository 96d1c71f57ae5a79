"""The nginx-rtmp harness against a tiny recording callback server: what nginx-rtmp really sends
to on_play / on_update / on_play_done, and how it reacts to the answers.

The callback server answers ``/play`` 200 for ``token=good`` and 403 otherwise, ``/update``
200 while ``update_allowed`` is set (403 after, for players only: a refused ``update_publish``
would drop the module's publisher) and ``/done`` 200.

Observed with ``notify_update_timeout 2s``: a refused update ends the player ~50 ms after the
403 (on_play_done follows at once), i.e. 0-2 s after the refusal starts; a control drop ends it
in ~30 ms. A player needs ~2 s from start to its first decoded frame (ffmpeg's probing plus
the wait for a key frame).
"""

from __future__ import annotations

import subprocess
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from nginx_rtmp import NginxRtmp, running_nginx_rtmp, wait_for_exit

STREAM = "testcard"
UPDATE_SECONDS = 2


@dataclass(frozen=True)
class Callback:
    kind: str  # play, update or done: the last segment of the callback path
    form: dict[str, list[str]]
    status: int
    at: float  # time.monotonic() when it arrived

    def first(self, key: str) -> str | None:
        # nginx's own fields come before the client's query, which may repeat them.
        values = self.form.get(key)
        return values[0] if values else None


@dataclass
class CallbackRecorder:
    base_url: str = ""  # what nginx's on_play/on_update/on_play_done URLs start with
    calls: list[Callback] = field(default_factory=list)
    update_allowed: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def answer(self, kind: str, form: dict[str, list[str]]) -> int:
        if kind == "play":
            status = 200 if form.get("token") == ["good"] else 403
        elif kind == "update":
            player = form.get("call", [""])[0] == "update_play"
            status = 403 if player and not self.update_allowed.is_set() else 200
        else:
            status = 200
        with self.lock:
            self.calls.append(Callback(kind, form, status, time.monotonic()))
        return status

    def find(self, kind: str, **fields: str) -> list[Callback]:
        with self.lock:
            calls = list(self.calls)
        return [
            call
            for call in calls
            if call.kind == kind and all(call.first(k) == v for k, v in fields.items())
        ]

    def session_play(self, session: str) -> Callback:
        """The on_play call of the player started with ``session=...`` in its query."""
        found = [call for call in self.find("play") if call.form.get("session") == [session]]
        assert len(found) == 1, found
        return found[0]


def _handler(recorder: CallbackRecorder) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length).decode()
            form = urllib.parse.parse_qs(body, keep_blank_values=True)
            status = recorder.answer(self.path.rsplit("/", 1)[-1], form)
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            pass  # keep the test output clean

    return Handler


def wait_for(condition: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}", pytrace=False)
        time.sleep(0.05)


@pytest.fixture(scope="module")
def callbacks() -> Iterator[CallbackRecorder]:
    recorder = CallbackRecorder()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(recorder))
    recorder.base_url = f"http://127.0.0.1:{server.server_address[1]}/integrations/nginx-rtmp"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield recorder
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="module")
def rtmp(
    callbacks: CallbackRecorder,
    tmp_path_factory: pytest.TempPathFactory,
    free_port: Callable[[], int],
) -> Iterator[NginxRtmp]:
    work_dir: Path = tmp_path_factory.mktemp("nginx-rtmp")
    with running_nginx_rtmp(
        callbacks.base_url, work_dir, update_seconds=UPDATE_SECONDS, free_port=free_port
    ) as server:
        publisher = server.publish(STREAM)
        try:
            server.wait_until_published(STREAM)
        except TimeoutError as exc:
            pytest.fail(f"{exc}\n--- publisher ---\n{server.output(publisher)}", pytrace=False)
        yield server


@pytest.fixture(autouse=True)
def _updates_allowed(callbacks: CallbackRecorder) -> None:
    callbacks.update_allowed.set()


def _wait_until_playing(
    rtmp: NginxRtmp, player: subprocess.Popen[bytes], timeout: float = 10.0
) -> None:
    wait_for(lambda: rtmp.frames(player) > 0, timeout, "the player to decode frames")


def test_good_token_plays_and_reaches_on_play(rtmp: NginxRtmp, callbacks: CallbackRecorder) -> None:
    result = rtmp.play(STREAM, "token=good&session=plain")

    assert result.ok, result.stderr
    assert result.frames > 0
    play = callbacks.session_play("plain")
    assert play.status == 200
    assert play.first("call") == "play"
    assert play.first("app") == "live"
    assert play.first("name") == STREAM  # the query is split off the stream name
    assert play.first("addr") == "127.0.0.1"
    assert (play.first("clientid") or "").isdigit()
    assert play.first("token") == "good"
    wait_for(
        lambda: callbacks.find("done", clientid=play.first("clientid") or ""), 5, "on_play_done"
    )


def test_query_comes_after_nginx_fields(rtmp: NginxRtmp, callbacks: CallbackRecorder) -> None:
    # A client can repeat nginx's field names; only the first value is nginx's.
    result = rtmp.play(STREAM, "token=good&session=spoof&name=other&call=publish", seconds=0.5)

    assert result.ok, result.stderr
    play = callbacks.session_play("spoof")
    assert play.form["name"] == [STREAM, "other"]
    assert play.form["call"] == ["play", "publish"]


def test_bad_token_is_refused(rtmp: NginxRtmp, callbacks: CallbackRecorder) -> None:
    result = rtmp.play(STREAM, "token=bad&session=refused")

    assert not result.ok
    assert result.frames == 0
    assert result.returncode != 0
    play = callbacks.session_play("refused")
    assert play.status == 403
    assert play.first("token") == "bad"


def test_refused_update_ends_the_session(rtmp: NginxRtmp, callbacks: CallbackRecorder) -> None:
    player = rtmp.play_in_background(STREAM, "token=good&session=suspended")
    _wait_until_playing(rtmp, player)
    client_id = callbacks.session_play("suspended").first("clientid") or ""

    callbacks.update_allowed.clear()  # e.g. the subscription was suspended
    cleared = time.monotonic()
    returncode = wait_for_exit(player, timeout=2 * UPDATE_SECONDS + 3)
    kicked_after = time.monotonic() - cleared

    assert returncode is not None, "the player still runs after its update was refused"
    assert kicked_after <= 2 * UPDATE_SECONDS + 1, kicked_after
    refused = [
        call
        for call in callbacks.find("update", call="update_play", clientid=client_id)
        if call.status == 403
    ]
    assert refused
    assert refused[0].first("token") == "good"  # the query comes with every update
    wait_for(lambda: callbacks.find("done", call="play_done", clientid=client_id), 5, "done")
    # The publisher's updates were answered 200, so the stream is still there.
    assert rtmp.client_ids(STREAM, publishing=True)


def test_control_drop_kicks_a_player(rtmp: NginxRtmp, callbacks: CallbackRecorder) -> None:
    player = rtmp.play_in_background(STREAM, "token=good&session=dropped")
    _wait_until_playing(rtmp, player)
    client_id = callbacks.session_play("dropped").first("clientid") or ""
    assert client_id in rtmp.client_ids(STREAM)  # callback and /stat agree on the id

    response = rtmp.drop_client(STREAM, client_id)

    assert response.status_code == 200
    assert response.text.strip() == "1"  # the number of clients dropped
    assert wait_for_exit(player, timeout=5) is not None
    wait_for(lambda: callbacks.find("done", call="play_done", clientid=client_id), 5, "done")
    assert client_id not in rtmp.client_ids(STREAM)
