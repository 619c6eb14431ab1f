"""Build the envtest API server (kube-apiserver + etcd) once from the Go module proxy.

``make install`` runs this. ``k8s.io/kubernetes`` cannot be ``go install``-ed (its go.mod
replaces its staging modules with local paths), so ``tools/envtest/go.mod`` requires it and
pins each ``k8s.io/<staging>`` module to its published ``v0.x`` release, plus
``go.etcd.io/etcd/server/v3`` at the version kubernetes' etcd client is built with. Both are
built with one ``go build`` (shared packages compile once) into
``<tools dir>/envtest-<kubernetes>-etcd-<etcd>/`` (``trunkline.devservers.kube``), through a
temporary folder renamed into place only on success, with ``build.json`` (Go version,
seconds). A cached build is left alone; a failed one prints what ``go`` said and exits 1.

``python tools/envtest_build.py [--force]``
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from trunkline.devservers.gotools import ToolMissingError, tools_dir
from trunkline.devservers.kube import BINARIES, ENVTEST, envtest_dir, find_envtest

MODULE = Path(__file__).resolve().parent / "envtest"
PACKAGES = {"kube-apiserver": "k8s.io/kubernetes/cmd/kube-apiserver",
            "etcd": "go.etcd.io/etcd/server/v3"}  # fmt: skip


def check_pins() -> None:
    """The go.mod pins the versions ``trunkline.devservers.kube.ENVTEST`` names."""
    text = (MODULE / "go.mod").read_text()
    wanted = {
        "k8s.io/kubernetes": ENVTEST.kubernetes,
        "go.etcd.io/etcd/server/v3": ENVTEST.etcd,
        "k8s.io/apiserver => k8s.io/apiserver": ENVTEST.staging,
    }
    for module, version in wanted.items():
        if not re.search(rf"^\s*{re.escape(module)} {re.escape(version)}\b", text, re.M):
            raise SystemExit(f"{MODULE / 'go.mod'} does not pin {module} {version}")


def ldflags() -> str:
    major, minor = ENVTEST.kubernetes.removeprefix("v").split(".")[:2]
    base = "k8s.io/component-base/version"
    return (
        f"-s -w -X {base}.gitVersion={ENVTEST.kubernetes} -X {base}.gitMajor={major} "
        f"-X {base}.gitMinor={minor} -X {base}.gitTreeState=clean"
    )


def build(target: Path) -> float:
    go = shutil.which("go")
    if go is None:
        raise SystemExit("go not found on PATH: the envtest API server is built with Go >= 1.26")
    check_pins()
    target.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "GOTOOLCHAIN": os.environ.get("GOTOOLCHAIN", "local"),
           "GOFLAGS": "-mod=mod"}  # fmt: skip
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f".{target.name}-", dir=target.parent) as tmp:
        staging = Path(tmp) / target.name
        staging.mkdir()
        command = [go, "build", "-trimpath", f"-ldflags={ldflags()}", "-o", str(staging),
                   *PACKAGES.values()]  # fmt: skip
        print(f"building kube-apiserver {ENVTEST.kubernetes} + etcd {ENVTEST.etcd} "
              f"(several minutes on 2 cores): {' '.join(command)}", flush=True)  # fmt: skip
        done = subprocess.run(command, check=False, cwd=MODULE, env=env, capture_output=True,
                              text=True)  # fmt: skip
        if done.returncode != 0:
            raise SystemExit(f"building the envtest API server failed (go exit "
                             f"{done.returncode}):\n{done.stderr.strip()}")  # fmt: skip
        # `go build -o DIR` names each binary after its package path (etcd's: "server").
        (staging / "server").rename(staging / "etcd")
        missing = [name for name in BINARIES if not (staging / name).is_file()]
        if missing:
            raise SystemExit(f"go build produced no {', '.join(missing)} in {staging}")
        seconds = time.monotonic() - started
        version = subprocess.run([go, "version"], check=True, capture_output=True,
                                 text=True).stdout.strip()  # fmt: skip
        info = {"kubernetes": ENVTEST.kubernetes, "etcd": ENVTEST.etcd, "go": version,
                "seconds": round(seconds, 1),
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}  # fmt: skip
        (staging / "build.json").write_text(json.dumps(info, indent=2) + "\n")
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    print(f"built the envtest API server in {seconds:.0f}s -> {target}", flush=True)
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--force", action="store_true", help="rebuild even when cached")
    args = parser.parse_args(argv)
    target = envtest_dir(tools_dir())
    if not args.force:
        try:
            find_envtest()
        except ToolMissingError:
            pass
        else:
            print(f"envtest {ENVTEST.kubernetes} + etcd {ENVTEST.etcd}: cached at {target}")
            return 0
    build(target)
    return 0


if __name__ == "__main__":
    sys.exit(main())
