"""``python -m trunkline.rollout``: the rollout operator process.

kopf watches VoiceAgents and AgentRollouts (``handlers.py``) in a thread of its own
(``runner.py``): SIGTERM/SIGINT belong to the process shell, which serves gRPC health
(SERVING while kopf is up and watching; NOT_SERVING on SIGTERM, then kopf is stopped through
its stop flag) and ``/metrics`` (``rollout_transitions_total``, ``rollout_checks_total``,
``rollout_rollbacks_total``).
"""

from __future__ import annotations

import asyncio
import logging

from trunkline.rollout.cluster import KubeCluster, api_client
from trunkline.rollout.controller import Controller
from trunkline.rollout.manifests import ShadowRunner
from trunkline.rollout.metrics import MetricsSource, PrometheusSource
from trunkline.rollout.replay import NoReplayHarness, ReplayGate, bus_replay_gate
from trunkline.rollout.runner import OperatorThread
from trunkline.rollout.settings import RolloutSettings
from trunkline.rollout.shadows import BusLink, NatsShadows, ShadowResultsSource
from trunkline.runtime import run, serve

STOP_TIMEOUT_S = 4.0
"""Within the shell's 5 s per shutdown hook."""


async def main() -> None:
    settings = RolloutSettings.load()
    api = api_client(settings.kubeconfig)
    link = BusLink(
        settings.nats_url, tls_ca_file=settings.nats_ca_file, creds_file=settings.nats_creds_file
    )
    source: MetricsSource = (
        PrometheusSource(settings.prometheus_url, settings.metrics_timeout_s)
        if settings.metrics_source == "prometheus"
        else ShadowResultsSource(
            link,
            min_turns=settings.shadow_min_turns,
            window_s=settings.shadow_window_s,
            timeout_s=settings.metrics_timeout_s,
        )
    )
    replay: ReplayGate = NoReplayHarness()
    if settings.replay_scenarios:
        replay = bus_replay_gate(
            settings.replay_scenarios,
            settings.agents_dir,
            link,
            default_tenant=settings.replay_tenant,
            turn_timeout_s=settings.replay_turn_timeout_s,
            timeout_s=settings.replay_timeout_s,
        )
    controller = Controller(
        cluster=KubeCluster(api),
        metrics_source=source,
        replay_gate=replay,
        runner=ShadowRunner(
            image=settings.shadow_image,
            command=settings.shadow_command,
            nats_url=settings.nats_url,
            service_account=settings.shadow_service_account,
            env=settings.shadow_env,
            secret_mounts=settings.shadow_secret_mounts,
        ),
        shadows=NatsShadows(link),
    )
    # kopf logs every handler run at INFO with its settings attached: the controller logs what
    # matters; kopf's own warnings and errors still show.
    logging.getLogger("kopf").setLevel(logging.WARNING)

    async def on_exit() -> None:  # on kopf's loop, where they were opened
        await source.close()
        await link.close()

    operator = OperatorThread(controller, api, namespaces=settings.namespaces, on_exit=on_exit)
    operator.start()  # health says NOT_SERVING until kopf watches (API reachable, CRDs there)

    async def is_ready() -> bool:
        return operator.alive

    async def stop_operator() -> None:
        await asyncio.to_thread(operator.stop, STOP_TIMEOUT_S)
        api.close()  # type: ignore[no-untyped-call]

    await serve(settings, lambda _server: None, services=[], ready=is_ready,
                on_shutdown=[stop_operator])  # fmt: skip


if __name__ == "__main__":
    raise SystemExit(run(main))
