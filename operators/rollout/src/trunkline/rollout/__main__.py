"""``python -m trunkline.rollout``: the rollout operator process.

For now a shell: gRPC health and ``/metrics`` only. It watches no custom resources yet; the
VoiceAgent/AgentRollout handlers (kopf) land with the AgentRollout issue.
"""

from __future__ import annotations

from trunkline.rollout.settings import RolloutSettings
from trunkline.runtime import run, serve


async def main() -> None:
    settings = RolloutSettings.load()
    await serve(settings, lambda _server: None, services=[])


if __name__ == "__main__":
    raise SystemExit(run(main))
