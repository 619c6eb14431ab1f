"""The ``trunkline`` command.

trunkline stack up [--run-dir .run] [--base-port N] [--redis-url URL] [--nats-url URL]
trunkline stack down | status [--json] | restart NAME
trunkline demo           the stack up, the sample knowledge loaded, one call through everything
trunkline eval [PATHS]   the conversation eval: scenarios (agents/*/eval) through the stack
trunkline <plugin> ...   commands other members register (e.g. `kb` from the context service)

Other members add commands through the ``trunkline.commands`` entry-point group (a callable
``(argv: list[str]) -> int``), so the CLI never imports a service (import-linter keeps them apart).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from trunkline.cli import demo, stack
from trunkline.cli.call import add_call_parser
from trunkline.cli.evaluate import add_eval_parser, run_eval_command
from trunkline.cli.rollout import add_rollout_parser
from trunkline.cli.settings import StackSettings

PLUGIN_GROUP = "trunkline.commands"


def plugins() -> dict[str, Callable[[list[str]], int]]:
    """Commands registered by other members under the ``trunkline.commands`` entry points."""
    found: dict[str, Callable[[list[str]], int]] = {}
    for entry in entry_points(group=PLUGIN_GROUP):
        found[entry.name] = entry.load()
    return found


def _parser() -> argparse.ArgumentParser:
    names = sorted(entry.name for entry in entry_points(group=PLUGIN_GROUP))
    parser = argparse.ArgumentParser(
        prog="trunkline",
        description=__doc__.splitlines()[0],
        epilog=f"more commands: {', '.join(names)} (see `trunkline <command> --help`)"
        if names
        else None,
    )
    commands = parser.add_subparsers(dest="command", required=True)

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--run-dir", type=Path, help="pid files, logs, stack.json (default .run)")

    start = argparse.ArgumentParser(add_help=False)
    start.add_argument("--base-port", type=int, help="consecutive ports from here (default: free)")
    start.add_argument("--redis-url", help="reuse this Redis (must answer PING)")
    start.add_argument("--nats-url", help="reuse this NATS (must be up, with JetStream)")
    start.add_argument("--timeout", dest="start_timeout", type=float, help="seconds to SERVING")
    start.add_argument("--drain-seconds", type=float, help="services' SIGTERM drain")

    stack_cmd = commands.add_parser("stack", help="the local stack")
    actions = stack_cmd.add_subparsers(dest="action", required=True)
    actions.add_parser("up", parents=[common, start], help="start everything, wait until healthy")
    actions.add_parser("down", parents=[common], help="stop what `up` started (only that)")
    again = actions.add_parser("restart", parents=[common], help="restart one service")
    again.add_argument("name", help="a service of the stack, e.g. tts")
    status = actions.add_parser("status", parents=[common], help="pid, port, health of each part")
    status.add_argument("--json", action="store_true", help="print JSON rows")

    commands.add_parser(
        "demo", parents=[common, start], help="bring the stack up and run a call through it"
    )
    add_call_parser(commands)
    add_eval_parser(commands, [common, start])
    add_rollout_parser(commands)
    return parser


def _settings(args: argparse.Namespace) -> StackSettings:
    keys = ("run_dir", "base_port", "redis_url", "nats_url", "start_timeout", "drain_seconds")
    given: dict[str, Any] = {
        k: getattr(args, k) for k in keys if getattr(args, k, None) is not None
    }
    return StackSettings(**given)


def plugin(name: str) -> Callable[[list[str]], int] | None:
    """The one plugin command ``name`` (loading only its module: the others' imports are slow)."""
    for entry in entry_points(group=PLUGIN_GROUP, name=name):
        command: Callable[[list[str]], int] = entry.load()
        return command
    return None


def main(argv: Sequence[str] | None = None) -> None:
    arguments = list(sys.argv[1:] if argv is None else argv)
    if arguments and not arguments[0].startswith("-"):
        command = plugin(arguments[0])
        if command is not None:
            raise SystemExit(command(arguments[1:]))
    args = _parser().parse_args(arguments)
    if args.command in ("call", "rollout"):
        raise SystemExit(args.func(args))
    try:
        settings = _settings(args)
    except ValidationError as exc:
        print(f"invalid settings: {exc}", file=sys.stderr)
        raise SystemExit(2) from exc
    if args.command == "demo":
        raise SystemExit(demo.run(settings))
    if args.command == "eval":
        raise SystemExit(run_eval_command(args, settings))
    if args.action == "up":
        raise SystemExit(stack.up(settings))
    if args.action == "down":
        raise SystemExit(stack.down(settings))
    if args.action == "restart":
        raise SystemExit(stack.restart(settings, args.name))
    raise SystemExit(stack.status(settings, as_json=args.json))


if __name__ == "__main__":
    main()
