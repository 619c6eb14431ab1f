"""RPCs that are not built yet answer UNIMPLEMENTED with a message naming the RPC and its issue.

Generated servicer bases answer ``UNIMPLEMENTED: Method not implemented!``. Ours say which RPC
and which issue will build it. Declare each RPC not built yet as :class:`Unimplemented` in the
servicer; replace the line with a real ``async def`` when the RPC is built::

    class HumanLoopService(hitl_pb2_grpc.HumanLoopServicer):
        Escalate = Unimplemented("the hitl escalation queue issue")
        WaitDecision = Unimplemented("the hitl escalation queue issue")

A call then fails with ``UNIMPLEMENTED: trunkline.hitl.v1.HumanLoop/Escalate is not built yet
(lands with: the hitl escalation queue issue)``.
"""

from __future__ import annotations

import sys
import types
from typing import Any, NoReturn

import grpc


async def abort_unimplemented(
    context: grpc.aio.ServicerContext[Any, Any], rpc: str, issue: str
) -> NoReturn:
    """Answer UNIMPLEMENTED for ``rpc`` (``package.Service/Method``), naming ``issue``."""
    await context.abort(
        grpc.StatusCode.UNIMPLEMENTED, f"{rpc} is not built yet (lands with: {issue})"
    )


class Unimplemented:
    """A servicer method (any of the four RPC kinds) that answers UNIMPLEMENTED clearly."""

    def __init__(self, issue: str) -> None:
        self.issue = issue
        self.rpc = "?"

    def __set_name__(self, owner: type, name: str) -> None:
        self.rpc = f"{service_name(owner)}/{name}"

    def __get__(self, instance: object, owner: type | None = None) -> Any:
        if instance is None:
            return self
        return types.MethodType(self._call, instance)

    async def _call(
        self, _servicer: object, _request: object, context: grpc.aio.ServicerContext[Any, Any]
    ) -> NoReturn:
        await abort_unimplemented(context, self.rpc, self.issue)


def service_name(servicer: type) -> str:
    """Full proto name (``trunkline.hitl.v1.HumanLoop``) of the service a servicer class serves,
    found from its generated ``<Name>Servicer`` base; the bare class name if there is none."""
    for base in servicer.__mro__:
        if not base.__module__.endswith("_pb2_grpc") or not base.__name__.endswith("Servicer"):
            continue
        short = base.__name__.removesuffix("Servicer")
        module = sys.modules.get(base.__module__)
        for value in vars(module).values() if module is not None else ():
            services = getattr(getattr(value, "DESCRIPTOR", None), "services_by_name", None)
            if services is not None and short in services:
                return str(services[short].full_name)
        return short
    return servicer.__name__
