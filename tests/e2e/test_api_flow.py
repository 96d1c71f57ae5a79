"""An operator's day over HTTP, on SQLite and PostgreSQL: catalog, versioned terms, customers,
trials, renewals on a test clock, invoice listing, payments, plan changes, pause and resume,
cancellation, invoice lifecycle and numbering, billing runs.

Each test works in a tenant of its own (its own test clock and invoice series). The tenants use
Europe/Berlin; the dates below stay inside CEST (April to September), so every month used here
has a fixed length in hours and proration shares are exact fractions.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from api_client import ApiClient, Tenant, assert_problem, money, money_out
from server_harness import E2EServer

START = "2030-04-01T08:00:00Z"  # 10:00 in Berlin
# Invoice prefixes that create_tenant (and `iptv-billing tenant create`) accept.
SPECIAL_TENANTS = {"Slashed prefix": "ACME/2030/", "Longest prefix": "ACME-INVOICES-20"}


def utc(moment: str) -> str:
    """``2030-04-15T08:00`` → the API's rendering ``2030-04-15T08:00:00Z``."""
    return f"{moment}:00Z"


def instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def freeze(api: ApiClient, at: str = START) -> None:
    clock = api.action("/v1/test-clock/freeze", {"at": at})
    assert clock == {"object": "test_clock", "frozen": True, "now": at}


def advance(api: ApiClient, to: str, run_billing: bool = True) -> None:
    clock = api.action("/v1/test-clock/advance", {"to": to, "run_billing": run_billing})
    assert clock == {"object": "test_clock", "frozen": True, "now": to}
    assert api.read("/v1/test-clock") == clock


def simple_plan(api: ApiClient, code: str, price: str, unit: str = "month", **terms: Any) -> Any:
    body = {
        "code": code,
        "name": code.title(),
        "terms": {
            "name": code.title(),
            "interval": {"unit": unit, "count": 1},
            "prices": [money(price, "EUR")],
            **terms,
        },
    }
    return api.create("/v1/plans", body)


def customer(
    api: ApiClient,
    name: str,
    currency: str = "EUR",
    collection: str = "send_invoice",
    top_up: str | None = None,
) -> Any:
    body = {
        "name": name,
        "email": f"{name.lower()}@example.com",
        "currency": currency,
        "country": "DE",
        "language": "de",
        "collection_method": collection,
    }
    created = api.create("/v1/customers", body)
    assert created["status"] == "active"
    assert {k: created[k] for k in body} == body
    if top_up is not None:
        wallet = api.create(
            f"/v1/customers/{created['id']}/wallet/top-ups", {"amount": money(top_up, currency)}
        )
        assert wallet["balance"] == money_out(top_up, currency)
    return created


def prepaid(api: ApiClient, name: str, top_up: str = "500.00") -> Any:
    """A customer whose invoices are collected from a prepaid wallet at once."""
    return customer(api, name, "EUR", "charge_wallet", top_up)


def subscribe(api: ApiClient, customer_id: str, plan_id: str, **extra: Any) -> Any:
    return api.create(
        "/v1/subscriptions", {"customer_id": customer_id, "plan_id": plan_id, **extra}
    )


def lines_of(invoice: dict[str, Any]) -> list[tuple[str, str, int, str]]:
    return [
        (line["kind"], line["description"], line["quantity"], line["amount"]["amount"])
        for line in invoice["lines"]
    ]


def assert_lines_add_up(invoice: dict[str, Any]) -> None:
    currency = invoice["currency"]
    minor = sum(line["amount"]["minor"] for line in invoice["lines"])
    for line in invoice["lines"]:
        assert line["amount"]["minor"] == line["unit_amount"]["minor"] * line["quantity"]
        assert line["amount"]["currency"] == currency
    assert invoice["subtotal"]["minor"] == minor
    assert invoice["total"]["minor"] == minor
    owed = max(minor - invoice["amount_paid"]["minor"], 0)
    open_ = invoice["status"] in ("finalized", "uncollectible")
    assert invoice["amount_due"]["minor"] == (owed if open_ else 0)


def invoices_of(api: ApiClient, **filters: str) -> list[dict[str, Any]]:
    return api.list_all("/v1/invoices", 100, **filters)


def full_invoice(api: ApiClient, invoice_id: str) -> Any:
    invoice = api.read(f"/v1/invoices/{invoice_id}")
    assert_lines_add_up(invoice)
    return invoice


def cycle_invoices(api: ApiClient, subscription_id: str) -> list[dict[str, Any]]:
    """The subscription's invoices in period order, with their lines."""
    found = invoices_of(api, subscription_id=subscription_id)
    ordered = sorted(found, key=lambda i: i["period_start"])
    return [full_invoice(api, i["id"]) for i in ordered]


def build_catalog(api: ApiClient) -> dict[str, Any]:
    """Channels, two packages, and a family plan sold in EUR and USD with a 14-day trial, a
    setup fee and two add-ons (an extra screen, and an extra package of sports channels)."""
    channels = [
        api.create("/v1/channels", {"code": code, "name": name, "number": number})
        for code, name, number in (
            ("das-erste", "Das Erste HD", 1),
            ("zdf", "ZDF HD", 2),
            ("sport1", "Sport1", 20),
            ("eurosport", "Eurosport 1", 21),
        )
    ]
    assert [c["number"] for c in channels] == [1, 2, 20, 21]
    by_code = {c["code"]: c["id"] for c in channels}
    basic = api.create(
        "/v1/packages",
        {"code": "basic", "name": "Basic", "channel_codes": ["das-erste", "zdf"]},
    )
    assert sorted(basic["channel_ids"]) == sorted([by_code["das-erste"], by_code["zdf"]])
    sports = api.create(
        "/v1/packages",
        {"code": "sports", "name": "Sports", "channel_codes": ["sport1", "eurosport"]},
    )
    plan = api.create(
        "/v1/plans",
        {
            "code": "family",
            "name": "Family",
            "terms": {
                "name": "Family",
                "interval": {"unit": "month"},
                "prices": [money("10.00", "EUR"), money("12.00", "USD")],
                "setup_fees": [money("5.00", "EUR"), money("6.00", "USD")],
                "trial_days": 14,
                "max_connections": 2,
                "package_codes": ["basic"],
                "addons": [
                    {
                        "code": "extra-screen",
                        "name": "Extra screen",
                        "kind": "extra_connection",
                        "connections": 1,
                        "prices": [money("2.00", "EUR"), money("2.50", "USD")],
                    },
                    {
                        "code": "sports",
                        "name": "Sports package",
                        "kind": "extra_package",
                        "package_codes": ["sports"],
                        "prices": [money("7.99", "EUR"), money("8.99", "USD")],
                    },
                ],
            },
        },
    )
    return {"channels": channels, "basic": basic, "sports": sports, "plan": plan}


