"""A child server process we started: start, health wait, stop (TERM then KILL), pid files."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import IO, Self, TypeVar

from trunkline.devservers.ports import port_open


class ServerStartError(RuntimeError):
    """The server process exited or never became healthy."""


def _tail(path: Path, limit: int = 2000) -> str:
    try:
        return path.read_text(errors="replace")[-limit:]
    except OSError:
        return ""


def pid_alive(pid: int) -> bool:
    """True when a process with ``pid`` exists (and is not a zombie we could reap)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():
        with contextlib.suppress(OSError):
            # third field is the state; Z = zombie
            return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _cmdline(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except OSError:
        return ""


def stop_pid(pid: int, timeout: float = 5.0) -> None:
    """Send SIGTERM to ``pid``, wait up to ``timeout`` seconds, then SIGKILL."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while pid_alive(pid):
        if time.monotonic() >= deadline:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            return
        time.sleep(0.02)


def stop_pidfile(pidfile: Path, expect: str = "", timeout: float = 5.0) -> bool:
    """Stop the process named in ``pidfile`` (written by a server we started) and remove the file.

    ``expect`` guards against pid reuse: when given, the process is only signalled if its command
    line contains it. Returns True when a live process was stopped.
    """
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        pidfile.unlink(missing_ok=True)
        return False
    stopped = False
    if pid_alive(pid) and (not expect or expect in _cmdline(pid)):
        stop_pid(pid, timeout)
        stopped = True
    pidfile.unlink(missing_ok=True)
    return stopped


class ManagedServer(ABC):
    """A server binary run as our child on loopback. Subclasses give the command and health check.

    ``start()`` blocks until healthy, ``stop()`` sends SIGTERM then SIGKILL after
    ``stop_timeout``, ``restart()`` keeps the port and data directory, ``close()`` also removes
    the temporary directories this object created. With ``run_dir`` a ``<name>.pid`` file (and
    ``<name>.log``) is written there so a later process can stop exactly what was started.
    """

    owned = True

    def __init__(
        self,
        *,
        name: str,
        host: str,
        port: int,
        run_dir: Path | None,
        start_timeout: float,
        stop_timeout: float,
    ) -> None:
        self.name = name
        self.host = host
        self.port = port
        self.run_dir = run_dir
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._tmp = Path(tempfile.mkdtemp(prefix=f"trunkline-{name}-"))

    # -- subclass hooks -------------------------------------------------------------------
    @abstractmethod
    def command(self) -> list[str]:
        """The argv that runs the server in the foreground."""

    @abstractmethod
    def healthy(self) -> bool:
        """One quick health probe; True when the server is ready for clients."""

    @property
    @abstractmethod
    def url(self) -> str:
        """The client URL of the server."""

    # -- lifecycle ------------------------------------------------------------------------
    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def log_path(self) -> Path:
        return (self.run_dir or self._tmp) / f"{self.name}.log"

    @property
    def pidfile(self) -> Path | None:
        return self.run_dir / f"{self.name}.pid" if self.run_dir is not None else None

    def start(self) -> Self:
        """Start the process and block until it is healthy; raise ``ServerStartError`` if not."""
        if self.running:
            return self
        if port_open(self.host, self.port):
            raise ServerStartError(f"{self.name}: {self.host}:{self.port} is already in use")
        if self.run_dir is not None:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self._proc = subprocess.Popen(
            self.command(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        if self.pidfile is not None:
            self.pidfile.write_text(f"{self._proc.pid}\n")
        try:
            self._wait_healthy()
        except ServerStartError:
            self.stop()
            raise
        return self

    def _wait_healthy(self) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.start_timeout
        while True:
            code = self._proc.poll()
            if code is not None:
                raise ServerStartError(
                    f"{self.name} exited with code {code} during start-up; log tail:\n"
                    f"{_tail(self.log_path)}"
                )
            if self.healthy():
                return
            if time.monotonic() >= deadline:
                raise ServerStartError(
                    f"{self.name} not healthy on {self.host}:{self.port} within "
                    f"{self.start_timeout}s; log tail:\n{_tail(self.log_path)}"
                )
            time.sleep(0.01)

    def stop(self) -> None:
        """SIGTERM, wait ``stop_timeout``, then SIGKILL. Safe to call twice."""
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.pidfile is not None:
            self.pidfile.unlink(missing_ok=True)

    def restart(self) -> Self:
        """Stop and start again on the same port with the same data directory."""
        self.stop()
        return self.start()

    def close(self) -> None:
        """Stop and remove the temporary directories this object created."""
        self.stop()
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class ExternalServer:
    """A server someone else runs (found answering at ``url``): never started or stopped by us."""

    owned = False

    def __init__(self, url: str) -> None:
        self.url = url
        self.pid: int | None = None

    def start(self) -> ExternalServer:
        return self

    def stop(self) -> None:
        """Nothing to do: we did not start it."""

    def close(self) -> None:
        """Nothing to do: we did not start it."""


ServerT = TypeVar("ServerT", bound=ManagedServer)


def start_on_free_port(factory: Callable[[], ServerT], attempts: int = 3) -> ServerT:
    """Start ``factory()``; when another process grabbed the port meanwhile, try a fresh one."""
    last: ServerStartError | None = None
    for _ in range(attempts):
        server = factory()
        try:
            return server.start()
        except ServerStartError as exc:
            server.close()
            last = exc
    assert last is not None
    raise last
