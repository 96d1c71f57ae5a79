"""Money at the API boundary: ``{"amount": "12.50", "currency": "EUR"}``, never a float.

A JSON number is refused even when whole: ``12.5`` arrives as a binary float whose exact
value the client did not mean, and accepting ``12`` but not ``12.5`` would surprise.
"""

from __future__ import annotations

from typing import Any, Self

from pydantic import Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from iptv_billing.api.schemas import ApiModel
from iptv_billing.domain.errors import InvalidInput
from iptv_billing.domain.money import Money

_HINT = 'use a decimal string such as "12.50"'


class MoneyIn(ApiModel):
    amount: str = Field(max_length=40, examples=["12.50"])
    currency: str = Field(min_length=3, max_length=3, examples=["EUR"])

    @field_validator("amount", mode="before")
    @classmethod
    def _refuse_numbers(cls, value: Any) -> Any:
        if isinstance(value, float):
            raise PydanticCustomError("money.float_refused", f"money is never a float; {_HINT}")
        if isinstance(value, int):  # bool included
            raise PydanticCustomError("money.amount_not_string", f"an amount is a string; {_HINT}")
        return value

    @model_validator(mode="after")
    def _check_money(self) -> Self:
        try:
            self.to_money()
        except InvalidInput as exc:  # bad digits, too precise, unknown currency
            # The message goes in as context: a template would read braces in it as fields.
            raise PydanticCustomError(exc.code, "{reason}", {"reason": exc.message}) from None
        return self

    def to_money(self) -> Money:
        return Money.of(self.amount, self.currency)


class MoneyOut(ApiModel):
    amount: str = Field(examples=["12.50"])
    currency: str = Field(examples=["EUR"])
    minor: int = Field(examples=[1250], description="the amount in minor units (cents)")

    @classmethod
    def of(cls, money: Money) -> MoneyOut:
        return cls(amount=format(money.amount, "f"), currency=money.code, minor=money.minor)

    @classmethod
    def from_minor(cls, minor: int, currency: str) -> MoneyOut:
        return cls.of(Money.from_minor(minor, currency))