# ---------------------------------------------------------------------------------------------


def test_catalog_and_terms_versions(api: ApiClient) -> None:
    freeze(api)
    catalog = build_catalog(api)
    plan = catalog["plan"]
    assert api.count("/v1/channels") == 4
    assert {p["id"] for p in api.list_all("/v1/packages")} == {
        catalog["basic"]["id"],
        catalog["sports"]["id"],
    }
    (v1,) = plan["versions"]
    assert v1["version"] == 1
    assert v1["effective_from"] == START
    assert v1["prices"] == [money_out("10.00", "EUR"), money_out("12.00", "USD")]
    assert len(v1["terms_hash"]) == 64
    assert v1["document"]["trial_days"] == 14
    assert api.read(f"/v1/terms/{v1['id']}") == v1

    ana = customer(api, "Ana", "EUR", "charge_wallet")
    ben = customer(api, "Ben", "USD")
    early = subscribe(api, ana["id"], plan["id"], addons=[{"code": "sports", "quantity": 1}])
    assert (early["terms_id"], early["terms_hash"]) == (v1["id"], v1["terms_hash"])
    assert early["status"] == "trialing"
    assert early["latest_invoice"] is None  # a trial bills nothing up front

    # A price change is a new immutable version; it applies to new subscriptions only.
    advance(api, utc("2030-04-02T08:00"))
    v2_terms = {
        **{k: v for k, v in v1["document"].items() if k not in ("plan_code", "version")},
        "prices": [money("11.00", "EUR"), money("13.00", "USD")],
        "setup_fees": [money("5.00", "EUR"), money("6.00", "USD")],
        "addons": [
            {**addon, "prices": [money(p, c) for p, c in prices]}
            for addon, prices in zip(
                v1["document"]["addons"],
                ([("2.00", "EUR"), ("2.50", "USD")], [("7.99", "EUR"), ("8.99", "USD")]),
                strict=True,
            )
        ],
    }
    del v2_terms["effective_from"]
    v2 = api.create(f"/v1/plans/{plan['id']}/versions", v2_terms)
    assert v2["version"] == 2
    assert v2["effective_from"] == utc("2030-04-02T08:00")
    assert v2["prices"] == [money_out("11.00", "EUR"), money_out("13.00", "USD")]
    assert v2["terms_hash"] != v1["terms_hash"]
    # A version announced for later is published now but sold only from its date.
    v3 = api.create(
        f"/v1/plans/{plan['id']}/versions",
        {**v2_terms, "prices": [money("15.00", "EUR"), money("17.00", "USD")]}
        | {"effective_from": "2030-06-01T00:00:00+02:00"},
    )
    assert instant(v3["effective_from"]) == instant(utc("2030-05-31T22:00"))
    assert v3["document"]["effective_from"] == utc("2030-05-31T22:00")
    versions = api.read(f"/v1/plans/{plan['id']}")["versions"]
    assert [v["version"] for v in versions] == [1, 2, 3]
    assert versions[0] == v1  # old versions never change

    late = subscribe(api, ben["id"], plan["id"], trial=False)
    assert (late["terms_id"], late["terms_hash"]) == (v2["id"], v2["terms_hash"])
    assert late["status"] == "active"
    invoice = late["latest_invoice"]
    assert invoice["terms_hash"] == v2["terms_hash"]
    assert invoice["total"] == money_out("19.00", "USD")  # 13.00 + 6.00 setup fee
    assert api.read(f"/v1/subscriptions/{early['id']}")["terms_hash"] == v1["terms_hash"]

    # The early subscriber's trial converts under v1: its invoice is priced and hashed by v1.
    api.create(f"/v1/customers/{ana['id']}/wallet/top-ups", {"amount": money("50.00")})
    advance(api, utc("2030-04-15T08:00"))
    (converted,) = cycle_invoices(api, early["id"])
    assert converted["terms_hash"] == v1["terms_hash"]
    assert lines_of(converted) == [
        ("subscription", "Family", 1, "10.00"),
        ("setup_fee", "Family: setup fee", 1, "5.00"),
        ("addon", "Sports package", 1, "7.99"),
    ]
    assert converted["status"] == "paid"  # charge_wallet: collected from the wallet
    assert api.wallet_balance(ana["id"]) == money_out("27.01")
    current = api.read(f"/v1/subscriptions/{early['id']}")
    assert (current["status"], current["terms_id"]) == ("active", v1["id"])

    # After v3's date new subscribers get v3; the others keep theirs.
    advance(api, utc("2030-06-01T08:00"))
    newest = subscribe(api, ben["id"], plan["id"], trial=False)
    assert newest["terms_hash"] == v3["terms_hash"]
    assert api.read(f"/v1/subscriptions/{early['id']}")["terms_hash"] == v1["terms_hash"]
    assert api.read(f"/v1/subscriptions/{late['id']}")["terms_hash"] == v2["terms_hash"]


