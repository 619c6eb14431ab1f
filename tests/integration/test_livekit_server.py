"""The LiveKit server built from the Go module proxy, on loopback ports of its own.

The server starts from ``LiveKitServer`` with one API key, answers its health check, admits a
participant whose token was minted with that key (``livekit-api``, the SDK's own types) and
refuses one signed with another secret. Rooms are listed through the server API to prove the
participant really joined.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from livekit import api as livekit_api
from livekit import rtc

from trunkline.devservers.gotools import ToolMissingError, find_tool
from trunkline.devservers.livekit import LiveKitServer, livekit_ready

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def livekit(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveKitServer]:
    try:
        find_tool("livekit-server")
    except ToolMissingError as exc:
        pytest.fail(f"{exc} (make install builds it)")
    server = LiveKitServer(run_dir=tmp_path_factory.mktemp("livekit"))
    server.start()
    try:
        yield server
    finally:
        server.close()


def _token(server: LiveKitServer, identity: str, room: str, secret: str | None = None) -> str:
    grants = livekit_api.VideoGrants(room_join=True, room=room)
    return (
        livekit_api.AccessToken(server.api_key, secret or server.api_secret)
        .with_identity(identity)
        .with_grants(grants)
        .to_jwt()
    )


def test_it_listens_only_where_it_was_told(livekit: LiveKitServer, tmp_path: Path) -> None:
    assert livekit_ready(livekit.http_url)
    config = livekit.config_path.read_text()
    assert f'"port": {livekit.port}' in config
    assert f'"udp_port": {livekit.rtc_udp_port}' in config
    assert oct(livekit.config_path.stat().st_mode)[-3:] == "600"  # it holds the API secret


async def test_a_participant_with_a_minted_token_joins_and_a_forged_one_is_refused(
    livekit: LiveKitServer,
) -> None:
    room = rtc.Room()
    await room.connect(livekit.url, _token(livekit, "caller-1", "acme-call-1"))
    try:
        assert room.isconnected()
        async with livekit_api.LiveKitAPI(
            livekit.http_url, livekit.api_key, livekit.api_secret
        ) as lkapi:
            rooms = await lkapi.room.list_rooms(livekit_api.ListRoomsRequest())
            assert "acme-call-1" in [r.name for r in rooms.rooms]
    finally:
        await room.disconnect()

    forged = rtc.Room()
    with pytest.raises(Exception, match=r"(?i)401|unauthori|invalid|token|failed"):
        await asyncio.wait_for(
            forged.connect(livekit.url, _token(livekit, "intruder", "acme-call-1", "x" * 40)),
            timeout=15,
        )
