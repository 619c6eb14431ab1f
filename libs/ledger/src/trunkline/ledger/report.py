"""Cost per qualified outcome per agent version, and totals per component.

Costs and turns are counted by when they occurred, calls (and their outcomes) by when they
started, all within ``[since, until)``; live traffic only unless ``shadow`` is asked for (shadow
turns have costs and turns but no calls of their own). Three grouped queries do the work in the
database (each on an index that starts with the tenant); the rest is pure arithmetic on
:class:`~decimal.Decimal`.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from trunkline.ledger.models import CallRow, CostRow, PriceTableRow, UsageRow
from trunkline.ledger.outcomes import Outcome
from trunkline.ledger.pricing import Component, from_picos

_RELATIVE = re.compile(r"^(\d+)([smhdw])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
COMPONENTS = tuple(c.value for c in Component)


class UnknownTenantError(LookupError):
    """The ledger has never seen the tenant (no price table, no call)."""


def parse_since(text: str, now: datetime) -> datetime:
    """``7d``, ``24h``, ``30m`` (before ``now``), or an ISO date/datetime (UTC if no zone)."""
    match = _RELATIVE.match(text.strip())
    if match:
        amount, unit = int(match.group(1)), match.group(2)
        return now - timedelta(**{_UNITS[unit]: amount})
    try:
        moment = datetime.fromisoformat(text.strip())
    except ValueError as exc:
        raise ValueError(f"{text!r} is not a time: use 7d, 24h, 30m or 2026-12-01[T10:00]") from exc
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


@dataclass
class VersionReport:
    """One agent version's figures."""

    agent: str
    version: str
    currency: str = ""
    calls: int = 0
    turns: int = 0
    outcomes: dict[str, int] = field(default_factory=lambda: {o.value: 0 for o in Outcome})
    qualified: int = 0
    components: dict[str, Decimal] = field(
        default_factory=lambda: dict.fromkeys(COMPONENTS, Decimal(0))
    )

    @property
    def total(self) -> Decimal:
        return sum(self.components.values(), Decimal(0))

    @property
    def per_qualified(self) -> Decimal | None:
        return self.total / self.qualified if self.qualified else None

    @property
    def per_turn(self) -> Decimal | None:
        return self.total / self.turns if self.turns else None

    @property
    def per_call(self) -> Decimal | None:
        return self.total / self.calls if self.calls else None


@dataclass
class CostReport:
    tenant: str
    since: datetime
    until: datetime
    shadow: bool
    versions: list[VersionReport]

    @property
    def components(self) -> dict[str, Decimal]:
        totals = dict.fromkeys(COMPONENTS, Decimal(0))
        for version in self.versions:
            for name, value in version.components.items():
                totals[name] = totals.get(name, Decimal(0)) + value
        return totals


def build_report(
    engine: Engine, tenant: str, since: datetime, until: datetime, *, shadow: bool = False
) -> CostReport:
    with Session(engine) as session:
        costs = session.execute(
            select(
                CostRow.agent_name,
                CostRow.agent_version,
                CostRow.component,
                CostRow.currency,
                func.sum(CostRow.cost_picos),
            )
            .where(
                CostRow.tenant == tenant,
                CostRow.occurred_at >= since,
                CostRow.occurred_at < until,
                CostRow.shadow == shadow,
            )
            .group_by(
                CostRow.agent_name, CostRow.agent_version, CostRow.component, CostRow.currency
            )
        ).all()
        turns = session.execute(
            select(UsageRow.agent_name, UsageRow.agent_version, func.count())
            .where(
                UsageRow.tenant == tenant,
                UsageRow.occurred_at >= since,
                UsageRow.occurred_at < until,
                UsageRow.shadow == shadow,
                UsageRow.kind == "turn",
            )
            .group_by(UsageRow.agent_name, UsageRow.agent_version)
        ).all()
        calls = session.execute(
            select(
                CallRow.agent_name,
                CallRow.agent_version,
                CallRow.outcome,
                CallRow.qualified,
                func.count(),
            )
            .where(
                CallRow.tenant == tenant,
                CallRow.started_at >= since,
                CallRow.started_at < until,
                CallRow.shadow == shadow,
            )
            .group_by(CallRow.agent_name, CallRow.agent_version, CallRow.outcome, CallRow.qualified)
        ).all()
        if not costs and not calls and not _known(session, tenant):
            known = ", ".join(_tenants(session)) or "none"
            raise UnknownTenantError(f"tenant {tenant!r} is unknown to the ledger (known: {known})")
    versions: dict[tuple[str, str], VersionReport] = {}
    for agent, version, component, currency, picos in costs:
        entry = versions.setdefault((agent, version), VersionReport(agent, version))
        entry.currency = currency
        entry.components[component] = entry.components.get(component, Decimal(0)) + from_picos(
            int(picos or 0)
        )
    for agent, version, count in turns:
        versions.setdefault((agent, version), VersionReport(agent, version)).turns = int(count)
    for agent, version, outcome, qualified, count in calls:
        entry = versions.setdefault((agent, version), VersionReport(agent, version))
        entry.calls += int(count)
        if outcome is not None:
            entry.outcomes[outcome] = entry.outcomes.get(outcome, 0) + int(count)
        if qualified:
            entry.qualified += int(count)
    ordered = [versions[key] for key in sorted(versions)]
    return CostReport(tenant, since, until, shadow, ordered)


