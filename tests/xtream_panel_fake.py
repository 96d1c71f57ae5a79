"""A small but faithful fake of the XC_VM / Xtream_main admin ``api.php``, on a real HTTP server.

``FakeXtreamPanel`` serves ``GET /admin/api.php`` on 127.0.0.1 (a free port) from a threaded
stdlib ``http.server``; ``base_url`` is ``http://127.0.0.1:PORT/admin``. Use it as a context
manager (or ``start()``/``stop()``). Import it the way ``anvil_fixture`` is imported
(``from xtream_panel_fake import FakeXtreamPanel``): ``tests/`` is on ``sys.path``.

Semantics kept from the PHP (Vateron-Media/Xtream_main ``wwwdir/admin/api.php``):

* ``api_pass`` must match, else ``{"result":false,"0":"KEY WRONG"}`` (Xtream_main's answer: the
  PHP array had no ``error`` key), or with ``wrong_key_answer="html404"`` the fake nginx 404
  page newer XC_VM answers;
* ``action=user``: ``create`` takes ``user_data[...]`` columns (an unknown column is the SQL
  failure ``PARAMETER ERROR``), stores ``exp_date`` empty as NULL and ``bouquet`` as JSON text,
  and answers ``{"result":true,"created_id":..,"username":..,"password":..}``; ``edit`` and
  ``info`` identify the line by ``username`` + ``password`` (``NOT EXISTS`` otherwise);
  ``info`` hands columns back as strings, as PDO does, with ``bouquet`` decoded;
* ``action=stb``: ``create`` needs ``user_data[mac]`` (stored upper-case, ``EXISTS`` when
  taken) and generates the username and password itself; ``info`` looks the MAC up exactly as
  given and answers ``{"result":true,"mag_device":{..},"user_info":{..},"pair_line_info":[]}``;
  ``edit`` answers a bare ``{"result":false}`` when its UPDATE changed no row;
* an unknown action answers an empty 200 page.

Deliberate differences: ``user/create`` refuses an existing *username* with ``EXISTS`` (the PHP
checks username *and* password, so it would add a second line with the same username); an edit
with ``user_data[exp_date]=`` (empty) stores NULL ("never expires"), a guess about how the real
panel's SQL treats an empty value.

Test knobs: ``fail_next(n, Fault.ERROR_500 | Fault.HANG | Fault.HTML_404)`` (a hung call
sleeps ``hang_seconds`` and then still does its work, like a slow panel whose client gave up),
``hide_next_info(n)`` (``info`` answers ``NOT EXISTS``, as when another worker creates the line
between our info and create), ``calls`` (every request's flat query, in order).
"""

from __future__ import annotations

import json
import secrets
import threading
from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

HOST = "127.0.0.1"
DEFAULT_API_PASS = "fake-panel-api-pass-7Qx"
NGINX_404 = (
    "<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n"
    "<center><h1>404 Not Found</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n"
    "</html>\r\n" + "<!-- a padding to disable MSIE and Chrome friendly error page -->\r\n" * 6
)
# Columns of XC_VM's `lines` table a caller may set (others fail the SQL).
COLUMNS = frozenset(
    {
        "username",
        "password",
        "exp_date",
        "max_connections",
        "bouquet",
        "enabled",
        "admin_enabled",
        "is_trial",
        "is_restreamer",
        "allowed_ips",
        "allowed_ua",
        "admin_notes",
        "reseller_notes",
        "member_id",
        "forced_country",
        "is_isplock",
        "access_token",
        "is_mag",
    }
)
_INT_COLUMNS = frozenset(
    {"max_connections", "enabled", "admin_enabled", "is_trial", "is_restreamer", "member_id"}
    | {"is_isplock", "is_mag"}
)


class Fault(StrEnum):
    ERROR_500 = "500"
    HANG = "hang"
    HTML_404 = "html404"


class _SqlError(Exception):
    """What a failed query is in the PHP: answered as PARAMETER ERROR."""


