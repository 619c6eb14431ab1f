"""Operators of the console: who may log in, with which password, for which tenant.

The operators file (``HITL_CONSOLE_OPERATORS_FILE``, in a cluster mounted from a Secret) is YAML::

    operators:
      - id: alice                 # unique login name
        tenant: acme              # the only tenant whose calls and tickets alice sees
        name: Alice Smith         # shown in the console (optional)
        password_hash: scrypt$16384$8$1$<salt>$<hash>

A hash comes from ``python -m trunkline.hitl.console.operators hash`` (reads the password from
stdin). Passwords are never stored: only scrypt hashes, compared in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
_SCHEME = "scrypt"


class OperatorsFileError(ValueError):
    """The operators file is not valid; the message names the file and line."""


@dataclass(frozen=True)
class Operator:
    id: str
    tenant: str
    name: str
    password_hash: str

    @property
    def display_name(self) -> str:
        return self.name or self.id


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str, salt: bytes | None = None) -> str:
    """``scrypt$N$r$p$salt$hash`` of ``password`` (a fresh random salt unless given)."""
    if not password:
        raise ValueError("an empty password cannot be hashed")
    salt = salt if salt is not None else secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P)
    return f"{_SCHEME}${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def check_hash_format(password_hash: str) -> None:
    """Raise ValueError when ``password_hash`` is not a ``scrypt$N$r$p$salt$hash`` string."""
    parts = password_hash.split("$")
    if len(parts) != 6 or parts[0] != _SCHEME:
        raise ValueError("password_hash must look like scrypt$N$r$p$salt$hash")
    try:
        n, r, p = (int(part) for part in parts[1:4])
        _unb64(parts[4])
        _unb64(parts[5])
    except ValueError as exc:
        raise ValueError(f"password_hash is malformed: {exc}") from exc
    if n < 2 or n & (n - 1) or r < 1 or p < 1:
        raise ValueError("password_hash has invalid scrypt parameters")


def verify_password(password: str, password_hash: str) -> bool:
    """True when ``password`` matches ``password_hash`` (constant-time comparison)."""
    try:
        check_hash_format(password_hash)
    except ValueError:
        return False
    _, n, r, p, salt, expected = password_hash.split("$")
    digest = hashlib.scrypt(
        password.encode(), salt=_unb64(salt), n=int(n), r=int(r), p=int(p), maxmem=2**26
    )
    return hmac.compare_digest(digest, _unb64(expected))


# A hash nobody's password matches, checked when the login name is unknown so that a wrong name
# and a wrong password take the same time.
_DUMMY_HASH = hash_password("unused", salt=b"\0" * 16)


class OperatorBook:
    """The operators, by login name."""

    def __init__(self, operators: list[Operator]) -> None:
        self._by_id: dict[str, Operator] = {}
        for operator in operators:
            if operator.id in self._by_id:
                raise ValueError(f"operator {operator.id!r} is listed twice")
            self._by_id[operator.id] = operator

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, operator_id: str) -> Operator | None:
        return self._by_id.get(operator_id)

    def authenticate(self, operator_id: str, password: str) -> Operator | None:
        """The operator when the name and password match, else None."""
        operator = self._by_id.get(operator_id)
        if operator is None:
            verify_password(password, _DUMMY_HASH)
            return None
        return operator if verify_password(password, operator.password_hash) else None

    @classmethod
    def from_yaml(cls, text: str, source: str = "<operators>") -> OperatorBook:
        """Parse an operators file; errors name ``source`` and the line."""
        try:
            root = yaml.compose(text, Loader=yaml.SafeLoader)
        except yaml.YAMLError as exc:
            raise OperatorsFileError(f"{source}: not valid YAML: {exc}") from exc
        if root is None:
            return cls([])
        if not isinstance(root, yaml.MappingNode):
            raise OperatorsFileError(f"{source}:{_line(root)}: expected a mapping with 'operators'")
        items = {key.value: value for key, value in root.value}
        unknown = set(items) - {"operators"}
        if unknown:
            raise OperatorsFileError(f"{source}:{_line(root)}: unknown keys {sorted(unknown)}")
        listing = items.get("operators")
        if listing is None:
            return cls([])
        if not isinstance(listing, yaml.SequenceNode):
            raise OperatorsFileError(f"{source}:{_line(listing)}: 'operators' must be a list")
        operators: list[Operator] = []
        seen: dict[str, int] = {}
        for node in listing.value:
            operator = _operator(node, source)
            if operator.id in seen:
                raise OperatorsFileError(
                    f"{source}:{_line(node)}: operator {operator.id!r} already defined "
                    f"at line {seen[operator.id]}"
                )
            seen[operator.id] = _line(node)
            operators.append(operator)
        return cls(operators)

    @classmethod
    def load(cls, path: Path) -> OperatorBook:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise OperatorsFileError(f"{path}: cannot read the operators file: {exc}") from exc
        return cls.from_yaml(text, str(path))


_FIELDS = ("id", "tenant", "name", "password_hash")
_REQUIRED = ("id", "tenant", "password_hash")


def _line(node: yaml.Node) -> int:
    return int(node.start_mark.line) + 1


def _operator(node: yaml.Node, source: str) -> Operator:
    where = f"{source}:{_line(node)}"
    if not isinstance(node, yaml.MappingNode):
        raise OperatorsFileError(f"{where}: each operator must be a mapping")
    values: dict[str, str] = {}
    for key, value in node.value:
        if key.value not in _FIELDS:
            raise OperatorsFileError(
                f"{source}:{_line(key)}: unknown operator field {key.value!r} "
                f"(expected {', '.join(_FIELDS)})"
            )
        if not isinstance(value, yaml.ScalarNode) or not str(value.value).strip():
            raise OperatorsFileError(f"{source}:{_line(value)}: {key.value} must be non-empty text")
        values[key.value] = str(value.value).strip()
    missing = [name for name in _REQUIRED if name not in values]
    if missing:
        raise OperatorsFileError(f"{where}: operator is missing {', '.join(missing)}")
    for name in ("id", "tenant"):
        if any(c in values[name] for c in ".*> \t/"):
            raise OperatorsFileError(
                f"{where}: {name} {values[name]!r} may not contain . * > / or spaces"
            )
    try:
        check_hash_format(values["password_hash"])
    except ValueError as exc:
        raise OperatorsFileError(f"{where}: operator {values['id']!r}: {exc}") from exc
    return Operator(values["id"], values["tenant"], values.get("name", ""), values["password_hash"])


def main(argv: list[str]) -> int:
    """``python -m trunkline.hitl.console.operators hash``: print the hash of stdin's password."""
    if argv != ["hash"]:
        print("usage: python -m trunkline.hitl.console.operators hash < password", file=sys.stderr)
        return 2
    password = sys.stdin.readline().rstrip("\n")
    try:
        print(hash_password(password))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
