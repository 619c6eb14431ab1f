"""The simulated caller: dials the gateway over the Twilio Media Streams WebSocket like a real
phone call would, speaks WAV files or synthesized text in real time, plays and records the
agent, and measures per-turn voice-to-voice and barge-in latency.

Library use (the demo and the voice benchmark drive it this way)::

    target = direct_target(url, identity, tenant="acme", agent="support", stream_secret=s)
    caller = SimulatedCaller(target, identity, CallOptions(), agent_text=my_transcripts)
    result = await caller.run(script)           # script: list[PreparedTurn]
    caller.write_recordings(agent=Path("agent.wav"), call=Path("call.wav"))
    print(latency_table(result)); json.dumps(result.to_dict())
"""

from trunkline.cli.caller.client import AgentText, CallEndedError, CallOptions, SimulatedCaller
from trunkline.cli.caller.dial import (
    CallIdentity,
    DialError,
    StreamTarget,
    direct_target,
    webhook_target,
)
from trunkline.cli.caller.prepare import prepare_script
from trunkline.cli.caller.report import conversation, latency_table
from trunkline.cli.caller.result import CallResult, GreetingResult, TurnResult
from trunkline.cli.caller.scenario import CallerTurn, PreparedTurn, ScenarioError, load_scenario
from trunkline.telephony import stream_token

__all__ = [
    "AgentText",
    "CallEndedError",
    "CallIdentity",
    "CallOptions",
    "CallResult",
    "CallerTurn",
    "DialError",
    "GreetingResult",
    "PreparedTurn",
    "ScenarioError",
    "SimulatedCaller",
    "StreamTarget",
    "TurnResult",
    "conversation",
    "direct_target",
    "latency_table",
    "load_scenario",
    "prepare_script",
    "stream_token",
    "webhook_target",
]
