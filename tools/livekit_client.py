"""Vendor LiveKit's browser SDK (npm ``livekit-client``) for the gateway's LiveKit caller page:
``make tools`` (so ``make install``) runs it.

The pinned release's tarball comes from the npm registry through ``npm pack`` (or, without npm,
from the registry's tarball URL), checked against the pinned SHA-512, and its
self-contained UMD build (``dist/livekit-client.umd.js``, global ``LivekitClient``, Apache-2.0)
is copied with its licence into ``gateway/static/livekit/vendor/`` — a build artefact, ignored
by git. Already there for the pinned version: nothing is done.

``python tools/livekit_client.py [--force]``
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
VERSION = "2.23.0"
INTEGRITY = (
    "sha512-j9Kg86nJjBjNFUD+ukp2jwMCGa0k+YD5gU//RzAM+ZY3pbG631QCte7fQjw"
    "qWMmtBzhDJL9nKYuOLMv/9IbAxg=="
)
TARBALL_URL = f"https://registry.npmjs.org/livekit-client/-/livekit-client-{VERSION}.tgz"
VENDOR = ROOT / "services/gateway/src/trunkline/gateway/static/livekit/vendor"
FILES = {
    "package/dist/livekit-client.umd.js": "livekit-client.umd.js",
    "package/LICENSE": "LICENSE",
}


def integrity(path: Path) -> str:
    return "sha512-" + base64.b64encode(hashlib.sha512(path.read_bytes()).digest()).decode()


def fetch(folder: Path) -> Path:
    """The release tarball in ``folder``: ``npm pack`` where npm is installed, else the same file
    from the registry's tarball URL (either way checked against the pinned SHA-512)."""
    tarball = folder / f"livekit-client-{VERSION}.tgz"
    npm = shutil.which("npm")
    if npm is None:
        try:
            with urllib.request.urlopen(TARBALL_URL, timeout=60) as response:
                tarball.write_bytes(response.read())
        except OSError as exc:
            raise SystemExit(f"cannot fetch {TARBALL_URL}: {exc}") from None
        return tarball
    done = subprocess.run(
        [npm, "pack", f"livekit-client@{VERSION}", "--pack-destination", str(folder), "--silent"],
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"npm pack livekit-client@{VERSION} failed: {done.stderr.strip()}")
    return tarball


def vendor(force: bool = False) -> Path:
    stamp = VENDOR / "VERSION"
    if not force and stamp.is_file() and stamp.read_text().strip() == VERSION:
        return VENDOR
    with tempfile.TemporaryDirectory() as tmp:
        tarball = fetch(Path(tmp))
        if integrity(tarball) != INTEGRITY:
            raise SystemExit(f"{tarball.name}: SHA-512 differs from the pinned {INTEGRITY}")
        VENDOR.mkdir(parents=True, exist_ok=True)
        with tarfile.open(tarball) as archive:
            for member, name in FILES.items():
                source = archive.extractfile(member)
                if source is None:
                    raise SystemExit(f"{tarball.name} has no {member}")
                (VENDOR / name).write_bytes(source.read())
    stamp.write_text(VERSION + "\n")
    return VENDOR


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="fetch again even if vendored")
    where = vendor(parser.parse_args().force)
    print(f"livekit-client {VERSION} in {where.relative_to(ROOT)}", file=sys.stderr)
