"""Targets: creating, changing, reading, enabling and disabling them, and checking their
fields."""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import replace

from iptv_billing.domain.catalog import CODE_PATTERN
from iptv_billing.domain.errors import InvalidInput, NotFound
from iptv_billing.domain.provisioning import MIN_SECRET_BYTES
from iptv_billing.services.context import Context
from iptv_billing.services.credentials import RandomBytes, Sealer
from iptv_billing.services.ports import UnitOfWork
from iptv_billing.services.provisioning._common import (
    TARGET_KINDS,
    WEBHOOK_SECRET_BYTES,
    WEBHOOK_SECRET_PREFIX,
    XTREAM,
)
from iptv_billing.services.records import Page, ProvisioningTargetRecord

_MAX_NAME = 200
_MAX_URL = 1000
_MAX_SECRET = 200
_MAX_MAP_CODES = 1000
_MAX_BOUQUETS = 1000
_MAX_BOUQUET_ID = 2**31 - 1
_URL = re.compile(r"https?://[^\s/?#@]+(/[^\s?#]*)?(\?[^\s#]*)?")
_XTREAM_URL = re.compile(r"https?://[^\s/?#@]+(/[^\s?#]*)?")


def create_target(
    uow: UnitOfWork,
    ctx: Context,
    sealer: Sealer,
    random_bytes: RandomBytes,
    kind: str,
    name: str,
    url: str,
    secret: str | None,
    bouquet_map: Mapping[str, Sequence[int]] | None,
    *,
    from_beginning: bool | None = None,
) -> tuple[ProvisioningTargetRecord, str | None]:
    """A new target, and the webhook signing secret when it was generated here (shown once).

    Xtream: ``secret`` is the panel's ``api_pass`` (required), ``bouquet_map`` maps our
    package codes to the panel's bouquet ids. Webhooks: ``secret`` is the signing secret
    (16+ characters), generated (``whsec_`` + 32 random bytes) when absent; no bouquet map.
    ``from_beginning`` (default: True for Xtream, False for webhooks) starts the target at
    the log's first entry, so a new panel receives every existing line, rather than at its
    end (only changes from now on).
    """
    if kind not in TARGET_KINDS:
        raise InvalidInput("provisioning.invalid_kind", f"kind is one of {', '.join(TARGET_KINDS)}")
    name = _check_name(name)
    url = _check_url(kind, url)
    generated: str | None = None
    if kind == XTREAM:
        if secret is None:
            raise InvalidInput("provisioning.secret_required", "an Xtream panel needs its api_pass")
        secret = _check_secret(secret, 1)
        mapping = _check_bouquet_map(bouquet_map or {})
    else:
        if bouquet_map:
            raise InvalidInput(
                "provisioning.bouquet_map_not_allowed", "only Xtream targets map bouquets"
            )
        mapping = None
        if secret is None:
            generated = secret = new_webhook_secret(random_bytes)
        secret = _check_secret(secret, MIN_SECRET_BYTES)
    start = (kind == XTREAM) if from_beginning is None else from_beginning
    now = ctx.now()
    target_id = ctx.ids.new("ptg")
    record = ProvisioningTargetRecord(
        id=target_id,
        tenant_id=ctx.tenant_id,
        kind=kind,
        name=name,
        url=url,
        sealed_secret=sealer.seal(secret, target_id),
        bouquet_map=mapping,
        enabled=True,
        cursor=0 if start else uow.log.size(ctx.tenant_id),
        created_at=now,
        updated_at=now,
    )
    uow.provisioning.add_target(record)
    return record, generated


def new_webhook_secret(random_bytes: RandomBytes) -> str:
    """``whsec_`` and 32 random bytes, base64url without padding; the HMAC key is the whole
    string's ASCII bytes."""
    raw = base64.urlsafe_b64encode(random_bytes(WEBHOOK_SECRET_BYTES)).decode("ascii")
    return WEBHOOK_SECRET_PREFIX + raw.rstrip("=")


