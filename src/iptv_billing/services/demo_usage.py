"""The demo operator's other ways of selling: a pay-as-you-watch plan whose viewers watch
every day (usage rated onto invoices and charged from their wallets; a few of them through a
streaming server, whose sessions hold and charge their wallets as they play), a
pay-per-view fight night bought from wallets with a discount for sports subscribers, and
films for rent."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from iptv_billing.domain.errors import InsufficientFunds
from iptv_billing.domain.money import Money
from iptv_billing.domain.ppv import SubscriberDiscount
from iptv_billing.domain.vod import RentalTerms
from iptv_billing.ledger.entries import moment
from iptv_billing.services import (
    catalog,
    customers,
    metered_holds,
    metrics,
    ppv,
    subscriptions,
    usage,
    vod,
    wallets,
)
from iptv_billing.services.context import Context
from iptv_billing.services.ports import UnitOfWork

CURRENCIES = ("EUR", "USD", "GBP")
PAYG = "payg"
VIEWING = "viewing_seconds"  # what the streaming servers' session callbacks report
STREAMERS = 3  # viewers a day who watch one session through a streaming server
FILMS = (
    ("the-heist", "The Heist", 2021),
    ("deep-blue", "Deep Blue", 2019),
    ("midnight", "Midnight Run", 2023),
)


def _money_docs(minor: int) -> list[dict[str, Any]]:
    return [{"currency": c, "minor": minor} for c in CURRENCIES]


def _per_second(currency: str) -> dict[str, Any]:
    """An hour a month included, then 0.012 a minute for ten hours, then half that."""
    return {
        "currency": currency,
        "model": "graduated",
        "unit_price": "0",
        "tiers": [
            {"up_to": "36000", "unit_price": "0.0002", "flat_fee": "0"},
            {"up_to": None, "unit_price": "0.0001", "flat_fee": "0"},
        ],
        "package_size": "1",
        "included": "3600",
    }


def seed_catalog(uow: UnitOfWork, ctx: Context, start: datetime) -> dict[str, str]:
    """The metric, the pay-as-you-watch plan, a fight night and films; their ids by name."""
    metrics.create_metric(uow, ctx, metrics.CreateMetric(VIEWING, "Viewing time", "sum", "second"))
    terms = {
        "name": "Pay as you watch",
        "interval": {"unit": "month", "count": 1},
        "prices": _money_docs(0),
        "package_codes": ["news", "sports", "cinema"],
        "grace_days": 0,
        "suspend_after_days": 0,
        "usage_charges": [
            {
                "metric": VIEWING,
                "name": "Viewing time",
                "aggregation": "sum",
                "prices": [_per_second(c) for c in CURRENCIES],
            }
        ],
        "usage_threshold": _money_docs(500),  # charged from the wallet 5.00 at a time
        "usage_cap": _money_docs(4000),
    }
    plan, _ = catalog.create_plan(uow, ctx, PAYG, "Pay as you watch", catalog.PublishTerms(terms))
    channel = catalog.create_channel(
        uow, ctx, catalog.CreateChannel("fight-night", "Fight Night", 900)
    )
    fight_at = start + timedelta(days=85, hours=11)
    event = ppv.create_event(
        uow,
        ctx,
        ppv.CreateEvent(
            "title-fight",
            "Title Fight",
            channel.id,
            fight_at,
            fight_at + timedelta(hours=3),
            tuple(
                Money.of(p, c) for p, c in (("19.99", "EUR"), ("21.99", "USD"), ("17.99", "GBP"))
            ),
            replay_hours=48,
            capacity=5000,
            discounts=(SubscriberDiscount("sports", percent=Decimal(25)),),
        ),
    )
    for code, name, year in FILMS:
        rental = RentalTerms(tuple(Money.of("3.99", c) for c in CURRENCIES), 48)
        item = vod.CreateItem(
            code,
            name,
            f"http://origin.example.test/vod/{code}.mp4",
            year=year,
            packages=("cinema",),
            rental=rental,
        )
        vod.create_item(uow, ctx, item)
    return {"plan": plan.id, "event": event.id}


def seed_viewers(
    uow: UnitOfWork, ctx: Context, rng: random.Random, plan_id: str, count: int
) -> list[str]:
    """Prepaid pay-as-you-watch subscribers with a little credit each."""
    subs = []
    for _ in range(count):
        code = rng.choice(CURRENCIES)
        n = rng.randrange(10**6)
        customer = customers.create_customer(
            uow,
            ctx,
            customers.CreateCustomer(
                f"Viewer {n:06d}",
                f"viewer{n:06d}@example.com",
                code,
                collection_method="charge_wallet",
            ),
        )
        wallets.top_up(
            uow,
            ctx,
            wallets.TopUp(customer.id, Money.of(str(rng.choice((10, 20, 30))), code), "card"),
        )
        change = subscriptions.create_subscription(
            uow, ctx, subscriptions.CreateSubscription(customer.id, plan_id)
        )
        subs.append(change.subscription.id)
    return subs


def watch_a_day(
    uow: UnitOfWork, ctx: Context, rng: random.Random, subs: list[str], day: int
) -> None:
    """Yesterday's viewing of each pay-as-you-watch subscriber, reported as usage."""
    at = moment(ctx.now() - timedelta(hours=1))
    events = []
    for sub_id in subs:
        sub = uow.subscriptions.get(ctx.tenant_id, sub_id)
        if sub is None or sub.state.status.value != "active":
            continue
        events.append(
            {
                "id": f"demo-{sub_id}-{day}",
                "customer_id": sub.customer_id,
                "subscription_id": sub_id,
                "metric": VIEWING,
                "value": rng.randrange(0, 240) * 60,
                "timestamp": at,
            }
        )
    if events:
        usage.ingest(uow, ctx, events)
    for sub_id in subs[:STREAMERS]:
        stream_a_session(uow, ctx, sub_id, f"demo-{day}", rng.randrange(5, 40))


