"""``python -m trunkline.gateway.shadow``: one candidate version's shadow runner.

Loads the candidate (a YAML file or folder, or the VoiceAgent from the API), connects to NATS
and to the context and llm services, and answers the candidate's mirrored turns until SIGTERM.
Ready when NATS is connected and both peers are SERVING; ``/metrics`` has the ``shadow_*``
series with agent and version labels.
"""

from __future__ import annotations

import asyncio
import logging

from opentelemetry import trace

from trunkline.agents import AgentSpec, AgentSpecError, load_agent_file, parse_agent_spec
from trunkline.agents.cluster import ClusterAgents, api_client, find_version
from trunkline.agents.loader import agent_files
from trunkline.bus import Bus
from trunkline.bus.streams import SHADOW
from trunkline.bus.tasks import stop as stop_task
from trunkline.gateway.core.clock import SystemClock
from trunkline.gateway.peers.base import ContextSource, PeerEnv
from trunkline.gateway.peers.grpc_context import GrpcContext
from trunkline.gateway.peers.grpc_llm import GrpcLanguageModel
from trunkline.gateway.peers.retry import RetryPolicy
from trunkline.gateway.profile import profile_of
from trunkline.gateway.shadow.runner import DelayedContext, ShadowPeers, ShadowRunner
from trunkline.gateway.shadow.settings import ShadowSettings
from trunkline.runtime import channel, peers_serving, run, serve

log = logging.getLogger("trunkline.shadow")


async def candidate_spec(settings: ShadowSettings) -> AgentSpec:
    """The candidate version's spec, from files or the API; a clear error when it is absent."""
    want = f"{settings.agent} version {settings.version}"
    if settings.agent_spec:
        given = parse_agent_spec(settings.agent_spec, source="SHADOW_AGENT_SPEC")
        if (given.name, given.version) != (settings.agent, settings.version):
            raise AgentSpecError(f"SHADOW_AGENT_SPEC is {given.ref}, not {want}")
        return given
    if settings.agents_source == "cluster":
        agents = ClusterAgents(api_client(settings.kubeconfig), settings.agents_namespace)
        found = find_version(await agents.load(), settings.agent, settings.version)
        agents.api.close()  # type: ignore[no-untyped-call]
        if found is None:
            raise AgentSpecError(
                f"no validated VoiceAgent {want} in namespace {settings.agents_namespace}"
            )
        return found
    for file in agent_files(settings.agents_path):
        spec = load_agent_file(file)
        if (spec.name, spec.version) == (settings.agent, settings.version):
            return spec
    raise AgentSpecError(f"{settings.agents_path}: no agent spec for {want}")


async def main() -> None:
    settings = ShadowSettings.load()
    spec = await candidate_spec(settings)
    profile = profile_of(spec)
    clock = SystemClock()
    tracer = trace.get_tracer("trunkline.shadow")
    env = PeerEnv(clock, tracer)
    policy = RetryPolicy(timeout_s=settings.peer_timeout_s)
    context_channel = channel(settings.context_addr, settings)
    llm_channel = channel(settings.llm_addr, settings)
    context: ContextSource = GrpcContext(env, context_channel, profile.retrieval, policy)
    if settings.inject_delay_ms:
        context = DelayedContext(env, context, settings.inject_delay_ms / 1000)
    peers = ShadowPeers(context, GrpcLanguageModel(env, llm_channel, profile, policy))
    bus = await Bus.connect(
        settings.nats_url,
        name=f"shadow-{spec.name}-{spec.version}",
        tls_ca_file=settings.nats_ca_file,
        creds_file=settings.nats_creds_file,
    )
    await bus.ensure_stream(SHADOW)
    runner = ShadowRunner(
        bus, profile, peers, clock=clock, tracer=tracer, turn_timeout_s=settings.turn_timeout_s
    )
    task = asyncio.create_task(runner.run(), name="shadow-runner")
    log.info("shadow runner for %s@%s reads %s", spec.name, spec.version, runner.consumer.durable)

    async def ready() -> bool:
        if task.done():
            return False
        return bus.is_connected and await peers_serving([settings.context_addr, settings.llm_addr])

    async def stop() -> None:
        await stop_task(task)  # again until done: nats-py can swallow a cancel
        await bus.close()
        await context_channel.close()
        await llm_channel.close()

    await serve(settings, lambda _server: None, services=[], ready=ready, on_shutdown=[stop])


if __name__ == "__main__":
    raise SystemExit(run(main))