def test_trial_renewals_wallet_and_invoice_listing(api: ApiClient, tenant: Tenant) -> None:
    freeze(api)
    plan = build_catalog(api)["plan"]
    wanda = customer(api, "Wanda", "EUR", "charge_wallet")
    topped = api.create(
        f"/v1/customers/{wanda['id']}/wallet/top-ups",
        {"amount": money("50.00"), "method": "bank_transfer"},
    )
    assert topped["balance"] == money_out("50.00")
    assert topped["customer_id"] == wanda["id"]
    ivan = customer(api, "Ivan", "USD", "send_invoice")
    sub_w = subscribe(api, wanda["id"], plan["id"], addons=[{"code": "extra-screen"}])
    sub_i = subscribe(api, ivan["id"], plan["id"], addons=[{"code": "extra-screen", "quantity": 2}])
    for sub in (sub_w, sub_i):
        assert sub["status"] == "trialing"
        assert sub["current_period_start"] == START
        assert sub["trial_end"] == sub["current_period_end"] == utc("2030-04-15T08:00")

    # Nothing happens before the trial ends.
    advance(api, utc("2030-04-15T07:59"))
    assert invoices_of(api) == []

    paid_by_ivan: list[str] = []

    def pay_ivans_open_invoice() -> None:
        (open_invoice,) = invoices_of(api, customer_id=ivan["id"], status="finalized")
        paid = api.action(
            f"/v1/invoices/{open_invoice['id']}/pay",
            {"method": "bank_transfer", "reference": f"SEPA {len(paid_by_ivan)}"},
        )
        assert paid["status"] == "succeeded"
        assert paid["amount"] == paid["applied"] == open_invoice["amount_due"]
        assert paid["invoice"]["status"] == "paid"
        paid_by_ivan.append(open_invoice["id"])

    # Trial end, then two renewals.
    advance(api, utc("2030-04-15T08:00"))
    pay_ivans_open_invoice()
    advance(api, utc("2030-05-15T08:00"))
    pay_ivans_open_invoice()
    advance(api, utc("2030-06-15T08:00"))

    periods = [
        (utc("2030-04-15T08:00"), utc("2030-05-15T08:00")),
        (utc("2030-05-15T08:00"), utc("2030-06-15T08:00")),
        (utc("2030-06-15T08:00"), utc("2030-07-15T08:00")),
    ]
    wanda_invoices = cycle_invoices(api, sub_w["id"])
    assert [(i["period_start"], i["period_end"]) for i in wanda_invoices] == periods
    assert [lines_of(i) for i in wanda_invoices] == [
        [
            ("subscription", "Family", 1, "10.00"),
            ("setup_fee", "Family: setup fee", 1, "5.00"),
            ("addon", "Extra screen", 1, "2.00"),
        ],
        [("subscription", "Family", 1, "10.00"), ("addon", "Extra screen", 1, "2.00")],
        [("subscription", "Family", 1, "10.00"), ("addon", "Extra screen", 1, "2.00")],
    ]
    assert [i["total"] for i in wanda_invoices] == [
        money_out("17.00"),
        money_out("12.00"),
        money_out("12.00"),
    ]
    assert {i["status"] for i in wanda_invoices} == {"paid"}
    assert [i["billing_reason"] for i in wanda_invoices] == ["subscription_cycle"] * 3
    assert api.wallet_balance(wanda["id"]) == money_out("9.00")  # 50 - 17 - 12 - 12
    wallet_payments = api.list_all("/v1/payments", customer_id=wanda["id"])
    assert sorted(p["amount"]["amount"] for p in wallet_payments) == ["12.00", "12.00", "17.00"]
    assert {p["method"] for p in wallet_payments} == {"wallet"}

    ivan_invoices = cycle_invoices(api, sub_i["id"])
    assert [i["total"] for i in ivan_invoices] == [
        money_out("23.00", "USD"),  # 12.00 + 6.00 setup + 2 x 2.50
        money_out("17.00", "USD"),
        money_out("17.00", "USD"),
    ]
    assert lines_of(ivan_invoices[1])[1] == ("addon", "Extra screen", 2, "5.00")
    assert [i["status"] for i in ivan_invoices] == ["paid", "paid", "finalized"]
    assert ivan_invoices[2]["amount_due"] == money_out("17.00", "USD")
    for sub in (sub_w, sub_i):
        current = api.read(f"/v1/subscriptions/{sub['id']}")
        assert current["status"] == "active"
        assert (current["current_period_start"], current["current_period_end"]) == periods[2]

    # Numbers: gapless in the tenant's series, in the order the invoices were finalized.
    everything = invoices_of(api)
    assert len(everything) == 6
    in_order = sorted(everything, key=lambda i: (i["finalized_at"], i["number"]))
    assert [i["number"] for i in in_order] == [
        f"{tenant.invoice_prefix}{n:06d}" for n in range(1, 7)
    ]

    # Filters.
    assert {i["id"] for i in invoices_of(api, customer_id=wanda["id"])} == {
        i["id"] for i in wanda_invoices
    }
    assert {i["id"] for i in invoices_of(api, subscription_id=sub_i["id"])} == {
        i["id"] for i in ivan_invoices
    }
    assert [i["id"] for i in invoices_of(api, status="finalized")] == [ivan_invoices[2]["id"]]
    assert len(invoices_of(api, status="paid")) == 5
    assert invoices_of(api, status="void") == []
    assert invoices_of(api, customer_id=ivan["id"], status="paid", subscription_id=sub_i["id"])
    assert invoices_of(api, customer_id=wanda["id"], subscription_id=sub_i["id"]) == []
    listed = api.read("/v1/invoices", customer_id=ivan["id"], limit=100)["data"]
    assert all(i["lines"] is None for i in listed)  # lines only on single reads

    # Pagination: pages of 4 then 2; the cursor is the last id; ids ascend without repeats.
    first = api.read("/v1/invoices", limit=4)
    assert (len(first["data"]), first["has_more"]) == (4, True)
    assert first["next_cursor"] == first["data"][-1]["id"]
    second = api.read("/v1/invoices", limit=4, starting_after=first["next_cursor"])
    assert (len(second["data"]), second["has_more"], second["next_cursor"]) == (2, False, None)
    ids = [i["id"] for i in first["data"] + second["data"]]
    assert ids == sorted(ids)
    assert len(set(ids)) == 6
    assert set(ids) == {i["id"] for i in everything}
    exact = api.read("/v1/invoices", limit=6)
    assert (len(exact["data"]), exact["has_more"], exact["next_cursor"]) == (6, False, None)
    small = list(api.iter_pages("/v1/invoices", page_size=1, customer_id=ivan["id"]))
    assert [i["id"] for i in small] == sorted(i["id"] for i in ivan_invoices)
    after_last = api.read("/v1/invoices", starting_after=ids[-1])
    assert (after_last["data"], after_last["has_more"]) == ([], False)


