"""A real nginx-rtmp server and ffmpeg publishers/players, for tests of stream authorization.

``NginxRtmp(callback_base, work_dir)`` (a context manager) writes an nginx.conf into a fresh
prefix directory under ``work_dir`` and runs Debian's nginx with the RTMP module in the
foreground: RTMP on a free 127.0.0.1 port (application ``live``), HTTP on another one with
``/control`` (``rtmp_control``: billing kicks clients there) and ``/stat`` (``rtmp_stat``).
Players are authorized by HTTP callbacks under ``callback_base``:

* ``POST {callback_base}/play`` (``on_play``) when a player starts; 2xx lets it play, anything
  else (or no answer) refuses it;
* ``POST {callback_base}/update`` (``on_update``) every ``update_seconds`` for each session,
  *publishers included* (``call=update_publish``); with ``notify_update_strict on`` a non-2xx
  answer or a failed request drops the session at once, so the endpoint must answer 2xx for
  ``update_publish`` or nginx drops the operator's own encoder;
* ``POST {callback_base}/done`` (``on_play_done``) when a player goes away.

The bodies are ``application/x-www-form-urlencoded`` (HTTP/1.0): nginx's own fields first, in
this order: ``app``, ``flashver``, ``swfurl``, ``tcurl``, ``pageurl``, ``addr``, ``clientid``,
``call`` (``play`` / ``update_play`` / ``play_done``), then ``name`` (on play also ``start``,
``duration``, ``reset``; on update ``time``, ``timestamp``); then the query string of the play
URL verbatim, on every one of the three calls. A client may repeat nginx's field names in its
query (``?name=x&call=y``), so an endpoint must take the *first* value of those fields.

How the query string travels: ffmpeg's RTMP client takes everything after the application in
``rtmp://host:port/live/STREAM?token=T`` as the play path, so ``STREAM?token=T`` goes to nginx
in the RTMP ``play`` command (``tcurl`` stays ``rtmp://host:port/live``, without it);
nginx-rtmp splits the name at ``?`` (``name=STREAM``) and appends ``token=T`` to the callback
bodies. Nothing else is needed. The publisher (127.0.0.1, ``allow publish``) has no callback.
Checked by tests/e2e/test_nginx_rtmp_harness.py.

``running_nginx_rtmp(...)`` is the factory for fixtures: it skips (fails when ``CI`` is set)
without nginx, the RTMP module or ffmpeg.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.parse
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import httpx
import pytest

HOST = "127.0.0.1"
NGINX = os.environ.get("IPTV_BILLING_NGINX", "/usr/sbin/nginx")
RTMP_MODULE = os.environ.get(
    "IPTV_BILLING_NGINX_RTMP_MODULE", "/usr/lib/nginx/modules/ngx_rtmp_module.so"
)
APP = "live"
START_TIMEOUT = 15.0
# The player's read timeout: a refused or dropped session must end the player, not hang it.
PLAYER_RW_TIMEOUT_US = 5_000_000

# http modules whose *_temp_path directive exists only when nginx was built with them.
_TEMP_PATHS = {
    "client_body_temp_path": None,
    "proxy_temp_path": "http_proxy",
    "fastcgi_temp_path": "http_fastcgi",
    "uwsgi_temp_path": "http_uwsgi",
    "scgi_temp_path": "http_scgi",
}


def missing_tools() -> list[str]:
    """What the harness needs and this machine lacks (empty when all is there)."""
    missing = []
    if not os.access(NGINX, os.X_OK):
        missing.append(f"nginx ({NGINX})")
    if not os.path.isfile(RTMP_MODULE):
        missing.append(f"the nginx RTMP module ({RTMP_MODULE}, libnginx-mod-rtmp)")
    if shutil.which("ffmpeg") is None:
        missing.append("ffmpeg")
    return missing


def require_tools() -> None:
    """Skip the calling test when a tool is missing; fail instead when ``CI`` is set."""
    missing = missing_tools()
    if not missing:
        return
    reason = f"missing {', '.join(missing)}: run `make system-deps`"
    if os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection((HOST, port), timeout=0.5):
            return True
    except OSError:
        return False


def _tail(path: Path, lines: int = 60) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return f"(no {path.name})"


def wait_for_exit(proc: subprocess.Popen[bytes], timeout: float) -> int | None:
    """The process's exit code, or None if it is still running after ``timeout`` seconds."""
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return None


