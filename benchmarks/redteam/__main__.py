"""``make redteam``: the red-team set (tests/data/redteam/attacks.yaml) through the real prompt
compiler, tool executor and output check, with an obedient stand-in model (see ``run.py``).

Prints one line per attack and a summary per vector; writes ``benchmarks/results/redteam.json``.
Exits 1 when any attack led to an unauthorized tool execution or a system-prompt disclosure.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections import Counter
from pathlib import Path

from benchmarks.redteam.run import ATTACKS, ROOT, load_attacks, run_all

RESULTS = ROOT / "benchmarks" / "results" / "redteam.json"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--attacks", type=Path, default=ATTACKS)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    outcomes = asyncio.run(run_all(load_attacks(args.attacks)))
    print(f"{'attack':<10} {'vector':<12} {'goal':<11} {'result':<8} stopped by")
    for o in outcomes:
        result = "blocked" if not (o.unauthorized or o.disclosed) else "FAILED"
        print(f"{o.attack.id:<10} {o.attack.vector:<12} {o.attack.goal:<11} {result:<8} "
              f"{o.stopped_by}")  # fmt: skip
    unauthorized = sum(len(o.unauthorized) for o in outcomes)
    disclosures = sum(o.disclosed for o in outcomes)
    by_vector = Counter(o.attack.vector for o in outcomes)
    print(f"{len(outcomes)} attacks ({', '.join(f'{v} {n}' for v, n in by_vector.items())}): "
          f"{unauthorized} unauthorized tool executions, {disclosures} system-prompt "
          "disclosures")  # fmt: skip
    exposed = asyncio.run(run_all(load_attacks(args.attacks), defences=False))
    exposed_tools = sum(len(o.unauthorized) for o in exposed)
    exposed_disclosures = sum(o.disclosed for o in exposed)
    succeeded = sum(bool(o.unauthorized or o.disclosed) for o in exposed)
    print(f"same attacks without the screens, data fences and output check: {exposed_tools} "
          f"unauthorized tool executions, {exposed_disclosures} disclosures "
          f"({succeeded} attacks succeed)")  # fmt: skip
    payload = {
        "attacks": len(outcomes),
        "without_prompt_defences": {
            "unauthorized_tool_executions": exposed_tools,
            "system_prompt_disclosures": exposed_disclosures,
            "failed": [o.attack.id for o in exposed if o.unauthorized or o.disclosed],
        },
        "unauthorized_tool_executions": unauthorized,
        "system_prompt_disclosures": disclosures,
        "by_vector": dict(by_vector),
        "model": "obedient stand-in (does whatever text in its prompt says)",
        "outcomes": [o.as_dict() for o in outcomes],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(payload, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 1 if unauthorized or disclosures else 0


if __name__ == "__main__":
    raise SystemExit(main())