def update_target(
    uow: UnitOfWork,
    ctx: Context,
    sealer: Sealer,
    target_id: str,
    *,
    name: str | None = None,
    url: str | None = None,
    secret: str | None = None,
    bouquet_map: Mapping[str, Sequence[int]] | None = None,
) -> ProvisioningTargetRecord:
    """Rename, move, re-key or re-map a target (what is None stays). Deliveries already
    queued use the new values when they run; replay rejected ones after fixing a mapping."""
    target = get_target(uow, ctx, target_id)
    changed = target
    if name is not None:
        changed = replace(changed, name=_check_name(name))
    if url is not None:
        changed = replace(changed, url=_check_url(target.kind, url))
    if secret is not None:
        least = 1 if target.kind == XTREAM else MIN_SECRET_BYTES
        changed = replace(
            changed, sealed_secret=sealer.seal(_check_secret(secret, least), target.id)
        )
    if bouquet_map is not None:
        if target.kind != XTREAM:
            raise InvalidInput(
                "provisioning.bouquet_map_not_allowed", "only Xtream targets map bouquets"
            )
        changed = replace(changed, bouquet_map=_check_bouquet_map(bouquet_map))
    if changed == target:
        return target
    changed = replace(changed, updated_at=ctx.now())
    uow.provisioning.update_target(changed)
    return changed


def get_target(uow: UnitOfWork, ctx: Context, target_id: str) -> ProvisioningTargetRecord:
    target = uow.provisioning.get_target(ctx.tenant_id, target_id)
    if target is None:
        raise NotFound("provisioning_target.not_found", f"no provisioning target {target_id}")
    return target


def list_targets(
    uow: UnitOfWork, ctx: Context, limit: int, after: str | None
) -> Page[ProvisioningTargetRecord]:
    return uow.provisioning.list_targets(ctx.tenant_id, limit, after)


def set_enabled(
    uow: UnitOfWork, ctx: Context, target_id: str, enabled: bool
) -> ProvisioningTargetRecord:
    """A disabled target reads no log and sends nothing; enabled again, it catches up from
    where its cursor stopped (nothing is lost meanwhile)."""
    target = get_target(uow, ctx, target_id)
    if target.enabled == enabled:
        return target
    changed = replace(target, enabled=enabled, updated_at=ctx.now())
    uow.provisioning.update_target(changed)
    return changed


def bouquet_map_of(target: ProvisioningTargetRecord) -> dict[str, list[int]]:
    if target.bouquet_map is None:
        return {}
    mapping: dict[str, list[int]] = json.loads(target.bouquet_map)
    return mapping


def _check_name(name: object) -> str:
    if not isinstance(name, str) or not 1 <= len(name) <= _MAX_NAME or not name.isprintable():
        raise InvalidInput("provisioning.invalid_name", f"a name is 1-{_MAX_NAME} characters")
    return name


def _check_url(kind: str, url: object) -> str:
    pattern = _XTREAM_URL if kind == XTREAM else _URL
    if (
        not isinstance(url, str)
        or len(url) > _MAX_URL
        or not url.isascii()
        or not url.isprintable()
        or not pattern.fullmatch(url)
    ):
        what = "the folder holding api.php, without query" if kind == XTREAM else "a URL"
        raise InvalidInput("provisioning.invalid_url", f"an http(s) URL is expected: {what}")
    return url


def _check_secret(secret: object, least: int) -> str:
    if (
        not isinstance(secret, str)
        or not least <= len(secret) <= _MAX_SECRET
        or not secret.isascii()
        or not secret.isprintable()
        or " " in secret
    ):
        raise InvalidInput(
            "provisioning.invalid_secret",
            f"a secret is {least}-{_MAX_SECRET} printable ASCII characters, no spaces",
        )
    return secret


def _check_bouquet_map(mapping: object) -> str:
    """Canonical JSON of ``{package code: [bouquet id, ...]}`` (ids sorted, unique)."""

    def bad(why: str) -> InvalidInput:
        return InvalidInput("provisioning.invalid_bouquet_map", f"bouquet map: {why}")

    if not isinstance(mapping, Mapping):
        raise bad("an object of package code to bouquet ids")
    if len(mapping) > _MAX_MAP_CODES:
        raise bad(f"at most {_MAX_MAP_CODES} packages")
    canonical: dict[str, list[int]] = {}
    for code, ids in mapping.items():
        if not isinstance(code, str) or not CODE_PATTERN.fullmatch(code):
            raise bad(f"not a package code: {code!r}")
        if isinstance(ids, str | bytes) or not isinstance(ids, Sequence):
            raise bad(f"{code}: a list of bouquet ids")
        if len(ids) > _MAX_BOUQUETS:
            raise bad(f"{code}: at most {_MAX_BOUQUETS} bouquets")
        for value in ids:
            if (
                not isinstance(value, int)
                or isinstance(value, bool)
                or not 1 <= value <= _MAX_BOUQUET_ID
            ):
                raise bad(f"{code}: not a bouquet id: {value!r}")
        canonical[code] = sorted(set(ids))
    return json.dumps(canonical, sort_keys=True, separators=(",", ":"))