def test_payments_partial_overpay_card_and_wallet(api: ApiClient) -> None:
    freeze(api)
    paula = customer(api, "Paula")

    def open_invoice(*lines: tuple[str, str, int]) -> Any:
        draft = api.create(
            "/v1/invoices",
            {
                "customer_id": paula["id"],
                "currency": "EUR",
                "lines": [
                    {"description": d, "unit_amount": money(a), "quantity": q} for d, a, q in lines
                ],
            },
        )
        assert (draft["status"], draft["number"]) == ("draft", None)
        final = api.action(f"/v1/invoices/{draft['id']}/finalize", {"due_days": 14})
        assert final["status"] == "finalized"
        assert final["due_at"] == utc("2030-04-15T08:00")
        return final

    hardware = open_invoice(("Installation", "30.00", 1), ("Set-top box", "25.00", 2))
    assert hardware["total"] == hardware["amount_due"] == money_out("80.00")

    # A partial bank transfer.
    part = api.action(
        f"/v1/invoices/{hardware['id']}/pay",
        {"method": "bank_transfer", "amount": money("30.00"), "reference": "SEPA 1"},
    )
    assert part["status"] == "succeeded"
    assert (part["amount"], part["applied"], part["credited_to_wallet"]) == (
        money_out("30.00"),
        money_out("30.00"),
        money_out("0.00"),
    )
    assert part["invoice"]["status"] == "finalized"
    assert part["invoice"]["amount_paid"] == money_out("30.00")
    assert part["invoice"]["amount_due"] == money_out("50.00")
    assert api.read(f"/v1/customers/{paula['id']}/wallets")["data"] == []

    # Then more than the rest: the excess goes to the wallet.
    over = api.action(
        f"/v1/invoices/{hardware['id']}/pay",
        {"method": "bank_transfer", "amount": money("60.00"), "reference": "SEPA 2"},
    )
    assert (over["amount"], over["applied"], over["credited_to_wallet"]) == (
        money_out("60.00"),
        money_out("50.00"),
        money_out("10.00"),
    )
    settled = api.read(f"/v1/invoices/{hardware['id']}")
    assert settled["status"] == "paid"
    assert settled["amount_paid"] == money_out("80.00")
    assert settled["amount_due"] == money_out("0.00")
    assert settled["paid_at"] == START
    (wallet,) = api.read(f"/v1/customers/{paula['id']}/wallets")["data"]
    assert wallet["balance"] == money_out("10.00")
    payments = api.list_all("/v1/payments", invoice_id=hardware["id"])
    assert {p["id"] for p in payments} == {part["id"], over["id"]}
    assert api.read(f"/v1/payments/{over['id']}") == {**over, "invoice": None}

    # A card that succeeds at once.
    box = open_invoice(("Replacement remote", "19.90", 1))
    card = api.action(
        f"/v1/invoices/{box['id']}/pay", {"method": "card", "payment_method": "pm_card_instant"}
    )
    assert (card["status"], card["method"], card["provider"]) == ("succeeded", "card", "test")
    assert card["amount"] == card["applied"] == money_out("19.90")
    assert card["provider_payment_id"].startswith("ch_")
    assert card["invoice"]["status"] == "paid"

    # A declined card: the payment fails, the invoice stays open and owes as much as before.
    fee = open_invoice(("Late activation", "8.50", 1))
    declined = api.action(
        f"/v1/invoices/{fee['id']}/pay", {"method": "card", "payment_method": "pm_card_declined"}
    )
    assert (declined["status"], declined["failure_code"]) == ("failed", "card_declined")
    assert declined["applied"] == money_out("0.00")
    still_open = api.read(f"/v1/invoices/{fee['id']}")
    assert still_open["status"] == "finalized"
    assert still_open["amount_paid"] == money_out("0.00")
    assert still_open["amount_due"] == money_out("8.50")

    # The wallet's prepaid 10.00 pays it instead.
    from_wallet = api.action(f"/v1/invoices/{fee['id']}/pay", {"method": "wallet"})
    assert (from_wallet["status"], from_wallet["method"]) == ("succeeded", "wallet")
    assert from_wallet["amount"] == money_out("8.50")
    assert from_wallet["invoice"]["status"] == "paid"
    assert api.wallet_balance(paula["id"]) == money_out("1.50")
    assert_problem(
        api.post(f"/v1/invoices/{fee['id']}/pay", {"method": "wallet"}),
        409,
        "invoice.nothing_due",
    )

    # A payment recorded without an invoice is prepaid credit.
    credit = api.create(
        "/v1/payments",
        {"customer_id": paula["id"], "amount": money("5.00"), "method": "manual"},
    )
    assert (credit["applied"], credit["credited_to_wallet"]) == (
        money_out("0.00"),
        money_out("5.00"),
    )
    assert api.wallet_balance(paula["id"]) == money_out("6.50")
    assert len(api.list_all("/v1/payments", customer_id=paula["id"])) == 6


