"""The ABC of whatever runs an allowed tool call (an HTTP endpoint; a fake in tests)."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from typing import Any

from trunkline.gateway.core.tools import ToolPolicy
from trunkline.gateway.peers.types import CallInfo


class ToolRunError(Exception):
    """The tool ran and failed (unreachable, timed out, error status, bad answer)."""


class ToolRunner(ABC):
    async def run(self, call: CallInfo, tool: ToolPolicy, arguments: dict[str, Any]) -> Any:
        """The tool's JSON result; :class:`ToolRunError` within ``tool.timeout_s`` otherwise."""
        try:
            async with asyncio.timeout(tool.timeout_s):
                return await self._run(call, tool, arguments)
        except TimeoutError as exc:
            raise ToolRunError(f"{tool.name} did not answer within {tool.timeout_s:g}s") from exc

    @abstractmethod
    async def _run(self, call: CallInfo, tool: ToolPolicy, arguments: dict[str, Any]) -> Any: ...
