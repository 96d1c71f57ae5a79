"""Shared field types for resource routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query, Request

ResourceId = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9_]+$")]
IdFilter = Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9_]+$")]


def peer(request: Request) -> str:
    """The address of whoever called: a streaming server, or a subscriber's player."""
    client = request.client
    return client.host if client else "unknown"
