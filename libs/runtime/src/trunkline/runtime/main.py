"""``run(main)``: the body of every ``python -m trunkline.<service>``."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable

from pydantic import ValidationError


def run(main: Callable[[], Awaitable[None]]) -> int:
    """Run ``main`` in a fresh event loop; return the process exit code.

    0 after a clean shutdown; 2 with a readable message when the settings are invalid; 1 when
    the process cannot listen (port taken, bad host).
    """
    try:
        asyncio.run(_call(main))
    except ValidationError as exc:
        print(f"invalid settings: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"cannot start: {exc}", file=sys.stderr)
        return 1
    return 0


async def _call(main: Callable[[], Awaitable[None]]) -> None:
    await main()
