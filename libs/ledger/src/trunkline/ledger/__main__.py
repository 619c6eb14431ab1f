"""``python -m trunkline.ledger``: the ledger worker as a small process of its own.

Loads the price tables first (a malformed one stops the process with its file and line), then
serves gRPC health while it migrates the database to the newest schema (retried until the
database answers) and consumes the events; SERVING once migrated and connected to NATS. The
database may go away later: writes are retried and nothing is lost (``trunkline.ledger.worker``).
"""

from __future__ import annotations

import asyncio
import logging
import sys

from opentelemetry import metrics
from sqlalchemy.exc import SQLAlchemyError

from trunkline.bus import Bus
from trunkline.bus.tasks import stop as stop_task
from trunkline.ledger.metrics import LedgerMetrics
from trunkline.ledger.migrate import upgrade
from trunkline.ledger.prices import PriceTableError, load_price_dir
from trunkline.ledger.rules import rules_from_dir
from trunkline.ledger.settings import LedgerSettings
from trunkline.ledger.store import LedgerStore, make_engine
from trunkline.ledger.worker import DEFAULT_RETRY, LedgerWorker, RetryPolicy
from trunkline.runtime import Connecting, run, serve

log = logging.getLogger("trunkline.ledger")


async def prepare(store: LedgerStore, retry: RetryPolicy = DEFAULT_RETRY) -> None:
    """Migrate and store the price tables, retrying while the database is unreachable."""
    attempt = 0
    while True:
        try:
            await asyncio.to_thread(upgrade, store.engine)
            await asyncio.to_thread(store.sync_prices)
            return
        except (SQLAlchemyError, OSError) as exc:
            if attempt == 0:
                log.warning("ledger database not ready (%s); retrying", str(exc).splitlines()[0])
            await asyncio.sleep(retry.delay(attempt))
            attempt += 1


async def main() -> None:
    settings = LedgerSettings.load()
    tables = load_price_dir(settings.prices_dir)
    engine = make_engine(settings.database_url)
    store = LedgerStore(engine, tables, rules_from_dir(settings.agents_dir))
    bus = Connecting(
        lambda: Bus.connect(
            settings.nats_url,
            name="ledger",
            tls_ca_file=settings.nats_ca_file,
            creds_file=settings.nats_creds_file,
        ),
        name="nats",
    )
    prepared = asyncio.Event()

    async def consume() -> None:
        await prepare(store)
        prepared.set()
        while (client := bus.get()) is None:
            if bus.error() is not None:
                raise RuntimeError(f"cannot connect to NATS: {bus.error()!r}")
            await asyncio.sleep(0.1)
        meter = metrics.get_meter("trunkline.ledger")
        await LedgerWorker(client, store, metrics=LedgerMetrics(meter)).run()

    task = asyncio.create_task(consume(), name="ledger-worker")

    async def ready() -> bool:
        client = bus.get()
        connected = client is not None and client.is_connected
        return connected and prepared.is_set() and not task.done()

    async def stop() -> None:
        await stop_task(task)  # again until done: nats-py can swallow a cancel
        await bus.close(lambda client: client.close())
        engine.dispose()

    await serve(settings, lambda _server: None, services=[], ready=ready, on_shutdown=[stop])


def entry() -> int:
    try:
        return run(main)
    except PriceTableError as exc:
        print(f"ledger: bad price table:\n{exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(entry())