@dataclass
class FakeLine:
    id: int
    username: str
    password: str
    exp_date: int | None = None
    max_connections: int = 1
    bouquet: str = "[]"  # JSON text, as the column holds it
    enabled: int = 1
    admin_enabled: int = 1
    is_trial: int = 0
    is_mag: int = 0
    mac: str | None = None
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def bouquets(self) -> list[int] | None:
        try:
            decoded = json.loads(self.bouquet)
        except ValueError:
            return None
        return decoded if isinstance(decoded, list) else None

    def user_info(self) -> dict[str, Any]:
        """The row as PDO hands it to PHP (strings), bouquet decoded, as getUserInfo does."""
        return {
            "id": str(self.id),
            "username": self.username,
            "password": self.password,
            "exp_date": None if self.exp_date is None else str(self.exp_date),
            "max_connections": str(self.max_connections),
            "bouquet": self.bouquets,
            "enabled": str(self.enabled),
            "admin_enabled": str(self.admin_enabled),
            "is_trial": str(self.is_trial),
            "is_mag": str(self.is_mag),
            "allowed_ips": [],
            "allowed_ua": [],
            "created_by": "0",
        }

    def apply(self, data: dict[str, str]) -> bool:
        """UPDATE lines SET ...: True when a value changed (MySQL's affected rows)."""
        before = (self.__dict__.copy(), dict(self.extra))
        for column, raw in data.items():
            if column not in COLUMNS:
                raise _SqlError(column)
            if column == "exp_date":
                self.exp_date = None if raw == "" else _int(raw)
            elif column in _INT_COLUMNS:
                setattr(self, column, _int(raw))
            elif column in ("username", "password", "bouquet"):
                setattr(self, column, raw)
            else:
                self.extra[column] = raw
        return (self.__dict__, self.extra) != before


