"""The hitl service's metrics (OpenTelemetry instruments, served on /metrics).

- ``hitl_escalations_total{reason, outcome}``: escalations requested and what became of them
  (accepted, handed_back, ended, dismissed, callback, requeued, expired, cancelled);
- ``hitl_approvals_total{tool, outcome}``: approvals requested, approved, denied, expired...;
- ``hitl_queue_depth{kind}``: open tickets (queued or claimed) now, from the store's feed, so
  writes by any hitl replica count;
- ``hitl_accept_duration_s``: escalation requested -> an operator on the call;
- ``hitl_approval_wait_duration_s``: approval requested -> decided (the human's time).
"""

from __future__ import annotations

from opentelemetry.metrics import Meter

from trunkline.hitl.core.tickets import Kind, Ticket
from trunkline.hitl.store import Stored

WAIT_BUCKETS = (1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0)


class HitlMetrics:
    """Counters per change, wait histograms; a :class:`~trunkline.hitl.queue.TicketListener`."""

    def __init__(self, meter: Meter) -> None:
        self.escalations = meter.create_counter(
            "hitl.escalations",
            description="Escalation tickets by reason and outcome (requested, accepted, "
            "handed_back, ended, dismissed, callback, requeued, expired, cancelled)",
        )
        self.approvals = meter.create_counter(
            "hitl.approvals",
            description="Approval tickets by tool and outcome (requested, approved, denied, "
            "expired, cancelled)",
        )
        self.queue_depth = meter.create_up_down_counter(
            "hitl.queue.depth", description="Open tickets (queued or claimed), per kind"
        )
        self.accept_wait = meter.create_histogram(
            "hitl.accept.duration",
            unit="s",
            description="Escalation requested to an operator on the call",
            explicit_bucket_boundaries_advisory=WAIT_BUCKETS,
        )
        self.approval_wait = meter.create_histogram(
            "hitl.approval.wait.duration",
            unit="s",
            description="Approval requested to decided (the operator's time)",
            explicit_bucket_boundaries_advisory=WAIT_BUCKETS,
        )
        self._open: dict[str, Kind] = {}

    async def changed(self, before: Ticket | None, after: Ticket, change: str) -> None:
        if after.kind is Kind.ESCALATION:
            reason = after.escalation.reason if after.escalation else "unspecified"
            self.escalations.add(1, {"reason": reason, "outcome": change})
            if change == "accepted" and after.accepted_at is not None:
                self.accept_wait.record(max(0.0, after.accepted_at - after.created_at))
        else:
            tool = after.approval.tool_name if after.approval else ""
            if change in {"requested", "approved", "denied", "expired", "cancelled"}:
                self.approvals.add(1, {"tool": tool, "outcome": change})
            if change in {"approved", "denied"} and after.decision is not None:
                self.approval_wait.record(max(0.0, after.decision.decided_at - after.created_at))

    def observe(self, stored: Stored) -> None:
        """Every write seen in the store (by any replica): keep the depth gauge true."""
        key, ticket = stored.key, stored.ticket
        was = self._open.get(key)
        if ticket.is_open and was is None:
            self._open[key] = ticket.kind
            self.queue_depth.add(1, {"kind": ticket.kind.value})
        elif not ticket.is_open and was is not None:
            del self._open[key]
            self.queue_depth.add(-1, {"kind": was.value})
