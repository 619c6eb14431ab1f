"""OTLP export settings: TLS and headers (a bearer token) from the typed settings."""

from __future__ import annotations

from pathlib import Path

import pytest

from trunkline.telemetry.setup import OtlpTls, otlp_exporter

pytestmark = pytest.mark.unit


def test_headers_parse_from_the_settings_string() -> None:
    assert OtlpTls.parse_headers("") == ()
    assert OtlpTls.parse_headers("Authorization=Bearer abc=, x-tenant = acme") == (
        ("authorization", "Bearer abc="),
        ("x-tenant", "acme"),
    )
    with pytest.raises(ValueError, match="'Bearer abc' is not key=value"):
        OtlpTls.parse_headers("Bearer abc")


def test_a_missing_ca_file_is_named(tmp_path: Path) -> None:
    missing = tmp_path / "ca.crt"
    with pytest.raises(FileNotFoundError, match=str(missing)):
        otlp_exporter("collector:4317", OtlpTls(insecure=False, ca_file=missing))


def test_plaintext_is_the_default_and_tls_is_asked_for() -> None:
    plain = otlp_exporter("collector:4317", OtlpTls())
    tls = otlp_exporter("collector:4317", OtlpTls(insecure=False, headers=(("a", "b"),)))
    try:
        assert plain._insecure is True
        assert tls._insecure is False
        assert dict(tls._headers) == {"a": "b"}
    finally:
        plain.shutdown()
        tls.shutdown()
