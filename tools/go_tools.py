"""Build the Go tools the project runs (helm, Jaeger, the LiveKit server, LiveKit SIP) once, from
the Go module proxy, into the tools cache (``trunkline.devservers.gotools``): ``make install``
runs ``build``.

A tool already built for its pinned version is left alone (a second run takes milliseconds).
Each build is ``go install -trimpath <package>@<version>`` (or ``go build`` in the tool's module
folder under ``tools/go/``, whose ``go.sum`` pins every dependency) with ``GOFLAGS=-mod=mod``
and the machine's Go (``GOTOOLCHAIN=local``: no other toolchain is downloaded), into a temporary
folder renamed into place only when it succeeded, with ``build.json`` beside the binary (Go version,
seconds). A failed build prints what ``go`` said (a module the proxy refused, a Go too old)
and exits non-zero.

``python tools/go_tools.py build [NAME ...] [--force]``   ``python tools/go_tools.py path NAME``
``python tools/go_tools.py apt`` prints the Debian packages the builds need that are not installed
(``make tools`` installs them with apt-get first).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from trunkline.devservers.gotools import TOOLS, GoTool, ToolMissingError, find_tool, tools_dir

ROOT = Path(__file__).resolve().parents[1]
LDFLAGS = "-s -w"
"""Strip symbol and debug tables: the binaries are run, never debugged here (helm ~40% smaller)."""


def go_binary() -> str:
    found = shutil.which("go")
    if found is None:
        raise SystemExit(
            "go not found on PATH: the helm and Jaeger tools are built from the Go module proxy "
            "with Go >= 1.26 (see README, Developing)"
        )
    return found


def go_env(*, cgo: bool = False) -> dict[str, str]:
    return {
        **os.environ,
        "GOFLAGS": "-mod=mod",
        "GOTOOLCHAIN": os.environ.get("GOTOOLCHAIN", "local"),
        "CGO_ENABLED": "1" if cgo else "0",
    }


def go_version(go: str) -> str:
    done = subprocess.run([go, "version"], capture_output=True, text=True, check=True)
    return done.stdout.strip()


def build(tool: GoTool, root: Path, go: str) -> float:
    """Build ``tool`` into ``root/<name>-<version>/``; return the seconds it took."""
    root.mkdir(parents=True, exist_ok=True)
    target = root / tool.folder
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f".{tool.folder}-", dir=root) as tmp:
        staging = Path(tmp) / tool.folder
        staging.mkdir()
        flags = ["-trimpath", f"-ldflags={' '.join(filter(None, (LDFLAGS, tool.ldflags)))}"]
        if tool.module is None:
            command, cwd = [go, "install", *flags, tool.spec], None
        else:
            out = str(staging / tool.name)
            command, cwd = [go, "build", *flags, "-o", out, tool.package], ROOT / tool.module
        print(f"building {tool.name} {tool.version}: {' '.join(command)}", flush=True)
        done = subprocess.run(
            command, env={**go_env(cgo=tool.cgo), "GOBIN": str(staging)}, cwd=cwd,
            capture_output=True, text=True, check=False,
        )  # fmt: skip
        if done.returncode != 0:
            hint = f" (it needs the Debian packages {' '.join(tool.apt)})" if tool.apt else ""
            raise SystemExit(
                f"building {tool.spec} failed (go exit {done.returncode}){hint}:\n"
                f"{done.stderr.strip()}"
            )
        if not (staging / tool.name).is_file():
            raise SystemExit(f"go install {tool.spec} produced no {tool.name} in {staging}")
        seconds = time.monotonic() - started
        info = {
            "package": tool.package,
            "version": tool.version,
            "go": go_version(go),
            "cgo": tool.cgo,
            "seconds": round(seconds, 1),
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }
        (staging / "build.json").write_text(json.dumps(info, indent=2) + "\n")
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    print(f"built {tool.name} {tool.version} in {seconds:.0f}s -> {target / tool.name}", flush=True)
    return seconds


def missing_apt(tools: list[GoTool]) -> list[str]:
    """The Debian packages ``tools`` need to build that dpkg does not list as installed."""
    wanted = sorted({package for tool in tools for package in tool.apt})
    return [package for package in wanted if not apt_installed(package)]


def apt_installed(package: str) -> bool:
    done = subprocess.run(
        ["dpkg-query", "-W", "-f=${Status}", package], capture_output=True, text=True, check=False
    )
    return done.returncode == 0 and done.stdout.strip().endswith("installed")


def build_missing(names: list[str], *, force: bool = False, root: Path | None = None) -> int:
    root = root or tools_dir()
    unknown = [n for n in names if n not in TOOLS]
    if unknown:
        raise SystemExit(f"unknown tool(s) {', '.join(unknown)}; known: {', '.join(TOOLS)}")
    wanted = [TOOLS[n] for n in names] if names else list(TOOLS.values())
    go: str | None = None
    for tool in wanted:
        if not force:
            try:
                path = find_tool(tool.name, root)
            except ToolMissingError:
                pass
            else:
                print(f"{tool.name} {tool.version}: cached at {path}")
                continue
        go = go or go_binary()
        build(tool, root, go)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    build_cmd = sub.add_parser("build", help="build the tools not cached yet")
    build_cmd.add_argument("names", nargs="*", help=f"default: all ({', '.join(TOOLS)})")
    build_cmd.add_argument("--force", action="store_true", help="rebuild even when cached")
    sub.add_parser("apt", help="print the Debian packages the builds need, not installed yet")
    path_cmd = sub.add_parser("path", help="print the cached binary's path (exit 1: not built)")
    path_cmd.add_argument("name", choices=sorted(TOOLS))
    args = parser.parse_args(argv)
    if args.command == "build":
        return build_missing(args.names, force=args.force)
    if args.command == "apt":
        print(" ".join(missing_apt(list(TOOLS.values()))))
        return 0
    try:
        print(find_tool(args.name))
    except ToolMissingError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