def test_change_plan_in_every_proration_mode(api: ApiClient) -> None:
    freeze(api)
    basic = simple_plan(api, "basic", "10.00")
    premium = simple_plan(api, "premium", "20.00")
    annual = simple_plan(api, "annual", "100.00", unit="year")
    premium_terms = premium["versions"][0]
    subs = {}
    for mode in ("prorate_now", "none", "at_period_end", "prorate_to_annual"):
        buyer = prepaid(api, mode.replace("_", "").title())
        subs[mode] = subscribe(api, buyer["id"], basic["id"])
        assert subs[mode]["latest_invoice"]["total"] == money_out("10.00")
        assert subs[mode]["current_period_end"] == utc("2030-05-01T08:00")

    advance(api, utc("2030-04-16T08:00"))  # 15 of the period's 30 days are used

    prorated = api.action(
        f"/v1/subscriptions/{subs['prorate_now']['id']}/change-plan",
        {"plan_id": premium["id"], "proration": "prorate_now"},
    )
    assert (prorated["plan_id"], prorated["terms_id"]) == (premium["id"], premium_terms["id"])
    assert prorated["terms_hash"] == premium_terms["terms_hash"]
    assert prorated["current_period_end"] == utc("2030-05-01T08:00")
    change = full_invoice(api, prorated["latest_invoice"]["id"])
    assert change["billing_reason"] == "subscription_update"
    assert lines_of(change) == [
        ("proration_credit", "Basic: unused time", 1, "-5.00"),
        ("proration_charge", "Premium: remaining time", 1, "10.00"),
    ]
    assert [(line["period_start"], line["period_end"]) for line in change["lines"]] == [
        (utc("2030-04-16T08:00"), utc("2030-05-01T08:00"))
    ] * 2
    assert change["total"] == money_out("5.00")
    assert change["lines"][0]["amount"]["minor"] < 0 < change["lines"][1]["amount"]["minor"]

    switched = api.action(
        f"/v1/subscriptions/{subs['none']['id']}/change-plan",
        {"plan_id": premium["id"], "proration": "none"},
    )
    assert switched["latest_invoice"] is None
    assert switched["terms_hash"] == premium_terms["terms_hash"]
    assert switched["pending_terms_id"] is None

    scheduled = api.action(
        f"/v1/subscriptions/{subs['at_period_end']['id']}/change-plan",
        {"plan_id": premium["id"], "proration": "at_period_end"},
    )
    assert scheduled["latest_invoice"] is None
    assert scheduled["terms_id"] == subs["at_period_end"]["terms_id"]
    assert scheduled["terms_hash"] == basic["versions"][0]["terms_hash"]
    assert scheduled["pending_terms_id"] == premium_terms["id"]

    restarted = api.action(
        f"/v1/subscriptions/{subs['prorate_to_annual']['id']}/change-plan",
        {"plan_id": annual["id"], "proration": "prorate_now"},
    )
    assert (restarted["current_period_start"], restarted["current_period_end"]) == (
        utc("2030-04-16T08:00"),
        utc("2031-04-16T08:00"),
    )
    yearly = full_invoice(api, restarted["latest_invoice"]["id"])
    assert lines_of(yearly) == [
        ("proration_credit", "Basic: unused time", 1, "-5.00"),
        ("subscription", "Annual", 1, "100.00"),
    ]
    assert (yearly["total"], yearly["status"]) == (money_out("95.00"), "paid")
    assert api.wallet_balance(restarted["customer_id"]) == money_out("395.00")  # 500 - 10 - 95

    # At the period end every monthly subscription renews at the premium price.
    advance(api, utc("2030-05-01T08:00"))
    for mode in ("prorate_now", "none", "at_period_end"):
        renewal = cycle_invoices(api, subs[mode]["id"])[-1]
        assert renewal["period_start"] == utc("2030-05-01T08:00")
        assert lines_of(renewal) == [("subscription", "Premium", 1, "20.00")]
        assert renewal["terms_hash"] == premium_terms["terms_hash"]
        current = api.read(f"/v1/subscriptions/{subs[mode]['id']}")
        assert (current["terms_id"], current["pending_terms_id"]) == (premium_terms["id"], None)
        assert current["terms_hash"] == premium_terms["terms_hash"]
    assert len(cycle_invoices(api, subs["prorate_to_annual"]["id"])) == 2  # nothing due yet
    spent = {"prorate_now": "465.00", "none": "470.00", "at_period_end": "470.00"}
    for mode, balance in spent.items():  # 500 - 10 - proration - 20
        assert api.wallet_balance(subs[mode]["customer_id"]) == money_out(balance)


def test_pause_and_resume(api: ApiClient) -> None:
    freeze(api)
    plan = simple_plan(api, "basic", "10.00")
    pia = prepaid(api, "Pia", "100.00")
    sub = subscribe(api, pia["id"], plan["id"])
    advance(api, utc("2030-04-16T08:00"))
    paused = api.action(f"/v1/subscriptions/{sub['id']}/pause")
    assert (paused["status"], paused["paused_at"]) == ("paused", utc("2030-04-16T08:00"))
    assert paused["latest_invoice"] is None

    # Paused subscriptions are not renewed.
    advance(api, utc("2030-05-06T08:00"))
    assert len(cycle_invoices(api, sub["id"])) == 1
    assert api.read(f"/v1/subscriptions/{sub['id']}")["status"] == "paused"

    resumed = api.action(f"/v1/subscriptions/{sub['id']}/resume")
    assert (resumed["status"], resumed["paused_at"]) == ("active", None)
    assert (resumed["current_period_start"], resumed["current_period_end"]) == (
        utc("2030-05-06T08:00"),
        utc("2030-06-06T08:00"),
    )
    invoice = full_invoice(api, resumed["latest_invoice"]["id"])
    assert invoice["billing_reason"] == "subscription_resume"
    # The unused half of the paused period is credited; the new period is billed in full.
    assert lines_of(invoice) == [
        ("proration_credit", "Basic: unused time", 1, "-5.00"),
        ("subscription", "Basic", 1, "10.00"),
    ]
    assert invoice["total"] == money_out("5.00")

    advance(api, utc("2030-06-06T08:00"))
    renewal = cycle_invoices(api, sub["id"])[-1]
    assert (renewal["period_start"], renewal["total"]) == (
        utc("2030-06-06T08:00"),
        money_out("10.00"),
    )


