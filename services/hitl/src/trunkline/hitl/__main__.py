"""``python -m trunkline.hitl``: the hitl process. Ready once connected to NATS."""

from __future__ import annotations

from trunkline.bus import Bus
from trunkline.hitl.server import HUMAN_LOOP, HumanLoopService, register
from trunkline.hitl.settings import HitlSettings
from trunkline.runtime import Connecting, run, serve


async def main() -> None:
    settings = HitlSettings.load()
    bus = Connecting(
        lambda: Bus.connect(
            settings.nats_url,
            name="hitl",
            tls_ca_file=settings.nats_ca_file,
            creds_file=settings.nats_creds_file,
        ),
        name="nats",
    )

    async def ready() -> bool:
        client = bus.get()
        return client is not None and client.is_connected

    async def close_bus() -> None:
        await bus.close(lambda client: client.close())

    servicer = HumanLoopService()
    await serve(
        settings,
        lambda server: register(server, servicer),
        services=[HUMAN_LOOP],
        ready=ready,
        on_shutdown=[close_bus],
    )


if __name__ == "__main__":
    raise SystemExit(run(main))
