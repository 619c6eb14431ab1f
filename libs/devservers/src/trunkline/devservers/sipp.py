"""A SIP caller for tests: ``sipp`` (Debian ``sip-tester``) placing one call, and a UDP socket
that records the RTP coming back.

The INVITE's SDP offers PCMU (G.711 mu-law, 8 kHz) at a port of the caller's choosing (an
:class:`RtpReceiver`), so what the far end sends lands there rather than in sipp; what the caller
says is a raw mu-law file sipp streams with ``rtp_stream`` from its own media port (sipp 3.6.1
sends a WAV's header as audio too: give it the samples only). sipp's message log gives the time
each SIP message was sent or received (:func:`message_times`).
"""

from __future__ import annotations

import asyncio
import re
import struct
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from trunkline.devservers.ports import LOOPBACK, free_port

SDP = """v=0
o=sipp 1 1 IN IP4 127.0.0.1
s=-
c=IN IP4 127.0.0.1
t=0 0
m=audio @RECV_PORT@ RTP/AVP 0
a=rtpmap:0 PCMU/8000
a=sendrecv"""

INVITE = """INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:@CALLER@@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:@CALLER@@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

@SDP@"""

ACK = """ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:@CALLER@@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0
"""

BYE = """BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:@CALLER@@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 2 BYE
Max-Forwards: 70
Content-Length: 0
"""


def _cdata(message: str) -> str:
    return f"<![CDATA[\n{message}\n]]>"


def _invite(caller: str, recv_port: int) -> str:
    sdp = SDP.replace("@RECV_PORT@", str(recv_port))
    return INVITE.replace("@SDP@", sdp).replace("@CALLER@", caller)


def call_scenario(caller: str, recv_port: int, audio: Path, seconds: float) -> str:
    """From ``caller``: INVITE (PCMU to ``recv_port``), 200, ACK, stream ``audio`` (raw mu-law,
    ``seconds`` long), hang up after it (BYE, 200)."""
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="trunkline sip caller">
  <send retrans="500">{_cdata(_invite(caller, recv_port))}</send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
  <recv response="200" rtd="true"/>
  <send>{_cdata(ACK.replace("@CALLER@", caller))}</send>
  <nop><action><exec rtp_stream="{audio},1,0,PCMU/8000"/></action></nop>
  <pause milliseconds="{int(seconds * 1000) + 500}"/>
  <send retrans="500">{_cdata(BYE.replace("@CALLER@", caller))}</send>
  <recv response="200" crlf="true"/>
</scenario>
"""


def unanswered_scenario(caller: str, recv_port: int, wait_ms: int) -> str:
    """INVITE, ringing, then nothing for ``wait_ms``: a final answer (200 or an error) in that
    time is an unexpected message, which fails the call (sipp exits 1)."""
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="trunkline sip caller, unanswered">
  <send retrans="500">{_cdata(_invite(caller, recv_port))}</send>
  <recv response="100" optional="true"/>
  <recv response="180"/>
  <pause milliseconds="{wait_ms}"/>
</scenario>
"""


ACK_FAILED = """ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
[last_Via:]
From: <sip:@CALLER@@[local_ip]:[local_port]>;tag=[pid]SIPpTag[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: @CSEQ@ ACK
Max-Forwards: 70
Content-Length: 0
"""


def auth_scenario(caller: str, recv_port: int, user: str, password: str, *, answered: bool) -> str:
    """INVITE without credentials, LiveKit SIP's digest challenge (407), the INVITE again with
    ``user``/``password``; then ``answered``: 200, ACK, BYE; else the refusal (401), ACK."""
    invite = _invite(caller, recv_port)
    credentials = f"[authentication username={user} password={password}]"
    again = invite.replace("CSeq: 1 INVITE", "CSeq: 2 INVITE").replace(
        "Max-Forwards: 70", f"Max-Forwards: 70\n{credentials}"
    )
    ack = ACK_FAILED.replace("@CALLER@", caller)
    ack_200 = ACK.replace("@CALLER@", caller).replace("CSeq: 1 ACK", "CSeq: 2 ACK")
    bye = BYE.replace("@CALLER@", caller).replace("CSeq: 2 BYE", "CSeq: 3 BYE")
    end = (
        f"""  <recv response="200" rtd="true"/>
  <send>{_cdata(ack_200)}</send>
  <pause milliseconds="500"/>
  <send retrans="500">{_cdata(bye)}</send>
  <recv response="200" crlf="true"/>"""
        if answered
        else f"""  <recv response="401"/>
  <send>{_cdata(ack.replace("@CSEQ@", "2"))}</send>"""
    )
    return f"""<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="trunkline sip caller, digest auth">
  <send retrans="500">{_cdata(invite)}</send>
  <recv response="100" optional="true"/>
  <recv response="407" auth="true"/>
  <send>{_cdata(ack.replace("@CSEQ@", "1"))}</send>
  <send retrans="500">{_cdata(again)}</send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="183" optional="true"/>
{end}
</scenario>
"""


