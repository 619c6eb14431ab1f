"""The demo CRM of the sample agent: a small aiohttp JSON server over a file of patient accounts.

``python -m trunkline.cli.samplecrm --port 8090 --data agents/acme-dental/crm.json``
(``--data`` again for more agents' accounts: the stack serves every ``agents/*/crm.json``)

It serves what ``agents/acme-dental.yaml`` points at:

- ``POST /tools/lookup_account`` ``{"account_id": "441729"}`` (the gateway's tool executor):
  ``{"found": true, "account_id", "name", "balance_usd", "plan", "next_appointment"}`` (null
  when none is booked), or
  ``{"found": false, "message"}`` for an unknown number;
- ``POST /tools/book_appointment`` ``{"account_id", "service", "start"}``: books it (kept in
  memory, the file is never written) and answers ``{"booked": true, "appointment_id", ...}``;
- ``GET /accounts/{account_id}/appointments`` (the context service's ``appointments`` live
  source): ``{"account_id", "appointments": [{"appointment_id", "patient", "service", "start",
  "status"}]}``, an empty list for an unknown account;
- ``GET /healthz``.

Bad requests get HTTP 400 with ``{"error": ...}``. The stack starts it (``trunkline stack up``)
when the agent folder has a ``crm.json``; see :mod:`trunkline.cli.plan` for how its URL reaches
the agent specs.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web

log = logging.getLogger("trunkline.samplecrm")
DEFAULT_PORT = 8090
Json = dict[str, Any]
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class CrmError(ValueError):
    """A request the CRM cannot serve (HTTP 400)."""


class Crm:
    """Accounts by number, their appointments; bookings are kept in memory."""

    def __init__(self, accounts: list[Json]) -> None:
        self.accounts = {str(a["account_id"]): copy.deepcopy(a) for a in accounts}
        self._next_id = 2000

    @classmethod
    def load(cls, *paths: Path) -> Crm:
        """The accounts of one or more files (every agent's ``crm.json``); an account number
        in two files is an error."""
        accounts: list[Json] = []
        seen: dict[str, Path] = {}
        for path in paths:
            data = json.loads(path.read_text(encoding="utf-8"))
            found = data.get("accounts") if isinstance(data, dict) else None
            if not isinstance(found, list) or not all(
                isinstance(a, dict) and "account_id" in a for a in found
            ):
                raise ValueError(f"{path}: expected {{'accounts': [{{'account_id': ...}}, ...]}}")
            for account in found:
                key = str(account["account_id"])
                if key in seen:
                    raise ValueError(f"{path}: account {key} is also in {seen[key]}")
                seen[key] = path
            accounts.extend(found)
        return cls(accounts)

    def lookup(self, account_id: str) -> Json:
        account = self.accounts.get(account_id)
        if account is None:
            return {"found": False, "message": f"no account with number {account_id}"}
        booked = [a for a in account.get("appointments", []) if a.get("status") == "booked"]
        return {
            "found": True,
            "account_id": account_id,
            "name": account.get("name", ""),
            "balance_usd": account.get("balance_usd", 0.0),
            "plan": account.get("plan", ""),
            "next_appointment": _describe(booked[0]) if booked else None,
        }

    def appointments(self, account_id: str) -> Json:
        account = self.accounts.get(account_id, {})
        name = account.get("name", "")
        items = [{**a, "patient": name} for a in account.get("appointments", [])]
        return {"account_id": account_id, "appointments": items}

    def book(self, account_id: str, service: str, start: str) -> Json:
        account = self.accounts.get(account_id)
        if account is None:
            return {"booked": False, "message": f"no account with number {account_id}"}
        self._next_id += 1
        appointment = {
            "appointment_id": f"A-{self._next_id}",
            "service": service,
            "start": start,
            "status": "booked",
        }
        account.setdefault("appointments", []).append(appointment)
        return {"booked": True, "account_id": account_id, **appointment}


def _describe(appointment: Json) -> str:
    return f"{appointment.get('service', 'visit')} on {appointment.get('start', '?')}"


def _field(body: Json, name: str) -> str:
    value = body.get(name)
    if not isinstance(value, str | int) or not str(value).strip():
        raise CrmError(f"{name} is required (a non-empty string)")
    return str(value).strip()


async def _body(request: web.Request) -> Json:
    try:
        body = await request.json()
    except ValueError as exc:
        raise CrmError("the body must be a JSON object") from exc
    if not isinstance(body, dict):
        raise CrmError("the body must be a JSON object")
    return body


def make_app(crm: Crm) -> web.Application:
    async def lookup(request: web.Request) -> web.Response:
        body = await _body(request)
        return web.json_response(crm.lookup(_field(body, "account_id")))

    async def book(request: web.Request) -> web.Response:
        body = await _body(request)
        fields = (_field(body, n) for n in ("account_id", "service", "start"))
        return web.json_response(crm.book(*fields))

    async def appointments(request: web.Request) -> web.Response:
        return web.json_response(crm.appointments(request.match_info["account_id"]))

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"ok": True, "accounts": len(crm.accounts)})

    @web.middleware
    async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            return await handler(request)
        except CrmError as exc:
            return web.json_response({"error": str(exc)}, status=400)

    app = web.Application(middlewares=[errors])
    app.router.add_post("/tools/lookup_account", lookup)
    app.router.add_post("/tools/book_appointment", book)
    app.router.add_get("/accounts/{account_id}/appointments", appointments)
    app.router.add_get("/healthz", healthz)
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trunkline.cli.samplecrm", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--data", type=Path, required=True, action="append",
                        help="crm.json of an agent (repeat for several agents)")  # fmt: skip
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    crm = Crm.load(*args.data)
    log.info("serving %d accounts from %s on %s:%d", len(crm.accounts),
             ", ".join(map(str, args.data)), args.host, args.port)  # fmt: skip
    web.run_app(make_app(crm), host=args.host, port=args.port, print=None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
