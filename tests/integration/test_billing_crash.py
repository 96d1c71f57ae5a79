"""A billing run killed at random points (SIGKILL of a real `iptv-billing bill` process), then
run again: exactly one invoice per subscription period, gapless invoice numbers, a balanced
journal and wallets that match their postings, on SQLite and PostgreSQL."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

from operator_harness import START, Operator
from sqlalchemy import text
from test_billing_run import _assert_contiguous, _cycle_invoices, all_invoices

from iptv_billing.services.wallets import wallet_discrepancies

SUBSCRIBERS = 300
KILLS = 4


def _bill_process(url: str, tenant_id: str) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "iptv_billing", "bill", "--tenant", tenant_id,
               "--database-url", url, "--batch-size", "8"]  # fmt: skip
    env = {**os.environ, "COLUMNS": "120"}
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)


def _invoice_count(op: Operator) -> int:
    with op.database.engine.connect() as connection:
        return int(connection.execute(text("SELECT count(*) FROM invoices")).scalar_one())


def _kill_mid_run(op: Operator, process: subprocess.Popen[bytes], delay: float) -> bool:
    """SIGKILL the run ``delay`` seconds after its first committed batch, unless it finished
    by then; True if it was killed mid-run."""
    before = _invoice_count(op)
    deadline = time.monotonic() + 60
    while _invoice_count(op) == before and process.poll() is None:
        assert time.monotonic() < deadline, "the billing run made no progress"
        time.sleep(0.01)
    time.sleep(delay)
    if process.poll() is not None:
        assert process.returncode == 0, process.stderr.read().decode() if process.stderr else ""
        return False
    process.send_signal(signal.SIGKILL)
    process.wait()
    return True


def _wait_for_killed_sessions(op: Operator) -> None:
    """PostgreSQL ends a killed client's session (and frees its row locks) only when it
    notices the closed socket. Until then a rerun skips the locked subscriptions (SKIP
    LOCKED) and leaves them for the next run. The final rerun must see them all."""
    if op.database.engine.dialect.name != "postgresql":
        return
    others = text(
        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
        "AND backend_type = 'client backend' AND pid <> pg_backend_pid() "
        "AND state IS DISTINCT FROM 'idle'"
    )
    deadline = time.monotonic() + 30
    while True:
        with op.database.engine.connect() as connection:
            if int(connection.execute(others).scalar_one()) == 0:
                return
        assert time.monotonic() < deadline, "a killed run's session is still open"
        time.sleep(0.05)


def _seed(op: Operator) -> list[str]:
    # Dunning is far off so that every subscription keeps renewing: the test is about periods.
    lenient = {"grace_days": 300, "suspend_after_days": 300, "expire_after_days": 300}
    op.plan("basic", "9.99", **lenient)
    op.plan("weekly", "2.49", unit="week", **lenient)
    rng = random.Random(11)
    subs = []
    for i in range(SUBSCRIBERS):
        wallet = rng.random() < 0.5
        customer = op.customer("charge_wallet" if wallet else "send_invoice",
                               top_up="40.00" if wallet else None)  # fmt: skip
        subs.append(op.subscribe(customer.id, "weekly" if i % 3 == 0 else "basic").id)
    return subs


def test_killed_billing_runs_rerun_to_exactly_one_invoice_per_period(
    operator: Operator, database_url: str
) -> None:
    subs = _seed(operator)
    rng = random.Random(2024)
    killed = attempts = 0
    while killed < KILLS and attempts < 4 * KILLS:
        attempts += 1
        operator.advance(rng.uniform(10, 40))  # more periods fall due: work for the next run
        process = _bill_process(database_url, operator.tenant_id)
        killed += _kill_mid_run(operator, process, rng.uniform(0, 0.1))
    assert killed == KILLS, f"only {killed} of {attempts} runs were caught mid-run"
    _wait_for_killed_sessions(operator)
    operator.bill()  # the final, complete rerun
    now = operator.read(lambda u, c: c.now())
    periods = _cycle_invoices(operator)
    assert set(periods) == set(subs)
    _assert_contiguous(periods)  # no gap, no overlap, so no period billed twice
    for sub_id in subs:
        first_start, last_end = periods[sub_id][0][0], periods[sub_id][-1][1]
        assert first_start == START, f"{sub_id}: the first period is missing"
        assert last_end > now >= periods[sub_id][-1][0], f"{sub_id}: not billed up to now"
    invoices = all_invoices(operator)
    numbers = sorted(i.number for i in invoices if i.number is not None)
    assert numbers == list(range(1, len(invoices) + 1)), "invoice numbering has gaps"
    assert operator.read(lambda u, c: u.journal.imbalances(c.tenant_id)) == []
    customers = {i.customer_id for i in invoices}
    assert all(
        operator.read(lambda u, c, cid=cid: wallet_discrepancies(u, c, cid)) == []
        for cid in customers
    )
