"""``python -m trunkline.context``: the context process.

It listens at once (health NOT_SERVING) while the embedder loads and Milvus opens in a worker
thread; health turns SERVING when both are ready. SIGTERM drains, then closes them.
"""

from __future__ import annotations

import asyncio

from trunkline.context.server import CONTEXT_SERVICE, ContextService, register
from trunkline.context.service import Backends
from trunkline.context.settings import ContextSettings
from trunkline.runtime import Connecting, run, serve


async def main() -> None:
    settings = ContextSettings.load()
    backends = Connecting(lambda: asyncio.to_thread(Backends.open, settings), name="backends")
    servicer = ContextService(backends.get)

    async def close() -> None:
        await backends.close(lambda b: b.close())

    await serve(
        settings,
        lambda server: register(server, servicer),
        services=[CONTEXT_SERVICE],
        ready=servicer.ready,
        on_shutdown=[close],
    )


if __name__ == "__main__":
    raise SystemExit(run(main))
