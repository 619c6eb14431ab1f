"""``python -m trunkline.hitl``: the hitl process. Ready once connected to NATS with the ticket
store loaded; tickets live in JetStream, so a restart loses none."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from opentelemetry import metrics

from trunkline.bus import Bus
from trunkline.bus.streams import EVENTS
from trunkline.hitl.backends.summary import ExtractiveSummarizer, LlmSummarizer, Summarizer
from trunkline.hitl.console.service import ConsoleSettings, ConsoleTask
from trunkline.hitl.events import TicketEvents
from trunkline.hitl.metrics import HitlMetrics
from trunkline.hitl.queue import QueuePolicy, TicketQueue, WallClock
from trunkline.hitl.server import HUMAN_LOOP, HumanLoopService, register
from trunkline.hitl.settings import HitlSettings
from trunkline.hitl.store import JetStreamTicketStore
from trunkline.runtime import Connecting, run, serve


def summarizer_for(settings: HitlSettings) -> Summarizer:
    if settings.summary_backend == "llm":
        return LlmSummarizer(
            settings.summary_llm_url, settings.summary_llm_model, settings.summary_llm_timeout_s
        )
    return ExtractiveSummarizer()


def policy_for(settings: HitlSettings) -> QueuePolicy:
    return QueuePolicy(
        escalation_timeout=settings.escalation_timeout_s,
        approval_timeout=settings.approval_timeout_s,
        claim_timeout=settings.claim_timeout_s,
        callback_keep=settings.callback_keep_s,
    )


async def open_queue(settings: HitlSettings, hitl_metrics: HitlMetrics) -> TicketQueue:
    """Connect to NATS (retrying forever), then load the tickets and start the sweeper."""
    bus = await Bus.connect(
        settings.nats_url,
        name="hitl",
        tls_ca_file=settings.nats_ca_file,
        creds_file=settings.nats_creds_file,
    )
    await bus.ensure_stream(EVENTS)
    clock = WallClock()
    queue = TicketQueue(
        JetStreamTicketStore(
            bus, bucket=settings.tickets_bucket, keep=timedelta(seconds=settings.tickets_keep_s)
        ),
        clock=clock,
        policy=policy_for(settings),
        listeners=[TicketEvents(bus, clock.now), hitl_metrics],
        summarizer=summarizer_for(settings),
        observers=[hitl_metrics.observe],
    )
    await queue.start()
    queue.on_close(bus.close)
    return queue


async def main() -> None:
    settings = HitlSettings.load()
    hitl_metrics = HitlMetrics(metrics.get_meter("trunkline.hitl"))
    opening = Connecting(lambda: open_queue(settings, hitl_metrics), name="tickets")
    draining = asyncio.Event()

    async def ready() -> bool:
        queue = opening.get()
        return queue is not None and queue.is_connected

    async def close() -> None:
        await opening.close(lambda queue: queue.close())

    secret = settings.join_secret.get_secret_value().encode() if settings.join_secret else None
    servicer = HumanLoopService(
        opening.get,
        join_url=settings.join_url,
        join_secret=secret,
        join_ttl=settings.join_token_ttl_s,
        draining=draining,
    )
    console_settings = ConsoleSettings.load()
    shutdown = [close]
    if console_settings.enabled:  # the operator console and softphone (console/), own port
        console = ConsoleTask(
            console_settings,
            lambda: Bus.connect(
                settings.nats_url,
                name="hitl-console",
                tls_ca_file=settings.nats_ca_file,
                creds_file=settings.nats_creds_file,
            ),
            opening.get,
            secret,
            settings.join_token_ttl_s,
        )
        shutdown.insert(0, console.stop)
    await serve(
        settings,
        lambda server: register(server, servicer),
        services=[HUMAN_LOOP],
        ready=ready,
        on_shutdown=shutdown,
        draining=draining,
    )


if __name__ == "__main__":
    raise SystemExit(run(main))
