"""Typed settings for every Trunkline process.

Each process defines one subclass of :class:`ServiceSettings` with its own env prefix, reads it
once at start-up (``Settings.load()``) and passes it down. Peers are ``<PEER>_ADDR`` fields
(``host:port``); secrets are :class:`pydantic.SecretStr` so they never reach a log line.
"""

from trunkline.config.defaults import TURN_TAKING, TurnTaking
from trunkline.config.settings import PeerAddress, ServiceSettings, parse_peer

__all__ = ["TURN_TAKING", "PeerAddress", "ServiceSettings", "TurnTaking", "parse_peer"]
