"""The one place backend calls get their timeout, retries, span and metrics.

Every ABC's public method is ``return await guarded(self.policy, "name", lambda: self._impl(...))``.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from opentelemetry import metrics, trace

from trunkline.context.errors import BackendError, ContextError

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class CallPolicy:
    timeout_s: float = 5.0
    retries: int = 0
    backoff_s: float = 0.05


@functools.cache
def _instruments() -> tuple[metrics.Histogram, metrics.Counter]:
    meter = metrics.get_meter("trunkline.context")
    duration = meter.create_histogram(
        "context.backend.duration", unit="ms", description="backend call duration"
    )
    failures = meter.create_counter("context.backend.failures", description="failed backend calls")
    return duration, failures


async def guarded(policy: CallPolicy, name: str, call: Callable[[], Awaitable[T]]) -> T:
    """Run ``call`` under ``policy``: timeout per attempt, retries with backoff, span, metrics.

    ``ContextError`` raised by the backend (a clear, permanent error) is not retried.
    """
    tracer = trace.get_tracer("trunkline.context")
    duration, failures = _instruments()
    last: BaseException | None = None
    with tracer.start_as_current_span(f"context.backend.{name}") as span:
        for attempt in range(policy.retries + 1):
            start = time.perf_counter()
            try:
                async with asyncio.timeout(policy.timeout_s):  # no task per call (wait_for's)
                    result = await call()
            except ContextError:
                failures.add(1, {"backend": name})
                raise
            except Exception as exc:  # retried, then wrapped
                last = exc
                failures.add(1, {"backend": name})
                span.add_event("attempt failed", {"attempt": attempt, "error": repr(exc)})
                if attempt < policy.retries:
                    await asyncio.sleep(policy.backoff_s * (2**attempt))
                continue
            finally:
                duration.record((time.perf_counter() - start) * 1000, {"backend": name})
            span.set_attribute("attempts", attempt + 1)
            return result
        span.set_status(trace.Status(trace.StatusCode.ERROR, repr(last)))
    raise BackendError(f"{name} failed after {policy.retries + 1} attempt(s): {last!r}") from last
