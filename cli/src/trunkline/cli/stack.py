"""``trunkline stack up|down|status``: NATS, Redis, the OTLP sink and every service on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import TextIO
from urllib.parse import urlsplit

import yaml

from trunkline.cli.console_logins import LOGINS_FILE, ConsoleLoginError, write_logins
from trunkline.cli.plan import (
    CRM,
    CRM_MODULE,
    CRM_SPEC_ORIGIN,
    GATEWAY_HTTP,
    HITL_CONSOLE,
    LOOPBACK,
    PORT_NAMES,
    SERVICES,
    AppConfig,
    allocate_ports,
    crm_argv,
    crm_files,
    rebase_agent,
    service_env,
)
from trunkline.cli.record import Component, StackRecord, load, save, stack_file
from trunkline.cli.settings import StackSettings
from trunkline.cli.stack_livekit import (
    LIVEKIT_SIP,
    agent_numbers,
    gateway_livekit_env,
    linked_pages_env,
    livekit_component,
    livekit_server,
    livekit_sip_server,
    make_sip_route,
    page_lines,
    sip_component,
    sip_lines,
)
from trunkline.cli.tenants import TENANTS_FILE, TenantError, agent_names, ensure_tenant
from trunkline.devservers import (
    JaegerServer,
    ManagedServer,
    NatsServer,
    RedisServer,
    ServerStartError,
    ToolMissingError,
    free_port,
    nats_ping,
    pid_alive,
    port_open,
    redis_ping,
    stop_pid,
)
from trunkline.devservers.livekit import LiveKitServer
from trunkline.runtime.client import DOWN, health_status

SERVING = "SERVING"
KNOWLEDGE_DB = "knowledge.db"
LEDGER_DB = "ledger.db"  # the cost ledger (`trunkline cost report` reads it)
TRANSCRIPTS_DB = "transcripts.db"  # encrypted unredacted turns (`trunkline calls` reads it)
RENDERED_AGENTS = "agents"


class StackError(RuntimeError):
    """The stack could not be brought up; the message says which part and why."""


def log_tail(path: str | None, lines: int = 30) -> str:
    if path is None:
        return ""
    try:
        text = Path(path).read_text(errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _cmdline(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace")


def ours(component: Component) -> bool:
    """True when the component's pid is alive and still the process this stack started."""
    if not component.owned or component.pid is None or not pid_alive(component.pid):
        return False
    return not component.match or component.match in _cmdline(component.pid)


# -- health ----------------------------------------------------------------------------------


async def component_health(component: Component) -> str:
    """SERVING / NOT_SERVING / DOWN for one component."""
    if component.owned and not ours(component):
        return DOWN
    if component.kind == "service":
        return await health_status(f"{LOOPBACK}:{component.port}", timeout=1.0)
    if component.kind == "nats":
        ok = await asyncio.to_thread(nats_ping, component.url)
    elif component.kind == "redis":
        ok = await asyncio.to_thread(redis_ping, component.url)
    else:
        ok = await asyncio.to_thread(port_open, LOOPBACK, component.port)
    return SERVING if ok else DOWN


async def stack_health(record: StackRecord) -> dict[str, str]:
    results = await asyncio.gather(*(component_health(c) for c in record.components))
    return {c.name: h for c, h in zip(record.components, results, strict=True)}


def format_table(record: StackRecord, health: dict[str, str]) -> str:
    rows = [("COMPONENT", "PID", "PORT", "HEALTH", "STARTED BY")]
    for c in record.components:
        rows.append(
            (
                c.name,
                str(c.pid) if c.pid is not None else "-",
                str(c.port),
                health.get(c.name, DOWN),
                "stack" if c.owned else "reused",
            )
        )
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() for row in rows
    )


# -- up ----------------------------------------------------------------------------------------


def library_dir(path: Path) -> Path | None:
    """The llama.cpp build folder, absolute, if ``make install`` made one."""
    return path.resolve() if path.is_dir() else None


