"""A real Kubernetes API server on loopback (envtest style): etcd + kube-apiserver, no kubelet.

Both binaries are built once from the Go module proxy by ``tools/envtest_build.py`` (``make
install``) into ``<tools dir>/envtest-<kubernetes>-etcd-<etcd>/``; nothing here builds or
downloads. :class:`KubeApiServer` starts its own :class:`EtcdServer`, generates what the API
server needs (a service-account signing key, a static token file with an admin in
``system:masters`` and an unprivileged user for RBAC tests), lets the API server write its own
self-signed serving certificate, and writes a kubeconfig per user::

    with KubeApiServer() as kube:
        client = kubernetes.config.new_client_from_config(str(kube.kubeconfig))

RBAC is on: the admin may do anything, ``kube.user_kubeconfig`` may only what a test binds.
"""

from __future__ import annotations

import json
import os
import secrets
import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from trunkline.devservers.gotools import ToolMissingError, tools_dir
from trunkline.devservers.ports import LOOPBACK, free_port
from trunkline.devservers.process import ManagedServer


@dataclass(frozen=True)
class Envtest:
    """The pinned versions; the folder name changes with them, so a bump builds anew."""

    kubernetes: str = "v1.36.3"
    etcd: str = "v3.6.8"  # the etcd client version kubernetes v1.36.3 is built and tested with

    @property
    def folder(self) -> str:
        return f"envtest-{self.kubernetes}-etcd-{self.etcd}"

    @property
    def staging(self) -> str:
        """The published ``k8s.io/<staging>`` version (``v1.36.3`` -> ``v0.36.3``)."""
        return "v0." + self.kubernetes.removeprefix("v1.")


ENVTEST = Envtest()
BINARIES = ("kube-apiserver", "etcd")


def envtest_dir(root: Path | None = None) -> Path:
    return (root or tools_dir()) / ENVTEST.folder


def find_envtest(root: Path | None = None) -> dict[str, Path]:
    """The built ``kube-apiserver`` and ``etcd``; :class:`ToolMissingError` saying how to build."""
    folder = envtest_dir(root)
    found = {name: folder / name for name in BINARIES}
    missing = [str(p) for p in found.values() if not os.access(p, os.X_OK)]
    if missing:
        raise ToolMissingError(
            f"the envtest API server is not built ({', '.join(missing)} missing): run `make "
            f"install` (or `python tools/envtest_build.py`); it needs Go and the Go module proxy"
        )
    return found


class EtcdServer(ManagedServer):
    """A single-member etcd without fsync (test data only), client and peer on loopback."""

    def __init__(
        self,
        *,
        binary: Path | None = None,
        host: str = LOOPBACK,
        port: int | None = None,
        run_dir: Path | None = None,
        start_timeout: float = 30.0,
    ) -> None:
        super().__init__(
            name="etcd",
            host=host,
            port=port if port is not None else free_port(host),
            run_dir=run_dir,
            start_timeout=start_timeout,
            stop_timeout=10.0,
        )
        self.peer_port = free_port(host)
        self.binary = binary if binary is not None else find_envtest()["etcd"]
        self.data_dir = self._tmp / "data"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def command(self) -> list[str]:
        peer = f"http://{self.host}:{self.peer_port}"
        return [
            str(self.binary),
            "--name", "default",
            "--data-dir", str(self.data_dir),
            "--listen-client-urls", self.url,
            "--advertise-client-urls", self.url,
            "--listen-peer-urls", peer,
            "--initial-advertise-peer-urls", peer,
            "--initial-cluster", f"default={peer}",
            "--unsafe-no-fsync",
            "--log-level", "warn",
        ]  # fmt: skip

    def healthy(self) -> bool:
        try:
            with urllib.request.urlopen(f"{self.url}/health", timeout=0.5) as resp:
                return bool(json.loads(resp.read()).get("health") == "true")
        except (urllib.error.URLError, OSError, ValueError):
            return False


def _signing_keys(private: Path, public: Path) -> None:
    """An EC P-256 key pair (PEM) for service-account tokens: the API server signs with the
    private key (``EC PRIVATE KEY``) and verifies with the public one."""
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import ec  # noqa: PLC0415

    key = ec.generate_private_key(ec.SECP256R1())
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
    )
    private.chmod(0o600)
    public.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )


