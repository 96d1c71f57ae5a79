"""Shared field types for resource routers."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path, Query

ResourceId = Annotated[str, Path(max_length=64, pattern=r"^[A-Za-z0-9_]+$")]
IdFilter = Annotated[str | None, Query(max_length=64, pattern=r"^[A-Za-z0-9_]+$")]
