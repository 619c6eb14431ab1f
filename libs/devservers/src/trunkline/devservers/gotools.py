"""Go programs the project builds once from the Go module proxy (helm, Jaeger, the LiveKit
server and LiveKit SIP): pinned versions and where the built binaries are cached.

``make install`` builds them (``tools/go_tools.py``) into
``$TRUNKLINE_TOOLS_DIR`` or ``${XDG_CACHE_HOME:-~/.cache}/trunkline/tools``, one folder per
name and version (``jaeger-v1.75.0/jaeger``), so a version bump builds anew and an old build is
never picked up by mistake. Nothing here builds or downloads: :func:`find_tool` only looks.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class GoTool:
    """A ``main`` package of a Go module: built with ``go install <package>@<version>``, or,
    when ``module`` names a folder of the repository (a module that requires it as a ``tool``,
    with its ``go.sum``), with ``go build`` in that folder."""

    name: str
    package: str
    version: str
    module: str | None = None
    ldflags: str = ""
    """Extra ``-ldflags`` (``-X`` a version string the release build would stamp)."""
    cgo: bool = False
    """Built with ``CGO_ENABLED=1`` (C libraries found with pkg-config: see ``apt``)."""
    apt: tuple[str, ...] = ()
    """Debian packages the build needs (``make tools`` installs the missing ones)."""

    @property
    def spec(self) -> str:
        return f"{self.package}@{self.version}"

    @property
    def folder(self) -> str:
        return f"{self.name}-{self.version}"


HELM = GoTool(
    "helm",
    "helm.sh/helm/v4/cmd/helm",
    "v4.3.2",
    ldflags="-X helm.sh/helm/v4/internal/version.version=v4.3.2",
)
"""The helm CLI (v4.3.2: the newest v4.3.x the module proxy serves)."""
JAEGER = GoTool(
    "jaeger", "github.com/jaegertracing/jaeger/cmd/jaeger", "v1.75.0", module="tools/go/jaeger"
)
"""Jaeger all-in-one (Jaeger v2, an OpenTelemetry Collector distribution). v1.75.0 is the
approved release: newer ones are served but not approved. Its go.mod has a ``replace``, which
``go install pkg@version`` refuses, hence the module in ``tools/go/jaeger``."""
LIVEKIT = GoTool(
    "livekit-server",
    "github.com/livekit/livekit-server/cmd/server",
    "v1.13.5",
    module="tools/go/livekit",
)
"""LiveKit's SFU for the LiveKit transport (dev mode on loopback). v1.13.5 is the newest release
the proxy builds (later ones replace pion modules with forks the proxy refuses)."""
LIVEKIT_SIP = GoTool(
    "livekit-sip",
    "github.com/livekit/sip/cmd/livekit-sip",
    "v1.8.0",
    module="tools/go/sip",
    ldflags="-X github.com/livekit/sip/version.Version=v1.8.0",
    cgo=True,
    apt=("libopus-dev", "libopusfile-dev", "libsoxr-dev", "pkg-config"),
)
"""LiveKit SIP (SIP/RTP <-> LiveKit rooms; talks to the server over psrpc on a shared Redis).
The proxy answers 403 for the module's version list but serves exact versions: v1.8.0 is the
newest it serves (v1.4-v1.6 and v1.9+ are 403). Its codecs are cgo (opus, opusfile, soxr)."""
TOOLS: dict[str, GoTool] = {tool.name: tool for tool in (HELM, JAEGER, LIVEKIT, LIVEKIT_SIP)}

ENV_DIR = "TRUNKLINE_TOOLS_DIR"


class ToolMissingError(FileNotFoundError):
    """The tool has not been built: the message says how to build it."""


def tools_dir() -> Path:
    """``$TRUNKLINE_TOOLS_DIR``, else ``${XDG_CACHE_HOME:-~/.cache}/trunkline/tools``."""
    explicit = os.environ.get(ENV_DIR)
    if explicit:
        return Path(explicit)
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "trunkline" / "tools"


def tool_path(tool: GoTool, root: Path | None = None) -> Path:
    """Where ``tool``'s binary lives once built (it may not exist yet)."""
    return (root or tools_dir()) / tool.folder / tool.name


def find_tool(name: str, root: Path | None = None) -> Path:
    """The built binary of tool ``name``; :class:`ToolMissingError` saying how to build it."""
    try:
        tool = TOOLS[name]
    except KeyError:
        raise ValueError(f"unknown tool {name!r}; known: {', '.join(sorted(TOOLS))}") from None
    path = tool_path(tool, root)
    if not os.access(path, os.X_OK):
        raise ToolMissingError(
            f"{name} {tool.version} is not built ({path} missing): run `make install` "
            f"(or `python tools/go_tools.py build {name}`); it needs Go and the Go module proxy"
        )
    return path
