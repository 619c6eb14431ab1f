"""``python -m trunkline.rollout``: the rollout operator process.

kopf watches VoiceAgents and AgentRollouts (``handlers.py``) in a thread of its own (its own
event loop: kopf installs SIGTERM/SIGINT handlers in the main thread, which belong to the
process shell here). The shell serves gRPC health (SERVING while kopf is up and watching,
NOT_SERVING on SIGTERM, then kopf is stopped through its stop flag) and ``/metrics``
(``rollout_transitions_total``, ``rollout_checks_total``, ``rollout_rollbacks_total``).
"""

from __future__ import annotations

import asyncio
import logging
import threading

import kopf

from trunkline.rollout.cluster import KubeCluster, api_client
from trunkline.rollout.controller import Controller
from trunkline.rollout.handlers import build_registry, operator_settings
from trunkline.rollout.manifests import ShadowRunner
from trunkline.rollout.metrics import PrometheusSource
from trunkline.rollout.replay import NoReplayHarness
from trunkline.rollout.settings import RolloutSettings
from trunkline.runtime import run, serve

STOP_TIMEOUT_S = 4.0
"""Within the shell's 5 s per shutdown hook."""


async def main() -> None:
    settings = RolloutSettings.load()
    api = api_client(settings.kubeconfig)
    source = PrometheusSource(settings.prometheus_url, settings.metrics_timeout_s)
    controller = Controller(
        cluster=KubeCluster(api),
        metrics_source=source,
        replay_gate=NoReplayHarness(),
        runner=ShadowRunner(
            image=settings.shadow_image,
            command=settings.shadow_command,
            nats_url=settings.nats_url,
            service_account=settings.shadow_service_account,
        ),
    )
    stop, ready = threading.Event(), threading.Event()

    async def operate() -> None:
        try:
            await kopf.operator(
                registry=build_registry(controller, api),
                settings=operator_settings(),
                standalone=True,
                clusterwide=not settings.namespaces,
                namespaces=settings.namespaces,
                stop_flag=stop,
                ready_flag=ready,
            )
        finally:
            await source.close()  # its HTTP session lives on kopf's event loop

    # kopf logs every handler run at INFO with its settings attached: the controller logs what
    # matters; kopf's own warnings and errors still show.
    logging.getLogger("kopf").setLevel(logging.WARNING)
    thread = threading.Thread(target=lambda: asyncio.run(operate()), name="kopf", daemon=True)
    thread.start()

    async def is_ready() -> bool:
        return ready.is_set() and thread.is_alive()

    async def stop_kopf() -> None:
        stop.set()
        await asyncio.to_thread(thread.join, STOP_TIMEOUT_S)
        api.close()  # type: ignore[no-untyped-call]

    await serve(settings, lambda _server: None, services=[], ready=is_ready,
                on_shutdown=[stop_kopf])  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(run(main))
