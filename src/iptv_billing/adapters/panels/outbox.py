"""The provisioning worker's panel transport: ``XtreamPanelClient`` behind the services'
``PanelTransport`` protocol, with the password change that Xtream's API makes awkward.

Xtream's ``user/edit`` and ``user/info`` find a line by username *and* password, so after a
password reset the line is first edited under the password the panel last accepted (which the
services keep sealed) to the new one; then the ordinary idempotent ``sync`` runs. When the old
password no longer finds the line (the change went through but its answer was lost, or someone
edited the panel), the sync goes ahead with the new password.
"""

from __future__ import annotations

from dataclasses import replace

import httpx

from iptv_billing.adapters.panels.xtream import DEFAULT_TIMEOUT, PanelError, XtreamPanelClient
from iptv_billing.domain.errors import InvalidInput
from iptv_billing.domain.provisioning import Outcome, PanelLine
from iptv_billing.services.provisioning import LineSync


class _Client(XtreamPanelClient):
    def change_password(self, line: PanelLine, new_password: str) -> None:
        """Edit the line found by ``line``'s (old) username and password to ``new_password``."""
        self._edit(line, [("user_data[password]", new_password)])


class XtreamTransport:
    """One shared HTTP client (no redirects) for every panel; a client object per call."""

    def __init__(self, http: httpx.Client | None = None, timeout: float = DEFAULT_TIMEOUT) -> None:
        self._owned = http is None
        self._http = http if http is not None else httpx.Client(follow_redirects=False)
        self._timeout = timeout

    def close(self) -> None:
        if self._owned:
            self._http.close()

    def sync_line(
        self, url: str, api_pass: str, line: PanelLine, previous_password: str | None
    ) -> LineSync:
        changed_password = False
        try:
            client = _Client(url, api_pass, http=self._http, timeout=self._timeout)
            if line.mac is None and previous_password not in (None, line.password):
                try:
                    client.change_password(
                        replace(line, password=str(previous_password)), line.password
                    )
                    changed_password = True
                except PanelError as exc:
                    if exc.code != "panel.not_found":
                        raise
            result = client.sync(line)
        except PanelError as exc:
            return LineSync(exc.outcome, exc.status, exc.message, exc.code)
        except InvalidInput as exc:  # a URL the client refuses
            return LineSync(Outcome.REJECTED, None, exc.message, exc.code)
        detail = result.action.value
        if result.changed:
            detail += f" ({', '.join(result.changed)})"
        if changed_password:
            detail = f"password changed, {detail}"
        if result.remote is not None and not result.remote.admin_enabled:
            detail += ", banned on the panel (left alone)"
        return LineSync(Outcome.DELIVERED, 200, detail)