class _Starter:
    """Brings components up one by one, recording each in ``stack.json`` as soon as it runs."""

    def __init__(self, settings: StackSettings, out: TextIO) -> None:
        self.settings = settings
        self.run_dir = settings.run_dir.resolve()
        self.out = out
        self.ports = allocate_ports(PORT_NAMES, settings.base_port, free_port)
        self.app = AppConfig(
            agents_dir=settings.agents_dir.resolve(),
            tenants_file=self.run_dir / TENANTS_FILE,
            milvus_uri=str(self.run_dir / KNOWLEDGE_DB),
            peer_timeout_s=settings.peer_timeout_s,
            llm_library_dir=library_dir(settings.llm_library_dir),
            ledger_database_url=f"sqlite:///{self.run_dir / LEDGER_DB}",
            transcripts_url=f"sqlite:///{self.run_dir / TRANSCRIPTS_DB}",
            prices_dir=settings.prices_dir.resolve(),
        )
        self.livekit_env: dict[str, str] = {}  # the gateway's GATEWAY_LIVEKIT_* (LiveKit up)
        self.livekit_server: LiveKitServer | None = None
        self.sip_lines: list[str] = []  # the SIP URI to dial (LiveKit SIP up)
        self.console_login = ""
        self.console_password = ""
        self.agents: tuple[str, ...] = ()
        self.record = StackRecord(
            run_dir=str(self.run_dir),
            media_url=f"ws://{LOOPBACK}:{self.ports[GATEWAY_HTTP]}/twilio/stream",
            tenants_file=str(self.app.tenants_file),
            agents_dir=str(self.app.agents_dir),
        )

    def tenants(self) -> None:
        """The local tenant, admitted to every agent in the agents folder."""
        try:
            names = agent_names(self.app.agents_dir)
            ensure_tenant(self.app.tenants_file, self.settings.tenant, names)
            self.agents = names
            operators, self.console_login, self.console_password = write_logins(
                self.run_dir, self.settings.tenant, sys.executable
            )
        except (TenantError, ConsoleLoginError, OSError) as exc:
            raise StackError(f"tenants: {exc}") from exc
        self.app = replace(self.app, console_operators_file=operators)

    def add(self, component: Component) -> None:
        self.record.components.append(component)
        save(self.run_dir, self.record)
        who = "started" if component.owned else "reusing"
        pid = f" pid {component.pid}" if component.pid is not None else ""
        print(f"  {component.name:<10} {who} {component.url}{pid}", file=self.out, flush=True)

    def nats(self) -> str:
        url = self.settings.nats_url
        if url is not None:
            if not nats_ping(url):
                raise StackError(f"nats: nothing answers at {url} (given with --nats-url)")
            self.add(Component("nats", "nats", _url_port(url), url, owned=False))
            return url
        server = NatsServer(
            port=self.ports["nats"],
            monitor_port=self.ports["nats-monitor"],
            run_dir=self.run_dir,
            store_dir=self.run_dir / "nats-store",
        )
        _start(server, "nats")
        self.add(
            Component(
                "nats", "nats", server.port, server.url, pid=server.pid,
                log=str(server.log_path), match="nats-server",
            )
        )  # fmt: skip
        return server.url

    def redis(self) -> str:
        url = self.settings.redis_url
        if url is not None:
            if not redis_ping(url):
                raise StackError(f"redis: nothing answers PING at {url} (given with --redis-url)")
            self.add(Component("redis", "redis", _url_port(url), url, owned=False))
            return url
        server = RedisServer(port=self.ports["redis"], run_dir=self.run_dir)
        _start(server, "redis")
        self.add(
            Component(
                "redis", "redis", server.port, server.url, pid=server.pid,
                log=str(server.log_path), match="redis-server",
            )
        )  # fmt: skip
        return server.url

    def spawn(self, name: str, argv: list[str], env: dict[str, str]) -> tuple[int, str]:
        return spawn(self.run_dir, name, argv, env)

    def sink(self) -> str:
        port = self.ports["otlp-sink"]
        module = "trunkline.telemetry.sink"
        argv = [sys.executable, "-m", module, "--host", LOOPBACK, "--port", str(port),
                "--out", str(self.run_dir / "spans.jsonl")]  # fmt: skip
        pid, log = self.spawn("otlp-sink", argv, {})
        endpoint = f"{LOOPBACK}:{port}"
        component = Component("otlp-sink", "sink", port, endpoint, pid=pid, log=log, match=module)
        self.add(component)
        _wait(lambda: port_open(LOOPBACK, port), component, self.settings.start_timeout)
        return endpoint

    def jaeger(self, sink: str) -> str:
        """Jaeger all-in-one, forwarding every span to the OTLP sink; returns the OTLP endpoint
        the services export to (the sink itself when Jaeger is not built)."""
        try:
            server = JaegerServer(
                otlp_port=self.ports["jaeger-otlp"],
                query_port=self.ports["jaeger-query"],
                query_grpc_port=self.ports["jaeger-query-grpc"],
                forward_to=sink,
                run_dir=self.run_dir,
                start_timeout=self.settings.start_timeout,
            )
        except ToolMissingError as exc:
            print(f"  jaeger     not started: {exc}; spans go to the OTLP sink only",
                  file=self.out, flush=True)  # fmt: skip
            return sink
        _start(server, "jaeger")
        self.add(
            Component(
                "jaeger", "jaeger", server.port, server.url, pid=server.pid,
                log=str(server.log_path), match=str(server.binary),
            )
        )  # fmt: skip
        return server.otlp_endpoint

    def livekit(self, redis_url: str) -> None:
        """The LiveKit server, its webhook to the gateway (skipped when it is not built), with
        the stack's Redis (LiveKit SIP talks to it there)."""
        try:
            server = livekit_server(
                self.ports, self.run_dir, self.settings.start_timeout, redis_url
            )
        except ToolMissingError as exc:
            print(f"  livekit    not started: {exc}; no LiveKit calls", file=self.out, flush=True)
            return
        _start(server, "livekit")
        self.add(livekit_component(server))
        self.livekit_env = gateway_livekit_env(server)
        self.livekit_server = server

    def livekit_sip(self, redis_url: str) -> None:
        """LiveKit SIP beside the LiveKit server, and a SIP route to each of the local tenant's
        agents, at ``sip_number`` and the numbers after it (skipped when LiveKit or LiveKit SIP
        is not built)."""
        server = self.livekit_server
        if server is None or not self.agents:
            return
        try:
            sip = livekit_sip_server(
                server, self.ports, self.run_dir, redis_url=redis_url,
                rtp_ports=self.settings.sip_rtp_ports, start_timeout=self.settings.start_timeout,
            )  # fmt: skip
        except ToolMissingError as exc:
            print(f"  {LIVEKIT_SIP} not started: {exc}; no SIP calls", file=self.out, flush=True)
            return
        _start(sip, LIVEKIT_SIP)
        self.add(sip_component(sip))
        tenant = self.settings.tenant
        try:
            routes = agent_numbers(self.settings.sip_number, self.agents)
        except ValueError as exc:
            raise StackError(f"{LIVEKIT_SIP}: {exc}") from exc
        for agent, number in routes:
            try:
                made = make_sip_route(server, tenant, agent, number, self.settings.start_timeout)
            except (RuntimeError, subprocess.TimeoutExpired) as exc:
                raise StackError(
                    f"{LIVEKIT_SIP}: the SIP route to {tenant}/{agent}: {exc}"
                ) from exc
            print(f"  {LIVEKIT_SIP} route {made}", file=self.out, flush=True)
            self.sip_lines += sip_lines(sip, number, tenant, agent)

    def crm(self) -> None:
        """The demo CRM, serving every agent's ``crm.json`` when there is one; the services
        then read the agent specs rendered to point at it (see ``plan.CRM_SPEC_ORIGIN``)."""
        data = crm_files(self.app.agents_dir)
        if not data:
            return
        port = self.ports[CRM]
        pid, log = self.spawn(CRM, crm_argv(sys.executable, port, data), {})
        url = f"http://{LOOPBACK}:{port}"
        component = Component(CRM, "crm", port, url, pid=pid, log=log, match=CRM_MODULE)
        self.add(component)
        _wait(lambda: port_open(LOOPBACK, port), component, self.settings.start_timeout)
        rendered = self.run_dir / RENDERED_AGENTS
        render_agents(self.app.agents_dir, rendered, CRM_SPEC_ORIGIN, url)
        self.app = replace(self.app, agents_dir=rendered)

    def services(self, nats_url: str, redis_url: str, otlp: str) -> None:
        kube = kubeconfig()
        for spec in SERVICES:
            if spec.name == ROLLOUT and kube is None:
                note = "no Kubernetes API to watch (set KUBECONFIG or ROLLOUT_KUBECONFIG)"
                print(f"  {ROLLOUT:<10} not started: {note}", file=self.out, flush=True)
                continue
            env = service_env(
                spec, self.ports, nats_url=nats_url, redis_url=redis_url,
                otlp_endpoint=otlp, drain_seconds=self.settings.drain_seconds, app=self.app,
            )  # fmt: skip
            if spec.name == ROLLOUT and kube is not None:
                env["ROLLOUT_KUBECONFIG"] = str(kube)
            if spec.name == "gateway":
                env.update(self.livekit_env)
            if self.livekit_env:  # the LiveKit caller page and the softphone link each other
                env.update(linked_pages_env(spec.name, self.ports))
            argv = [sys.executable, "-m", spec.module]
            pid, log = self.spawn(spec.name, argv, env)
            addr = f"{LOOPBACK}:{self.ports[spec.name]}"
            self.add(
                Component(spec.name, "service", self.ports[spec.name], addr, pid=pid, log=log,
                          match=spec.module, argv=argv, env=env)
            )  # fmt: skip
        asyncio.run(self._wait_services())

    async def _wait_services(self) -> None:
        pending = [self.record.get(spec.name) for spec in SERVICES]
        await asyncio.gather(
            *(_wait_serving(c, self.settings.start_timeout) for c in pending if c is not None)
        )


