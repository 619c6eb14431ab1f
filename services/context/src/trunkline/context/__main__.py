"""``python -m trunkline.context``: the context process."""

from __future__ import annotations

from trunkline.context.server import CONTEXT_SERVICE, ContextService, register
from trunkline.context.settings import ContextSettings
from trunkline.runtime import run, serve


async def main() -> None:
    settings = ContextSettings.load()
    servicer = ContextService()
    await serve(settings, lambda server: register(server, servicer), services=[CONTEXT_SERVICE])


if __name__ == "__main__":
    raise SystemExit(run(main))
