"""Operator logins for the local stack's console: one operator per tenant, fresh passwords.

The console (a web app of the hitl process) lets in only the operators of its operators file
(``HITL_CONSOLE_OPERATORS_FILE``: ids, tenants and scrypt hashes). The stack writes one with an
operator ``<tenant>-operator`` for its tenant and a random password, and keeps the password
beside it in ``console-logins.txt`` (mode 0600) so ``trunkline up`` can print it. The hash comes
from the hitl package's own tool (``python -m trunkline.hitl.console.operators hash``), run as
a process: the CLI never imports a service.
"""

from __future__ import annotations

import secrets
import subprocess
from pathlib import Path

import yaml

OPERATORS_FILE = "console-operators.yaml"
LOGINS_FILE = "console-logins.txt"


class ConsoleLoginError(RuntimeError):
    """The password could not be hashed (the hitl package missing or failing)."""


def hash_password(python: str, password: str) -> str:
    done = subprocess.run(
        [python, "-m", "trunkline.hitl.console.operators", "hash"],
        input=password + "\n", capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    if done.returncode != 0:
        raise ConsoleLoginError(f"hashing a console password failed: {done.stderr.strip()}")
    return done.stdout.strip()


def write_logins(run_dir: Path, tenant: str, python: str) -> tuple[Path, str, str]:
    """Write the operators file for ``tenant``'s operator (a fresh password each stack):
    (operators file, login, password)."""
    login = f"{tenant}-operator"
    password = secrets.token_urlsafe(12)
    operators = {
        "operators": [
            {
                "id": login,
                "tenant": tenant,
                "name": f"{tenant} operator (local stack)",
                "password_hash": hash_password(python, password),
            }
        ]
    }
    path = run_dir / OPERATORS_FILE
    path.write_text(yaml.safe_dump(operators, sort_keys=False))
    path.chmod(0o600)
    logins = run_dir / LOGINS_FILE
    logins.write_text(f"{login} {password}\n")
    logins.chmod(0o600)
    return path, login, password