def stream_a_session(
    uow: UnitOfWork, ctx: Context, sub_id: str, session: str, minutes: int
) -> None:
    """What a streaming server's session does to a prepaid viewer: a hold when it starts,
    a minute of viewing at a time, then the charge of what was played (an invoice paid from
    the hold). A wallet that cannot pay for a minute does not start the session."""
    try:
        reservation = metered_holds.reserve(uow, ctx, sub_id, 60 * minutes, session)
    except InsufficientFunds:
        return
    sub = uow.subscriptions.get(ctx.tenant_id, sub_id)
    if sub is None or reservation.hold_id is None:
        return
    now = ctx.now()
    events = [
        {
            "id": f"{session}:{sub_id}:{minute}",
            "customer_id": sub.customer_id,
            "subscription_id": sub_id,
            "metric": VIEWING,
            "value": 60,
            "timestamp": moment(now - timedelta(minutes=minutes - minute)),
        }
        for minute in range(minutes)
    ]
    usage.ingest(uow, ctx, events)
    metered_holds.settle(uow, ctx, reservation.hold_id)


def shoppers(uow: UnitOfWork, ctx: Context) -> list[str]:
    """Active subscriptions that may buy something today."""
    return [s.id for s in uow.subscriptions.list(ctx.tenant_id, 100, None, status="active").items]


def buy_one(
    uow: UnitOfWork, ctx: Context, sub_id: str, roll: float, film: str, event_id: str
) -> None:
    """One subscriber buys the fight night or rents a film from their wallet (in its own unit of
    work: a refusal for want of credit must roll back the whole purchase)."""
    if roll < 0.25:
        ppv.purchase(uow, ctx, ppv.Purchase(event_id, sub_id, "wallet"))
    elif roll < 0.4:
        item = uow.vod.item_by_code(ctx.tenant_id, film)
        if item is not None:
            vod.rent(uow, ctx, vod.Rent(item.id, sub_id, "wallet"))
