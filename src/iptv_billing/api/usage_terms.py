"""The metered part of a plan's terms as the API takes it: usage charges priced per currency,
the threshold that invoices usage early, the spend cap. Quantities and prices are decimal
strings (never floats); the domain checks their values and answers with its own codes."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from iptv_billing.api.money import MoneyIn
from iptv_billing.api.schemas import ApiModel

Decimal = Annotated[str, Field(min_length=1, max_length=40, examples=["0.015"])]
MetricCode = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$", examples=["minutes"])]


def _string_only(value: Any) -> Any:
    if isinstance(value, int | float):  # bool included: exact decimals travel as strings
        raise PydanticCustomError("usage.number_not_string", 'a decimal is a string: "0.015"')
    return value


class TierIn(ApiModel):
    up_to: Decimal | None = Field(default=None, description="the last unit of the tier; null: all")
    unit_price: Decimal
    flat_fee: Decimal = "0"

    _strings = field_validator("up_to", "unit_price", "flat_fee", mode="before")(_string_only)


class UsagePriceIn(ApiModel):
    currency: str = Field(min_length=3, max_length=3, examples=["EUR"])
    model: Literal["per_unit", "graduated", "volume", "package"]
    unit_price: Decimal = "0"
    tiers: list[TierIn] = Field(default_factory=list, max_length=20)
    package_size: Decimal = "1"
    included: Decimal = Field(default="0", description="units free each period")

    _strings = field_validator("unit_price", "package_size", "included", mode="before")(
        _string_only
    )


class UsageChargeIn(ApiModel):
    metric: MetricCode
    name: str = Field(min_length=1, max_length=200)
    aggregation: Literal["count", "sum", "max", "unique_count", "latest"]
    prices: list[UsagePriceIn] = Field(min_length=1, max_length=50)


class MeteredTermsIn(ApiModel):
    usage_charges: list[UsageChargeIn] = Field(default_factory=list, max_length=20)
    usage_threshold: list[MoneyIn] = Field(
        default_factory=list,
        max_length=50,
        description="invoice a period's usage as soon as what is unbilled reaches this",
    )
    usage_cap: list[MoneyIn] = Field(
        default_factory=list, max_length=50, description="a period's usage never costs more"
    )

    def metered_document(self) -> dict[str, Any]:
        """The terms keys, present only when used (terms without usage keep their hash)."""
        doc: dict[str, Any] = {}
        if self.usage_charges:
            doc["usage_charges"] = [c.model_dump() for c in self.usage_charges]
        for key, amounts in (
            ("usage_threshold", self.usage_threshold),
            ("usage_cap", self.usage_cap),
        ):
            if amounts:
                doc[key] = [{"currency": m.currency, "minor": m.to_money().minor} for m in amounts]
        return doc