ROLLOUT = "rollout"


def kubeconfig() -> Path | None:
    """The kubeconfig the rollout operator watches: ``ROLLOUT_KUBECONFIG`` or ``KUBECONFIG``
    (its first file), else ``~/.kube/config``; None when there is none (no cluster: the local
    stack runs without the operator, which needs a Kubernetes API)."""
    for value in (os.environ.get("ROLLOUT_KUBECONFIG"), os.environ.get("KUBECONFIG")):
        if value:
            path = Path(value.split(os.pathsep)[0]).expanduser()
            return path if path.is_file() else None
    default = Path.home() / ".kube" / "config"
    return default if default.is_file() else None


def render_agents(source: Path, target: Path, old_origin: str, new_origin: str) -> list[Path]:
    """Copy every agent spec YAML of ``source`` to ``target`` with its URLs on ``old_origin``
    moved to ``new_origin`` (stale copies in ``target`` removed first)."""
    target.mkdir(parents=True, exist_ok=True)
    for stale in [*target.glob("*.yaml"), *target.glob("*.yml")]:
        stale.unlink()
    written = []
    for file in sorted([*source.glob("*.yaml"), *source.glob("*.yml")]):
        data = yaml.safe_load(file.read_text(encoding="utf-8"))
        if isinstance(data, dict):
            data = rebase_agent(data, old_origin, new_origin)
        out = target / file.name
        header = f"# rendered by `trunkline stack up` from {file}; CRM at {new_origin}\n"
        out.write_text(header + yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        written.append(out)
        # The agent's knowledge beside it, as in agents/: the gateway derives STT vocabulary
        # from it (a link, so the rendered folder never holds a stale copy).
        name = data.get("name") if isinstance(data, dict) else None
        knowledge = source / str(name) / "knowledge"
        if name and knowledge.is_dir():
            link = target / str(name) / "knowledge"
            link.parent.mkdir(exist_ok=True)
            if link.is_symlink() or link.exists():
                link.unlink()
            link.symlink_to(knowledge.resolve(), target_is_directory=True)
    return written


def spawn(run_dir: Path, name: str, argv: list[str], env: dict[str, str]) -> tuple[int, str]:
    """Start ``argv`` detached (own session), output appended to ``<name>.log``."""
    log_path = run_dir / f"{name}.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **env},
            start_new_session=True,
        )
    (run_dir / f"{name}.pid").write_text(f"{proc.pid}\n")
    return proc.pid, str(log_path)


