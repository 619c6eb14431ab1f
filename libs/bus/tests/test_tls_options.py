"""NATS TLS and credentials options: a missing file fails at once with its path."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest

from trunkline.bus.nats_bus import tls_options

pytestmark = pytest.mark.unit

# A real CA certificate is not needed to build the context; an empty trust store is enough to
# show the file is read (a PEM with no certificate is rejected by the ssl module).


def test_no_files_no_options() -> None:
    assert tls_options(None, None) == {}


def test_missing_files_are_named(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"NATS CA file .*ca\.crt"):
        tls_options(tmp_path / "ca.crt", None)
    with pytest.raises(FileNotFoundError, match=r"NATS credentials file .*u\.creds"):
        tls_options(None, tmp_path / "u.creds")


def test_credentials_file_and_ca(tmp_path: Path) -> None:
    creds = tmp_path / "u.creds"
    creds.write_text("-----BEGIN NATS USER JWT-----\n")
    assert tls_options(None, creds) == {"user_credentials": str(creds)}
    bad_ca = tmp_path / "ca.crt"
    bad_ca.write_text("not a certificate")
    with pytest.raises(ssl.SSLError):
        tls_options(bad_ca, None)