def test_cancel_at_period_end_and_now(api: ApiClient) -> None:
    freeze(api)
    plan = simple_plan(api, "basic", "10.00")
    leaving = subscribe(api, prepaid(api, "Lea")["id"], plan["id"])
    gone = subscribe(api, prepaid(api, "Gus")["id"], plan["id"])
    advance(api, utc("2030-04-20T08:00"))

    scheduled = api.action(f"/v1/subscriptions/{leaving['id']}/cancel", {"at_period_end": True})
    assert (scheduled["status"], scheduled["cancel_at_period_end"]) == ("active", True)
    assert scheduled["ended_at"] is None
    now = api.action(f"/v1/subscriptions/{gone['id']}/cancel", {"at_period_end": False})
    assert (now["status"], now["ended_at"]) == ("cancelled", utc("2030-04-20T08:00"))

    advance(api, utc("2030-05-01T07:59"))
    assert api.read(f"/v1/subscriptions/{leaving['id']}")["status"] == "active"
    advance(api, utc("2030-05-01T08:00"))
    ended = api.read(f"/v1/subscriptions/{leaving['id']}")
    assert (ended["status"], ended["ended_at"]) == ("cancelled", utc("2030-05-01T08:00"))
    advance(api, utc("2030-07-01T08:00"))
    for sub in (leaving, gone):
        assert len(invoices_of(api, subscription_id=sub["id"])) == 1  # never renewed
    cancelled = api.list_all("/v1/subscriptions", status="cancelled")
    assert {s["id"] for s in cancelled} == {leaving["id"], gone["id"]}


def test_invoice_lifecycle_and_gapless_numbers(api: ApiClient, tenant: Tenant) -> None:
    freeze(api)
    assert api.read("/v1/tenant")["invoice_prefix"] == tenant.invoice_prefix
    olga = customer(api, "Olga")

    def draft(amount: str) -> Any:
        body = {
            "customer_id": olga["id"],
            "currency": "EUR",
            "lines": [{"description": "Service call", "unit_amount": money(amount)}],
        }
        created = api.create("/v1/invoices", body)
        assert (created["status"], created["number"], created["billing_reason"]) == (
            "draft",
            None,
            "manual",
        )
        return created

    drafts = [draft(f"{n}.00") for n in range(1, 7)]
    # Finalized in an order unrelated to creation: numbers follow finalization.
    numbers = []
    for index in (3, 0, 5, 1):
        final = api.action(f"/v1/invoices/{drafts[index]['id']}/finalize")
        assert final["finalized_at"] == START
        numbers.append(final["number"])
    assert numbers == [f"{tenant.invoice_prefix}{n:06d}" for n in range(1, 5)]
    assert_problem(
        api.post(f"/v1/invoices/{drafts[3]['id']}/finalize"), 409, "invoice.illegal_transition"
    )

    # A void draft never takes a number; a void finalized invoice keeps its own.
    dropped = api.action(f"/v1/invoices/{drafts[2]['id']}/void")
    assert (dropped["status"], dropped["number"]) == ("void", None)
    voided = api.action(f"/v1/invoices/{drafts[0]['id']}/void")
    assert (voided["status"], voided["number"], voided["voided_at"]) == (
        "void",
        numbers[1],
        START,
    )
    assert voided["amount_due"] == money_out("0.00")
    written_off = api.action(f"/v1/invoices/{drafts[5]['id']}/mark-uncollectible")
    assert written_off["status"] == "uncollectible"
    assert written_off["amount_due"] == money_out("6.00")
    # Money for a written-off invoice is still welcome.
    late = api.action(f"/v1/invoices/{drafts[5]['id']}/pay", {"method": "manual"})
    assert late["invoice"]["status"] == "paid"

    last = api.action(f"/v1/invoices/{drafts[4]['id']}/finalize")
    assert last["number"] == f"{tenant.invoice_prefix}000005"
    numbered = sorted(i["number"] for i in invoices_of(api) if i["number"] is not None)
    assert numbered == [f"{tenant.invoice_prefix}{n:06d}" for n in range(1, 6)]
    by_status = {s: len(invoices_of(api, status=s)) for s in ("draft", "finalized", "paid")}
    assert by_status == {"draft": 0, "finalized": 3, "paid": 1}
    assert len(invoices_of(api, status="void")) == 2


def test_billing_run_twice_creates_invoices_once(api: ApiClient) -> None:
    freeze(api)
    plan = simple_plan(api, "basic", "10.00")
    subs = [subscribe(api, prepaid(api, f"Run{n}")["id"], plan["id"]) for n in range(3)]
    advance(api, utc("2030-05-01T08:00"), run_billing=False)
    assert len(invoices_of(api)) == 3  # the clock moved, nobody billed yet

    first = api.create("/v1/billing-runs")
    assert (first["status"], first["as_of"]) == ("completed", utc("2030-05-01T08:00"))
    assert (first["subscriptions_seen"], first["invoices_created"], first["failures"]) == (3, 3, 0)
    second = api.create("/v1/billing-runs")
    assert (second["subscriptions_seen"], second["invoices_created"]) == (0, 0)
    assert len(invoices_of(api)) == 6
    for sub in subs:
        assert [i["total"] for i in cycle_invoices(api, sub["id"])] == [money_out("10.00")] * 2
        assert api.wallet_balance(sub["customer_id"]) == money_out("480.00")
    runs = api.list_all("/v1/billing-runs")
    assert {first["id"], second["id"]} <= {r["id"] for r in runs}
    detail = api.read(f"/v1/billing-runs/{first['id']}")
    assert detail["failure_details"] == []
    assert detail["invoices_created"] == 3


