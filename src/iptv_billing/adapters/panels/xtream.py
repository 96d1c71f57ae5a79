"""Client of the Xtream Codes admin API (XC_VM / Xtream_main ``admin/api.php``).

Wire format (re-implemented from the protocol, see docs reference §2.1):
``GET {base_url}/api.php?api_pass=K&action=user&sub=create|edit|info&...``; MAG boxes use
``action=stb`` and are identified by ``mac``. Line fields travel as ``user_data[<column>]``:
``exp_date`` in Unix seconds, ``bouquet`` as a JSON array string, ``enabled`` and ``is_trial``
as 0/1. Answers are ``{"result":true,...}`` or ``{"result":false,"error":"..."}``; XC_VM answers
a fake nginx 404 page (HTML) to a wrong ``api_pass`` or a caller outside its allowlist.

``base_url`` is the folder holding ``api.php`` (XC_VM: ``http://panel:port/admin``).

Every failure raises ``PanelError`` whose ``retryable``/``outcome`` tell the outbox whether to
try again; ``api_pass`` and line passwords never appear in its message, its details or its
cause, and are masked in httpx's request log lines.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import httpx
import orjson

from iptv_billing.adapters.panels._http import OwnedHttpClient
from iptv_billing.domain.errors import InvalidInput, Unavailable
from iptv_billing.domain.provisioning import (
    SYNCED_FIELDS,
    Outcome,
    PanelLine,
    RemoteLine,
    line_differences,
    outcome_of,
)

USER_AGENT = "iptv-billing"
_Param = str | int | float | bool | None  # httpx's query value type
DEFAULT_TIMEOUT = 10.0

# The panel's error strings we act on; anything else is "panel.refused".
_PANEL_ERRORS = {
    "EXISTS": "panel.exists",
    "NOT EXISTS": "panel.not_found",
    "KEY WRONG": "panel.unauthorized",
    "IP FORBIDDEN": "panel.unauthorized",
}


class PanelError(Unavailable):
    """A panel call that did not do what was asked.

    ``code`` is one of: ``panel.timeout``, ``panel.unreachable`` (no HTTP answer; retryable,
    ``status`` None); ``panel.not_json`` (e.g. XC_VM's fake 404 page) and ``panel.http_status``
    (a non-2xx JSON answer), retryable as ``outcome_of(status)`` says, with a 2xx page that is
    not JSON retried too; ``panel.unexpected_answer`` (JSON of an unknown shape);
    ``panel.unauthorized``, ``panel.exists``, ``panel.not_found``, ``panel.parameter_error``,
    ``panel.refused`` (``{"result":false}``; ``panel_error`` holds the panel's own text);
    ``panel.username_taken`` (``sync`` found the username used with another password).
    Only the first group and some ``panel.not_json``/``panel.http_status`` are retryable.
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        retryable: bool,
        status: int | None = None,
        panel_error: str | None = None,
    ) -> None:
        super().__init__(code, message, retryable=retryable, status=status, panel_error=panel_error)
        self.retryable = retryable
        self.status = status
        self.panel_error = panel_error

    @property
    def outcome(self) -> Outcome:
        return Outcome.RETRY if self.retryable else Outcome.REJECTED


class SyncAction(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"


@dataclass(frozen=True, slots=True)
class SyncResult:
    """What ``sync`` did. ``changed`` names the fields sent (all ``SYNCED_FIELDS`` after a
    create or an ``EXISTS`` fallback); ``remote`` is the line as found before (None: absent).
    A ``remote.admin_enabled`` of False is a ban on the panel that billing leaves alone."""

    action: SyncAction
    changed: tuple[str, ...]
    remote: RemoteLine | None


class XtreamPanelClient(OwnedHttpClient):
    def __init__(
        self,
        base_url: str,
        api_pass: str,
        http: httpx.Client | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        if not re.match(r"https?://[^/?#\s]", base_url):
            raise InvalidInput("panel.invalid_base_url", "the panel URL is http(s)://host/...")
        self._url = f"{base_url.rstrip('/')}/api.php"
        self._api_pass = api_pass
        super().__init__(http, timeout)

    # --- the calls --------------------------------------------------------------------------

    def info(self, line: PanelLine) -> RemoteLine | None:
        """The line as the panel has it (by username+password, or by MAC), None if absent."""
        try:
            body = self._call(*self._target(line, "info"))
        except PanelError as exc:
            if exc.code == "panel.not_found":
                return None
            raise
        return _remote_line(body, line.mac)

    def create(self, line: PanelLine) -> int | None:
        """Create the line with every field; the panel's id when it says (``stb`` does not).
        An existing line raises ``PanelError("panel.exists")``."""
        if line.mac is None:
            identity = [
                ("user_data[username]", line.username),
                ("user_data[password]", line.password),
            ]
            body = self._call("user", "create", [*identity, *_fields(line, creating=True)])
        else:
            identity = [("user_data[mac]", line.mac)]
            body = self._call("stb", "create", [*identity, *_fields(line, creating=True)])
        created = body.get("created_id")
        return created if isinstance(created, int) and not isinstance(created, bool) else None

    def edit(self, line: PanelLine) -> None:
        """Set every synced field: exp_date, max_connections, bouquet, enabled, is_trial."""
        self._edit(line, _fields(line, creating=False))

    def enable(self, line: PanelLine) -> None:
        self._edit(line, [("user_data[enabled]", "1")])

    def disable(self, line: PanelLine) -> None:
        self._edit(line, [("user_data[enabled]", "0")])

    def sync(self, line: PanelLine) -> SyncResult:
        """Make the panel match ``line``, idempotently (what the outbox calls, and repeats).

        info → create when absent → edit when a field differs → no call when equal. A create
        refused with ``EXISTS`` (the line appeared meanwhile, e.g. a retried create whose answer
        was lost) falls back to a full edit.
        """
        remote = self.info(line)
        if remote is not None:
            changed = line_differences(line, remote)
            if not changed:
                return SyncResult(SyncAction.UNCHANGED, (), remote)
            self.edit(line)
            return SyncResult(SyncAction.UPDATED, changed, remote)
        try:
            self.create(line)
        except PanelError as exc:
            if exc.code != "panel.exists":
                raise
        else:
            return SyncResult(SyncAction.CREATED, SYNCED_FIELDS, None)
        taken = False
        try:
            self.edit(line)
        except PanelError as exc:
            if exc.code != "panel.not_found":
                raise
            taken = True
        if taken:  # raised here, not in the handler, so no earlier exception rides along
            raise PanelError(
                "panel.username_taken",
                f"the panel has a line {line.username!r} with another password",
                retryable=False,
                panel_error="EXISTS",
            )
        return SyncResult(SyncAction.UPDATED, SYNCED_FIELDS, None)

    # --- plumbing ---------------------------------------------------------------------------

    def _target(self, line: PanelLine, sub: str) -> tuple[str, str, list[tuple[str, str]]]:
        if line.mac is None:
            return "user", sub, [("username", line.username), ("password", line.password)]
        return "stb", sub, [("mac", line.mac)]

    def _edit(self, line: PanelLine, fields: list[tuple[str, str]]) -> None:
        action, sub, identity = self._target(line, "edit")
        unchanged = False
        try:
            self._call(action, sub, [*identity, *fields])
        except PanelError as exc:
            # XC_VM's stb edit answers a bare {"result":false} when its UPDATE changed no row:
            # the MAC is unknown, or the line already had these values. info tells which.
            if line.mac is None or exc.code != "panel.refused" or exc.panel_error is not None:
                raise
            unchanged = True
        if unchanged and self.info(line) is None:
            raise PanelError(
                "panel.not_found", "stb/edit: no such MAC on the panel", retryable=False
            )

    def _call(self, action: str, sub: str, params: list[tuple[str, str]]) -> dict[str, Any]:
        what = f"{action}/{sub}"
        query: list[tuple[str, _Param]] = [
            ("api_pass", self._api_pass),
            ("action", action),
            ("sub", sub),
            *params,
        ]
        response: httpx.Response | None = None
        failure: PanelError | None = None
        try:
            response = self._http.get(
                self._url,
                params=query,
                headers={"User-Agent": USER_AGENT},
                timeout=self._timeout,
            )
        except httpx.TimeoutException:
            failure = PanelError(
                "panel.timeout", f"{what}: no answer within {self._timeout:g} s", retryable=True
            )
        except httpx.HTTPError as exc:  # the message may quote the URL: only the type is kept
            failure = PanelError(
                "panel.unreachable", f"{what}: {type(exc).__name__}", retryable=True
            )
        # Raised outside the handlers so the httpx exception (whose request holds the URL with
        # the secrets) is neither the cause nor the context.
        if failure is not None or response is None:
            raise failure or PanelError("panel.unreachable", what, retryable=True)
        return _answer(what, response)


def _answer(what: str, response: httpx.Response) -> dict[str, Any]:
    status = response.status_code
    body = _json_or_none(response.content)
    if body is None:
        # A 2xx page that is not JSON is a hiccup (PHP warning, proxy): retrying is harmless.
        hint = (
            " (XC_VM's fake 404: wrong api_pass, or this IP not allowed?)" if status == 404 else ""
        )
        raise PanelError(
            "panel.not_json",
            f"{what}: HTTP {status}, not JSON{hint}",
            retryable=outcome_of(status) is not Outcome.REJECTED,
            status=status,
        )
    if not 200 <= status <= 299:
        raise PanelError(
            "panel.http_status",
            f"{what}: HTTP {status}",
            retryable=outcome_of(status) is Outcome.RETRY,
            status=status,
        )
    if not isinstance(body, dict):
        raise PanelError(
            "panel.unexpected_answer", f"{what}: not a JSON object", retryable=False, status=status
        )
    if body.get("result") is True:
        return body
    error = _error_text(body)
    code = _PANEL_ERRORS.get(error or "", "panel.refused")
    if error and error.startswith("PARAMETER ERROR"):
        code = "panel.parameter_error"
    raise PanelError(
        code,
        f"{what} refused by the panel: {error or 'no reason given'}",
        retryable=False,
        status=status,
        panel_error=error,
    )


def _json_or_none(content: bytes) -> object | None:
    try:
        return orjson.loads(content) if content.strip() else None
    except orjson.JSONDecodeError:
        return None


def _error_text(body: dict[str, Any]) -> str | None:
    # Xtream_main answers {"result":false,"0":"KEY WRONG"}: the PHP array had no "error" key.
    error = body.get("error")
    if not isinstance(error, str):
        error = next((v for k, v in body.items() if k != "result" and isinstance(v, str)), None)
    return None if error is None else error[:200]


def _fields(line: PanelLine, *, creating: bool) -> list[tuple[str, str]]:
    fields = [
        ("user_data[max_connections]", str(line.max_connections)),
        ("user_data[bouquet]", orjson.dumps(list(line.bouquets)).decode()),
        ("user_data[enabled]", "1" if line.enabled else "0"),
        ("user_data[is_trial]", "1" if line.is_trial else "0"),
    ]
    exp = line.exp_unix
    if exp is not None:
        fields.append(("user_data[exp_date]", str(exp)))
    elif not creating:
        # "Never expires" is NULL; create stores an empty value as NULL, edit writes it as is.
        fields.append(("user_data[exp_date]", ""))
    return fields


def _remote_line(body: dict[str, Any], mac: str | None) -> RemoteLine:
    try:
        info = body["user_info"]
        if not isinstance(info, dict):
            raise TypeError("user_info")
        remote_mac = None
        if mac is not None:
            device = body.get("mag_device")
            remote_mac = str(device["mac"]) if isinstance(device, dict) else mac
        return RemoteLine(
            username=str(info.get("username") or ""),
            password=str(info.get("password") or ""),
            enabled=_flag(info.get("enabled", 1)),
            exp_date=_moment(info.get("exp_date")),
            max_connections=_count(info.get("max_connections")),
            bouquets=_ids(info.get("bouquet")),
            is_trial=_flag(info.get("is_trial", 0)),
            mac=remote_mac,
            admin_enabled=_flag(info.get("admin_enabled", 1)),
            panel_id=_count(info["id"]) if info.get("id") is not None else None,
        )
    except (KeyError, TypeError, ValueError, OverflowError, OSError):
        pass  # raised below, outside the handler: the parse error may quote the password
    raise PanelError(
        "panel.unexpected_answer", "info: the line's fields have an unknown shape", retryable=False
    )


# PDO hands XC_VM every column as a string; newer panels send numbers. Accept both, no more.
def _count(value: object) -> int:
    if isinstance(value, bool):
        raise ValueError("flag")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    raise ValueError("count")


def _flag(value: object) -> bool:
    if isinstance(value, bool):
        return value
    number = _count(value)
    if number not in (0, 1):
        raise ValueError("flag")
    return number == 1


def _moment(value: object) -> datetime | None:
    if value is None or value == "":
        return None
    return datetime.fromtimestamp(_count(value), UTC)


def _ids(value: object) -> tuple[int, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):  # a panel that hands the column over undecoded
        value = orjson.loads(value)
    if not isinstance(value, list):
        raise TypeError("bouquet")
    return tuple(sorted({_count(item) for item in value}))


# httpx logs every request URL at INFO; these URLs carry api_pass and line passwords.
_SECRET_PARAM = re.compile(
    r"((?:^|[?&])(?:api_pass|password|user_data(?:\[|%5B)password(?:\]|%5D))=)[^&#\s\"]*",
    re.IGNORECASE,
)


class _MaskSecrets(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _SECRET_PARAM.sub(r"\1***", str(arg)) if isinstance(arg, httpx.URL | str) else arg
                for arg in record.args
            )
        return True


_httpx_log = logging.getLogger("httpx")
if not any(isinstance(f, _MaskSecrets) for f in _httpx_log.filters):
    _httpx_log.addFilter(_MaskSecrets())
