"""Generate Python, gRPC and typed stubs from proto/ into libs/proto/src/trunkline/proto/.

Proto package `trunkline.<pkg>.v1` would generate the module `trunkline.<pkg>.v1`, which
collides with the service package `trunkline.<pkg>` of the same namespace. So protoc writes
into a temporary directory, the generated imports are rewritten to `trunkline.proto.<pkg>.v1`,
and the tree is moved under libs/proto/src/trunkline/proto/. Stale generated files are removed,
`__init__.py` files are created where missing. Idempotent; exits non-zero with protoc's message
when generation fails (the previous output is then left untouched).

Usage: uv run --frozen python tools/gen_proto.py
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
OUT_ROOT = ROOT / "libs" / "proto" / "src" / "trunkline" / "proto"
NAMESPACE = "trunkline"
TARGET = "trunkline.proto"
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")
PLUGINS = ("protoc-gen-mypy", "protoc-gen-mypy_grpc")


class GenerationError(Exception):
    """protoc (or a plugin) failed; the message is protoc's output."""


def find_protos(proto_root: Path) -> list[Path]:
    """All .proto files under `proto_root/trunkline`, relative to proto_root, sorted."""
    return sorted(p.relative_to(proto_root) for p in (proto_root / NAMESPACE).rglob("*.proto"))


def proto_packages(protos: Iterable[Path]) -> list[str]:
    """Top-level package names (`stt` for trunkline/stt/v1/stt.proto), sorted and unique."""
    names = {p.parts[1] for p in protos if len(p.parts) > 2 and p.parts[0] == NAMESPACE}
    return sorted(names)


def is_generated(path: Path) -> bool:
    return path.name.endswith(GENERATED_SUFFIXES)


def rewrite_imports(text: str, packages: Iterable[str]) -> str:
    """Point generated references to `trunkline.<pkg>.v<n>` modules at `trunkline.proto.…`.

    Only module references are rewritten: `from trunkline.X.v1 import …`,
    `import trunkline.X.v1.foo_pb2`, and dotted paths ending in a `_pb2`/`_pb2_grpc` module
    (including the module name passed to the descriptor builder). Proto full names inside
    descriptors and gRPC method paths (`/trunkline.X.v1.Service/Method`) stay as they are,
    since they are the wire contract.
    """
    names = "|".join(re.escape(p) for p in sorted(packages))
    if not names:
        return text
    pattern = re.compile(
        rf"(?<![\w./]){re.escape(NAMESPACE)}\.(?P<pkg>{names})\.(?P<ver>v\d+\w*)"
        r"(?=\.[A-Za-z_]\w*?_pb2(?:_grpc)?\b|\s+import\b)"
    )
    return pattern.sub(rf"{TARGET}.\g<pkg>.\g<ver>", text)


def include_dir() -> Path:
    """grpc_tools' bundled well-known types (google/protobuf/*.proto)."""
    spec = importlib.util.find_spec("grpc_tools")
    if spec is None or not spec.submodule_search_locations:
        raise GenerationError("grpc_tools is not installed (dev dependency grpcio-tools)")
    return Path(next(iter(spec.submodule_search_locations))) / "_proto"


def plugin_path(name: str) -> Path:
    """A protoc plugin installed next to this interpreter (mypy-protobuf)."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return candidate
    found = shutil.which(name)
    if found is None:
        raise GenerationError(f"{name} not found (dev dependency mypy-protobuf)")
    return Path(found)


def protoc_command(proto_root: Path, out_dir: Path, protos: Sequence[Path]) -> list[str]:
    command = [sys.executable, "-m", "grpc_tools.protoc", f"-I{proto_root}", f"-I{include_dir()}"]
    command += [f"--plugin={name}={plugin_path(name)}" for name in PLUGINS]
    command += [
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--mypy_out=quiet:{out_dir}",
        f"--mypy_grpc_out=quiet:{out_dir}",
    ]
    command += [str(p) for p in protos]
    return command


def run_protoc(proto_root: Path, out_dir: Path, protos: Sequence[Path]) -> None:
    result = subprocess.run(
        protoc_command(proto_root, out_dir, protos),
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        message = (result.stderr + result.stdout).strip() or f"exit status {result.returncode}"
        raise GenerationError(message)


def remove_stale(out_root: Path) -> None:
    for path in out_root.rglob("*"):
        if path.is_file() and is_generated(path):
            path.unlink()


def ensure_inits(out_root: Path, package_dir: Path) -> None:
    """Create `__init__.py` in every directory from out_root down to package_dir."""
    current = out_root
    for part in package_dir.relative_to(out_root).parts:
        current = current / part
        init = current / "__init__.py"
        if not init.exists():
            module = ".".join((TARGET, *current.relative_to(out_root).parts))
            init.write_text(f'"""Generated contracts: {module} (built by `make proto`)."""\n')


def install(gen_root: Path, out_root: Path, packages: Sequence[str]) -> list[Path]:
    """Move the generated tree under out_root with rewritten imports; return the files written."""
    source_root = gen_root / NAMESPACE
    out_root.mkdir(parents=True, exist_ok=True)
    remove_stale(out_root)
    written: list[Path] = []
    for source in sorted(source_root.rglob("*")):
        if not (source.is_file() and is_generated(source)):
            continue
        target = out_root / source.relative_to(source_root)
        target.parent.mkdir(parents=True, exist_ok=True)
        ensure_inits(out_root, target.parent)
        target.write_text(rewrite_imports(source.read_text(), packages))
        written.append(target)
    return written


def generate(proto_root: Path = PROTO_ROOT, out_root: Path = OUT_ROOT) -> list[Path]:
    protos = find_protos(proto_root)
    if not protos:
        raise GenerationError(f"no .proto files under {proto_root / NAMESPACE}")
    with tempfile.TemporaryDirectory(prefix="trunkline-proto-") as tmp:
        gen_root = Path(tmp)
        run_protoc(proto_root, gen_root, protos)
        return install(gen_root, out_root, proto_packages(protos))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--proto-root", type=Path, default=PROTO_ROOT)
    parser.add_argument("--out", type=Path, default=OUT_ROOT)
    args = parser.parse_args(argv)
    try:
        written = generate(args.proto_root.resolve(), args.out.resolve())
    except GenerationError as error:
        print(f"gen_proto: protoc failed:\n{error}", file=sys.stderr)
        return 1
    print(f"gen_proto: wrote {len(written)} files under {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