@dataclass(frozen=True)
class SippResult:
    code: int
    """sipp's exit code: 0 every call succeeded, 1 one failed, 255 a fatal error or timeout."""
    messages: str
    """The message log (``-trace_msg``): every SIP message with its time."""
    errors: str


async def run_sipp(
    host: str, port: int, number: str, scenario: str, workdir: Path, *, limit_s: float = 90.0
) -> SippResult:
    """One call of ``scenario`` to ``number`` at ``host:port`` over UDP (files in ``workdir``)."""
    await asyncio.to_thread(_write, workdir / "scenario.xml", scenario)
    messages, errors = workdir / "messages.log", workdir / "errors.log"
    argv = [
        "sipp", f"{host}:{port}", "-sf", str(workdir / "scenario.xml"), "-s", number,
        "-m", "1", "-i", LOOPBACK, "-mi", LOOPBACK, "-p", str(free_port()),
        "-mp", str(free_port() & ~1), "-nostdin", "-timeout", f"{int(limit_s) - 5}s",
        "-timeout_error", "-trace_msg", "-message_file", str(messages),
        "-trace_err", "-error_file", str(errors),
    ]  # fmt: skip
    proc = await asyncio.create_subprocess_exec(
        *argv, cwd=workdir, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await asyncio.wait_for(proc.communicate(), limit_s)
    read = await asyncio.to_thread(_read, messages), await asyncio.to_thread(_read, errors)
    return SippResult(proc.returncode or 0, read[0], read[1] + stderr.decode(errors="replace"))


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


STAMP = re.compile(r"^-+ (\d{4}-\d\d-\d\d)\s+(\d\d:\d\d:\d\d\.\d+)\s*$", re.M)


def message_times(log: str) -> list[tuple[float, str]]:
    """(wall-clock time, first line) of each SIP message in sipp's message log."""
    found = []
    for match in STAMP.finditer(log):
        when = datetime.strptime(f"{match[1]} {match[2]}", "%Y-%m-%d %H:%M:%S.%f").timestamp()
        rest = log[match.end() :].lstrip().split("\n")
        first = next((line for line in rest[1:] if line.strip()), "")
        found.append((when, first.strip()))
    return found


class RtpReceiver(asyncio.DatagramProtocol):
    """Every RTP packet that arrives: (wall-clock time, payload type, payload)."""

    def __init__(self) -> None:
        self.packets: list[tuple[float, int, bytes]] = []

    def datagram_received(self, data: bytes, addr: tuple[str | int, ...]) -> None:
        if len(data) < 12 or data[0] >> 6 != 2:
            return
        start = 12 + 4 * (data[0] & 0x0F)
        if data[0] & 0x10:  # a header extension
            start += 4 + 4 * struct.unpack_from(">H", data, start + 2)[0]
        self.packets.append((time.time(), data[1] & 0x7F, data[start:]))

    def pcmu(self, since: float = 0.0, until: float = float("inf")) -> bytes:
        """The PCMU payloads that arrived from wall-clock time ``since`` to ``until``, joined."""
        return b"".join(p for at, pt, p in self.packets if pt == 0 and since <= at < until)


async def rtp_receiver() -> tuple[asyncio.DatagramTransport, RtpReceiver, int]:
    """A receiver on a free loopback UDP port: (transport to close, receiver, port)."""
    loop = asyncio.get_running_loop()
    transport, receiver = await loop.create_datagram_endpoint(RtpReceiver, local_addr=(LOOPBACK, 0))
    return transport, receiver, int(transport.get_extra_info("sockname")[1])