def test_parallel_billing_runs_bill_each_period_once(e2e_server: E2EServer, tenant: Tenant) -> None:
    api = e2e_server.client(tenant)
    freeze(api)
    plan = simple_plan(api, "basic", "10.00")
    subs = [subscribe(api, prepaid(api, f"Par{n}")["id"], plan["id"]) for n in range(6)]
    advance(api, utc("2030-06-01T08:00"), run_billing=False)  # two periods due
    barrier = threading.Barrier(4)

    def run(_: int) -> Any:
        with httpx.Client(base_url=e2e_server.base_url, timeout=60, trust_env=False) as http:
            client = ApiClient(http, tenant.keys["admin"])
            barrier.wait()
            return client.create("/v1/billing-runs")

    with ThreadPoolExecutor(4) as pool:
        runs = list(pool.map(run, range(4)))
    assert sum(r["invoices_created"] for r in runs) == 12
    assert sum(r["failures"] for r in runs) == 0
    numbers = sorted(i["number"] for i in invoices_of(api))
    assert numbers == [f"{tenant.invoice_prefix}{n:06d}" for n in range(1, 19)]
    for sub in subs:
        periods = [i["period_start"] for i in cycle_invoices(api, sub["id"])]
        assert periods == [START, utc("2030-05-01T08:00"), utc("2030-06-01T08:00")]
        assert api.wallet_balance(sub["customer_id"]) == money_out("470.00")


def test_dunning_and_reactivation(api: ApiClient) -> None:
    """Unpaid: past due after the grace days, suspended later, not renewed while suspended;
    paying reactivates it, and billing restarts from the payment."""
    freeze(api)
    plan = simple_plan(api, "basic", "10.00", grace_days=3, suspend_after_days=14)
    late = customer(api, "Lars")
    sub = subscribe(api, late["id"], plan["id"])
    first = sub["latest_invoice"]
    assert (first["due_at"], first["status"]) == (START, "finalized")

    def status() -> str:
        return str(api.read(f"/v1/subscriptions/{sub['id']}")["status"])

    advance(api, utc("2030-04-04T07:59"))
    assert status() == "active"
    advance(api, utc("2030-04-04T08:00"))
    assert status() == "past_due"
    advance(api, utc("2030-04-15T08:00"))
    assert status() == "suspended"
    advance(api, utc("2030-05-10T08:00"))
    assert status() == "suspended"
    assert len(invoices_of(api, subscription_id=sub["id"])) == 1  # not renewed while suspended

    paid = api.action(f"/v1/invoices/{first['id']}/pay", {"method": "bank_transfer"})
    assert paid["invoice"]["status"] == "paid"
    reactivated = api.read(f"/v1/subscriptions/{sub['id']}")
    assert reactivated["status"] == "active"
    assert reactivated["current_period_end"] == utc("2030-05-10T08:00")
    advance(api, utc("2030-05-10T08:01"))
    restart = cycle_invoices(api, sub["id"])[-1]
    assert (restart["period_start"], restart["period_end"], restart["total"]) == (
        utc("2030-05-10T08:00"),
        utc("2030-06-10T08:00"),
        money_out("10.00"),
    )


def test_concurrent_money_moves_are_serialized(e2e_server: E2EServer, tenant: Tenant) -> None:
    """Parallel debits never overdraw a wallet; parallel finalizations number gaplessly; an
    invoice paid twice in parallel is paid once."""
    api = e2e_server.client(tenant)
    freeze(api)
    saver = customer(api, "Sid", top_up="50.00")
    drafts = [
        api.create(
            "/v1/invoices",
            {
                "customer_id": saver["id"],
                "currency": "EUR",
                "lines": [{"description": f"Item {n}", "unit_amount": money("7.00")}],
            },
        )
        for n in range(8)
    ]

    def parallel(requests: list[tuple[str, Any]]) -> list[httpx.Response]:
        barrier = threading.Barrier(len(requests))

        def send(request: tuple[str, Any]) -> httpx.Response:
            with httpx.Client(base_url=e2e_server.base_url, timeout=60, trust_env=False) as h:
                client = ApiClient(h, tenant.keys["admin"])
                barrier.wait()
                return client.post(*request)

        with ThreadPoolExecutor(len(requests)) as pool:
            return list(pool.map(send, requests))

    debit = (
        f"/v1/customers/{saver['id']}/wallet/debits",
        {"amount": money("10.00"), "description": "PPV"},
    )
    debits = parallel([debit] * 8)
    assert sorted(r.status_code for r in debits) == [201] * 5 + [402] * 3
    for response in debits:
        if response.status_code == 402:
            assert_problem(response, 402, "wallet.insufficient_funds")
    assert api.wallet_balance(saver["id"]) == money_out("0.00")

    finals = parallel([(f"/v1/invoices/{d['id']}/finalize", None) for d in drafts])
    assert [r.status_code for r in finals] == [200] * 8
    numbers = sorted(r.json()["number"] for r in finals)
    assert numbers == [f"{tenant.invoice_prefix}{n:06d}" for n in range(1, 9)]

    api.create(f"/v1/customers/{saver['id']}/wallet/top-ups", {"amount": money("20.00")})
    target = drafts[0]["id"]
    payments = parallel([(f"/v1/invoices/{target}/pay", {"method": "wallet"})] * 4)
    assert sorted(r.status_code for r in payments) == [200] + [409] * 3
    assert api.wallet_balance(saver["id"]) == money_out("13.00")
    assert len(api.list_all("/v1/payments", invoice_id=target)) == 1


# --------------------------------------------------------------------------- product bugs