def _start(server: ManagedServer, name: str) -> None:
    """Start a server the stack owns; a failure to start stops ``up`` with its name."""
    try:
        server.start()
    except ServerStartError as exc:
        raise StackError(f"{name}: {exc}") from exc


def _url_port(url: str) -> int:
    return urlsplit(url).port or 0


def _wait(check: Callable[[], bool], component: Component, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if component.pid is not None and not pid_alive(component.pid):
            raise StackError(f"{component.name} exited during start-up; log tail:\n"
                             f"{log_tail(component.log)}")  # fmt: skip
        if time.monotonic() > deadline:
            raise StackError(f"{component.name} not up within {timeout}s; log tail:\n"
                             f"{log_tail(component.log)}")  # fmt: skip
        time.sleep(0.05)


async def _wait_serving(component: Component, limit_s: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + limit_s
    status = DOWN
    while True:
        if component.pid is not None and not pid_alive(component.pid):
            raise StackError(f"{component.name} exited during start-up; log tail:\n"
                             f"{log_tail(component.log)}")  # fmt: skip
        status = await health_status(component.url, timeout=1.0)
        if status == SERVING:
            return
        if loop.time() > deadline:
            raise StackError(f"{component.name} not SERVING within {limit_s}s (last: {status}); "
                             f"log tail:\n{log_tail(component.log)}")  # fmt: skip
        await asyncio.sleep(0.1)


def up(settings: StackSettings, out: TextIO = sys.stdout) -> int:
    """Start the stack (or say it is already up). Exit code: 0 up, 1 failed (rolled back)."""
    run_dir = settings.run_dir.resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    existing = load(run_dir)
    if existing is not None:
        health = asyncio.run(stack_health(existing))
        if all(h == SERVING for h in health.values()):
            print(f"stack already up ({stack_file(run_dir)}):", file=out)
            print(format_table(existing, health), file=out)
            return 0
        print("a previous stack is partly down: stopping what is left of it first", file=out)
        down(settings, out)
    print(f"starting the local stack in {run_dir}", file=out, flush=True)
    starter = _Starter(settings, out)
    try:
        starter.tenants()
        nats_url = starter.nats()
        redis_url = starter.redis()
        otlp = starter.jaeger(starter.sink())
        starter.crm()
        starter.livekit(redis_url)
        starter.livekit_sip(redis_url)
        starter.services(nats_url, redis_url, otlp)
    except (StackError, OSError) as exc:
        print(f"stack up failed: {exc}", file=out)
        print("stopping what was started", file=out)
        down(settings, out)
        return 1
    health = asyncio.run(stack_health(starter.record))
    print(format_table(starter.record, health), file=out)
    print(f"media stream: {starter.record.media_url}   tenant: {settings.tenant} "
          f"(secrets in {starter.record.tenants_file})", file=out)  # fmt: skip
    if HITL_CONSOLE in starter.ports:
        print(f"operator console: http://{LOOPBACK}:{starter.ports[HITL_CONSOLE]}   login: "
              f"{starter.console_login} / {starter.console_password} "
              f"(also in {run_dir / LOGINS_FILE})", file=out)  # fmt: skip
    if starter.livekit_env:
        for line in page_lines(starter.ports, settings.tenant, starter.agents):
            print(line, file=out)
    for line in starter.sip_lines:
        print(line, file=out)
    print(f"spans: {run_dir / 'spans.jsonl'}   logs: {run_dir}/<component>.log", file=out)
    jaeger = starter.record.get("jaeger")
    if jaeger is not None:
        print(f"traces: {jaeger.url}/api/traces?service=gateway (Jaeger query API)", file=out)
    return 0


# -- restart ---------------------------------------------------------------------------------


def restart(settings: StackSettings, name: str, out: TextIO = sys.stdout) -> int:
    """Start service ``name`` again as ``up`` did (same port, same environment), stopping it
    first if it still runs; wait until it is SERVING. Exit code: 0 serving, 1 failed."""
    run_dir = settings.run_dir.resolve()
    record = load(run_dir)
    if record is None:
        print(f"stack is not up (no {stack_file(run_dir)})", file=out)
        return 1
    component = record.get(name)
    if component is None or component.kind != "service" or not component.argv:
        services = [c.name for c in record.components if c.kind == "service" and c.argv]
        print(f"cannot restart {name!r}: services are {', '.join(services)}", file=out)
        return 1
    if ours(component) and component.pid is not None:
        stop_pid(component.pid, settings.stop_timeout)
        print(f"  {name:<10} stopped (pid {component.pid})", file=out, flush=True)
    pid, log = spawn(run_dir, name, component.argv, component.env)
    component.pid, component.log = pid, log
    record.replace(component)
    save(run_dir, record)
    print(f"  {name:<10} started {component.url} pid {pid}", file=out, flush=True)
    try:
        asyncio.run(_wait_serving(component, settings.start_timeout))
    except StackError as exc:
        print(f"restart failed: {exc}", file=out)
        return 1
    print(f"  {name:<10} SERVING", file=out)
    return 0


# -- down / status -----------------------------------------------------------------------------


def down(settings: StackSettings, out: TextIO = sys.stdout) -> int:
    """Stop, in reverse start order, only what this stack started. Exit code 0."""
    run_dir = settings.run_dir.resolve()
    record = load(run_dir)
    if record is None:
        print(f"no stack recorded in {run_dir}: nothing to stop", file=out)
        return 0
    for component in reversed(record.components):
        if not component.owned:
            print(f"  {component.name:<10} left running (not started by this stack)", file=out)
            continue
        if ours(component) and component.pid is not None:
            stop_pid(component.pid, settings.stop_timeout)
            print(f"  {component.name:<10} stopped (pid {component.pid})", file=out, flush=True)
        else:
            print(f"  {component.name:<10} already stopped", file=out)
        (run_dir / f"{component.name}.pid").unlink(missing_ok=True)
    with contextlib.suppress(FileNotFoundError):
        stack_file(run_dir).unlink()
    print("stack down", file=out)
    return 0


def status(settings: StackSettings, out: TextIO = sys.stdout, *, as_json: bool = False) -> int:
    """Print each component's pid, port and health. Exit code 0 only when all are SERVING."""
    run_dir = settings.run_dir.resolve()
    record = load(run_dir)
    if record is None:
        print(f"stack is not up (no {stack_file(run_dir)})", file=out)
        return 1
    health = asyncio.run(stack_health(record))
    if as_json:
        rows = [
            {"name": c.name, "pid": c.pid, "port": c.port, "health": health[c.name],
             "owned": c.owned}
            for c in record.components
        ]  # fmt: skip
        print(json.dumps(rows), file=out)
    else:
        print(format_table(record, health), file=out)
    return 0 if all(h == SERVING for h in health.values()) else 1
