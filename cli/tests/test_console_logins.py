"""The local stack's console login: an operators file the console accepts, a password file only
its owner reads, and the hitl service's environment pointing at it."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from trunkline.cli.console_logins import LOGINS_FILE, write_logins
from trunkline.cli.plan import SERVICES, AppConfig, app_env
from trunkline.hitl.console.operators import OperatorBook

pytestmark = pytest.mark.unit


def test_the_stack_writes_a_login_the_console_accepts(tmp_path: Path) -> None:
    path, login, password = write_logins(tmp_path, "acme", sys.executable)
    book = OperatorBook.load(path)
    operator = book.authenticate(login, password)
    assert operator is not None
    assert operator.tenant == "acme"
    assert book.authenticate(login, password + "x") is None
    assert password not in path.read_text()  # only its scrypt hash
    assert (tmp_path / LOGINS_FILE).read_text().split() == [login, password]
    assert oct(path.stat().st_mode)[-3:] == "600"
    assert oct((tmp_path / LOGINS_FILE).stat().st_mode)[-3:] == "600"
    again = write_logins(tmp_path, "acme", sys.executable)
    assert again[2] != password  # a fresh password for every stack


def test_hitl_reads_the_operators_file_the_stack_wrote(tmp_path: Path) -> None:
    (hitl,) = [spec for spec in SERVICES if spec.name == "hitl"]
    ports = {"hitl-console": 8086, "gateway-http": 8080}
    app = AppConfig(tmp_path, tmp_path / "t.yaml", "x", console_operators_file=tmp_path / "o.yaml")
    env = app_env(hitl, ports, app)
    assert env["HITL_CONSOLE_OPERATORS_FILE"] == str(tmp_path / "o.yaml")
    no_file = app_env(hitl, ports, AppConfig(tmp_path, tmp_path / "t.yaml", "x"))
    assert "HITL_CONSOLE_OPERATORS_FILE" not in no_file