def _int(raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise _SqlError(raw) from None


class FakeXtreamPanel:
    def __init__(
        self,
        api_pass: str = DEFAULT_API_PASS,
        *,
        wrong_key_answer: str = "json",
        hang_seconds: float = 3.0,
    ) -> None:
        self.api_pass = api_pass
        self.wrong_key_answer = wrong_key_answer
        self.hang_seconds = hang_seconds
        self.lines: dict[str, FakeLine] = {}  # by username
        self.calls: list[dict[str, str]] = []
        self._faults: deque[Fault] = deque()
        self._hidden_infos = 0
        self._next_id = 1
        self._lock = threading.Lock()
        self._release = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> FakeXtreamPanel:
        server = ThreadingHTTPServer((HOST, 0), _Handler)
        server.daemon_threads = True
        server.panel = self  # type: ignore[attr-defined]
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()  # let hung handlers finish
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeXtreamPanel:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("start the fake panel first")
        return f"http://{HOST}:{self._server.server_address[1]}/admin"

    # --- knobs and inspection ---------------------------------------------------------------

    def fail_next(self, count: int, fault: Fault) -> None:
        with self._lock:
            self._faults.extend([fault] * count)

    def hide_next_info(self, count: int = 1) -> None:
        with self._lock:
            self._hidden_infos += count

    def add_line(self, username: str, password: str, **columns: Any) -> FakeLine:
        with self._lock:
            return self._insert(username, password, **columns)

    def line(self, username: str) -> FakeLine:
        return self.lines[username]

    def mag(self, mac: str) -> FakeLine:
        return next(line for line in self.lines.values() if line.mac == mac.upper())

    def actions(self) -> list[str]:
        """``action/sub`` of every call so far."""
        return [f"{call.get('action')}/{call.get('sub')}" for call in self.calls]

    # --- api.php ----------------------------------------------------------------------------

    def _insert(self, username: str, password: str, **columns: Any) -> FakeLine:
        line = FakeLine(self._next_id, username, password, **columns)
        self._next_id += 1
        self.lines[username] = line
        return line

    def handle(self, path: str, query: str) -> tuple[int, str]:
        """(status, body) for one request; faults first, then the key, then the action."""
        flat = dict(parse_qsl(query, keep_blank_values=True))
        with self._lock:
            self.calls.append(flat)
            fault = self._faults.popleft() if self._faults else None
        if fault is Fault.ERROR_500:
            return 500, ""
        if fault is Fault.HTML_404 or not path.endswith("/api.php"):
            return 404, NGINX_404
        if fault is Fault.HANG:
            self._release.wait(self.hang_seconds)
        if self.api_pass and flat.get("api_pass") != self.api_pass:
            if self.wrong_key_answer == "html404":
                return 404, NGINX_404
            return 200, json.dumps({"result": False, "0": "KEY WRONG"})
        request, user_data = _php_request(query)
        with self._lock:
            answer = self._dispatch(request, user_data)
        return 200, "" if answer is None else json.dumps(answer)

    def _dispatch(self, request: dict[str, str], data: dict[str, str]) -> dict[str, Any] | None:
        action, sub = request.get("action", ""), request.get("sub", "")
        handler = {
            ("user", "create"): self._user_create,
            ("user", "edit"): self._user_edit,
            ("user", "info"): self._user_info,
            ("stb", "create"): self._stb_create,
            ("stb", "edit"): self._stb_edit,
            ("stb", "info"): self._stb_info,
        }.get((action, sub))
        if handler is None:
            return None
        try:
            return handler(request, data)
        except _SqlError:
            return {"result": False, "error": "PARAMETER ERROR"}

    def _user_create(self, request: dict[str, str], data: dict[str, str]) -> dict[str, Any]:
        username = data.pop("username", None) or secrets.token_hex(5)
        password = data.pop("password", None) or secrets.token_hex(5)
        if username in self.lines:
            return {"result": False, "error": "EXISTS"}
        line = self._new_line(username, password, data)
        return {"result": True, "created_id": line.id, "username": username, "password": password}

    def _new_line(self, username: str, password: str, data: dict[str, str]) -> FakeLine:
        exp = data.pop("exp_date", "")
        bouquet = _bouquet_json(data.pop("bouquet", ""))
        probe = FakeLine(0, username, password)
        probe.apply(data)  # validates columns before anything is stored
        line = self._insert(username, password)
        line.apply(data)
        line.exp_date = _int(exp) if exp not in ("", "0") else None
        line.bouquet = bouquet
        return line

    def _find(self, request: dict[str, str]) -> FakeLine | None:
        line = self.lines.get(request.get("username", ""))
        return line if line is not None and line.password == request.get("password") else None

    def _user_edit(self, request: dict[str, str], data: dict[str, str]) -> dict[str, Any]:
        if not request.get("username") or not request.get("password"):
            return {"result": False, "error": "PARAMETER ERROR (user/pass)"}
        line = self._find(request)
        if line is None:
            return {"result": False, "error": "NOT EXISTS"}
        line.apply(data)
        return {"result": True}

    def _user_info(self, request: dict[str, str], data: dict[str, str]) -> dict[str, Any]:
        if not request.get("username") or not request.get("password"):
            return {"result": False, "error": "PARAMETER ERROR (user/pass)"}
        line = self._find(request)
        if line is None or self._hide_info():
            return {"result": False, "error": "NOT EXISTS"}
        return {"result": True, "user_info": line.user_info()}

    def _stb_create(self, request: dict[str, str], data: dict[str, str]) -> dict[str, Any]:
        mac = data.pop("mac", "").upper()
        if not mac:
            return {"result": False, "error": "PARAMETER ERROR (mac)"}
        if any(line.mac == mac for line in self.lines.values()):
            return {"result": False, "error": "EXISTS"}
        data.pop("username", None)
        data.pop("password", None)
        line = self._new_line(secrets.token_hex(5), secrets.token_hex(5), data)
        line.is_mag = 1
        line.mac = mac
        return {"result": True}

    def _stb_edit(self, request: dict[str, str], data: dict[str, str]) -> dict[str, Any]:
        mac = request.get("mac", "")
        if not mac:
            return {"result": False, "error": "PARAMETER ERROR (user/pass)"}
        line = next((x for x in self.lines.values() if x.mac == mac.upper()), None)
        if line is None or not line.apply({**data, "is_mag": "1"}):
            return {"result": False}  # no row changed
        return {"result": True}

    def _stb_info(self, request: dict[str, str], data: dict[str, str]) -> dict[str, Any]:
        mac = request.get("mac", "")
        if not mac:
            return {"result": False, "error": "PARAMETER ERROR (mac)"}
        line = next((x for x in self.lines.values() if x.mac == mac), None)  # not upper-cased
        if line is None or self._hide_info():
            return {"result": False, "error": "NOT EXISTS"}
        device = {"mag_id": str(line.id), "user_id": str(line.id), "mac": line.mac}
        return {
            "result": True,
            "mag_device": device,
            "user_info": line.user_info(),
            "pair_line_info": [],
        }

    def _hide_info(self) -> bool:
        if self._hidden_infos:
            self._hidden_infos -= 1
            return True
        return False


def _bouquet_json(raw: str) -> str:
    # create: empty or invalid JSON becomes [], ids become integers.
    try:
        decoded = json.loads(raw) if raw else []
    except ValueError:
        decoded = []
    if not isinstance(decoded, list):
        decoded = []
    return json.dumps([int(x) for x in decoded], separators=(",", ":"))


def _php_request(query: str) -> tuple[dict[str, str], dict[str, str]]:
    """PHP's view of the query: plain keys, and ``user_data[key]`` gathered into a dict."""
    request: dict[str, str] = {}
    user_data: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        if key.startswith("user_data[") and key.endswith("]"):
            user_data[key[len("user_data[") : -1]] = value
        else:
            request[key] = value
    return request, user_data


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        panel: FakeXtreamPanel = self.server.panel  # type: ignore[attr-defined]
        parts = urlsplit(self.path)
        status, body = panel.handle(parts.path, parts.query)
        payload = body.encode()
        try:
            self.send_response(status)
            self.send_header("Content-Type", "text/html; charset=UTF-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout test)

    def log_message(self, format: str, *args: Any) -> None:
        pass
