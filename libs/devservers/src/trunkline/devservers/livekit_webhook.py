"""The loopback LiveKit server with its webhook pointed at a gateway.

LiveKit posts room and participant events (``room_started``, ``participant_joined``, ...) to each
URL in ``webhook.urls``, signed with ``webhook.api_key`` (one of its configured keys): the
gateway's ``POST /livekit/webhook`` dispatches rooms from them.
"""

from __future__ import annotations

import json
from typing import Any

from trunkline.devservers.livekit import LiveKitServer


class LiveKitWithWebhook(LiveKitServer):
    """:class:`LiveKitServer` whose config also sends webhooks to ``webhook_urls``."""

    def __init__(self, *, webhook_urls: list[str], **options: Any) -> None:
        super().__init__(**options)
        self.webhook_urls = list(webhook_urls)

    def command(self) -> list[str]:
        argv = super().command()
        config = json.loads(self.config_path.read_text())
        config["webhook"] = {"api_key": self.api_key, "urls": self.webhook_urls}
        self.config_path.write_text(json.dumps(config, indent=2) + "\n")
        self.config_path.chmod(0o600)
        return argv