def test_change_plan_at_period_end_during_trial(api: ApiClient) -> None:
    freeze(api)
    trial = simple_plan(api, "trial", "10.00", trial_days=7)
    premium = simple_plan(api, "premium", "20.00")
    sub = subscribe(api, customer(api, "Tess")["id"], trial["id"])
    changed = api.action(
        f"/v1/subscriptions/{sub['id']}/change-plan",
        {"plan_id": premium["id"], "proration": "at_period_end"},
    )
    terms = {v["id"]: v["terms_hash"] for v in (trial["versions"][0], premium["versions"][0])}
    # The terms a subscription is billed under are named twice: both names must agree.
    assert terms[changed["terms_id"]] == changed["terms_hash"]

    advance(api, utc("2030-04-08T08:00"))
    run = api.list_all("/v1/billing-runs")[-1]
    assert api.read(f"/v1/billing-runs/{run['id']}")["failure_details"] == []
    current = api.read(f"/v1/subscriptions/{sub['id']}")
    assert current["status"] == "active"
    assert len(invoices_of(api, subscription_id=sub["id"])) == 1


def test_card_payment_honours_a_partial_amount(api: ApiClient) -> None:
    freeze(api)
    plan = simple_plan(api, "basic", "10.00")
    sub = subscribe(api, customer(api, "Carl")["id"], plan["id"])
    invoice_id = sub["latest_invoice"]["id"]
    response = api.post(
        f"/v1/invoices/{invoice_id}/pay",
        {"method": "card", "payment_method": "pm_card_instant", "amount": money("3.00")},
    )
    # Either the partial amount is charged, or the request is refused; never 10.00 charged.
    if response.status_code == 200:
        assert response.json()["amount"] == money_out("3.00")
    else:
        assert_problem(response, 422, response.json()["code"])
        assert api.read(f"/v1/invoices/{invoice_id}")["amount_paid"] == money_out("0.00")


def test_late_card_settlement_after_invoice_paid_otherwise(api: ApiClient) -> None:
    freeze(api)
    plan = simple_plan(api, "basic", "10.00")
    sub = subscribe(api, customer(api, "Vera")["id"], plan["id"])
    invoice_id = sub["latest_invoice"]["id"]
    pending = api.action(
        f"/v1/invoices/{invoice_id}/pay", {"method": "card", "payment_method": "pm_card_visa"}
    )
    assert pending["status"] == "pending"
    api.action(f"/v1/invoices/{invoice_id}/pay", {"method": "bank_transfer"})
    time.sleep(2.2)  # the test provider confirms pm_card_visa charges after 2 s (real time)
    refreshed = api.post(f"/v1/payments/{pending['id']}/refresh")
    assert refreshed.status_code == 200, refreshed.text
    settled = refreshed.json()
    assert settled["status"] == "succeeded"
    assert settled["credited_to_wallet"] == money_out("10.00")
    assert api.wallet_balance(sub["customer_id"]) == money_out("10.00")


@pytest.mark.parametrize("name", sorted(SPECIAL_TENANTS))
def test_every_accepted_invoice_prefix_can_be_used(e2e_server: E2EServer, name: str) -> None:
    tenant = e2e_server.named[name]
    api = e2e_server.client(tenant)
    assert api.read("/v1/tenant")["invoice_prefix"] == tenant.invoice_prefix
    buyer = customer(api, "Pat")
    draft = api.create(
        "/v1/invoices",
        {
            "customer_id": buyer["id"],
            "currency": "EUR",
            "lines": [{"description": "Installation", "unit_amount": money("30.00")}],
        },
    )
    finalize = api.post(f"/v1/invoices/{draft['id']}/finalize")
    read = api.get(f"/v1/invoices/{draft['id']}")
    listed = api.get("/v1/invoices")
    assert (finalize.status_code, read.status_code, listed.status_code) == (200, 200, 200)
    assert read.json()["number"] == f"{tenant.invoice_prefix}000001"


def test_money_round_trips_exactly(api: ApiClient) -> None:
    """Amounts round-trip exactly through the engine (no float or Numeric drift)."""
    freeze(api)
    buyer = customer(api, "Mia")
    balance = Decimal("0")
    for amount in ("0.01", "0.10", "1234567.89", "9999999999.99"):
        balance += Decimal(amount)
        wallet = api.create(
            f"/v1/customers/{buyer['id']}/wallet/top-ups", {"amount": money(amount)}
        )
        assert wallet["balance"] == money_out(str(balance))
    assert api.wallet_balance(buyer["id"]) == money_out("10001234567.99")


def test_buying_and_dropping_an_extra_connection_mid_period(api: ApiClient) -> None:
    freeze(api)
    screen = {
        "code": "screen",
        "name": "Extra screen",
        "kind": "extra_connection",
        "prices": [money("3.00")],
        "connections": 1,
    }
    plan = simple_plan(api, "duo", "10.00", addons=[screen])
    buyer = prepaid(api, "Duo")
    sub = subscribe(api, buyer["id"], plan["id"])
    advance(api, utc("2030-04-16T08:00"))  # half of the 30-day period is left

    bought = api.action(
        f"/v1/subscriptions/{sub['id']}/addons", {"addons": [{"code": "screen", "quantity": 2}]}
    )
    assert bought["addons"] == [{"code": "screen", "quantity": 2}]
    invoice = full_invoice(api, bought["latest_invoice"]["id"])
    assert lines_of(invoice) == [("proration_charge", "Extra screen: remaining time", 2, "3.00")]
    assert invoice["status"] == "paid"  # collected from the prepaid wallet

    dropped = api.action(
        f"/v1/subscriptions/{sub['id']}/addons", {"addons": [], "proration": "prorate_now"}
    )
    credit = full_invoice(api, dropped["latest_invoice"]["id"])
    assert lines_of(credit) == [("proration_credit", "Extra screen: unused time", 2, "-3.00")]
    assert api.wallet_balance(buyer["id"]) == money_out("490.00")  # 500 - 10 - 3 + 3

    again = api.post(f"/v1/subscriptions/{sub['id']}/addons", {"addons": []})
    assert_problem(again, 409, "subscription.same_addons")
    advance(api, utc("2030-05-02T08:00"))
    renewal = api.list_all("/v1/invoices", subscription_id=sub["id"])[-1]
    assert renewal["total"] == money_out("10.00")  # renewed without the dropped screens
