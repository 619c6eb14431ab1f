"""``make bench``: run every benchmark in turn, each in its own process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARKS = (
    "models",
    "stt",
    "llm",
    "context",
    "answers",
    "turn",
    "voice",
    "livekit",
    "redaction",
    "hitl",
    "ledger",
)


def main() -> int:
    here = Path(__file__).resolve().parent
    failed = []
    for name in BENCHMARKS:
        if not (here / name / "__main__.py").is_file():
            print(f"benchmark {name}: not present", file=sys.stderr)
            failed.append(name)
            continue
        print(f"== benchmarks.{name}", flush=True)
        if subprocess.call([sys.executable, "-m", f"benchmarks.{name}"]) != 0:
            failed.append(name)
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