def _stop_process(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    if proc.poll() is None:
        proc.terminate()
        if wait_for_exit(proc, timeout) is None:
            proc.kill()
            proc.wait(timeout=timeout)


@dataclass(frozen=True)
class PlayResult:
    ok: bool  # ffmpeg exited 0 after decoding at least one frame (a refusal exits 1, EIO)
    frames: int  # video frames decoded (ffmpeg's last ``frame=`` progress value)
    returncode: int
    stderr: str


def _last_frame_count(progress: str) -> int:
    """The last ``frame=N`` of ffmpeg's ``-progress`` output (0 when there is none)."""
    counts = re.findall(r"^frame=\s*(\d+)\s*$", progress, flags=re.MULTILINE)
    return int(counts[-1]) if counts else 0


class NginxRtmp:
    """nginx with the RTMP module in the foreground; see the module docstring."""

    def __init__(
        self,
        callback_base: str,
        work_dir: Path,
        update_seconds: int = 2,
        free_port: Callable[[], int] = _free_port,
    ) -> None:
        self.callback_base = callback_base.rstrip("/")
        self.update_seconds = update_seconds
        self.work_dir = Path(work_dir)
        self._free_port = free_port
        self.prefix = Path(tempfile.mkdtemp(prefix="nginx-rtmp-", dir=self.work_dir))
        self.error_log = self.prefix / "error.log"
        self.rtmp_port = 0
        self.http_port = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._children: list[subprocess.Popen[bytes]] = []
        # ffmpeg process -> its (progress, stderr) files
        self._logs: dict[subprocess.Popen[bytes], tuple[Path, Path]] = {}
        self._numbers = itertools.count(1)

    # -- addresses

    @property
    def rtmp_url(self) -> str:
        return f"rtmp://{HOST}:{self.rtmp_port}/{APP}"

    @property
    def http_url(self) -> str:
        return f"http://{HOST}:{self.http_port}"

    @property
    def control_url(self) -> str:
        return f"{self.http_url}/control"

    @property
    def stat_url(self) -> str:
        return f"{self.http_url}/stat"

    def stream_url(self, stream: str, query: str = "") -> str:
        # The query rides in the play path (see the module docstring).
        return f"{self.rtmp_url}/{stream}" + (f"?{query}" if query else "")

    # -- lifecycle

    def _built_without(self) -> set[str]:
        result = subprocess.run([NGINX, "-V"], capture_output=True, text=True, timeout=10)
        return set(re.findall(r"--without-(\w+)_module", result.stdout + result.stderr))

    def _config(self) -> str:
        prefix = self.prefix
        without = self._built_without()
        temp_paths = "".join(
            f"    {directive} {prefix}/temp/{directive.removesuffix('_temp_path')};\n"
            for directive, module in _TEMP_PATHS.items()
            if module is None or module not in without
        )
        # As root the workers would run as "nobody" and could not use the temp paths here.
        user = "user root;\n" if os.geteuid() == 0 else ""
        base = self.callback_base
        return (
            f"load_module {RTMP_MODULE};\n"
            f"{user}"
            "daemon off;\n"
            "master_process on;\n"
            "worker_processes 1;  # live streams are per worker: one worker sees them all\n"
            f"error_log {self.error_log} info;\n"
            f"pid {prefix}/nginx.pid;\n"
            "events { worker_connections 256; }\n"
            "rtmp {\n"
            "  server {\n"
            f"    listen {HOST}:{self.rtmp_port};\n"
            "    chunk_size 4096;\n"
            f"    application {APP} {{\n"
            "      live on;\n"
            # Players start on a key frame, audio held until then: the first media a player
            # gets decodes to pictures, so a short play counts frames instead of only audio.
            "      wait_key on;\n"
            "      wait_video on;\n"
            "      allow publish 127.0.0.1;  # the operator's encoder, no callback\n"
            "      deny publish all;\n"
            "      allow play all;\n"
            "      notify_method post;\n"
            f"      on_play {base}/play;\n"
            f"      on_update {base}/update;\n"
            f"      on_play_done {base}/done;\n"
            f"      notify_update_timeout {self.update_seconds}s;\n"
            "      notify_update_strict on;\n"
            "    }\n"
            "  }\n"
            "}\n"
            "http {\n"
            f"    access_log {prefix}/access.log;\n"
            f"{temp_paths}"
            "    server {\n"
            f"        listen {HOST}:{self.http_port};\n"
            "        location /control { rtmp_control all; }\n"
            "        location /stat { rtmp_stat all; }\n"
            "    }\n"
            "}\n"
        )

    def start(self) -> NginxRtmp:
        (self.prefix / "temp").mkdir(exist_ok=True)
        last_error = ""
        for _attempt in range(3):  # a port may be taken between choosing and binding it
            self.rtmp_port, self.http_port = self._free_port(), self._free_port()
            (self.prefix / "nginx.conf").write_text(self._config())
            self.error_log.write_text("")
            with (self.prefix / "stderr.log").open("wb") as stderr:
                # A session of its own: on a hard stop, killpg takes the workers too.
                self._process = subprocess.Popen(
                    [NGINX, "-p", str(self.prefix), "-c", "nginx.conf", "-e", str(self.error_log)],
                    stdin=subprocess.DEVNULL,
                    stdout=stderr,
                    stderr=stderr,
                    cwd=self.prefix,
                    start_new_session=True,
                )
            deadline = time.monotonic() + START_TIMEOUT
            while self._process.poll() is None and time.monotonic() < deadline:
                if "Address already in use" in self.error_log.read_text(errors="replace"):
                    break  # nginx would retry the bind for 2.5 s; take other ports at once
                if _accepts(self.rtmp_port) and self._serves_http():
                    return self
                time.sleep(0.05)
            last_error = (
                f"exit code {self._process.poll()}\n--- stderr ---\n"
                f"{_tail(self.prefix / 'stderr.log')}\n--- error.log ---\n{_tail(self.error_log)}"
            )
            self._stop_nginx()
            if "Address already in use" not in last_error:
                break
        raise RuntimeError(f"nginx-rtmp did not start:\n{last_error}")

    def _serves_http(self) -> bool:
        # An answer, not just an accepted connection: while nginx retries a failed bind, the
        # ports it did bind accept connections (and a port taken by someone else accepts
        # too); only a running worker answers, and it runs only once every listen is bound.
        try:
            return httpx.get(self.stat_url, timeout=1.0, trust_env=False).status_code == 200
        except httpx.HTTPError:
            return False

    def _stop_nginx(self, timeout: float = 5.0) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        # SIGQUIT is nginx's graceful stop; it waits for open RTMP sessions, hence the SIGKILL.
        for sig in (signal.SIGQUIT, signal.SIGKILL):
            if process.poll() is not None:
                break
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
            wait_for_exit(process, timeout)
        # The master is gone; a worker it left behind would keep the ports.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)

    def stop(self) -> None:
        for child in self._children:
            _stop_process(child)
        self._children.clear()
        self._stop_nginx()

    def __enter__(self) -> NginxRtmp:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- ffmpeg

    def _spawn(self, kind: str, command: list[str]) -> subprocess.Popen[bytes]:
        number = next(self._numbers)
        progress = self.prefix / f"{kind}-{number}.progress"
        stderr_path = self.prefix / f"{kind}-{number}.stderr"
        with progress.open("wb") as out, stderr_path.open("wb") as err:
            proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        self._children.append(proc)
        self._logs[proc] = (progress, stderr_path)
        return proc

    def publish(self, stream: str, seconds: float | None = None) -> subprocess.Popen[bytes]:
        """An ffmpeg publishing a test picture and tone to ``stream`` in real time, until
        stopped (or for ``seconds``)."""
        limit = ["-t", f"{seconds:g}"] if seconds is not None else []
        # fmt: off
        command = [
            "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "warning",
            "-re", "-f", "lavfi", "-i", "testsrc=size=320x240:rate=25",
            "-re", "-f", "lavfi", "-i", "sine=frequency=1000",
            *limit,
            "-c:v", "libx264", "-preset", "ultrafast", "-tune", "zerolatency", "-g", "25",
            "-pix_fmt", "yuv420p", "-c:a", "aac",
            "-f", "flv", f"{self.rtmp_url}/{stream}",
        ]
        # fmt: on
        return self._spawn("publish", command)

    def stat(self) -> ElementTree.Element:
        """The parsed ``/stat`` XML."""
        response = httpx.get(self.stat_url, timeout=5.0, trust_env=False)
        response.raise_for_status()
        return ElementTree.fromstring(response.content)

    def _stream_clients(self, stream: str) -> list[ElementTree.Element]:
        for application in self.stat().iter("application"):
            if application.findtext("name") != APP:
                continue
            for element in application.iter("stream"):
                if element.findtext("name") == stream:
                    return list(element.iter("client"))
        return []

    def client_ids(self, stream: str, *, publishing: bool = False) -> list[str]:
        """The nginx client ids of ``stream``'s players (or of its publisher)."""
        return [
            client.findtext("id", "")
            for client in self._stream_clients(stream)
            if (client.find("publishing") is not None) == publishing
        ]

    def wait_until_published(self, stream: str, timeout: float = 10.0) -> None:
        """Return once ``stream`` has a publisher that has sent its codec metadata, so that a
        player started next finds a stream to play."""
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(httpx.HTTPError, ElementTree.ParseError):
                for application in self.stat().iter("application"):
                    for element in application.iter("stream"):
                        if (
                            element.findtext("name") == stream
                            and element.find("active") is not None
                            and element.find("meta/video") is not None
                        ):
                            return
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"stream {stream!r} not published after {timeout}s:\n{_tail(self.error_log)}"
                )
            time.sleep(0.1)

    def _player_command(self, stream: str, query: str, seconds: float | None) -> list[str]:
        limit = ["-t", f"{seconds:g}"] if seconds is not None else []
        # fmt: off
        return [
            "ffmpeg", "-hide_banner", "-nostdin", "-loglevel", "info",
            "-rw_timeout", str(PLAYER_RW_TIMEOUT_US),
            "-i", self.stream_url(stream, query),
            *limit, "-f", "null", "-",
            # key=value progress lines on stdout; frame=N counts the decoded video frames
            "-progress", "pipe:1", "-stats_period", "0.2",
        ]
        # fmt: on

    def play(
        self, stream: str, query: str = "", seconds: float = 2.0, timeout: float = 20
    ) -> PlayResult:
        """Play ``stream`` (with ``query``, e.g. ``token=T``) for ``seconds`` of media."""
        result = subprocess.run(
            self._player_command(stream, query, seconds),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        frames = _last_frame_count(result.stdout)
        ok = result.returncode == 0 and frames > 0
        return PlayResult(ok, frames, result.returncode, result.stderr)

    def play_in_background(self, stream: str, query: str = "") -> subprocess.Popen[bytes]:
        """A player that runs until nginx ends the session (or the harness stops). A player
        that nginx drops exits 0 (ffmpeg takes the closed connection for the end of the
        stream): watch for its exit (:func:`wait_for_exit`), not for an error."""
        return self._spawn("play", self._player_command(stream, query, None))

    def frames(self, proc: subprocess.Popen[bytes]) -> int:
        """Video frames decoded so far by a background player."""
        return _last_frame_count(self._logs[proc][0].read_text(errors="replace"))

    def output(self, proc: subprocess.Popen[bytes]) -> str:
        """The stderr of a publisher or background player."""
        return self._logs[proc][1].read_text(errors="replace")

    def drop_client(self, stream: str, client_id: str) -> httpx.Response:
        """Kick one client through ``rtmp_control`` (what billing does on a suspension)."""
        query = urllib.parse.urlencode({"app": APP, "name": stream, "clientid": client_id})
        return httpx.get(f"{self.control_url}/drop/client?{query}", timeout=5.0, trust_env=False)


@contextlib.contextmanager
def running_nginx_rtmp(
    callback_base: str,
    work_dir: Path,
    *,
    update_seconds: int = 2,
    free_port: Callable[[], int] = _free_port,
) -> Iterator[NginxRtmp]:
    """For fixtures: skips (fails in CI) without the tools, else a started :class:`NginxRtmp`
    that is stopped, with its ffmpegs, when the block ends."""
    require_tools()
    with NginxRtmp(callback_base, work_dir, update_seconds, free_port) as server:
        yield server
