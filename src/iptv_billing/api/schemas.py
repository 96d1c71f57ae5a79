"""The base of every API schema."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class ApiModel(BaseModel):
    """Unknown fields are refused, so a client can never set what it was not offered
    (mass assignment), and a typo is a 422 rather than a silently ignored field."""

    model_config = ConfigDict(extra="forbid")
