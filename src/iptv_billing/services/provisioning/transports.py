"""Transports: what ``adapters.panels`` offers the worker (webhook sender, panel client)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from iptv_billing.domain.provisioning import Outcome, PanelLine


class SendResult(Protocol):
    """One webhook POST as the sender reports it (``adapters.panels.DeliveryResult``)."""

    @property
    def status(self) -> int | None: ...
    @property
    def outcome(self) -> Outcome: ...
    @property
    def response_excerpt(self) -> str: ...
    @property
    def duration_ms(self) -> int: ...
    @property
    def error(self) -> str | None: ...


class WebhookTransport(Protocol):
    """Sends one signed event (``adapters.panels.WebhookSender``); never raises for network
    trouble, which comes back as ``Outcome.RETRY``."""

    def send(
        self,
        url: str,
        secret: bytes,
        event_id: str,
        event_type: str,
        payload: Mapping[str, object],
        at_unix: int,
        *,
        created_unix: int | None = None,
    ) -> SendResult: ...


@dataclass(frozen=True, slots=True)
class LineSync:
    """What one line's sync came to. ``detail`` is for the delivery log (what was done, or
    the panel's error); neither it nor ``error`` (an error code) ever holds a secret."""

    outcome: Outcome
    status: int | None = None
    detail: str = ""
    error: str | None = None


class PanelTransport(Protocol):
    """Makes a panel's line match ``line``, idempotently. ``previous_password`` is the one
    the panel last accepted for it when that differs: Xtream finds a line by username *and*
    password, so the transport first changes the password with the old one."""

    def sync_line(
        self, url: str, api_pass: str, line: PanelLine, previous_password: str | None
    ) -> LineSync: ...


@dataclass(frozen=True, slots=True)
class Transports:
    panel: PanelTransport
    webhook: WebhookTransport
