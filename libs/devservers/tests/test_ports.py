from __future__ import annotations

import socket
import subprocess
import sys

import pytest

from trunkline.devservers import free_port, pid_alive, port_open, stop_pid, wait_for_port
from trunkline.devservers.ports import RESERVED_PORTS

pytestmark = pytest.mark.unit


def test_free_port_is_bindable_and_never_a_standard_port() -> None:
    for _ in range(20):
        port = free_port()
        assert port not in RESERVED_PORTS
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_wait_for_port_returns_once_listening_and_times_out_otherwise() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        wait_for_port("127.0.0.1", port, timeout=1.0)
        assert port_open("127.0.0.1", port)
    with pytest.raises(TimeoutError, match=str(port)):
        wait_for_port("127.0.0.1", port, timeout=0.05)


def test_stop_pid_kills_a_process_that_ignores_sigterm() -> None:
    code = (
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == b"ready\n"
        stop_pid(proc.pid, timeout=0.2)
        assert proc.wait(5) == -9
        assert not pid_alive(proc.pid)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
