"""The tool executor: decisions in ``core.tools``, the call itself behind :class:`ToolRunner`."""

from trunkline.gateway.tools.base import ToolRunError, ToolRunner
from trunkline.gateway.tools.executor import ToolExecutor, tool_book
from trunkline.gateway.tools.http import HttpToolRunner

__all__ = ["HttpToolRunner", "ToolExecutor", "ToolRunError", "ToolRunner", "tool_book"]
