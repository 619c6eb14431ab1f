"""``trunkline call``: a simulated caller on the gateway's Twilio media stream.

Register it in the ``trunkline`` parser with ``add_call_parser(commands)``; the parser's
``func`` default is :func:`run_call`, which returns the exit code.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

import aiohttp
from pydantic import SecretStr, ValidationError

from trunkline.cli.caller import (
    CallerTurn,
    CallIdentity,
    CallOptions,
    DialError,
    ScenarioError,
    SimulatedCaller,
    conversation,
    direct_target,
    latency_table,
    load_scenario,
    prepare_script,
    webhook_target,
)
from trunkline.cli.caller.audio import AudioInputError
from trunkline.cli.caller.settings import CallSettings
from trunkline.cli.caller.tts import SynthesisError


class _TurnAction(argparse.Action):
    """``--say`` and ``--wav`` append to one ordered list of turns."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        turns: list[CallerTurn] = list(getattr(namespace, "turns", None) or [])
        value = str(values)
        turns.append(CallerTurn(wav=Path(value)) if self.dest == "wav" else CallerTurn(text=value))
        namespace.turns = turns


def _pairs(items: list[str] | None) -> dict[str, str]:
    out = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {item!r}")
        out[key] = value
    return out


def add_call_parser(subparsers: Any) -> None:
    """Add ``call`` to the ``trunkline`` command's subparsers."""
    p = subparsers.add_parser(
        "call", help="a simulated caller: speak to an agent over the Twilio media stream"
    )
    dial = p.add_argument_group("dialling (defaults from TRUNKLINE_CALL_*)")
    dial.add_argument("--url", help="media stream WebSocket URL (ws://host:port/twilio/stream)")
    dial.add_argument("--webhook", help="TwiML webhook URL: dial as Twilio does (signed POST)")
    dial.add_argument("--twilio-auth-token", help="tenant's Twilio auth token (webhook mode)")
    dial.add_argument("--tenant")
    dial.add_argument("--agent")
    dial.add_argument("--token", help="stream token, as issued by the webhook")
    dial.add_argument("--stream-secret", help="tenant's stream secret: derive the token")
    dial.add_argument("--token-in", choices=["parameters", "query", "both"])
    dial.add_argument("--param", action="append", help="extra custom parameter KEY=VALUE")
    dial.add_argument("--from", dest="caller", default="+15005550006", help="caller number")
    dial.add_argument("--to", dest="callee", default="+15005550001", help="called number")
    say = p.add_argument_group("what the caller says (in order)")
    say.add_argument("--say", dest="say", action=_TurnAction, help="a line, spoken via TTS")
    say.add_argument("--wav", dest="wav", action=_TurnAction, help="a WAV file to speak")
    say.add_argument("--scenario", type=Path, help="YAML/JSON scenario (barge-in, pauses)")
    say.add_argument("--tts-addr", help="TTS service host:port for text turns")
    say.add_argument("--caller-voice", help="TTS voice id; 'auto': one unlike the agent's")
    say.add_argument("--agent-voice", help="the agent's voice id, to avoid it")
    say.add_argument("--speaking-rate", type=float)
    timing = p.add_argument_group("timing")
    timing.add_argument("--quiet-ms", type=float, default=800.0, help="reply over after this")
    timing.add_argument("--reply-timeout", type=float, default=15.0, help="seconds")
    timing.add_argument("--no-greeting", action="store_true", help="speak without waiting")
    timing.add_argument("--voice-dbfs", type=float, default=-45.0, help="speech threshold")
    out = p.add_argument_group("output")
    out.add_argument("--record-agent", type=Path, help="agent audio as heard (16 kHz WAV)")
    out.add_argument("--record-call", type=Path, help="both sides (16 kHz stereo WAV)")
    out.add_argument("--json", type=Path, help="write the result as JSON here")
    p.set_defaults(func=run_call)


def settings_from_args(args: argparse.Namespace) -> CallSettings:
    keys = (
        "url", "webhook", "twilio_auth_token", "tenant", "agent", "token", "stream_secret",
        "token_in", "tts_addr", "caller_voice", "agent_voice", "speaking_rate",
    )  # fmt: skip
    given = {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}
    return CallSettings(**given)


def _secret(value: SecretStr | None) -> str | None:
    return None if value is None else value.get_secret_value()


async def call(args: argparse.Namespace, settings: CallSettings) -> int:
    turns: list[CallerTurn] = list(getattr(args, "turns", None) or [])
    if args.scenario is not None:
        turns.extend(load_scenario(args.scenario))
    if not turns:
        print("nothing to say: give --say, --wav or --scenario", file=sys.stderr)
        return 2
    script = await prepare_script(
        turns,
        tts_addr=settings.tts_addr,
        tenant=settings.tenant,
        voice=settings.caller_voice,
        agent_voice=settings.agent_voice,
        speaking_rate=settings.speaking_rate,
    )
    identity = CallIdentity(caller=args.caller, callee=args.callee)
    if settings.webhook:
        token = _secret(settings.twilio_auth_token)
        if token is None:
            print("--webhook needs --twilio-auth-token", file=sys.stderr)
            return 2
        async with aiohttp.ClientSession() as session:
            target = await webhook_target(
                session, settings.webhook, token, identity, token_in=settings.token_in
            )
    else:
        target = direct_target(
            settings.url,
            identity,
            tenant=settings.tenant,
            agent=settings.agent,
            token=_secret(settings.token),
            stream_secret=_secret(settings.stream_secret),
            token_in=settings.token_in,
            extra=_pairs(args.param),
        )
    options = CallOptions(
        reply_quiet_ms=args.quiet_ms,
        reply_timeout_s=args.reply_timeout,
        wait_greeting=not args.no_greeting,
        voice_dbfs=args.voice_dbfs,
    )
    caller = SimulatedCaller(target, identity, options)
    result = await caller.run(script)
    caller.write_recordings(args.record_agent, args.record_call)
    print(conversation(result))
    print()
    print(latency_table(result))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result.to_dict(), indent=2))
    return 0 if result.ended_by == "caller" else 1


def run_call(args: argparse.Namespace) -> int:
    """Entry point of ``trunkline call``; returns the exit code."""
    try:
        return asyncio.run(call(args, settings_from_args(args)))
    except ValidationError as exc:
        print(f"invalid settings: {exc}", file=sys.stderr)
    except argparse.ArgumentTypeError as exc:
        print(str(exc), file=sys.stderr)
    except (DialError, ScenarioError, AudioInputError, SynthesisError, ValueError) as exc:
        print(f"call failed: {exc}", file=sys.stderr)
        return 1
    return 2