ADMIN = "envtest-admin"
USER = "envtest-user"


class KubeApiServer(ManagedServer):
    """kube-apiserver on ``https://127.0.0.1:<port>`` over its own etcd (started with it)."""

    def __init__(
        self,
        *,
        binaries: dict[str, Path] | None = None,
        host: str = LOOPBACK,
        port: int | None = None,
        run_dir: Path | None = None,
        start_timeout: float = 120.0,
    ) -> None:
        super().__init__(
            name="kube-apiserver",
            host=host,
            port=port if port is not None else free_port(host),
            run_dir=run_dir,
            start_timeout=start_timeout,
            stop_timeout=10.0,
        )
        self.binaries = binaries if binaries is not None else find_envtest()
        self.etcd = EtcdServer(binary=self.binaries["etcd"], host=host, run_dir=run_dir)
        self.cert_dir = self._tmp / "certs"
        self.tokens = {ADMIN: secrets.token_hex(16), USER: secrets.token_hex(16)}
        self.kubeconfig = self._tmp / "kubeconfig.yaml"
        self.user_kubeconfig = self._tmp / "kubeconfig-user.yaml"

    @property
    def url(self) -> str:
        return f"https://{self.host}:{self.port}"

    @property
    def ca_file(self) -> Path:
        """The API server's self-signed serving certificate (with its CA), written at start."""
        return self.cert_dir / "apiserver.crt"

    def command(self) -> list[str]:
        self.cert_dir.mkdir(parents=True, exist_ok=True)
        key, pub = self._tmp / "service-account.key", self._tmp / "service-account.pub"
        if not key.exists():
            _signing_keys(key, pub)
        tokens = self._tmp / "tokens.csv"
        tokens.write_text(
            f'{self.tokens[ADMIN]},{ADMIN},{ADMIN},"system:masters"\n'
            f"{self.tokens[USER]},{USER},{USER}\n"
        )
        return [
            str(self.binaries["kube-apiserver"]),
            "--advertise-address", self.host,
            "--bind-address", self.host,
            "--secure-port", str(self.port),
            "--cert-dir", str(self.cert_dir),
            "--etcd-servers", self.etcd.url,
            "--token-auth-file", str(tokens),
            "--authorization-mode", "RBAC",
            "--service-account-issuer", "https://kubernetes.default.svc.cluster.local",
            "--service-account-key-file", str(pub),
            "--service-account-signing-key-file", str(key),
            "--service-cluster-ip-range", "10.0.0.0/24",
            "--allow-privileged=true",
            "--enable-priority-and-fairness=false",
            "--profiling=false",
            "--v=0",
        ]  # fmt: skip

    def start(self) -> KubeApiServer:
        if not self.etcd.running:
            self.etcd.start()
        try:
            super().start()
        except Exception:
            self.etcd.stop()
            raise
        self._write_kubeconfig(self.kubeconfig, ADMIN)
        self._write_kubeconfig(self.user_kubeconfig, USER)
        return self

    def stop(self) -> None:
        super().stop()
        self.etcd.stop()

    def close(self) -> None:
        super().close()
        self.etcd.close()

    def healthy(self) -> bool:
        if not self.ca_file.exists():
            return False
        request = urllib.request.Request(
            f"{self.url}/readyz", headers={"Authorization": f"Bearer {self.tokens[ADMIN]}"}
        )
        try:
            context = ssl.create_default_context(cafile=str(self.ca_file))
            with urllib.request.urlopen(request, timeout=1.0, context=context) as resp:
                return int(resp.status) == 200
        except (urllib.error.URLError, OSError, ssl.SSLError):
            return False

    def _write_kubeconfig(self, path: Path, user: str) -> None:
        # JSON is YAML: no YAML dependency needed to write it.
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "envtest",
                    "cluster": {"server": self.url, "certificate-authority": str(self.ca_file)},
                }
            ],
            "users": [{"name": user, "user": {"token": self.tokens[user]}}],
            "contexts": [{"name": user, "context": {"cluster": "envtest", "user": user}}],
            "current-context": user,
        }
        path.write_text(json.dumps(config, indent=2) + "\n")
        path.chmod(0o600)
