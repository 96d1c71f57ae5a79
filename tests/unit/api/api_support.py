"""Helpers of the API unit tests: a probe router exercising the plumbing, problem checks."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends

from iptv_billing.api.deps import AdminWrite, ReadAccess
from iptv_billing.api.errors import PROBLEM_BASE
from iptv_billing.api.idempotency import IdempotentRoute, require_idempotency_key
from iptv_billing.api.money import MoneyIn, MoneyOut
from iptv_billing.api.pagination import ListResponse, Pagination, page_of
from iptv_billing.api.schemas import ApiModel
from iptv_billing.domain import errors

NOW = datetime(2025, 1, 15, 12, 0, tzinfo=UTC)

KINDS: dict[str, type[errors.BillingError]] = {
    "invalid": errors.InvalidInput,
    "not_found": errors.NotFound,
    "conflict": errors.Conflict,
    "payment_required": errors.InsufficientFunds,
    "unauthorized": errors.Unauthorized,
    "forbidden": errors.Forbidden,
    "unavailable": errors.Unavailable,
}


class Probe:
    """Counts handler executions; ``delay`` keeps a handler busy for concurrency tests."""

    def __init__(self) -> None:
        self.calls = 0
        self.delay = 0.0
        self._lock = threading.Lock()

    def hit(self) -> int:
        with self._lock:
            self.calls += 1
            count = self.calls
        time.sleep(self.delay)
        return count


class EchoIn(ApiModel):
    text: str
    price: MoneyIn | None = None


class Item(ApiModel):
    id: str


def probe_router(probe: Probe) -> APIRouter:
    router = APIRouter(prefix="/probe", route_class=IdempotentRoute)

    @router.post("/echo", status_code=201)
    def echo(body: EchoIn, caller: AdminWrite) -> dict[str, Any]:
        price = MoneyOut.of(body.price.to_money()) if body.price else None
        return {"text": body.text, "call": probe.hit(), "price": price}

    @router.post("/other", status_code=201)
    def other(body: EchoIn, caller: AdminWrite) -> dict[str, Any]:
        return {"text": body.text, "call": probe.hit()}

    @router.post("/fail/{kind}")
    def fail(kind: str, caller: AdminWrite) -> None:
        probe.hit()
        raise KINDS[kind](f"probe.{kind}", f"probe failure {kind}", kind=kind)

    @router.post("/boom")
    def boom(caller: AdminWrite) -> None:
        probe.hit()
        raise RuntimeError("secret internals")

    @router.post("/strict", dependencies=[Depends(require_idempotency_key)])
    def strict(caller: AdminWrite) -> dict[str, int]:
        return {"call": probe.hit()}

    @router.get("/items")
    def items(caller: ReadAccess, page: Pagination) -> ListResponse[Item]:
        all_items = [Item(id=f"itm_{n:03d}") for n in range(5)]
        return ListResponse.of(page_of(all_items, page), lambda item: item)

    return router


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == PROBLEM_BASE + code
    assert body["instance"] == response.request.url.path
    assert body["title"]
    assert isinstance(body["detail"], str)
    return body
