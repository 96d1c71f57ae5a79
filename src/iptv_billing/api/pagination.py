"""Keyset pagination: ``?limit=20&starting_after=<id>`` in, ``ListResponse`` out.

Usage in a router::

    @router.get("/v1/things", response_model=ListResponse[ThingOut])
    def list_things(page: Pagination, ...) -> ListResponse[ThingOut]:
        records = uow.things.list(tenant_id, page.limit, page.starting_after)
        return ListResponse.of(records, ThingOut.of)
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Generic, Literal, Protocol, TypeVar

from fastapi import Depends, Query

from iptv_billing.api.schemas import ApiModel
from iptv_billing.services.records import Page

DEFAULT_LIMIT = 20
MAX_LIMIT = 100

T = TypeVar("T")


class _HasId(Protocol):
    @property
    def id(self) -> str: ...


R = TypeVar("R", bound=_HasId)


@dataclass(frozen=True, slots=True)
class PageQuery:
    limit: int
    starting_after: str | None


def page_query(
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="items per page")] = DEFAULT_LIMIT,
    starting_after: Annotated[
        str | None,
        Query(
            max_length=64,
            pattern=r"^[A-Za-z0-9_]+$",
            description="the next_cursor of the previous page: items after this id",
        ),
    ] = None,
) -> PageQuery:
    return PageQuery(limit, starting_after)


Pagination = Annotated[PageQuery, Depends(page_query)]


class ListResponse(ApiModel, Generic[T]):
    object: Literal["list"] = "list"
    data: list[T]
    has_more: bool
    next_cursor: str | None = None

    @classmethod
    def of(cls, page: Page[R], render: Callable[[R], T]) -> ListResponse[T]:
        """One page of records rendered item by item; the cursor is the last item's id."""
        cursor = page.items[-1].id if page.has_more and page.items else None
        return cls(
            data=[render(item) for item in page.items], has_more=page.has_more, next_cursor=cursor
        )


def page_of(items: Sequence[R], query: PageQuery) -> Page[R]:
    """Paginate a short list held in memory the way repositories paginate: by id."""
    ordered = sorted(items, key=lambda item: item.id)
    if query.starting_after is not None:
        ordered = [item for item in ordered if item.id > query.starting_after]
    return Page(tuple(ordered[: query.limit]), len(ordered) > query.limit)
