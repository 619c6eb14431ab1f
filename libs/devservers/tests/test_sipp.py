"""The test SIP caller's pieces (pure): scenarios, sipp's message log, RTP parsing."""

from __future__ import annotations

import struct
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from trunkline.devservers.sipp import (
    RtpReceiver,
    call_scenario,
    message_times,
    unanswered_scenario,
)

pytestmark = pytest.mark.unit


def test_the_call_offers_pcmu_at_the_receivers_port_and_streams_the_audio() -> None:
    scenario = call_scenario("+15550199", 41000, Path("/tmp/q.ulaw"), 9.5)
    root = ET.fromstring(scenario)
    invite = root[0].text or ""
    assert "m=audio 41000 RTP/AVP 0" in invite
    assert "From: <sip:+15550199@[local_ip]:[local_port]>" in invite
    stream, pause = root.find("nop/action/exec"), root.find("pause")
    assert stream is not None
    assert pause is not None
    assert stream.attrib["rtp_stream"] == "/tmp/q.ulaw,1,0,PCMU/8000"
    assert pause.attrib["milliseconds"] == "10000"
    assert "BYE sip:[service]" in (root[-2].text or "")
    unanswered = ET.fromstring(unanswered_scenario("+1", 41000, 4000))
    assert [e.tag for e in unanswered] == ["send", "recv", "recv", "pause"]


def test_message_times_reads_sipps_log() -> None:
    log = (
        "----------------------------------------------- 2026-12-03 23:55:20.528666\n"
        "UDP message sent (402 bytes):\n\nINVITE sip:+15550100@127.0.0.1:5060 SIP/2.0\nVia: x\n\n"
        "----------------------------------------------- 2026-12-03 23:55:20.735000\n"
        "UDP message received [300] bytes :\n\nSIP/2.0 200 OK\nVia: x\n"
    )
    times = message_times(log)
    assert [line for _, line in times] == [
        "INVITE sip:+15550100@127.0.0.1:5060 SIP/2.0",
        "SIP/2.0 200 OK",
    ]
    assert times[1][0] - times[0][0] == pytest.approx(0.206334)


def test_rtp_payloads_are_taken_after_the_header_and_its_extension() -> None:
    receiver = RtpReceiver()
    plain = struct.pack(">BBHII", 0x80, 0, 1, 160, 7) + b"\x11" * 160
    extended = struct.pack(">BBHIIHH", 0x90, 0, 2, 320, 7, 0xBEDE, 1) + b"xxxx" + b"\x22" * 160
    receiver.datagram_received(plain, ("127.0.0.1", 1))
    receiver.datagram_received(extended, ("127.0.0.1", 1))
    receiver.datagram_received(b"\x00" * 20, ("127.0.0.1", 1))  # not RTP version 2
    assert [(pt, len(p)) for _, pt, p in receiver.packets] == [(0, 160), (0, 160)]
    assert receiver.pcmu() == b"\x11" * 160 + b"\x22" * 160
    first, second = (at for at, _, _ in receiver.packets)
    assert receiver.pcmu(until=second) == b"\x11" * 160 or first == second