def _known(session: Session, tenant: str) -> bool:
    found = session.scalar(select(PriceTableRow.id).where(PriceTableRow.tenant == tenant).limit(1))
    if found is not None:
        return True
    return (
        session.scalar(select(CallRow.call_id).where(CallRow.tenant == tenant).limit(1)) is not None
    )


def _tenants(session: Session) -> list[str]:
    priced = session.scalars(select(PriceTableRow.tenant).distinct()).all()
    called = session.scalars(select(CallRow.tenant).distinct()).all()
    return sorted({*priced, *called})


# -- output ----------------------------------------------------------------------------------

HEADER = (
    "agent", "version", "calls", "turns", "resolved", "escalated", "abandoned", "qualified",
    *COMPONENTS, "total", "per_turn", "per_call", "per_qualified_outcome", "currency",
)  # fmt: skip


def _money(value: Decimal | None, places: int) -> str:
    if value is None:
        return "-"
    return str(value.quantize(Decimal(10) ** -places))


def rows(report: CostReport, places: int) -> Iterable[list[str]]:
    for v in report.versions:
        yield [
            v.agent, v.version, str(v.calls), str(v.turns),
            *(str(v.outcomes.get(o.value, 0)) for o in Outcome), str(v.qualified),
            *(_money(v.components[c], places) for c in COMPONENTS),
            _money(v.total, places), _money(v.per_turn, places), _money(v.per_call, places),
            _money(v.per_qualified, places), v.currency,
        ]  # fmt: skip


def to_csv(report: CostReport) -> str:
    """Every figure at the ledger's full precision (12 places)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    writer.writerows(rows(report, 12))
    return out.getvalue()


def to_table(report: CostReport) -> str:
    title = (
        f"cost report, tenant {report.tenant}, {report.since:%Y-%m-%d %H:%M} to "
        f"{report.until:%Y-%m-%d %H:%M} UTC ({'shadow' if report.shadow else 'live'} traffic)"
    )
    body = [list(HEADER), *rows(report, 6)]
    if report.versions:
        totals = report.components
        body.append(
            ["all", "", str(sum(v.calls for v in report.versions)),
             str(sum(v.turns for v in report.versions)),
             *(str(sum(v.outcomes.get(o.value, 0) for v in report.versions)) for o in Outcome),
             str(sum(v.qualified for v in report.versions)),
             *(_money(totals[c], 6) for c in COMPONENTS),
             _money(sum(totals.values(), Decimal(0)), 6), "", "", "",
             report.versions[0].currency]
        )  # fmt: skip
    widths = [max(len(row[i]) for row in body) for i in range(len(HEADER))]
    lines = [title]
    for index, row in enumerate(body):
        lines.append(
            "  ".join(
                cell.rjust(w) if index else cell.ljust(w)
                for cell, w in zip(row, widths, strict=True)
            )
        )
    if not report.versions:
        lines.append("(no calls and no costs in this window)")
    return "\n".join(lines)
